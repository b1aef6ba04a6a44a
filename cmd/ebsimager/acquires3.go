package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
)

// acquireS3Help is acquire's help on --out s3://….
const acquireS3Help = `With --out s3://bucket/prefix/, the evidence goes to S3 under the same
names, each object written once (If-None-Match: *) with the SHA-256 of its
stored bytes as x-amz-checksum-sha256, which S3 checks on arrival and keeps.
--object-lock governance|compliance with --retain-until DATE or
--retain-days N, and --legal-hold, lock every object as it is written (the
bucket must have Object Lock; evidence.json and the manifest record the
lock). A rerun lists the prefix and fetches only what is missing; nothing
in the bucket is ever overwritten or deleted. S3's endpoint is
AWS_ENDPOINT_URL_S3, else --endpoint-url; --s3-path-style for endpoints
that need path-style addressing (automatic for an IP address).

A case (see below) goes to --out s3://bucket/case/ the same way: one
evidence prefix per snapshot, case/<snapshot-id>/, and the case's records
as objects written once: preservation.json and .txt when the preservation
has ended, case.json and case.txt by the first run that completes every
volume. The preservation's progress while it runs (whenever its snapshots
change) and the record of every other run go to
case/runs/<time>-<tag>-snapshot.json and runs/<time>-<tag>-case.json. A
rerun takes its snapshots from these objects, never preserving again, and
resumes every volume. The lock flags apply to every object.

`

// s3Options are the flags of evidence in S3 (--out s3://bucket/prefix/).
type s3Options struct {
	pathStyle   bool
	readsBase   bool // --base is s3://…: --s3-path-style applies to it
	objectLock  string
	retainUntil string
	retainDays  int
	legalHold   bool
	flag        string // the flag that names S3 (default "out")

	url  s3store.URL
	lock s3store.Lock
	// form is how the command's --out names S3, for messages; empty is
	// acquire's "s3://bucket/prefix/".
	form string
}

func (o *s3Options) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.pathStyle, "s3-path-style", false, "with --out s3://…: address the bucket in the path (automatic for an IP-address or localhost endpoint)")
	f.StringVar(&o.objectLock, "object-lock", "", "with --out s3://…: lock every object, governance or compliance (the bucket must have Object Lock)")
	f.StringVar(&o.retainUntil, "retain-until", "", "with --object-lock: keep the objects until DATE (YYYY-MM-DD, or RFC 3339)")
	f.IntVar(&o.retainDays, "retain-days", 0, "with --object-lock: keep the objects N days from now")
	f.BoolVar(&o.legalHold, "legal-hold", false, "with --out s3://…: put every object under a legal hold")
}

// on reports whether --out names S3.
func (o *s3Options) on() bool { return o.url.Bucket != "" }

// check parses --out s3://… and the lock flags, refusing them without it.
func (o *s3Options) check(cmd *cobra.Command, out string, now time.Time) error {
	flags := []string{"s3-path-style", "object-lock", "retain-until", "retain-days", "legal-hold"}
	if !s3store.IsURL(out) {
		for _, f := range flags {
			if cmd.Flags().Changed(f) && !(f == "s3-path-style" && o.readsBase) {
				return usagef("--%s applies to --%s %s", f, cmp.Or(o.flag, "out"), cmp.Or(o.form, "s3://bucket/prefix/"))
			}
		}
		return nil
	}
	u, err := s3store.ParseURL(out)
	if err != nil {
		return usagef("--out: %v", err)
	}
	o.url = u
	switch strings.ToLower(o.objectLock) {
	case "":
		if o.retainUntil != "" || o.retainDays != 0 {
			return usagef("--retain-until and --retain-days need --object-lock governance|compliance")
		}
	case "governance", "compliance":
		o.lock.Mode = strings.ToUpper(o.objectLock)
		if (o.retainUntil == "") == (o.retainDays == 0) {
			return usagef("--object-lock needs exactly one of --retain-until DATE and --retain-days N")
		}
		if o.retainDays < 0 || o.retainDays > 36500 {
			return usagef("--retain-days: %d is not 1 to 36500", o.retainDays)
		}
		o.lock.RetainUntil = now.Add(time.Duration(o.retainDays) * 24 * time.Hour).UTC().Truncate(time.Second)
		if o.retainUntil != "" {
			if o.lock.RetainUntil, err = parseDate(o.retainUntil); err != nil {
				return usagef("--retain-until: %v", err)
			}
		}
	default:
		return usagef("--object-lock %q: want governance or compliance", o.objectLock)
	}
	o.lock.LegalHold = o.legalHold
	if err := o.lock.Check(now); err != nil {
		return usagef("%v", err)
	}
	return nil
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither YYYY-MM-DD nor RFC 3339", s)
	}
	return t.UTC().Truncate(time.Second), nil
}

