package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/incremental"
	"github.com/ebsimager/ebsimager/internal/outfile"
	"github.com/ebsimager/ebsimager/internal/preflight"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

type acquireOptions struct {
	out         string
	image       string
	workers     int
	maxRate     float64
	maxAttempts int
	hashes      string
	force       bool
	quiet       bool
	json        bool
	base        string
	copyBase    bool
	targets     string // --targets FILE
	index       int    // --index I: a worker of an indexed job
	fleet       *fleetWorker
	useLatest   bool
	preserve    preserveOptions
	accountRate float64
	// account is the one account limiter every snapshot of a case (or a
	// single snapshot given --account-rate) is acquired under.
	account *ebs.Account
	caseMeta
	seal sealOptions
	e01  e01Options
	s3   s3Options // --out s3://bucket/prefix/
}

func newAcquireCommand(aws *awsOptions) *cobra.Command {
	o := &acquireOptions{}
	cmd := &cobra.Command{
		Use:   "acquire SNAPSHOT|VOLUME|INSTANCE... (--out DIR | --image FILE)",
		Short: "Fetch every block of a snapshot, verified, into an evidence directory or a raw image",
		Long: fmt.Sprintf(`Fetch every listed block of SNAPSHOT. Each block is checked against the
SHA-256 AWS served it with before any byte of it is written.

With --out DIR, blocks are kept as an evidence directory: one file per block
under the original tool's name, a journal, and when complete a manifest.
Running the same command again after any interruption fetches only what is
missing. With --image FILE, blocks go straight into a sparse raw image,
each written as it arrives, and the image is hashed in block order while
they do (from copies of at most %d blocks, %d MiB; a block that arrives
when more are waiting is read back from the image instead): no second
pass over the image is needed at the end. With --image BASE.E01, blocks go
into an E01 (put back in order within a window of 128 blocks, 64 MiB).
Direct images do not resume.

The request rate adapts by itself: requests are paced smoothly at 99%% of
the quota learned from the first throttles, and concurrency grows while
throughput grows. --workers and --max-rate are hard caps.

%sWith --base BASE_DIR, the complete evidence directory of an earlier
snapshot of the same volume (stored with the same --compress/--encrypt),
only the blocks ListChangedBlocks reports between the two snapshots are
fetched; every other block is taken from the base, hard-linked (copied
with --copy-base, or when linking fails). The result is a complete
evidence directory of SNAPSHOT. The base may be evidence in S3
(--base s3://bucket/prefix/), and the output too: a block from or to S3
is read, checked against the base's manifest, and written again (a block
that does not match is fetched from the snapshot instead).

A case: with more than one target, any volume (vol-…) or instance (i-…)
target, or --targets FILE (one id a line), every snapshot is acquired at
once into an evidence directory of its own, DIR/<snapshot-id>/, each
exactly as a single acquisition would make it, and DIR/case.json and
DIR/case.txt record the case: targets, instances, devices, volumes,
snapshots, each manifest's SHA-256 and each volume's result. An instance
or a volume is first preserved as the snapshot command does it, with
the same flags (--exclude-boot, --device, --tag, --lock, --share-with,
--copy, ...; or --use-latest: the newest completed snapshot of each
volume), its custody record going into DIR/preservation.json and .txt.
All snapshots are acquired at once under one account limiter
(--account-rate), each also under its own adaptive limit. A volume's
failure stops only that volume. The exit code is 3 when any volume is
incomplete, else the first failed volume's; case.json says which.
Running the same command again resumes every volume (complete ones are
checked and left as they are) and never makes new snapshots: it takes
those recorded in DIR.

A worker of an indexed job (Kubernetes Indexed Job, AWS Batch array
job): --targets FILE with --index I, or else JOB_COMPLETION_INDEX, or
else AWS_BATCH_JOB_ARRAY_INDEX in the environment, acquires only the
target at index I of FILE (0-based, counting ids only, not comments or
blank lines; an index beyond them is exit 7). --out is then a template:
{target} (the id listed), {snapshot} (when every target is a snapshot)
and {index} are put in, e.g. --out /evidence/case-1/{target}. A snapshot
target is acquired into an evidence directory there, an instance or a
volume into a case directory there; either way each run of the worker
writes a JSON summary beside it, OUT.<start time>.summary.json, which
"case summarize" gathers.`, raw.DefaultWindow, raw.DefaultWindow*block.Size>>20, acquireS3Help),
		Args: acquireArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := o.check(cmd, args)
			if err != nil {
				return err
			}
			switch {
			case o.fleet != nil:
				return runWorker(cmd.Context(), cmd, aws, targets, o)
			case targets != nil:
				_, err := runCase(cmd.Context(), cmd, aws, targets, o)
				return err
			}
			return runAcquire(cmd.Context(), cmd, aws, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "evidence directory to create or resume, or s3://bucket/prefix/")
	f.StringVar(&o.image, "image", "", "write an image instead of an evidence directory: a sparse raw FILE, or BASE.E01")
	f.IntVar(&o.workers, "workers", 0, fmt.Sprintf("most requests in flight (default: adaptive, up to %d)", acquire.DefaultWorkers))
	f.Float64Var(&o.maxRate, "max-rate", 0, "most blocks per second (default: no cap)")
	f.IntVar(&o.maxAttempts, "max-attempts", 10, "attempts per block before it counts as failed (throttling aside)")
	f.StringVar(&o.hashes, "hash", "md5,sha1,sha256", "with --image FILE: whole-image hashes to compute while it is written, or none")
	f.BoolVar(&o.force, "force", false, "replace evidence of another snapshot, or an existing image")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress (the summary is still printed)")
	f.BoolVar(&o.json, "json", false, "print a JSON summary at the end")
	f.StringVar(&o.base, "base", "", "evidence (a directory or s3://bucket/prefix/) of an earlier snapshot of the volume: fetch only the changed blocks")
	f.BoolVar(&o.copyBase, "copy-base", false, "copy the unchanged blocks from --base instead of hard-linking them")
	f.Float64Var(&o.accountRate, "account-rate", ebs.DefaultAccountRate, "GetSnapshotBlock requests per second shared fairly by every snapshot of a case: the account's quota in the Region (0: no account limit)")
	f.StringVar(&o.targets, "targets", "", "file of targets, one id a line (# comments and blank lines allowed): acquire them as a case into --out DIR or s3://bucket/prefix/")
	f.IntVar(&o.index, "index", 0, "with --targets FILE: acquire only its target at this index, 0-based, as one worker of an indexed job (default: JOB_COMPLETION_INDEX, else AWS_BATCH_JOB_ARRAY_INDEX, when set)")
	f.BoolVar(&o.useLatest, "use-latest", false, "for instance and volume targets: acquire the newest completed snapshot of each volume instead of making one")
	o.preserve.addFlags(cmd)
	o.caseMeta.addFlags(cmd)
	o.seal.addFlags(cmd)
	o.e01.addFlags(cmd)
	o.s3.addFlags(cmd)
	return cmd
}

// check checks the flags and arguments, and returns the targets of a
// case (nil: one snapshot, args[0]).
func (o *acquireOptions) check(cmd *cobra.Command, args []string) ([]string, error) {
	if err := o.pickWorker(cmd, args); err != nil {
		return nil, err
	}
	var targets []string
	var err error
	if o.fleet != nil {
		targets = o.fleet.caseTargets()
	} else if targets, err = o.caseTargets(args); err != nil {
		return nil, err
	}
	if err := o.checkPreserve(cmd, targets); err != nil {
		return nil, err
	}
	if targets != nil {
		if err := o.checkCase(); err != nil {
			return nil, err
		}
	}
	if (o.out == "") == (o.image == "") {
		return nil, usagef("give exactly one of --out DIR and --image FILE")
	}
	if err := o.checkS3Out(cmd, targets); err != nil {
		return nil, err
	}
	if o.image != "" && (o.seal.encrypting() || cmd.Flags().Changed("compress")) {
		return nil, usagef("--compress and --encrypt apply to an evidence directory (--out), not to --image")
	}
	if o.base != "" && o.out == "" {
		return nil, usagef("--base needs --out DIR or --out s3://…: the unchanged blocks are taken into evidence")
	}
	if o.copyBase && o.base == "" {
		return nil, usagef("--copy-base applies to --base")
	}
	if err := o.e01.refuseUnless(cmd, isE01(o.image), "an evidence directory or a raw image"); err != nil {
		return nil, err
	}
	if cmd.Flags().Changed("hash") && (o.image == "" || isE01(o.image)) {
		return nil, usagef("--hash applies only to a raw --image FILE: an evidence directory keeps every block's SHA-256, and an E01 always holds MD5 and SHA-1 (and SHA-256 beside it)")
	}
	o.e01.replace = o.force
	if o.workers < 0 || o.maxRate < 0 || o.maxAttempts < 0 {
		return nil, usagef("--workers, --max-rate and --max-attempts must not be negative")
	}
	if err := ebs.CheckRate(o.maxRate); err != nil {
		return nil, usagef("--max-rate: %v", err)
	}
	if err := ebs.CheckRate(o.accountRate); err != nil {
		return nil, usagef("--account-rate: %v", err)
	}
	if targets != nil || cmd.Flags().Changed("account-rate") {
		o.account = ebs.NewAccount(o.accountRate)
	}
	return targets, nil
}

// acquireSummary is what --json prints.
type acquireSummary struct {
	SnapshotID      string     `json:"snapshot_id"`
	Region          string     `json:"region"`
	Output          string     `json:"output"`
	VolumeSizeGiB   int64      `json:"volume_size_gib"`
	BlockSize       int        `json:"block_size"`
	Blocks          int64      `json:"blocks"`
	Fetched         int64      `json:"fetched"`
	Resumed         int64      `json:"resumed"`
	Bytes           int64      `json:"bytes"`
	Seconds         float64    `json:"seconds"`
	BlocksPerSecond float64    `json:"blocks_per_second"`
	Counts          ebs.Counts `json:"requests"`
	ManifestSHA256  string     `json:"manifest_sha256,omitempty"`
	Hashes          any        `json:"hashes,omitempty"`
	// Base is set by --base: the earlier evidence and the blocks reused.
	Base *report.Base `json:"base,omitempty"`
	// FailedBlocks lists every block that failed after every retry (the
	// terminal names only the first ten); the summary is printed with
	// them when the acquisition is incomplete (exit 3).
	FailedBlocks         []report.FailedBlock `json:"failed_blocks,omitempty"`
	FailedBlocksUnlisted int64                `json:"failed_blocks_unlisted,omitempty"`
	// Complete says the directory already held complete evidence of
	// these blocks: nothing was fetched and nothing was rewritten.
	Complete bool `json:"complete"`
	// Checked kept block files matched their SHA-256 (Adopted of them had
	// no journal line); Rejected did not and were fetched again, their
	// files set aside as Unverified names.
	Checked    int64               `json:"checked"`
	Adopted    int64               `json:"adopted"`
	Rejected   int64               `json:"rejected"`
	Unverified []report.Unverified `json:"unverified,omitempty"`
	Replaced   *report.Replaced    `json:"replaced,omitempty"`
	// RunRecord is the run object this run left beside evidence in S3
	// when it ended without completing it (s3://…/runs/…json).
	RunRecord string `json:"run_record,omitempty"`
}

// failedBlocks is the full list of an incomplete run's failures.
func failedBlocks(e *acquire.IncompleteError) []report.FailedBlock {
	out := make([]report.FailedBlock, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = report.FailedBlock{Index: f.Index, Error: f.Err.Error()}
	}
	return out
}

// acquisition is one acquire command: what it opened for its output.
type acquisition struct {
	o      *acquireOptions
	id     string
	cfg    aws.Config
	snap   *ebs.Snapshot
	inc    *incremental.Base // --base
	st     *store.Store      // --out: the evidence directory
	remote *store.Remote     // --out s3://…: the evidence in S3
	bucket *s3store.Bucket   // and its bucket and prefix
	ev     *store.Sink       // --out: the store as the sink
	out    sink.Sink         // where the blocks go
	lock   *dirlock.Lock     // --image: the image's claim
	e01    ewf.Options       // --image BASE.E01
	pre    preflight.Result  // what the pre-flight learnt of the snapshot
}

func runAcquire(ctx context.Context, cmd *cobra.Command, aws *awsOptions, id string, o *acquireOptions) error {
	_, err := acquireOne(ctx, cmd, aws, id, o)
	return err
}

// acquireSnapshot acquires snapshot id into o.out (an evidence directory)
// or o.image, calling progress with the run's counters, and returns its
// summary without printing anything. pre is the snapshot's pre-flight
// when a case made it for all its snapshots at once; nil makes it here. The summary of an incomplete run
// has FailedBlocks set (not nil).
func acquireSnapshot(ctx context.Context, aws *awsOptions, id string, o *acquireOptions, pre *preflight.Result, progress func(acquire.Progress)) (acquireSummary, error) {
	snap, cfg, err := aws.snapshot(ctx, id)
	if err != nil {
		return acquireSummary{}, err
	}
	snap.Policy.MaxAttempts = o.maxAttempts
	hashes, err := o.hashList()
	if err != nil {
		return acquireSummary{}, err
	}
	if pre == nil {
		p, err := checkReadable(ctx, cfg, id)
		if err != nil {
			return acquireSummary{}, err
		}
		pre = &p
	} else if pre.Err != nil {
		return acquireSummary{}, pre.Err
	}
	e01Opts, err := o.e01.options(e01Metadata(id, o.caseMeta.fields(), time.Now()))
	if err != nil {
		return acquireSummary{}, err
	}
	a := &acquisition{o: o, id: id, cfg: cfg, snap: snap, e01: e01Opts, pre: *pre}
	var seal sealed
	if o.out != "" {
		if !o.s3.on() {
			unlock, err := lockEvidenceDir(o.out, "acquire")
			if err != nil {
				return acquireSummary{}, err
			}
			defer unlock()
		}
		if seal, err = a.openBase(ctx); err != nil {
			return acquireSummary{}, err
		}
	}
	var src acquire.Source = acquire.NewSnapshot(snap)
	if a.inc != nil {
		src = a.inc.Source(snap)
	}
	info, err := src.Info(ctx)
	if err != nil {
		return acquireSummary{}, a.listingError(err)
	}
	if o.s3.on() {
		err = a.openRemote(ctx, a.s3Client(), info, seal)
	} else {
		err = a.open(info, hashes, seal)
	}
	if err != nil {
		return acquireSummary{}, err
	}
	defer a.release()
	opts := acquire.Options{Workers: o.workers, MaxRate: o.maxRate, Progress: progress, Account: o.account, Name: id}
	awsInfo := gatherDescribed(ctx, cfg, *pre)
	res, err := acquire.New(src, opts).Run(ctx, a.out)
	sum := newAcquireSummary(id, cfg.Region, o.out+o.image, res)
	switch {
	case err == nil && a.remote != nil:
		if err = a.completeRemoteBase(ctx, opts, &res, &sum, awsInfo); err == nil {
			err = a.finishRemote(ctx, &res, &sum, awsInfo)
		} else {
			err = a.recordRemoteRun(ctx, a.failed(err, res, &sum, awsInfo), res, &sum, awsInfo)
		}
	case err == nil && a.st != nil:
		err = a.finishDirectory(ctx, opts, &res, &sum, awsInfo)
	case err == nil:
		err = a.finishImage(res, &sum, awsInfo)
	default:
		a.out.Abort()
		err = a.failed(err, res, &sum, awsInfo)
		if a.remote != nil {
			err = a.recordRemoteRun(ctx, err, res, &sum, awsInfo)
		}
	}
	return sum, err
}

// hashList is --hash: the whole-image hashes of a raw --image.
func (o *acquireOptions) hashList() ([]string, error) {
	if o.hashes == "none" {
		return nil, nil
	}
	hashes, err := digest.ParseList(o.hashes)
	if err != nil {
		return nil, usagef("--hash: %v", err)
	}
	return hashes, nil
}

// sealed is how an evidence directory stores its blocks.
type sealed struct {
	form       store.Options // Form and SealTo
	recipients []string
	keyFile    string
}

// openBase reads --compress/--encrypt for the evidence directory, and
// opens --base.
func (a *acquisition) openBase(ctx context.Context) (sealed, error) {
	var s sealed
	var err error
	if s.form, s.recipients, s.keyFile, err = a.o.seal.form(a.o.out); err != nil {
		return s, err
	}
	if a.o.base == "" {
		return s, nil
	}
	a.inc, err = a.openIncremental(ctx, s)
	var imported *store.ImportedBaseError
	if errors.As(err, &imported) {
		return s, usageError{err}
	}
	if err != nil {
		return s, err
	}
	if a.inc.SnapshotID() == a.id {
		return s, usagef("base %s holds evidence of %s itself: give the evidence of an earlier snapshot of the volume", a.o.base, a.id)
	}
	return s, nil
}

// open opens the output for a volume described by info: the evidence
// directory, or the image (claimed first, see claimImage).
func (a *acquisition) open(info ebs.Info, hashes []string, seal sealed) error {
	var err error
	switch o := a.o; {
	case isE01(o.image):
		a.lock, a.out, err = openE01(&outfile.Inputs{}, o.image, "acquire", info.VolumeBytes(), a.e01)
	case o.image != "":
		a.lock, a.out, err = openListedImage(o.image, info.VolumeBytes(), raw.Options{Hashes: hashes, Force: o.force})
	default:
		a.st, err = store.Create(o.out, store.Meta{
			SnapshotID: a.id, Region: a.cfg.Region, Endpoint: ebs.Endpoint(a.cfg),
			VolumeSizeGiB: info.VolumeGiB, BlockSize: info.BlockSize, ToolVersion: toolVersion(),
			Case: o.caseMeta.fields(), Recipients: seal.recipients, KeyFile: seal.keyFile,
		}, store.Options{Force: o.force, Form: seal.form.Form, SealTo: seal.form.SealTo})
		if err == nil {
			a.ev = a.st.Sink()
			a.out = a.ev
		}
	}
	return err
}

// release releases the image's claim, after its sink ended.
func (a *acquisition) release() {
	if a.lock != nil {
		a.lock.Release()
	}
}

// listingError explains a listing that failed: a --base of another
// lineage, or a refusal of the direct APIs by what the pre-flight learnt.
func (a *acquisition) listingError(err error) error {
	if a.inc != nil && ebs.Reason(err) == "UNRELATED_SNAPSHOTS" {
		return withHint(fmt.Errorf("base %s holds %s, which is not of %s's volume lineage (UNRELATED_SNAPSHOTS): %w", a.o.base, a.inc.SnapshotID(), a.id, err),
			"--base takes the evidence of an earlier snapshot of the same volume")
	}
	return preflight.Explain(err, a.pre)
}

// newAcquireSummary is the summary of a run of the pipeline.
func newAcquireSummary(id, region, output string, res acquire.Result) acquireSummary {
	sum := acquireSummary{
		SnapshotID: id, Region: region, Output: output,
		VolumeSizeGiB: res.Info.VolumeGiB, BlockSize: res.Info.BlockSize,
		Blocks: res.Listed, Fetched: res.Stored, Bytes: res.Bytes, Counts: res.Counts,
		Seconds: res.Finished.Sub(res.Started).Seconds(),
	}
	if sum.Seconds > 0 {
		sum.BlocksPerSecond = float64(res.Stored) / sum.Seconds
	}
	return sum
}

// failed reports a run that stopped, the output already aborted: an
// incomplete one is recorded in the evidence directory and summarized.
func (a *acquisition) failed(err error, res acquire.Result, sum *acquireSummary, awsInfo func() report.AWS) error {
	var incomplete *acquire.IncompleteError
	if !errors.As(err, &incomplete) {
		return a.listingError(err)
	}
	sum.FailedBlocks, sum.FailedBlocksUnlisted = failedBlocks(incomplete), incomplete.More
	if a.st != nil {
		rec := acquisitionRecord(report.KindEvidenceDirectory, a.o.out, a.st.Meta().Case, res, a.st.Resumed(), awsInfo())
		rec.Acquisition.FailedBlocks, rec.Acquisition.FailedBlocksUnlisted = sum.FailedBlocks, sum.FailedBlocksUnlisted
		if rerr := recordIncomplete(a.o.out, rec); rerr != nil {
			err = fmt.Errorf("%w\n(and writing the record of the failures: %v)", err, rerr)
		}
	}
	return withHint(err, incompleteHint(a.o))
}

// finishDirectory completes an incremental acquisition, writes the
// manifest and records the acquisition.
func (a *acquisition) finishDirectory(ctx context.Context, opts acquire.Options, res *acquire.Result, sum *acquireSummary, awsInfo func() report.AWS) error {
	sum.Resumed = a.st.Resumed()
	if a.inc != nil {
		err := a.inc.Complete(ctx, a.snap, a.st, opts, res)
		sum.Fetched, sum.Bytes, sum.Counts = res.Stored, res.Bytes, res.Counts
		if err != nil {
			a.ev.Abort()
			return err
		}
		sum.Blocks += a.inc.Taken()
		sum.Base = a.inc.Record()
	}
	a.ev.Started, a.ev.Finished = res.Started, res.Finished
	if _, err := a.ev.Close(); err != nil {
		return err
	}
	ms := a.ev.Summary()
	if ms.Blocks != sum.Blocks {
		return fmt.Errorf("evidence holds %d blocks but the snapshot lists %d", ms.Blocks, sum.Blocks)
	}
	sum.ManifestSHA256 = ms.ManifestSHA256.Hex()
	keptSummary(sum, a.st, ms, *res)
	return recordDirectory(a.o.out, a.st, a.inc, ms, *res, sum, awsInfo)
}

// finishImage closes the image and records the acquisition beside it.
func (a *acquisition) finishImage(res acquire.Result, sum *acquireSummary, awsInfo func() report.AWS) error {
	out, err := a.out.Close()
	if err != nil {
		return err
	}
	sum.Hashes = out.Hashes
	kind := report.KindRawImage
	if isE01(a.o.image) {
		kind = "e01-image"
	}
	rec := acquisitionRecord(kind, a.o.image, a.o.caseMeta.fields(), res, 0, awsInfo())
	rec.Acquisition.ImageHashes = out.Hashes
	if err := os.MkdirAll(a.o.image+".report", 0o700); err != nil {
		return err
	}
	if err := rec.Save(a.o.image + ".report"); err != nil {
		return fmt.Errorf("writing the chain-of-custody record: %w", err)
	}
	return nil
}

// incompleteHint says what happened to the blocks that did arrive, and
// what running again will do.
func incompleteHint(o *acquireOptions) string {
	switch {
	case o.out != "":
		return "run the same command again to retry the failed blocks; the others are kept in " + o.out
	case isE01(o.image):
		return "an E01 is written in block order, so the acquisition stopped at the first failed block; " +
			"a direct image does not resume: the partial E01 was removed and nothing is kept. " +
			"Running the same command again fetches every block again; acquire into an evidence directory (--out DIR) to keep the verified blocks and retry only the failed ones"
	default:
		return "a direct image does not resume: the partial image was removed and nothing is kept. " +
			"Running the same command again fetches every block again; acquire into an evidence directory (--out DIR) to keep the verified blocks and retry only the failed ones"
	}
}

func printAcquireSummary(w io.Writer, s acquireSummary, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(w, "acquired %s (%d GiB volume) into %s\n", s.SnapshotID, s.VolumeSizeGiB, s.Output)
	fmt.Fprintf(w, "  blocks     %d listed, %d fetched now, %d kept from an earlier run\n", s.Blocks, s.Fetched, s.Resumed)
	fmt.Fprintf(w, "  data       %s in %s (%.0f blocks/s, %s)\n", ui.Bytes(s.Bytes), ui.Duration(time.Duration(s.Seconds*float64(time.Second))),
		s.BlocksPerSecond, ui.Rate(s.Bytes, time.Duration(s.Seconds*float64(time.Second))))
	fmt.Fprintf(w, "  requests   %d List, %d Get, %s\n", s.Counts.ListCalls, s.Counts.GetCalls, casework.RetriesText(s.Counts.Retries))
	if b := s.Base; b != nil {
		fmt.Fprintf(w, "  base       %s (%s): %s listed, %s reused (%d linked, %d copied now)\n",
			b.SnapshotID, b.Directory, ui.Plural(b.ChangedBlocks, "changed block"), ui.Plural(b.ReusedBlocks, "block"), b.LinkedBlocks, b.CopiedBlocks)
	}
	printKept(w, s)
	if s.ManifestSHA256 != "" {
		fmt.Fprintf(w, "  manifest   sha256 %s\n", s.ManifestSHA256)
	}
	if h, ok := s.Hashes.(map[string]string); ok {
		for _, alg := range []string{"md5", "sha1", "sha256"} {
			if v, ok := h[alg]; ok {
				fmt.Fprintf(w, "  %-10s %s\n", alg, v)
			}
		}
	}
	return nil
}

// drawProgress returns what redraws the status from a run's counters.
func drawProgress(status *ui.Status) func(acquire.Progress) {
	eta := &ui.ETA{}
	return func(p acquire.Progress) { status.Update(progressLine(p, eta, time.Now())) }
}

// progressLine draws p; the ETA comes from the blocks stored recently
// (see ui.ETA), so a run that stopped moving says "stalled".
func progressLine(p acquire.Progress, eta *ui.ETA, now time.Time) string {
	total := "listing…"
	remaining := int64(-1)
	if p.ListingDone {
		total = fmt.Sprint(p.Listed)
		remaining = p.Remaining()
	}
	return fmt.Sprintf("blocks %d/%s  %s  %s  ETA %s  retries %d  failed %d  concurrency %d",
		p.Stored+p.Skipped, total, ui.Bytes(p.Bytes), ui.Rate(p.Bytes, p.Elapsed), eta.Update(now, p.Stored, remaining),
		p.Counts.TotalRetries(), p.Failed, p.Concurrency)
}

// recordIncomplete writes the record of an incomplete acquisition into
// dir, naming every block that failed. The record of complete evidence
// already there is left as it is: a failed rerun never rewrites it.
func recordIncomplete(dir string, rec *report.Report) error {
	old, err := report.Load(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case old.Acquisition != nil && old.Acquisition.ManifestSHA256 != "":
		return nil
	default:
		for _, s := range old.Steps {
			if err := rec.AppendStep(s); err != nil {
				return err
			}
		}
	}
	return rec.Save(dir)
}

// imageSizeText says how big an image is. A raw image's files hold the
// media byte for byte (sparse); an E01 holds it compressed, so the media
// size and the size of its segment files are both given, each named.
func imageSizeText(files []string, media int64) string {
	if len(files) <= 1 && (len(files) == 0 || !isE01(files[0])) {
		return ui.Bytes(media)
	}
	if !isE01(files[0]) {
		return fmt.Sprintf("%s in %s", ui.Bytes(media), ui.Plural(int64(len(files)), "segment"))
	}
	var onDisk int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			onDisk += fi.Size()
		}
	}
	return fmt.Sprintf("media %s, in %s of E01 files (%s)", ui.Bytes(media), ui.Bytes(onDisk), ui.Plural(int64(len(files)), "segment"))
}

