package main

import (
	"context"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/incremental"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
)

// openIncremental opens --base, a directory or s3://bucket/prefix/, as
// the base of evidence stored as seal says.
func (a *acquisition) openIncremental(ctx context.Context, seal sealed) (*incremental.Base, error) {
	base, out := a.o.base, a.o.out
	if !s3store.IsURL(base) {
		if !s3store.IsURL(out) {
			if same, err := samePath(base, out); err != nil {
				return nil, err
			} else if same {
				return nil, usagef("--base and --out name the same directory %s", base)
			}
		}
		return incremental.Open(base, a.o.copyBase, seal.form.Form, seal.recipients)
	}
	u, err := s3store.ParseURL(base)
	if err != nil {
		return nil, usagef("--base: %v", err)
	}
	if s3store.IsURL(out) && u == a.o.s3.url {
		return nil, usagef("--base and --out name the same evidence %s", u)
	}
	return incremental.OpenBucket(ctx, a.s3Client().Bucket(u, s3store.Lock{}), seal.form.Form, seal.recipients)
}

// completeRemoteBase completes an incremental acquisition into S3 once
// the changed blocks are stored: every unchanged block of the base is
// read, checked and written to the evidence; a base block that does not
// match its manifest is fetched instead. A run that fails here leaves
// its record as a run object, as any failed run to S3 does.
func (a *acquisition) completeRemoteBase(ctx context.Context, opts acquire.Options, res *acquire.Result, sum *acquireSummary, awsInfo func() report.AWS) error {
	if a.inc == nil {
		return nil
	}
	err := a.inc.CompleteRemote(ctx, a.snap, a.remote, opts, res)
	sum.Fetched, sum.Bytes, sum.Counts = res.Stored, res.Bytes, res.Counts
	if err != nil {
		a.remote.Abort()
		return a.recordRemoteRun(ctx, err, *res, sum, awsInfo)
	}
	sum.Blocks += a.inc.Taken()
	sum.Base = a.inc.Record()
	sum.Rejected += sum.Base.RejectedBlocks
	return nil
}
