package emulator

import (
	"crypto/sha256"
	"slices"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
)

// storedBlock is one block received by PutSnapshotBlock. Its address is
// its version: a child that did not rewrite the slot shares it.
type storedBlock struct {
	data []byte
	sum  block.Sum
}

// writtenSource is a snapshot made with the write API, held in memory. The
// blocks put into it overlay its parent's, which it inherits without
// copying.
type writtenSource struct {
	parent source // nil without a parent
	slots  int64

	mu    sync.Mutex // guards own and done until completion
	own   map[int64]*storedBlock
	done  bool
	index []int64 // ascending keys of own, set at completion
}

func newWritten(parent source, slots int64) *writtenSource {
	return &writtenSource{parent: parent, slots: slots, own: make(map[int64]*storedBlock)}
}

// put stores a block; it reports false once the snapshot is completed.
func (w *writtenSource) put(i int64, b *storedBlock) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return false
	}
	w.own[i] = b
	return true
}

// finish completes the snapshot if check, given how many blocks were put
// and their LINEAR aggregate checksum, returns nil. Puts wait meanwhile,
// so the count and checksum are exactly what is frozen. LINEAR is SHA-256
// over the per-block SHA-256 digests concatenated in ascending index order
// (the EBS user guide, "Use checksums"; coldsnap hashes the raw digests
// the same way). Reads happen only after completion.
func (w *writtenSource) finish(check func(n int, linear block.Sum) *apiError) *apiError {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil
	}
	keys := make([]int64, 0, len(w.own))
	for i := range w.own {
		keys = append(keys, i)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, i := range keys {
		h.Write(w.own[i].sum[:])
	}
	var linear block.Sum
	h.Sum(linear[:0])
	if e := check(len(keys), linear); e != nil {
		return e
	}
	w.done = true
	w.index = keys
	return nil
}

func (w *writtenSource) seek(from, to int64) (int64, bool) {
	to = min(to, w.slots)
	best, found := to, false
	if k, _ := slices.BinarySearch(w.index, from); k < len(w.index) && w.index[k] < to {
		best, found = w.index[k], true
	}
	if w.parent != nil {
		if i, ok := w.parent.seek(from, best); ok {
			best, found = i, true
		}
	}
	return best, found
}

func (w *writtenSource) version(i int64) (version, bool) {
	if i < 0 || i >= w.slots {
		return version{}, false
	}
	if b, ok := w.own[i]; ok {
		return version{owner: b}, true
	}
	if w.parent != nil {
		return w.parent.version(i)
	}
	return version{}, false
}

func (w *writtenSource) read(i int64, p []byte) error {
	if b, ok := w.own[i]; ok {
		copy(p, b.data)
		return nil
	}
	return w.parent.read(i, p)
}
