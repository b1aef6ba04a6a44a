package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/live"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// liveWorkers caps a live read's requests in flight: readahead runs a few
// fetches at once, and a throttle shrinks the window below this.
const liveWorkers = 32

// liveOptions are the flags of reading a snapshot live, "snap-…", with no
// acquisition.
type liveOptions struct {
	cache string
	vol   *live.Volume // the snapshot opened, for its statistics
}

func (o *liveOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.cache, "cache", "256MiB", "memory for the blocks of a snapshot read live (snap-…)")
}

// opener returns how volume.Open reads a snapshot: lazily through the
// EBS direct APIs, every block fetched verified through the fetch stack
// acquire uses. It checks the flags first.
func (o *liveOptions) opener(aws *awsOptions) (func(ctx context.Context, id string) (volume.Volume, error), error) {
	cache, err := parseSize(o.cache)
	if err != nil || cache < 1<<20 {
		return nil, usagef("--cache %q: want a size of at least 1MiB", o.cache)
	}
	return func(ctx context.Context, id string) (volume.Volume, error) {
		snap, cfg, err := aws.snapshot(ctx, id)
		if err != nil {
			return nil, err
		}
		fetcher := ebs.NewFetcher(snap, ebs.FetchOptions{Limiter: ebs.NewLimiter(liveWorkers)})
		v, err := live.Open(ctx, snap, fetcher, live.Options{CacheBytes: cache, Region: cfg.Region})
		if err != nil {
			return nil, err
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
	return fmt.Sprintf("read %s live: %d List and %d Get calls (%d blocks fetched, %d cache hits), about $%.4f",
		o.vol.SnapshotID(), s.ListCalls, s.GetCalls, s.Fetched, s.Hits, s.CostUSD)
}
