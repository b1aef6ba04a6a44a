package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/snap4n6ir"
	"github.com/ebsimager/ebsimager/internal/store"
)

// Evidence written to S3 by the commands other than acquire (conversions
// with --out s3://…, import-4n6ir): the same store.Remote, opened with the
// same checks as acquire's openRemote, from the global AWS flags.

// openS3Out opens the evidence meta describes under --out s3://… for
// writing (started, or resumed): the bucket's Object Lock checked first
// when a lock is asked for, and a rerun held to the lock the evidence was
// started with.
func openS3Out(ctx context.Context, o *s3Options, meta store.Meta, so store.Options) (*store.Remote, *s3store.Bucket, error) {
	cfg, err := globalAWS.config(ctx)
	if err != nil {
		return nil, nil, err
	}
	c := s3store.New(cfg, s3store.Options{PathStyle: o.pathStyle, Policy: ebs.Policy{MaxAttempts: 3}})
	return createRemote(ctx, c, o, meta, so)
}

// createRemote opens the evidence meta describes at o's URL through c:
// the bucket's Object Lock checked first when a lock is asked for, and a
// rerun held to the lock the evidence was started with (its objects are
// written with that lock).
func createRemote(ctx context.Context, c *s3store.Client, o *s3Options, meta store.Meta, so store.Options) (*store.Remote, *s3store.Bucket, error) {
	meta.ObjectLock = nil
	if !o.lock.IsZero() {
		if err := c.CheckObjectLock(ctx, o.url.Bucket); err != nil {
			return nil, nil, err
		}
		meta.ObjectLock = &manifest.ObjectLock{Mode: o.lock.Mode, RetainUntil: o.lock.RetainUntil, LegalHold: o.lock.LegalHold}
	}
	b := c.Bucket(o.url, o.lock)
	r, err := store.CreateRemote(ctx, b, meta, so)
	if err != nil {
		return nil, nil, err
	}
	had, lock := r.Meta().ObjectLock, meta.ObjectLock
	if (had == nil) != (lock == nil) || had != nil && (had.Mode != lock.Mode || had.LegalHold != lock.LegalHold) {
		r.Abort()
		return nil, nil, usagef("%s was started with Object Lock %s; resume it with the same --object-lock and --legal-hold", o.url, lockText(had))
	}
	if had != nil {
		b.Lock = s3store.Lock{Mode: had.Mode, RetainUntil: had.RetainUntil, LegalHold: had.LegalHold}
	}
	return r, b, nil
}

// saveRemoteRecord saves rec to a temporary directory and writes its
// files beside the evidence in b, once each.
func saveRemoteRecord(ctx context.Context, b *s3store.Bucket, rec *report.Report) error {
	tmp, err := os.MkdirTemp("", "ebsimager-record-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := rec.Save(tmp); err != nil {
		return err
	}
	return putRecordFiles(ctx, b, tmp)
}

// putRecordFiles writes the record files of directory dir beside the
// evidence in b, each once with its SHA-256.
func putRecordFiles(ctx context.Context, b *s3store.Bucket, dir string) error {
	for _, name := range []string{report.JSONName, report.TextName, report.HTMLName} {
		body, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := b.PutNew(ctx, name, body, sha256.Sum256(body), nil); err != nil {
			return err
		}
	}
	return nil
}

// importSink is where import-4n6ir stores: a directory's sink, or
// evidence in S3.
type importSink interface {
	sink.Sink
	Summary() store.Summary
}

// recordImportS3 writes the record of an import into evidence in S3 (as
// recordImport does for a directory) beside it, once.
func recordImportS3(ctx context.Context, b *s3store.Bucket, r *store.Remote, folder *snap4n6ir.Folder, region, source string,
	sum store.Summary, imported int64, started time.Time, o *importOptions) error {
	rec := importRecord(b.URL().String(), r.Meta().Case, folder, region, source, imported, r.Resumed(), started)
	rec.Acquisition.AdoptedBlocks = r.Kept().Adopted
	rec.Evidence.ObjectLock = r.Meta().ObjectLock
	return recordRemote(ctx, b, rec, sum)
}

// recordFailedRun leaves the record of a run that failed (err) after it
// opened the evidence in b: step, as a run object of its own
// (store.PutRun), since the evidence's record is written once, when it is
// complete. It is written even after an interrupt. It returns err, joined
// with the failure to record it.
func recordFailedRun(ctx context.Context, b *s3store.Bucket, command string, step report.Step, err error) error {
	body, jerr := json.MarshalIndent(step, "", "  ")
	if jerr != nil {
		return errors.Join(err, jerr)
	}
	if _, perr := store.PutRun(context.WithoutCancel(ctx), b, command, step.StartedAt, append(body, '\n')); perr != nil {
		return errors.Join(err, fmt.Errorf("recording the failed run: %w", perr))
	}
	return err
}
