package main

import (
	"context"
	"errors"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/manifest"
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
	if err := sameCaseLock(ctx, c, o.s3.url, o.s3.lock); err != nil {
		return nil, err
	}
	return casework.NewBucket(ctx, b), nil
}

// sameCaseLock refuses to resume a case in S3 with another Object Lock
// mode or legal hold than its records were written with, as a volume's
// evidence refuses it: a case's objects are locked alike.
func sameCaseLock(ctx context.Context, c *s3store.Client, u s3store.URL, lock s3store.Lock) error {
	for _, name := range []string{casework.JSONName, casework.PreservationJSON} {
		obj, err := c.Head(ctx, u.Bucket, u.Key(name))
		if errors.Is(err, s3store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if obj.Lock.Mode != lock.Mode || obj.Lock.LegalHold != lock.LegalHold {
			had := &manifest.ObjectLock{Mode: obj.Lock.Mode, RetainUntil: obj.Lock.RetainUntil, LegalHold: obj.Lock.LegalHold}
			if obj.Lock.IsZero() {
				had = nil
			}
			return usagef("%s%s was written with Object Lock %s; resume the case with the same --object-lock and --legal-hold", u, name, lockText(had))
		}
		return nil
	}
	return nil
}
