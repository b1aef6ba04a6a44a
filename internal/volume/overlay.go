package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Fetch returns block index of the new snapshot, verified, in buf (which
// holds block.Size bytes); the result may be a prefix of buf, or another
// slice.
type Fetch func(ctx context.Context, index int64, buf []byte) ([]byte, error)

// Patch is a run of blocks that the new snapshot holds differently from
// the base: written again or added (fetched), or removed (zeros).
type Patch struct {
	Start, Blocks int64
	Removed       bool
}

// Overlay is a new snapshot's volume made from its base's and the
// changes: an unchanged block is the base's, a removed one reads as
// zeros, and an added or changed one is fetched, once, when first read.
type Overlay struct {
	ctx      context.Context
	base     Volume
	snapshot string
	size     int64
	patches  []Patch
	fetch    Fetch
	cache    *blockCache
	fetched  atomic.Int64
}

// NewOverlay returns snapshot, of size bytes, as base with patches
// (ascending, not overlapping) applied; fetch reads the blocks the
// patches add or change, bounded by ctx. The Overlay does not close
// base.
func NewOverlay(ctx context.Context, base Volume, snapshot string, size int64, patches []Patch, fetch Fetch) *Overlay {
	o := &Overlay{ctx: ctx, base: base, snapshot: snapshot, size: size, patches: patches, fetch: fetch}
	o.cache = newBlockCache(size, DefaultCacheBlocks, o.load)
	return o
}

// SnapshotID is the new snapshot.
func (o *Overlay) SnapshotID() string { return o.snapshot }

// Size is the new snapshot's size.
func (o *Overlay) Size() int64 { return o.size }

// Fetched returns how many blocks were fetched.
func (o *Overlay) Fetched() int64 { return o.fetched.Load() }

// Close drops the cached blocks; the base belongs to the caller and is
// not closed.
func (o *Overlay) Close() error {
	o.cache.close()
	return nil
}

// ReadAt reads the new snapshot at off.
func (o *Overlay) ReadAt(p []byte, off int64) (int, error) {
	return o.cache.readAt(p, off)
}

// Ranges returns the base's extents without the patched blocks, with the
// fetched ones added.
func (o *Overlay) Ranges() ([]Range, error) {
	base, err := o.base.Ranges()
	if err != nil {
		return nil, err
	}
	var all, added []Range
	for _, p := range o.patches {
		r := Range{p.Start * block.Size, p.Blocks * block.Size}
		all = appendRange(all, r)
		if !p.Removed {
			added = appendRange(added, r)
		}
	}
	return clip(union(subtract(base, all), added), o.size), nil
}

// patch returns the patch holding block index, if any.
func (o *Overlay) patch(index int64) (Patch, bool) {
	i := sort.Search(len(o.patches), func(i int) bool { return o.patches[i].Start+o.patches[i].Blocks > index })
	if i < len(o.patches) && o.patches[i].Start <= index {
		return o.patches[i], true
	}
	return Patch{}, false
}

func (o *Overlay) load(index int64, buf []byte) error {
	p, ok := o.patch(index)
	switch {
	case ok && p.Removed:
		return nil
	case ok:
		data, err := o.fetch(o.ctx, index, buf)
		if err != nil {
			return markCorrupt(fmt.Errorf("fetching block %d of %s: %w", index, o.snapshot, err))
		}
		if len(data) > 0 && &data[0] != &buf[0] {
			copy(buf, data)
		}
		clear(buf[len(data):])
		o.fetched.Add(1)
		return nil
	}
	n, err := o.base.ReadAt(buf, index*block.Size)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	clear(buf[n:]) // beyond a smaller base: zeros
	return nil
}
