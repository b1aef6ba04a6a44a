package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/live"
	"github.com/ebsimager/ebsimager/internal/preflight"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// liveWorkers caps a live read's requests in flight: readahead runs a few
// fetches at once, and a throttle shrinks the window below this.
const liveWorkers = 32

// liveOptions are the flags of reading a snapshot live, "snap-…", with no
// acquisition.
type liveOptions struct {
	cache      string
	saveBlocks string
	vol        *live.Volume // the snapshot opened, for its statistics
	sums       *live.SumLog // when set, logs the AWS checksum of every block fetched
	started    time.Time
}

func (o *liveOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.cache, "cache", "256MiB", "memory for the blocks of a snapshot read live (snap-…)")
	cmd.Flags().StringVar(&o.saveBlocks, "save-blocks", "", "also store every block read from a live snapshot in evidence directory `DIR`, as acquire --out DIR would; a later acquire --out DIR fetches only the rest")
}

// opener returns how volume.Open reads a snapshot: lazily through the
// EBS direct APIs, every block fetched verified through the fetch stack
// acquire uses, and stored in --save-blocks when given. It checks the
// flags first: --save-blocks needs source to be a snapshot.
func (o *liveOptions) opener(aws *awsOptions, source string) (func(ctx context.Context, id string) (volume.Volume, error), error) {
	cache, err := parseSize(o.cache)
	if err != nil || cache < 1<<20 {
		return nil, usagef("--cache %q: want a size of at least 1MiB", o.cache)
	}
	if o.saveBlocks != "" {
		if _, err := os.Stat(source); err == nil || block.CheckSnapshotID(source) != nil {
			return nil, usagef("--save-blocks: %s is not a snapshot; only blocks read live from a snapshot (snap-…) are stored", source)
		}
	}
	return func(ctx context.Context, id string) (volume.Volume, error) {
		snap, cfg, err := aws.snapshot(ctx, id)
		if err != nil {
			return nil, err
		}
		fetcher := ebs.NewFetcher(snap, ebs.FetchOptions{Limiter: ebs.NewLimiter(liveWorkers)})
		if o.sums != nil {
			fetcher = o.sums.Record(fetcher)
		}
		lo := live.Options{CacheBytes: cache, Region: cfg.Region}
		if o.saveBlocks != "" {
			// evidence.json as acquire --out writes it, plain.
			meta := store.Meta{Region: cfg.Region, Endpoint: ebs.Endpoint(cfg), ToolVersion: toolVersion()}
			lo.Evidence = live.EvidenceDir(o.saveBlocks, meta, store.Options{})
		}
		o.started = time.Now()
		v, err := live.Open(ctx, snap, fetcher, lo)
		var other *store.OtherSnapshotError
		if errors.As(err, &other) {
			return nil, withHint(err, "choose another --save-blocks directory")
		}
		if err != nil {
			return nil, preflight.Diagnose(ctx, cfg, id, err)
		}
		o.vol = v
		return v, nil
	}, nil
}

// summary says what reading the snapshot cost, or "" when none was read.
func (o *liveOptions) summary() string {
	if o.vol == nil {
		return ""
	}
	s := o.vol.Stats()
	line := fmt.Sprintf("read %s live: %d List and %d Get calls (%d blocks fetched, %d bytes, %d cache hits), about $%.4f",
		o.vol.SnapshotID(), s.ListCalls, s.GetCalls, s.Fetched, s.Bytes, s.Hits, s.CostUSD)
	if o.saveBlocks != "" {
		line += fmt.Sprintf("; %d blocks stored in %s", s.Stored, o.saveBlocks)
	}
	return line
}

// finish ends a read of source whose volume is closed, with readErr its
// error: it says on w what a live read cost, and records it in
// --save-blocks. It returns readErr, or else the recording's error.
func (o *liveOptions) finish(w io.Writer, readErr error) error {
	if s := o.summary(); s != "" {
		fmt.Fprintf(w, "ebsimager: %s\n", s)
	}
	if err := o.record(readErr); readErr == nil {
		return err
	}
	return readErr
}

// record appends a read-live step, what the read stored and the calls it
// made, to the record of the --save-blocks directory, starting the record
// if there is none; readErr, the read's own error, makes it a failed
// step. The volume must be closed. Nothing is recorded when no snapshot
// was opened (nothing was stored).
func (o *liveOptions) record(readErr error) error {
	if o.vol == nil || o.saveBlocks == "" {
		return nil
	}
	unlock, err := lockEvidenceDir(o.saveBlocks, "read live")
	if err != nil {
		return unrecordedError{fmt.Errorf("blocks were stored in %s, but the read could not be recorded: %w", o.saveBlocks, err)}
	}
	defer unlock()
	s, info := o.vol.Stats(), o.vol.Info()
	if s.Retries == nil {
		s.Retries = map[string]int64{}
	}
	step := newStep(report.StepReadLive, o.started, readErr)
	step.ReadLive = &report.ReadLive{SnapshotID: info.SnapshotID, StoredBlocks: s.Stored,
		Requests: report.Requests{ListCalls: s.ListCalls, GetCalls: s.GetCalls, RetriesByKind: s.Retries, ErrorsByKind: map[string]int64{}}}
	if err := report.AppendOrNew(o.saveBlocks, info.SnapshotID, info.VolumeGiB, info.BlockSize, step); err != nil {
		return unrecordedError{fmt.Errorf("blocks were stored in %s, but the read could not be recorded: %w", o.saveBlocks, err)}
	}
	return nil
}