// lockEvidenceDir creates the evidence directory (0700) if needed and
// takes its lock for the whole acquisition: a second acquisition or a
// conversion of the same directory is refused at once (exit 12), naming
// this process. unlock releases it, and removes the directory again when
// this run created it and left nothing in it.
func lockEvidenceDir(dir, what string) (unlock func(), err error) {
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating evidence directory: %w", err)
	}
	l, err := dirlock.ForDir(dir, what)
	if err != nil {
		return nil, err
	}
	return func() {
		l.Release()
		if statErr != nil {
			os.Remove(dir) // only if empty
		}
	}, nil
}

// keptSummary says what the store found of earlier runs, and whether
// the evidence was already complete.
func keptSummary(sum *acquireSummary, st *store.Store, ms store.Summary, res acquire.Result) {
	k := st.Kept()
	sum.Checked, sum.Adopted, sum.Rejected = k.Checked, k.Adopted, k.Rejected
	for _, u := range k.Unverified {
		sum.Unverified = append(sum.Unverified, report.Unverified{Name: u.Name, MovedTo: u.MovedTo, Reason: u.Reason})
	}
	if b := sum.Base; b != nil {
		sum.Rejected += b.RejectedBlocks
	}
	if r := st.Replaced(); r != nil {
		sum.Replaced = &report.Replaced{SnapshotID: r.SnapshotID, ManifestSHA256: r.ManifestSHA256}
	}
	sum.Complete = ms.Unchanged && res.Stored == 0 && sum.Rejected == 0
}

