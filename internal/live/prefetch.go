package live

import (
	"context"
	"fmt"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// DefaultPrefetchWorkers bounds the fetches Prefetch makes at once; the
// fetch stack's limiter bounds them further, and shrinks the window
// under throttling.
const DefaultPrefetchWorkers = 32

// CacheBlocks returns how many blocks the cache holds at most: a caller
// that prefetches more than this at once evicts what it fetched before
// reading it.
func (v *Volume) CacheBlocks() int { return v.cache.max }

// Prefetch fetches the allocated blocks under rs that are not cached
// yet, up to DefaultPrefetchWorkers at once, so that the reads that
// follow find them in the cache: a caller that knows every block it will
// read (a file-system reader's runs) fetches them in parallel instead of
// one read at a time. Holes cost nothing; a block another read is
// fetching is not fetched twice. Prefetch fetches at most CacheBlocks
// blocks, the first ones in volume order, so that it never evicts what
// it fetched itself: a caller with more goes in batches, reading one
// batch before it prefetches the next. The first error ends it and is
// returned; the blocks fetched before stay cached.
func (v *Volume) Prefetch(ctx context.Context, rs []volume.Range) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.closed {
		return errClosed
	}
	idx, err := v.prefetchList(ctx, rs)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(DefaultPrefetchWorkers)
	for _, i := range idx {
		g.Go(func() error {
			// The volume's own context bounds the fetch too: Close ends it.
			if err := v.ctx.Err(); err != nil {
				return errClosed
			}
			_, err := v.block(gctx, i, false)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("prefetching: %w", err)
	}
	return nil
}

// prefetchList returns the allocated, uncached blocks under rs, in
// ascending order, at most CacheBlocks of them.
func (v *Volume) prefetchList(ctx context.Context, rs []volume.Range) ([]int64, error) {
	sorted := make([]volume.Range, 0, len(rs))
	for _, r := range rs {
		if r.Len > 0 && r.Off >= 0 && r.Off < v.size {
			sorted = append(sorted, volume.Range{Off: r.Off, Len: min(r.End(), v.size) - r.Off})
		}
	}
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].Off < sorted[b].Off })
	var out []int64
	next := int64(0) // the first block not yet considered
	for _, r := range sorted {
		for i := max(next, r.Off/block.Size); i <= (r.End()-1)/block.Size; i++ {
			if len(out) >= v.cache.max {
				return out, nil
			}
			next = i + 1
			allocated, err := v.allocated(ctx, i)
			if err != nil {
				return nil, err
			}
			if allocated && !v.cache.has(i) {
				out = append(out, i)
			}
		}
	}
	return out, nil
}