// checkS3Out refuses what evidence in S3 does not do yet.
func (o *acquireOptions) checkS3Out(cmd *cobra.Command, targets []string) error {
	o.s3.readsBase = s3store.IsURL(o.base)
	if err := o.s3.check(cmd, o.out, time.Now()); err != nil || !o.s3.on() {
		return err
	}
	switch {
	case o.seal.encrypting() && len(o.seal.recipients)+len(o.seal.recipientsFiles) == 0:
		return usagef("--out s3://… encrypts to --recipient/--recipients-file keys only: a passphrase's key file is not written to a bucket")
	case o.force && targets != nil:
		// Refused before an instance or a volume is preserved, not by
		// each volume after.
		return usagef("--force cannot replace evidence in a bucket: its objects are never deleted; acquire the case under another prefix")
	}
	return nil
}

// s3Client is the S3 client of the run's configuration: the standard
// credential chain; the endpoint of --endpoint-url, unless
// AWS_ENDPOINT_URL_S3 names S3's own (the SDK gives it precedence).
func (a *acquisition) s3Client() *s3store.Client {
	return s3store.New(a.cfg, s3store.Options{PathStyle: a.o.s3.pathStyle, Policy: ebs.Policy{MaxAttempts: max(a.o.maxAttempts, 3)}})
}

// openRemote opens the evidence in S3: the bucket's Object Lock checked
// first when a lock is asked for.
func (a *acquisition) openRemote(ctx context.Context, c *s3store.Client, info ebs.Info, seal sealed) error {
	r, b, err := createRemote(ctx, c, &a.o.s3, store.Meta{
		SnapshotID: a.id, Region: a.cfg.Region, Endpoint: ebs.Endpoint(a.cfg),
		VolumeSizeGiB: info.VolumeGiB, BlockSize: info.BlockSize, ToolVersion: toolVersion(),
		Case: a.o.caseMeta.fields(), Recipients: seal.recipients,
	}, store.Options{Force: a.o.force, Form: seal.form.Form, SealTo: seal.form.SealTo})
	if err != nil {
		return err
	}
	a.remote, a.bucket, a.out = r, b, r
	return nil
}

func lockText(l *manifest.ObjectLock) string {
	if l == nil {
		return "none"
	}
	s := l.Mode
	if s != "" {
		s += " until " + l.RetainUntil.Format(time.RFC3339)
	}
	if l.LegalHold {
		s = strings.TrimSpace(s + " with a legal hold")
	}
	return s
}

// finishRemote writes the manifest of the evidence in S3 and its record.
// A run that fails here leaves its own record (recordRemoteRun).
func (a *acquisition) finishRemote(ctx context.Context, res *acquire.Result, sum *acquireSummary, awsInfo func() report.AWS) error {
	r := a.remote
	sum.Resumed = r.Resumed()
	r.Started, r.Finished = res.Started, res.Finished
	if _, err := r.Close(); err != nil {
		return a.recordRemoteRun(ctx, err, *res, sum, awsInfo)
	}
	ms := r.Summary()
	if ms.Blocks != sum.Blocks {
		err := fmt.Errorf("evidence holds %d blocks but the snapshot lists %d", ms.Blocks, sum.Blocks)
		return a.recordRemoteRun(ctx, err, *res, sum, awsInfo)
	}
	sum.ManifestSHA256 = ms.ManifestSHA256.Hex()
	k := r.Kept()
	sum.Checked, sum.Adopted = k.Checked, k.Adopted
	sum.Complete = ms.Unchanged && res.Stored == 0 && sum.Rejected == 0
	rec := a.remoteRecord(*res, sum, awsInfo)
	var changed func(*report.BlockMap) error
	if a.inc != nil {
		changed = a.inc.MarkChanged
	}
	if err := recordRemoteChanged(ctx, a.bucket, rec, ms, changed); err != nil {
		err = unrecordedError{fmt.Errorf("the evidence is complete, but its record could not be written: %w", err)}
		return a.recordRemoteRun(ctx, err, *res, sum, awsInfo)
	}
	return nil
}

