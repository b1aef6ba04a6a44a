package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/convert"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// transformToHelp is the conversions' help on --out s3://….
const transformToHelp = `With --out s3://bucket/prefix/ (or --out DIR2, a new directory), the source
(DIR, or evidence in S3) is left as it is and the converted evidence is
written there instead, as acquire --out writes it: every block read and
checked, converted, and written once with the SHA-256 of its stored
bytes, which S3 checks; the same snapshot, case fields and provenance;
--object-lock, --retain-until, --retain-days and --legal-hold as for
acquire. A block of the source that does not verify stops the conversion
(exit 4) before any manifest is written. A rerun converts only the blocks
not stored there yet. The record (report.json) is the source's, with this
conversion as its last step, naming the source and its manifest's
SHA-256. Evidence in S3 is written once: converting it needs --out; with
--out, encryption is to --recipient/--recipients-file keys only.`

// s3InPlace refuses a conversion of evidence in S3 without --out.
func s3InPlace(src string) error {
	return usagef("%s is evidence in S3, whose objects are written once: it cannot be converted in place; give --out s3://bucket/new-prefix/ to write the converted evidence there", src)
}

// runTransformTo converts the evidence at src into new evidence in S3
// (--out s3://…) or in a new directory, leaving src as it is.
func runTransformTo(cmd *cobra.Command, src string, out *transformOutput, c conversion) error {
	ctx := cmd.Context()
	if filepath.Clean(src) == filepath.Clean(out.out) {
		return usagef("--out %s is the evidence converted: leave --out out to convert a directory in place, or give a new prefix or directory", out.out)
	}
	ev, err := openConvertSource(ctx, src, out.s3.pathStyle)
	if err != nil {
		return err
	}
	from, err := ev.Meta.Form()
	if err != nil {
		return err
	}
	to, err := c.target(from)
	if err != nil {
		return err
	}
	opts, err := c.options(ev, convert.State{From: from}, to)
	if err != nil {
		return err
	}
	if to.Encrypted && opts.KeyFile != "" {
		return usagef("%s is encrypted with a passphrase's key file, which a conversion with --out does not copy: decrypt it, or encrypt it to --recipient keys, first", src)
	}
	source, err := convert.ReadSource(ev)
	if err != nil {
		return err
	}
	dst, err := openConvertOut(ctx, cmd.Name(), out, ev, source.Header, store.Options{Form: to, SealTo: opts.SealTo}, opts.Recipients)
	if err != nil {
		return err
	}
	defer dst.release()
	status := ui.NewStatus(cmd.ErrOrStderr(), out.quiet || out.json, 5*time.Second)
	start := time.Now()
	res, err := convert.Copy(ctx, ev, source, dst.sink, convert.CopyOptions{Unseal: opts.Unseal, Workers: out.workers, Progress: drawProgress(status)})
	status.Done("")
	if err == nil {
		_, err = dst.sink.Close()
	}
	ms := dst.sink.Summary()
	step := transformStep(cmd.Name(), start, ev, source, from, to, ms, err)
	if err != nil {
		return dst.failed(step, err)
	}
	if err := dst.record(step); err != nil {
		return unrecordedError{fmt.Errorf("the converted evidence is complete, but its record could not be written: %w", err)}
	}
	sum := transformSummary{
		Evidence: dst.location, SourceEvidence: sourceLocation(ev), From: from.String(), To: to.String(),
		Blocks: ms.Blocks, Bytes: ms.Bytes, Resumed: res.Resumed, Decoded: res.Converted,
		StoredBefore: res.StoredBefore, StoredAfter: ms.StoredBytes, Recipients: opts.Recipients,
		SourceManifestSHA256: source.ManifestSHA256, ManifestSHA256: ms.ManifestSHA256.Hex(), Seconds: time.Since(start).Seconds(),
		NothingToDo: ms.Unchanged && res.Converted == 0,
	}
	if out.json {
		return printJSON(cmd.OutOrStdout(), sum)
	}
	printTransformTo(cmd.OutOrStdout(), c.verb, sum)
	return nil
}

