package main

import (
	"context"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/s3store"
)

// openCaseBucket opens the prefix of --out s3://bucket/case/ as the
// place of a case: the bucket's Object Lock checked first when a lock is
// asked for (before anything is preserved), and a prefix that holds the
// evidence of one snapshot refused. The case's own objects carry the
// lock of the flags.
func openCaseBucket(ctx context.Context, aws *awsOptions, o *acquireOptions) (*casework.Bucket, error) {
	cfg, err := aws.config(ctx)
	if err != nil {
		return nil, err
	}
	c := s3store.New(cfg, s3store.Options{PathStyle: o.s3.pathStyle, Policy: ebs.Policy{MaxAttempts: max(o.maxAttempts, 3)}})
	if !o.s3.lock.IsZero() {
		if err := c.CheckObjectLock(ctx, o.s3.url.Bucket); err != nil {
			return nil, err
		}
	}
	b := c.Bucket(o.s3.url, o.s3.lock)
	if err := casework.CheckBucketPrefix(ctx, b); err != nil {
		return nil, err
	}
	return casework.NewBucket(ctx, b), nil
}
