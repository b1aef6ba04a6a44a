package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/ebs"
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
		Long: `Fetch every listed block of SNAPSHOT. Each block is checked against the
SHA-256 AWS served it with before any byte of it is written.

With --out DIR, blocks are kept as an evidence directory: one file per block
under the original tool's name, a journal, and when complete a manifest.
Running the same command again after any interruption fetches only what is
missing. With --image FILE, blocks go straight into a sparse raw image;
with --image BASE.E01, into an E01 (blocks are put back in order within a
window of 128 blocks, 64 MiB). Direct images do not resume.

Concurrency adapts by itself: it grows while throughput grows and backs off
when AWS throttles. --workers and --max-rate are hard caps.

With --base BASE_DIR, the complete evidence directory of an earlier
snapshot of the same volume (stored with the same --compress/--encrypt),
only the blocks ListChangedBlocks reports between the two snapshots are
fetched; every other block is taken from the base, hard-linked (copied
with --copy-base, or when linking fails). The result is a complete
evidence directory of SNAPSHOT.`,
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
			return runAcquire(cmd.Context(), cmd, aws, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "evidence directory to create or resume")
	f.StringVar(&o.image, "image", "", "write an image instead of an evidence directory: a sparse raw FILE, or BASE.E01")
	f.IntVar(&o.workers, "workers", 0, fmt.Sprintf("most requests in flight (default: adaptive, up to %d)", acquire.DefaultWorkers))
	f.Float64Var(&o.maxRate, "max-rate", 0, "most blocks per second (default: no cap)")
	f.IntVar(&o.maxAttempts, "max-attempts", 10, "attempts per block before it counts as failed (throttling aside)")
	f.StringVar(&o.hashes, "hash", "md5,sha1,sha256", "with --image FILE: whole-image hashes to compute when it is complete, or none")
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
	form, recipients, keyFile := store.Plain, []string(nil), ""
	if o.out != "" {
		if form, recipients, keyFile, err = o.seal.form(o.out); err != nil {
			return err
		}
	}
	var inc *incremental
	if o.base != "" {
		if inc, err = openIncremental(o.base, id, o.out, o.copyBase, form, recipients); err != nil {
			return err
		}
	}
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.json, 5*time.Second)
	var (
		st   *store.Store
		sink imageSink
		e01  *e01Sink
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
				sink, e01 = s, s
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
			}, store.Options{Force: o.force, Form: form})
			st = s
			return s, err
		},
	}
	if isE01(o.image) {
		opts.Listed = func(i int64) { e01.Listed(i) }
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
			return withHint(err, "run the same command again to retry the failed blocks; the others are kept")
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
			sum.Blocks += inc.reused
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
		rec := acquisitionRecord(report.KindEvidenceDirectory, o.out, st.Meta().Case, res, sum.Resumed, awsInfo())
		rec.Acquisition.Base = sum.Base
		var changed func(*report.BlockMap) error
		if inc != nil {
			changed = inc.markChanged
		}
		if err := recordEvidence(o.out, rec, ms, changed); err != nil {
			return fmt.Errorf("writing the chain-of-custody record: %w", err)
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
	fmt.Fprintf(w, "  requests   %d List, %d Get, %d retries %v\n", s.Counts.ListCalls, s.Counts.GetCalls, s.Counts.TotalRetries(), s.Counts.Retries)
	if b := s.Base; b != nil {
		fmt.Fprintf(w, "  base       %s (%s): %d changed blocks listed, %d blocks reused (%d linked, %d copied now)\n",
			b.SnapshotID, b.Directory, b.ChangedBlocks, b.ReusedBlocks, b.LinkedBlocks, b.CopiedBlocks)
	}
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
		for {
			select {
			case <-done:
				return
			case <-t.C:
				status.Update(progressLine(a.Progress()))
			}
		}
	}()
	return func() { close(done); <-finished }
}

func progressLine(p acquire.Progress) string {
	total := "listing…"
	eta := "-"
	if p.ListingDone {
		total = fmt.Sprint(p.Listed)
		if rate := float64(p.Stored) / p.Elapsed.Seconds(); rate > 0 {
			eta = ui.Duration(time.Duration(float64(p.Remaining()) / rate * float64(time.Second)))
		}
	}
	return fmt.Sprintf("blocks %d/%s  %s  %s  ETA %s  retries %d  failed %d  concurrency %d",
		p.Stored+p.Skipped, total, ui.Bytes(p.Bytes), ui.Rate(p.Bytes, p.Elapsed), eta, p.Counts.TotalRetries(), p.Failed, p.Concurrency)
}
