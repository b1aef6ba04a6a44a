package live

import (
	"math/bits"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// index is what the listing said of each chunk of block slots: nil until
// the chunk is listed, then a bitmap of its allocated slots. Bitmaps are
// made one chunk at a time, so a small read of a huge volume costs little,
// and a chunk that is all holes or all allocated shares one slice.
type index struct {
	slots int64 // block slots in the volume
	chunk int64 // slots per chunk

	mu     sync.Mutex
	alloc  [][]uint64 // per chunk; nil: not listed yet
	empty  []uint64   // shared by every chunk without a block
	full   []uint64   // shared by every chunk with all its slots allocated
	listed int64      // chunks listed
}

func newIndex(slots, chunk int64) *index {
	words := (chunk + 63) / 64
	full := make([]uint64, words)
	for i := range full {
		full[i] = ^uint64(0)
	}
	return &index{
		slots: slots, chunk: chunk,
		alloc: make([][]uint64, (slots+chunk-1)/chunk),
		empty: []uint64{},
		full:  full,
	}
}

// chunks returns how many chunks the volume has.
func (x *index) chunks() int64 { return int64(len(x.alloc)) }

// span returns the first slot of chunk c and the slot just past it.
func (x *index) span(c int64) (start, end int64) {
	start = c * x.chunk
	return start, min(start+x.chunk, x.slots)
}

// test reports whether slot i is allocated; known is false while its
// chunk has not been listed.
func (x *index) test(i int64) (allocated, known bool) {
	c, off := i/x.chunk, i%x.chunk
	x.mu.Lock()
	b := x.alloc[c]
	x.mu.Unlock()
	if b == nil {
		return false, false
	}
	w := off / 64
	return w < int64(len(b)) && b[w]&(1<<(off%64)) != 0, true
}

// isListed reports whether chunk c has been listed.
func (x *index) isListed(c int64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.alloc[c] != nil
}

// set records chunk c's bitmap, made for its slots, unless the chunk is
// already known: a snapshot's listing does not change.
func (x *index) set(c int64, b []uint64) {
	start, end := x.span(c)
	b = x.compact(b, end-start)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.alloc[c] == nil {
		x.alloc[c] = b
		x.listed++
	}
}

// compact returns the shared empty or full slice when b, over n slots,
// is all holes or all allocated, and b otherwise.
func (x *index) compact(b []uint64, n int64) []uint64 {
	ones := 0
	for _, w := range b {
		ones += bits.OnesCount64(w)
	}
	switch int64(ones) {
	case 0:
		return x.empty
	case n:
		return x.full
	}
	return b
}

// nextUnlisted returns the first chunk at or after c not yet listed, or -1.
func (x *index) nextUnlisted(c int64) int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	for ; c < int64(len(x.alloc)); c++ {
		if x.alloc[c] == nil {
			return c
		}
	}
	return -1
}

// ranges returns the allocated extents in bytes, merged where they touch.
// Every chunk must have been listed.
func (x *index) ranges() []volume.Range {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := []volume.Range{}
	add := func(from, to int64) { // slots [from, to)
		off, n := from*block.Size, (to-from)*block.Size
		if k := len(out) - 1; k >= 0 && out[k].End() == off {
			out[k].Len += n
			return
		}
		out = append(out, volume.Range{Off: off, Len: n})
	}
	for c, b := range x.alloc {
		start, end := x.span(int64(c))
		switch {
		case len(b) == 0: // the shared empty chunk
			continue
		case &b[0] == &x.full[0]:
			add(start, end)
			continue
		}
		for i := start; i < end; {
			off := i - start
			w := b[off/64] >> (off % 64)
			if w == 0 { // skip the rest of this word
				i += 64 - off%64
				continue
			}
			if w&1 == 0 {
				i += int64(bits.TrailingZeros64(w))
				continue
			}
			run := min(int64(bits.TrailingZeros64(^w)), 64-off%64, end-i)
			add(i, i+run)
			i += run
		}
	}
	return out
}