// recordDirectory records the acquisition of an evidence directory. When
// the directory already held complete evidence of these blocks (its
// manifest kept as it was) and its record exists, the record of the
// acquisition is left as it is and this run is appended as an "acquire"
// step; otherwise the acquisition is recorded anew (earlier steps kept).
func recordDirectory(dir string, st *store.Store, inc *incremental.Base, ms store.Summary, res acquire.Result, sum *acquireSummary, awsInfo func() report.AWS) error {
	if ms.Unchanged {
		old, err := report.Load(dir)
		if err == nil {
			step := newStep(report.StepAcquire, res.Started, nil)
			step.Acquire = &report.Rerun{
				Complete: sum.Complete, ManifestSHA256: sum.ManifestSHA256, Blocks: ms.Blocks,
				CheckedBlocks: sum.Checked, AdoptedBlocks: sum.Adopted, RejectedBlocks: sum.Rejected, FetchedBlocks: res.Stored,
				Unverified: sum.Unverified,
				Requests: report.Requests{ListCalls: res.Counts.ListCalls, GetCalls: res.Counts.GetCalls,
					RetriesByKind: res.Counts.Retries, ErrorsByKind: map[string]int64{}},
			}
			if err := old.AppendStep(step); err == nil {
				err = old.Save(dir)
			}
			if err != nil {
				return unrecordedError{fmt.Errorf("the evidence is complete, but this run could not be appended to its record: %w", err)}
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return unrecordedError{fmt.Errorf("the evidence is complete, but its record could not be read: %w", err)}
		}
	}
	rec := acquisitionRecord(report.KindEvidenceDirectory, dir, st.Meta().Case, res, sum.Resumed, awsInfo())
	a := rec.Acquisition
	a.Base, a.AdoptedBlocks, a.RejectedBlocks, a.Unverified, a.Replaced = sum.Base, sum.Adopted, sum.Rejected, sum.Unverified, sum.Replaced
	var changed func(*report.BlockMap) error
	if inc != nil {
		changed = inc.MarkChanged
	}
	if err := recordEvidence(dir, rec, ms, changed); err != nil {
		return fmt.Errorf("writing the chain-of-custody record: %w", err)
	}
	return nil
}

// printKept says what a rerun found of earlier runs.
func printKept(w io.Writer, s acquireSummary) {
	if s.Complete {
		fmt.Fprintf(w, "  complete   the evidence was already complete: %d blocks checked against their SHA-256, nothing fetched, nothing rewritten\n", s.Checked)
	}
	if s.Adopted > 0 {
		fmt.Fprintf(w, "  kept       %d block files without a journal line matched their SHA-256 and were kept\n", s.Adopted)
	}
	if s.Rejected > 0 {
		fmt.Fprintf(w, "  refetched  %d kept blocks did not match their SHA-256 and were fetched again\n", s.Rejected)
	}
	for _, u := range s.Unverified {
		fmt.Fprintf(w, "  set aside  %s → %s: %s\n", u.Name, u.MovedTo, u.Reason)
	}
	if r := s.Replaced; r != nil {
		fmt.Fprintf(w, "  replaced   the evidence of %s", r.SnapshotID)
		if r.ManifestSHA256 != "" {
			fmt.Fprintf(w, " (manifest sha256 %s)", r.ManifestSHA256)
		}
		fmt.Fprintln(w)
	}
}

// samePath reports whether a and b name the same path.
func samePath(a, b string) (bool, error) {
	aa, err := filepath.Abs(a)
	if err != nil {
		return false, err
	}
	bb, err := filepath.Abs(b)
	if err != nil {
		return false, err
	}
	return aa == bb, nil
}
