package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/report"
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
	caseMeta
	seal sealOptions
	e01  e01Options
}

func newAcquireCommand(aws *awsOptions) *cobra.Command {
	o := &acquireOptions{}
	cmd := &cobra.Command{
		Use:   "acquire SNAPSHOT (--out DIR | --image FILE)",
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

With --base BASE_DIR, the complete evidence directory of an earlier
snapshot of the same volume (stored with the same --compress/--encrypt),
only the blocks ListChangedBlocks reports between the two snapshots are
fetched; every other block is taken from the base, hard-linked (copied
with --copy-base, or when linking fails). The result is a complete
evidence directory of SNAPSHOT.`, raw.DefaultWindow, raw.DefaultWindow*block.Size>>20),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (o.out == "") == (o.image == "") {
				return usagef("give exactly one of --out DIR and --image FILE")
			}
			if o.image != "" && (o.seal.encrypting() || cmd.Flags().Changed("compress")) {
				return usagef("--compress and --encrypt apply to an evidence directory (--out), not to --image")
			}
			if o.base != "" && o.out == "" {
				return usagef("--base needs --out DIR: the unchanged blocks are taken into an evidence directory")
			}
			if o.copyBase && o.base == "" {
				return usagef("--copy-base applies to --base")
			}
			if err := o.e01.refuseUnless(cmd, isE01(o.image), "an evidence directory or a raw image"); err != nil {
				return err
			}
			if cmd.Flags().Changed("hash") && (o.image == "" || isE01(o.image)) {
				return usagef("--hash applies only to a raw --image FILE: an evidence directory keeps every block's SHA-256, and an E01 always holds MD5 and SHA-1 (and SHA-256 beside it)")
			}
			o.e01.replace = o.force
			if o.workers < 0 || o.maxRate < 0 || o.maxAttempts < 0 {
				return usagef("--workers, --max-rate and --max-attempts must not be negative")
			}
			if err := ebs.CheckRate(o.maxRate); err != nil {
				return usagef("--max-rate: %v", err)
			}
			return runAcquire(cmd.Context(), cmd, aws, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "evidence directory to create or resume")
	f.StringVar(&o.image, "image", "", "write an image instead of an evidence directory: a sparse raw FILE, or BASE.E01")
	f.IntVar(&o.workers, "workers", 0, fmt.Sprintf("most requests in flight (default: adaptive, up to %d)", acquire.DefaultWorkers))
	f.Float64Var(&o.maxRate, "max-rate", 0, "most blocks per second (default: no cap)")
	f.IntVar(&o.maxAttempts, "max-attempts", 10, "attempts per block before it counts as failed (throttling aside)")
	f.StringVar(&o.hashes, "hash", "md5,sha1,sha256", "with --image FILE: whole-image hashes to compute while it is written, or none")
	f.BoolVar(&o.force, "force", false, "replace evidence of another snapshot, or an existing image")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress (the summary is still printed)")
	f.BoolVar(&o.json, "json", false, "print a JSON summary at the end")
	f.StringVar(&o.base, "base", "", "evidence directory of an earlier snapshot of the volume: fetch only the changed blocks")
	f.BoolVar(&o.copyBase, "copy-base", false, "copy the unchanged blocks from --base instead of hard-linking them")
	o.caseMeta.addFlags(cmd)
	o.seal.addFlags(cmd)
	o.e01.addFlags(cmd)
	return cmd
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
}

// failedBlocks is the full list of an incomplete run's failures.
func failedBlocks(e *acquire.IncompleteError) []report.FailedBlock {
	out := make([]report.FailedBlock, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = report.FailedBlock{Index: f.Index, Error: f.Err.Error()}
	}
	return out
}

func runAcquire(ctx context.Context, cmd *cobra.Command, aws *awsOptions, id string, o *acquireOptions) error {
	snap, cfg, err := aws.snapshot(ctx, id)
	if err != nil {
		return err
	}
	snap.Policy.MaxAttempts = o.maxAttempts
	var hashes []string
	if o.hashes != "none" {
		if hashes, err = digest.ParseList(o.hashes); err != nil {
			return usagef("--hash: %v", err)
		}
	}
	form, recipients, keyFile := store.Options{}, []string(nil), ""
	if o.out != "" {
		unlock, err := lockEvidenceDir(o.out, "acquire")
		if err != nil {
			return err
		}
		defer unlock()
		if form, recipients, keyFile, err = o.seal.form(o.out); err != nil {
			return err
		}
	}
	var inc *incremental
	if o.base != "" {
		if inc, err = openIncremental(o.base, id, o.out, o.copyBase, form.Form, recipients); err != nil {
			return err
		}
	}
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.json, 5*time.Second)
	var (
		st   *store.Store
		sink imageSink
	)
	started := time.Now()
	e01Opts, err := o.e01.options(e01Metadata(id, o.caseMeta.fields(), started))
	if err != nil {
		return err
	}
	opts := acquire.Options{
		Workers: o.workers,
		MaxRate: o.maxRate,
		Open: func(info ebs.Info) (acquire.Sink, error) {
			if isE01(o.image) {
				s, err := openE01Sink(o.image, info.VolumeBytes(), e01Opts)
				if err != nil {
					return nil, err
				}
				sink = s
				return s, nil
			}
			if o.image != "" {
				s, err := openImageSink(o.image, info, o.force, hashes)
				if err != nil {
					return nil, err
				}
				sink = s
				return s, nil
			}
			if inc != nil {
				if err := inc.checkInfo(info); err != nil {
					return nil, err
				}
			}
			s, err := store.Create(o.out, store.Meta{
				SnapshotID: id, Region: cfg.Region, Endpoint: ebs.Endpoint(cfg),
				VolumeSizeGiB: info.VolumeGiB, BlockSize: info.BlockSize, ToolVersion: toolVersion(),
				Case: o.caseMeta.fields(), Recipients: recipients, KeyFile: keyFile,
			}, store.Options{Force: o.force, Form: form.Form, SealTo: form.SealTo})
			st = s
			return s, err
		},
	}
	if o.image != "" {
		// Both images keep the blocks in order: an E01 writes them so, a
		// raw image hashes them so.
		opts.Listed = func(i int64) { sink.Listed(i) }
	}
	if isE01(o.image) {
		opts.FailFast = true // an E01 stream cannot be completed later
	}
	if inc != nil {
		opts.List = inc.list(snap)
	}
	a := acquire.New(snap, opts)
	awsInfo := gatherContext(ctx, cfg, id)
	stop := drawProgress(a, status)
	res, err := a.Run(ctx)
	stop()
	sum := acquireSummary{
		SnapshotID: id, Region: cfg.Region, Output: o.out + o.image,
		VolumeSizeGiB: res.Info.VolumeGiB, BlockSize: res.Info.BlockSize,
		Blocks: res.Listed, Fetched: res.Stored, Bytes: res.Bytes, Counts: res.Counts,
		Seconds: res.Finished.Sub(res.Started).Seconds(),
	}
	if sum.Seconds > 0 {
		sum.BlocksPerSecond = float64(res.Stored) / sum.Seconds
	}
	if err != nil {
		if st != nil {
			st.Close()
		}
		if sink != nil {
			sink.Abort()
		}
		status.Done("")
		var incomplete *acquire.IncompleteError
		if errors.As(err, &incomplete) {
			sum.FailedBlocks, sum.FailedBlocksUnlisted = failedBlocks(incomplete), incomplete.More
			if st != nil {
				rec := acquisitionRecord(report.KindEvidenceDirectory, o.out, st.Meta().Case, res, st.Resumed(), awsInfo())
				rec.Acquisition.FailedBlocks, rec.Acquisition.FailedBlocksUnlisted = sum.FailedBlocks, sum.FailedBlocksUnlisted
				if rerr := recordIncomplete(o.out, rec); rerr != nil {
					err = fmt.Errorf("%w\n(and writing the record of the failures: %v)", err, rerr)
				}
			}
			if o.json {
				if perr := printAcquireSummary(cmd.OutOrStdout(), sum, true); perr != nil {
					return perr
				}
			}
			return withHint(err, incompleteHint(o))
		}
		if inc != nil && ebs.Reason(err) == "UNRELATED_SNAPSHOTS" {
			return withHint(fmt.Errorf("base %s holds %s, which is not of %s's volume lineage (UNRELATED_SNAPSHOTS): %w", o.base, inc.base.Meta.SnapshotID, id, err),
				"--base takes the evidence of an earlier snapshot of the same volume")
		}
		return err
	}
	if st != nil {
		sum.Resumed = st.Resumed()
		if inc != nil {
			if err := inc.reuse(ctx, st); err != nil {
				st.Close()
				status.Done("")
				return fmt.Errorf("taking unchanged blocks from %s: %w", o.base, err)
			}
			r2, err := inc.refetch(ctx, snap, st, opts)
			res.Stored, res.Bytes = res.Stored+r2.Stored, res.Bytes+r2.Bytes
			if len(inc.bad) > 0 {
				res.Counts = r2.Counts
			}
			sum.Fetched, sum.Bytes, sum.Counts = res.Stored, res.Bytes, res.Counts
			if err != nil {
				st.Close()
				status.Done("")
				return fmt.Errorf("fetching the blocks of %s that did not match its manifest: %w", o.base, err)
			}
			sum.Blocks += inc.reused + int64(len(inc.bad))
			sum.Base = inc.record()
			res.Finished = time.Now() // the reuse is part of the acquisition
		}
		ms, err := st.Finish(res.Started, res.Finished)
		if err != nil {
			return err
		}
		if ms.Blocks != sum.Blocks {
			return fmt.Errorf("evidence holds %d blocks but the snapshot lists %d", ms.Blocks, sum.Blocks)
		}
		sum.ManifestSHA256 = ms.ManifestSHA256.Hex()
		keptSummary(&sum, st, ms, res)
		if err := recordDirectory(o.out, st, inc, ms, res, &sum, awsInfo); err != nil {
			return err
		}
	} else {
		hashes, err := sink.Close()
		if err != nil {
			return err
		}
		sum.Hashes = hashes
		kind := report.KindRawImage
		if isE01(o.image) {
			kind = "e01-image"
		}
		rec := acquisitionRecord(kind, o.image, o.caseMeta.fields(), res, 0, awsInfo())
		rec.Acquisition.ImageHashes = hashes
		if err := os.MkdirAll(o.image+".report", 0o700); err != nil {
			return err
		}
		if err := rec.Save(o.image + ".report"); err != nil {
			return fmt.Errorf("writing the chain-of-custody record: %w", err)
		}
	}
	status.Done("")
	return printAcquireSummary(cmd.OutOrStdout(), sum, o.json)
}

// retriesText renders retries by kind: "no retries", or "12 retries
// (9 throttle, 3 server-error)", the most frequent kind first.
func retriesText(byKind map[string]int64) string {
	var total int64
	kinds := make([]string, 0, len(byKind))
	for k, n := range byKind {
		if n > 0 {
			total += n
			kinds = append(kinds, k)
		}
	}
	if total == 0 {
		return "no retries"
	}
	sort.Slice(kinds, func(i, j int) bool {
		if byKind[kinds[i]] != byKind[kinds[j]] {
			return byKind[kinds[i]] > byKind[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", byKind[k], k)
	}
	return fmt.Sprintf("%s (%s)", ui.Plural(total, "retry"), strings.Join(parts, ", "))
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
	fmt.Fprintf(w, "  requests   %d List, %d Get, %s\n", s.Counts.ListCalls, s.Counts.GetCalls, retriesText(s.Counts.Retries))
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

// drawProgress redraws the status from a's counters until stop is called.
func drawProgress(a *acquire.Acquisition, status *ui.Status) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		eta := &ui.ETA{}
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				status.Update(progressLine(a.Progress(), eta, now))
			}
		}
	}()
	return func() { close(done); <-finished }
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
func recordDirectory(dir string, st *store.Store, inc *incremental, ms store.Summary, res acquire.Result, sum *acquireSummary, awsInfo func() report.AWS) error {
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
		changed = inc.markChanged
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