// transformStep is the record of a conversion from ev into new evidence
// whose manifest is ms (nothing yet when err is set: the step failed).
func transformStep(op string, start time.Time, ev *store.Evidence, source convert.Source, from, to codec.Form, ms store.Summary, err error) report.Step {
	step := newStep(report.StepTransform, start, err)
	step.Transform = &report.Transform{Operation: op, Source: from.String(), Destination: to.String(),
		Codec: to.Codec.String(), Encryption: to.Encryption(), SourceManifestSHA256: source.ManifestSHA256, SourceEvidence: sourceLocation(ev)}
	if err == nil {
		step.Transform.Blocks, step.Transform.Bytes, step.Transform.ManifestSHA256 = ms.Blocks, ms.Bytes, ms.ManifestSHA256.Hex()
	}
	return step
}

// convertOut is where a conversion with --out writes, and how it
// records what it did.
type convertOut struct {
	sink     importSink
	location string
	// record writes the record of the complete evidence; failed records
	// a run that failed with err, and returns err.
	record  func(step report.Step) error
	failed  func(step report.Step, err error) error
	release func()
}

// openConvertOut opens the new evidence of a conversion of ev (whose
// manifest header is h) for writing: in S3, or in a directory, locked.
// Its manifest's header will be the source's: the same acquisition.
func openConvertOut(ctx context.Context, command string, out *transformOutput, ev *store.Evidence, h manifest.Header,
	so store.Options, recipients []string) (*convertOut, error) {
	meta := store.Meta{
		SnapshotID: ev.Meta.SnapshotID, Region: ev.Meta.Region, Endpoint: ev.Meta.Endpoint,
		Provenance: ev.Meta.Provenance, Source: ev.Meta.Source,
		VolumeSizeGiB: ev.Meta.VolumeSizeGiB, BlockSize: ev.Meta.BlockSize, ToolVersion: h.ToolVersion,
		Case: ev.Meta.Case, Recipients: recipients,
	}
	if out.s3.on() {
		r, b, err := openS3Out(ctx, &out.s3, meta, so)
		if err != nil {
			return nil, err
		}
		r.Started, r.Finished = h.StartedAt, h.FinishedAt
		return &convertOut{sink: r, location: b.URL().String(),
			record:  func(step report.Step) error { return recordConverted(ctx, b, ev, step, r.Meta().ObjectLock) },
			failed:  func(step report.Step, err error) error { return recordFailedRun(ctx, b, command, step, err) },
			release: func() {}}, nil
	}
	dir, err := filepath.Abs(out.out)
	if err != nil {
		return nil, err
	}
	unlock, err := lockEvidenceDir(dir, command)
	if err != nil {
		return nil, err
	}
	st, err := store.Create(dir, meta, so)
	if err != nil {
		unlock()
		return nil, err
	}
	k := st.Sink()
	k.Started, k.Finished = h.StartedAt, h.FinishedAt
	return &convertOut{sink: k, location: dir,
		record:  func(step report.Step) error { return recordConvertedDir(dir, ev, step) },
		failed:  func(_ report.Step, err error) error { return err },
		release: unlock}, nil
}

// openConvertSource opens the complete evidence a conversion reads: a
// directory with no conversion in place under way, or s3://….
func openConvertSource(ctx context.Context, src string, pathStyle bool) (*store.Evidence, error) {
	if s3store.IsURL(src) {
		b, err := openS3(ctx, globalAWS, src, pathStyle)
		if err != nil {
			return nil, err
		}
		return store.OpenBucket(ctx, b)
	}
	ev, err := store.Open(src)
	if err != nil {
		return nil, err
	}
	st, err := convert.StateOf(ev)
	if err != nil {
		return nil, err
	}
	if st.Pending {
		return nil, withHint(&convert.PendingError{Dir: src, Pending: st.To, Asked: st.To},
			"complete the conversion in place first (run the command that started it again), then convert the directory to S3")
	}
	return ev, nil
}

// sourceLocation names the evidence a conversion read: its s3:// URL, or
// its directory, absolute.
func sourceLocation(ev *store.Evidence) string {
	if ev.Bucket != nil {
		return ev.Dir
	}
	if abs, err := filepath.Abs(ev.Dir); err == nil {
		return abs
	}
	return ev.Dir
}

