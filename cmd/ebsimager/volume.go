package main

import (
	"context"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// globalAWS holds the AWS flags (--region, --profile, --endpoint-url) of
// the root command last made, for the commands that open s3:// evidence
// through volumeOptions.
var globalAWS = &awsOptions{}

// volumeOptions are how a command opens a volume with volume.Open: the
// key flags open compressed or sealed evidence (a missing key is asked
// for, or is an error); s3://bucket/prefix/ is read through S3 with the
// global AWS flags (path-style addressing automatic for an IP-address or
// localhost endpoint).
func volumeOptions(keys *openOptions) volume.Options {
	return volumeOptionsS3(keys, false)
}

// volumeOptionsS3 is volumeOptions with path-style addressing forced
// (--s3-path-style) when pathStyle is set.
func volumeOptionsS3(keys *openOptions, pathStyle bool) volume.Options {
	return volume.Options{
		Unseal: func(ev *store.Evidence) (store.Unseal, error) { return keys.unseal(ev, true) },
		Bucket: func(ctx context.Context, url string) (bucket.Bucket, error) {
			return openS3(ctx, globalAWS, url, pathStyle)
		},
	}
}

// s3PathStyleUsage is the help of a reader's --s3-path-style.
const s3PathStyleUsage = "for s3://bucket/prefix/: address the bucket in the path (automatic for an IP-address or localhost endpoint)"

// openS3 returns the evidence prefix url names, read through S3.
func openS3(ctx context.Context, aws *awsOptions, url string, pathStyle bool) (*s3store.Bucket, error) {
	u, err := s3store.ParseURL(url)
	if err != nil {
		return nil, usagef("%v", err)
	}
	cfg, err := aws.config(ctx)
	if err != nil {
		return nil, err
	}
	return s3store.New(cfg, s3store.Options{PathStyle: pathStyle}).Bucket(u, s3store.Lock{}), nil
}

// openEvidence opens complete evidence for reading: a directory, or
// s3://bucket/prefix/ through S3.
func openEvidence(ctx context.Context, source string) (*store.Evidence, error) {
	if !s3store.IsURL(source) {
		return store.Open(source)
	}
	b, err := openS3(ctx, globalAWS, source, false)
	if err != nil {
		return nil, err
	}
	return store.OpenBucket(ctx, b)
}
