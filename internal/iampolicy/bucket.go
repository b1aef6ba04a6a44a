package iampolicy

import (
	"errors"
	"fmt"
)

// BucketPolicy returns the bucket policy an evidence bucket should carry,
// for the evidence under prefix ("" = the whole bucket): it denies, to
// everyone, requests without TLS, deleting an evidence object or one of
// its versions, bypassing a governance retention (which is also how a
// retention would be shortened or removed), and lifting a legal hold.
// Denials in a bucket policy hold whatever an identity policy allows,
// even for the account's administrators. region gives the partition
// ("" = aws).
func BucketPolicy(bucket, prefix, region string) (*Policy, error) {
	if bucket == "" {
		return nil, errors.New("--bucket-policy is the policy of the bucket of --s3 s3://BUCKET/PREFIX/: add --s3")
	}
	if err := checkPlace(bucket, prefix); err != nil {
		return nil, err
	}
	partition := "aws"
	if region != "" {
		if !regionRE.MatchString(region) {
			return nil, fmt.Errorf("--region %q: not a Region name (for example us-east-1)", region)
		}
		partition = regionPartition(region)
	}
	s := &scope{o: Options{S3Bucket: bucket, S3Prefix: prefix}, partition: partition}
	everyObject := fmt.Sprintf("arn:%s:s3:::%s/*", partition, bucket)
	deny := func(sid, purpose string, actions, resources []string, c Condition) Statement {
		return Statement{Sid: sid, Effect: "Deny", Principal: Values{wildcard}, Action: actions,
			Resource: resources, Condition: c, Purpose: purpose}
	}
	p := &Policy{Version: PolicyVersion, Statement: []Statement{
		deny("DenyEvidenceDeletion", "nobody deletes an evidence object or a version of it, or bypasses a governance retention to shorten or remove it",
			[]string{"s3:BypassGovernanceRetention", "s3:DeleteObject", "s3:DeleteObjectVersion"}, []string{s.objectsARN()}, nil),
		deny("DenyInsecureTransport", "no request to the bucket without TLS",
			[]string{"s3:*"}, []string{s.bucketARN(), everyObject},
			Condition{"Bool": {"aws:SecureTransport": {"false"}}}),
		deny("DenyLiftingLegalHolds", "nobody lifts a legal hold from an evidence object",
			[]string{s3PutObjectLegalHold}, []string{s.objectsARN()},
			Condition{"StringEquals": {"s3:object-lock-legal-hold": {"OFF"}}}),
	}}
	return p, nil
}