// remoteRecord is the record of this run of an acquisition to S3.
func (a *acquisition) remoteRecord(res acquire.Result, sum *acquireSummary, awsInfo func() report.AWS) *report.Report {
	r := a.remote
	rec := acquisitionRecord(report.KindEvidenceDirectory, a.o.s3.url.String(), r.Meta().Case, res, r.Resumed(), awsInfo())
	rec.Acquisition.AdoptedBlocks = r.Kept().Adopted
	rec.Acquisition.FailedBlocks, rec.Acquisition.FailedBlocksUnlisted = sum.FailedBlocks, sum.FailedBlocksUnlisted
	rec.Evidence.ObjectLock = r.Meta().ObjectLock
	if a.inc != nil {
		rec.Acquisition.Base, rec.Acquisition.RejectedBlocks = sum.Base, sum.Rejected
	}
	return rec
}

// recordRemoteRun leaves the record of a run that ended without complete
// evidence and its record (incomplete, interrupted, or failed after the
// evidence was opened) as a run object beside the evidence in S3, and
// returns runErr (with why the record could not be written, if so).
// Evidence in S3 is written once: its report.json is written by the run
// that completes it, and names these objects.
func (a *acquisition) recordRemoteRun(ctx context.Context, runErr error, res acquire.Result, sum *acquireSummary, awsInfo func() report.AWS) error {
	if res.Started.IsZero() {
		res.Started = time.Now()
	}
	if res.Finished.IsZero() {
		res.Finished = time.Now()
	}
	code := exitCode(ctx, runErr)
	run := &report.RunRecord{Command: "acquire", Outcome: report.OutcomeFailed, ExitStatus: code, Error: runErr.Error(), Record: a.remoteRecord(res, sum, awsInfo)}
	switch code {
	case exitIncomplete:
		run.Outcome = report.OutcomeIncomplete
	case exitInterrupted:
		run.Outcome = report.OutcomeInterrupted
	}
	body, err := run.JSON()
	if err == nil {
		// Written even when the run was interrupted, within a bound.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		var o store.RunObject
		if o, err = store.PutRun(wctx, a.bucket, run.Command, res.Started, body); err == nil {
			sum.RunRecord = a.bucket.String() + o.Key
		}
	}
	if err != nil {
		return fmt.Errorf("%w\n(and writing the record of this run: %v)", runErr, err)
	}
	return runErr
}

// recordRemote completes rec from the manifest in b and writes it beside
// the evidence, once: the record of complete evidence already there is
// kept as it is. It names the run objects of earlier runs.
func recordRemote(ctx context.Context, b *s3store.Bucket, rec *report.Report, ms store.Summary) error {
	return recordRemoteChanged(ctx, b, rec, ms, nil)
}

// recordRemoteChanged is recordRemote with the blocks an incremental
// acquisition listed as changed marked on the record's block map.
func recordRemoteChanged(ctx context.Context, b *s3store.Bucket, rec *report.Report, ms store.Summary, changed func(*report.BlockMap) error) error {
	if _, err := b.Head(ctx, report.JSONName); err == nil {
		return nil
	} else if !errors.Is(err, bucket.ErrNotFound) {
		return err
	}
	runs, err := store.ListRuns(ctx, b)
	if err != nil {
		return err
	}
	for _, r := range runs {
		rec.Acquisition.Runs = append(rec.Acquisition.Runs, report.RunObject{Key: r.Key, SHA256: r.SHA256, Size: r.Size})
	}
	rd, err := bucket.NewReader(ctx, b, store.ManifestName, (ms.Blocks+2)*manifest.MaxLine)
	if err != nil {
		return err
	}
	mr, err := manifest.NewReader(rd)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ebsimager-record-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := rec.CompleteEvidence(tmp, report.EvidenceFacts{Blocks: ms.Blocks, Bytes: ms.Bytes, ManifestSHA256: ms.ManifestSHA256.Hex(), Manifest: mr, Changed: changed}); err != nil {
		return err
	}
	if got := mr.Sum(); got != ms.ManifestSHA256 {
		return fmt.Errorf("%s reads as sha256 %s, written as %s", store.ManifestName, got.Hex(), ms.ManifestSHA256.Hex())
	}
	for _, name := range []string{report.JSONName, report.TextName, report.HTMLName} {
		body, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil {
			return err
		}
		if err := b.PutNew(ctx, name, body, sha256.Sum256(body), nil); err != nil {
			return err
		}
	}
	return nil
}