// recordConverted writes the record of converted evidence beside it in
// b, once: the source's record (its acquisition and every step since),
// located at the new evidence, with its lock, the block map of the new
// manifest, and step last. Evidence whose source has no record gets one
// holding the step alone. The record of complete evidence already there
// is kept as it is.
func recordConverted(ctx context.Context, b *s3store.Bucket, ev *store.Evidence, step report.Step, lock *manifest.ObjectLock) error {
	if _, err := b.Head(ctx, report.JSONName); err == nil {
		return nil
	} else if !errors.Is(err, bucket.ErrNotFound) {
		return err
	}
	data, err := b.Get(ctx, store.ManifestName, (step.Transform.Blocks+2)*manifest.MaxLine)
	if err != nil {
		return err
	}
	mr, err := manifest.NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	rec, err := convertedRecord(ctx, ev, b.URL().String(), lock, mr, step)
	if err != nil {
		return err
	}
	return saveRemoteRecord(ctx, b, rec)
}

// recordConvertedDir writes the record of converted evidence in
// directory dir, as recordConverted does in a bucket.
func recordConvertedDir(dir string, ev *store.Evidence, step report.Step) error {
	if _, err := os.Stat(filepath.Join(dir, report.JSONName)); err == nil {
		return nil
	}
	out, err := store.Open(dir)
	if err != nil {
		return err
	}
	mr, c, err := out.Manifest()
	if err != nil {
		return err
	}
	defer c.Close()
	rec, err := convertedRecord(context.Background(), ev, dir, nil, mr, step)
	if err != nil {
		return err
	}
	return rec.Save(dir)
}

// convertedRecord is the record of evidence converted from ev, at
// location, whose manifest mr reads: the source's record (or a new one),
// moved there, with the block map of mr, and step last.
func convertedRecord(ctx context.Context, ev *store.Evidence, location string, lock *manifest.ObjectLock, mr *manifest.Reader, step report.Step) (*report.Report, error) {
	rec, err := sourceRecord(ctx, ev)
	if err != nil {
		return nil, fmt.Errorf("reading the record of %s: %w", ev.Dir, err)
	}
	if rec == nil {
		rec = report.New(ev.Meta.SnapshotID, ev.Meta.VolumeSizeGiB, ev.Meta.BlockSize, report.KindEvidenceDirectory, "")
		rec.Case = report.CaseFromFields(ev.Meta.Case)
	}
	rec.Evidence.Location, rec.Evidence.ObjectLock = location, lock
	rec.BlockMap = report.NewBlockMap(rec.Evidence.BlockSlots)
	if err := rec.BlockMap.AddManifest(mr); err != nil {
		return nil, fmt.Errorf("mapping blocks: %w", err)
	}
	if err := rec.AppendStep(step); err != nil {
		return nil, err
	}
	return rec, nil
}

// sourceRecord loads the record of ev, or nil when it has none.
func sourceRecord(ctx context.Context, ev *store.Evidence) (*report.Report, error) {
	dir := ev.Dir
	if ev.Bucket != nil {
		data, err := ev.Bucket.Get(ctx, report.JSONName, maxRecordObject)
		if errors.Is(err, bucket.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if dir, err = os.MkdirTemp("", "ebsimager-record-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := os.WriteFile(filepath.Join(dir, report.JSONName), data, 0o600); err != nil {
			return nil, err
		}
	}
	rec, err := report.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return rec, err
}

func printTransformTo(w io.Writer, verb string, s transformSummary) {
	fmt.Fprintf(w, "%s %s into %s: %s, %s → %s\n", verb, s.SourceEvidence, s.Evidence, ui.Plural(s.Blocks, "block"), s.From, s.To)
	fmt.Fprintf(w, "  stored     %s (%s of blocks)\n", ui.Bytes(s.StoredAfter), ui.Bytes(s.Bytes))
	fmt.Fprintf(w, "  checked    %d blocks read from the source against its manifest and their SHA-256, each new one stored with the SHA-256 of its stored bytes\n", s.Decoded)
	if s.Resumed > 0 {
		fmt.Fprintf(w, "  resumed    %s already stored there (checked), not converted again\n", ui.Plural(s.Resumed, "block"))
	}
	if len(s.Recipients) > 0 {
		fmt.Fprintf(w, "  recipients %s\n", strings.Join(s.Recipients, "\n             "))
	}
	fmt.Fprintf(w, "  source     manifest sha256 %s\n", s.SourceManifestSHA256)
	fmt.Fprintf(w, "  manifest   sha256 %s\n", s.ManifestSHA256)
}
