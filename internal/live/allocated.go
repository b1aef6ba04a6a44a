package live

import (
	"context"
	"fmt"
	"math/bits"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/volume"
)

var _ volume.Allocation = (*Volume)(nil)

// Allocated reports whether block index is allocated, and the next
// allocated block after it, or -1 when none is. It lists only the chunks
// it needs and not listed yet: index's own, then the chunks after it up
// to the next block. A chunk's listing walks on to the first block past
// it and records the empty chunks between, so the next block of a
// sparse volume costs about one List more. An index outside the volume
// is a *block.BeyondVolumeError.
func (v *Volume) Allocated(ctx context.Context, index int64) (ok bool, next int64, err error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.closed {
		return false, -1, errClosed
	}
	if err := block.CheckIndex(index, v.slots); err != nil {
		return false, -1, err
	}
	if ok, err = v.allocated(ctx, index); err != nil {
		return false, -1, err
	}
	for from := index + 1; from < v.slots; {
		c := from / v.o.chunk
		if !v.idx.isListed(c) {
			if _, err := v.chunkTokens(ctx, c); err != nil {
				return false, -1, err
			}
		}
		if n := v.idx.nextSet(c, from); n >= 0 {
			return ok, n, nil
		}
		from = (c + 1) * v.o.chunk
	}
	return ok, -1, nil
}

// nextSet returns the first allocated slot at or after from in chunk c,
// which has been listed, or -1.
func (x *index) nextSet(c, from int64) int64 {
	start, end := x.span(c)
	x.mu.Lock()
	b := x.alloc[c]
	x.mu.Unlock()
	if b == nil {
		panic(fmt.Sprintf("live: chunk %d not listed", c))
	}
	for i := max(from, start); i < end; {
		off := i - start
		w := off / 64
		if w >= int64(len(b)) {
			return -1 // the shared empty chunk
		}
		if rest := b[w] >> (off % 64); rest != 0 {
			if n := i + int64(bits.TrailingZeros64(rest)); n < end {
				return n
			}
			return -1
		}
		i += 64 - off%64
	}
	return -1
}
