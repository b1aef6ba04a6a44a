package iampolicy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// wildcard is IAM's wildcard in an ARN field or a condition value.
const wildcard = "*"

var (
	// A Region: "us-east-1", "us-gov-west-1", "cn-north-1", "ap-southeast-5".
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	// A KMS key ARN: a key id (a UUID) or a multi-Region key id (mrk- and
	// 32 hex digits), in one of the three public partitions.
	keyARNRE = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):kms:([a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}):([0-9]{12}):key/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$`)
)

// maxShareWith bounds --share-with: EC2 takes up to 500 changes of a
// snapshot's permissions in one call, far beyond any case.
const maxShareWith = 500

// scope is the options checked, with the wildcards filled in.
type scope struct {
	o          Options
	partition  string
	region     string // where snapshots are made and read, or "*"
	copyRegion string // where copies are made, or "*"
	keyRegion  string // the region of o.KMSKey, when it is set
}

func newScope(o Options) (*scope, error) {
	if o.Flows&AllFlows == 0 || o.Flows&^AllFlows != 0 {
		return nil, errors.New("choose at least one of --snapshot, --share, --copy and --acquire (or --s3-write, --s3-read)")
	}
	if err := checkS3(o); err != nil {
		return nil, err
	}
	s := &scope{o: o, region: wildcard}
	var partitions []string
	if o.Region != "" {
		if !regionRE.MatchString(o.Region) {
			return nil, fmt.Errorf("--region %q: not a Region name (for example us-east-1)", o.Region)
		}
		s.region = o.Region
		partitions = append(partitions, regionPartition(o.Region))
	}
	s.copyRegion = s.region
	if o.CopyRegion != "" {
		if o.Flows&Copy == 0 {
			return nil, errors.New("--copy-region is where --copy makes the copy: add --copy")
		}
		if !regionRE.MatchString(o.CopyRegion) {
			return nil, fmt.Errorf("--copy-region %q: not a Region name (for example eu-west-1)", o.CopyRegion)
		}
		s.copyRegion = o.CopyRegion
		partitions = append(partitions, regionPartition(o.CopyRegion))
	}
	if o.Account != "" && !accountRE.MatchString(o.Account) {
		return nil, fmt.Errorf("--account %q: an AWS account id is 12 digits", o.Account)
	}
	if len(o.ShareWith) > 0 && o.Flows&Share == 0 {
		return nil, errors.New("--share-with names the accounts --share shares with: add --share")
	}
	if len(o.ShareWith) > maxShareWith {
		return nil, fmt.Errorf("--share-with: %d accounts, more than the %d one snapshot can take", len(o.ShareWith), maxShareWith)
	}
	for _, a := range o.ShareWith {
		if !accountRE.MatchString(a) {
			return nil, fmt.Errorf("--share-with %q: an AWS account id is 12 digits", a)
		}
	}
	if o.KMSKey != "" {
		p, err := s.checkKey()
		if err != nil {
			return nil, err
		}
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)
	partitions = slices.Compact(partitions)
	switch len(partitions) {
	case 0:
		s.partition = "aws"
	case 1:
		s.partition = partitions[0]
	default:
		return nil, fmt.Errorf("the Regions and the key are in different AWS partitions (%s)", strings.Join(partitions, ", "))
	}
	return s, nil
}

// checkKey validates o.KMSKey and returns its partition.
func (s *scope) checkKey() (string, error) {
	o := s.o
	if o.Flows&(Copy|Acquire) == 0 {
		return "", errors.New("--kms-key is the key --copy encrypts the copy under and --acquire decrypts it with: add --copy or --acquire")
	}
	m := keyARNRE.FindStringSubmatch(o.KMSKey)
	if m == nil {
		if strings.Contains(o.KMSKey, ":alias/") || strings.HasPrefix(o.KMSKey, "alias/") {
			return "", fmt.Errorf("--kms-key %q: an alias does not authorize the use of a key in IAM: give the key's ARN (aws kms describe-key --key-id %s)", o.KMSKey, o.KMSKey)
		}
		return "", fmt.Errorf("--kms-key %q: not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID)", o.KMSKey)
	}
	s.keyRegion = m[2]
	want := s.region
	what := "--region"
	if o.Flows&Copy != 0 {
		want, what = s.copyRegion, "the Region of the copy"
	}
	if want != wildcard && want != s.keyRegion {
		return "", fmt.Errorf("--kms-key is in %s, not in %s (%s): KMS keys serve their own Region only", s.keyRegion, what, want)
	}
	return m[1], nil
}

// bucketRE is S3's rule for a bucket name (s3store.ParseURL checks the
// rest of them).
var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// checkS3 checks the S3 options: a bucket name, a prefix that is no
// pattern, and a lock only for the step that writes.
func checkS3(o Options) error {
	if (o.S3Bucket != "" || o.S3Prefix != "") && o.Flows&s3Flows == 0 {
		return errors.New("--s3 names where --s3-write writes evidence and --s3-read reads it: add one of them")
	}
	if (o.ObjectLock != "" || o.LegalHold) && o.Flows&S3Write == 0 {
		return errors.New("--object-lock and --legal-hold are the lock --s3-write writes evidence with: add --s3-write")
	}
	if err := checkPlace(o.S3Bucket, o.S3Prefix); err != nil {
		return err
	}
	switch o.ObjectLock {
	case "", "GOVERNANCE", "COMPLIANCE":
	default:
		return fmt.Errorf("--object-lock %q: governance or compliance", o.ObjectLock)
	}
	return nil
}

// checkPlace checks a bucket and a prefix for the ARNs: a prefix with IAM
// wildcards or a policy variable would name more than itself.
func checkPlace(bucket, prefix string) error {
	if bucket == "" && prefix != "" {
		return errors.New("--s3: a prefix without a bucket")
	}
	if bucket != "" && !bucketRE.MatchString(bucket) {
		return fmt.Errorf("--s3: bucket %q is not an S3 bucket name", bucket)
	}
	if strings.ContainsAny(prefix, "*?$") {
		return fmt.Errorf("--s3: prefix %q: * and ? are wildcards in an ARN, and ${…} a policy variable: give the prefix itself", prefix)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return fmt.Errorf("--s3: prefix %q does not end in /", prefix)
	}
	return nil
}

// bucketARN is the bucket's ARN, or every bucket's.
func (s *scope) bucketARN() string {
	b := s.o.S3Bucket
	if b == "" {
		b = wildcard
	}
	return fmt.Sprintf("arn:%s:s3:::%s", s.partition, b)
}

// objectsARN is the ARN of every object under the prefix.
func (s *scope) objectsARN() string {
	b := s.o.S3Bucket
	if b == "" {
		b = wildcard
	}
	return fmt.Sprintf("arn:%s:s3:::%s/%s*", s.partition, b, s.o.S3Prefix)
}

// runsARNs are the ARNs of the run records under the prefix: those of
// the evidence at the prefix, and of every evidence below it (a case).
func (s *scope) runsARNs() []string {
	b := s.o.S3Bucket
	if b == "" {
		b = wildcard
	}
	p := fmt.Sprintf("arn:%s:s3:::%s/%s", s.partition, b, s.o.S3Prefix)
	return []string{p + "runs/*", p + "*/runs/*"}
}

// writeOnce allows a write only with If-None-Match (S3 takes only "*"):
// the object is created, never overwritten.
func writeOnce() Condition {
	return Condition{"Null": {"s3:if-none-match": {"false"}}}
}

// prefixCondition lets ListBucket list the prefix only.
func (s *scope) prefixCondition() Condition {
	if s.o.S3Prefix == "" {
		return nil
	}
	return Condition{"StringLike": {"s3:prefix": {s.o.S3Prefix + "*"}}}
}

// regionPartition is the AWS partition of a Region name.
func regionPartition(r string) string {
	switch {
	case strings.HasPrefix(r, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(r, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// regions is every Region a snapshot of the chosen steps lives in.
func (s *scope) regions() []string {
	if s.region == wildcard || s.copyRegion == wildcard {
		return []string{wildcard}
	}
	r := []string{s.region, s.copyRegion}
	slices.Sort(r)
	return slices.Compact(r)
}

// snapshots are the snapshot ARNs of regions: a snapshot ARN names no
// account (arn:aws:ec2:REGION::snapshot/ID).
func (s *scope) snapshots(regions ...string) []string {
	var arns []string
	for _, r := range regions {
		arns = append(arns, fmt.Sprintf("arn:%s:ec2:%s::snapshot/*", s.partition, r))
	}
	return arns
}

// ec2Owned is the ARN of every resource of kind in region, in the
// account of the options.
func (s *scope) ec2Owned(region, kind string) string {
	account := s.o.Account
	if account == "" {
		account = wildcard
	}
	return fmt.Sprintf("arn:%s:ec2:%s:%s:%s/*", s.partition, region, account, kind)
}

// keys is the key of the options, or any key of regions.
func (s *scope) keys(regions []string) []string {
	if s.o.KMSKey != "" {
		return []string{s.o.KMSKey}
	}
	return s.anyKey(regions)
}

// anyKey is every key of regions, in any account: the key of a shared
// snapshot belongs to the account that shared it.
func (s *scope) anyKey(regions []string) []string {
	var arns []string
	for _, r := range regions {
		arns = append(arns, fmt.Sprintf("arn:%s:kms:%s:*:key/*", s.partition, r))
	}
	return arns
}

// keyRegions are the Regions the keys of keys(regions) serve.
func (s *scope) keyRegions(regions []string) []string {
	if s.o.KMSKey != "" {
		return []string{s.keyRegion}
	}
	return regions
}

// viaEBS limits the use of a key to requests EBS makes in regions: KMS
// names EBS "ec2.REGION.amazonaws.com" in kms:ViaService (the AWS
// managed key aws/ebs has the same condition), in every partition.
func (s *scope) viaEBS(regions []string) Condition {
	op := "StringEquals"
	var via []string
	for _, r := range regions {
		if r == wildcard {
			op = "StringLike"
		}
		via = append(via, "ec2."+r+".amazonaws.com")
	}
	slices.Sort(via)
	return Condition{op: {"kms:ViaService": slices.Compact(via)}}
}

// grantForEBS is viaEBS for kms:CreateGrant, which may also create
// grants only for AWS resources.
func (s *scope) grantForEBS(regions []string) Condition {
	c := s.viaEBS(regions)
	c["Bool"] = map[string]Values{"kms:GrantIsForAWSResource": {"true"}}
	return c
}

// requestedRegion limits actions without resource-level permission to
// the Regions of the options.
func (s *scope) requestedRegion() Condition {
	r := s.regions()
	if slices.Contains(r, wildcard) {
		return nil
	}
	return Condition{"StringEquals": {"aws:RequestedRegion": r}}
}

// shareCondition never lets a snapshot be made public (ec2:Add/group is
// "all" then), and, with ShareWith, adds only those accounts.
func (s *scope) shareCondition() Condition {
	c := Condition{"Null": {"ec2:Add/group": {"true"}}}
	if len(s.o.ShareWith) > 0 {
		accounts := slices.Clone(s.o.ShareWith)
		slices.Sort(accounts)
		c["Null"]["ec2:Add/userId"] = []string{"false"}
		c["ForAllValues:StringEquals"] = map[string]Values{"ec2:Add/userId": slices.Compact(accounts)}
	}
	return c
}

// notes say what the options left wide.
func (s *scope) notes() []string {
	o := s.o
	var n []string
	if o.Region == "" && o.Flows&^s3Flows != 0 {
		n = append(n, "the ARNs allow every Region: --region narrows them")
	}
	if o.Flows&s3Flows != 0 && o.S3Bucket == "" {
		n = append(n, "the S3 statements allow every bucket: --s3 s3://BUCKET/PREFIX/ narrows them")
	} else if o.Flows&s3Flows != 0 && o.S3Prefix == "" {
		n = append(n, "the S3 statements allow the whole bucket "+o.S3Bucket+": a prefix in --s3 narrows them")
	}
	if o.KMSKey == "" && o.Flows&(Copy|Acquire) != 0 {
		n = append(n, "the KMS statements allow any key, used only by EBS (kms:ViaService): --kms-key KEY-ARN narrows them to the key of the copy or of the snapshots you acquire")
	}
	if o.Flows&Share != 0 && len(o.ShareWith) == 0 {
		n = append(n, "the snapshots may be shared with any account (never made public): --share-with ACCOUNT narrows it")
	}
	if o.Flows&Snapshot != 0 && o.Account == "" {
		n = append(n, "the instance and volume ARNs name any account: --account narrows them")
	}
	return n
}
