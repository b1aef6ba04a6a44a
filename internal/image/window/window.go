package window

import (
	"errors"
	"fmt"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Sink takes blocks in ascending index order.
type Sink interface {
	WriteBlock(index int64, p []byte) error
}

// ErrCanceled is returned by Put after Cancel.
var ErrCanceled = errors.New("reordering window canceled")

// DefaultSize is the window's bound in blocks: 128 × 512 KiB = 64 MiB.
// Blocks come from up to 128 concurrent fetches (acquire's default cap),
// so one slow block can hold back at most about that many others.
const DefaultSize = 128

// Window reorders blocks for a Sink. It is safe for concurrent use.
type Window struct {
	dst  Sink
	size int

	mu       sync.Mutex
	cond     *sync.Cond
	listed   []int64 // announced, not yet written, ascending
	held     map[int64][]byte
	canceled bool
	err      error // the sink's first error
	peak     int
}

// New returns a Window of size blocks (DefaultSize if size <= 0) in
// front of dst.
func New(dst Sink, size int) *Window {
	if size <= 0 {
		size = DefaultSize
	}
	w := &Window{dst: dst, size: size, held: make(map[int64][]byte, size)}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// Listed announces the next listed index; indexes must ascend.
func (w *Window) Listed(index int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.listed = append(w.listed, index)
}

// Put hands over block index. It writes it, and any held blocks that now
// follow it, when it is next; otherwise it keeps a copy, first waiting for
// room when the window is full.
func (w *Window) Put(index int64, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		switch {
		case w.canceled:
			return ErrCanceled
		case w.err != nil:
			return w.err
		case len(w.listed) > 0 && w.listed[0] == index:
			return w.drain(index, p)
		case len(w.held) < w.size:
			if !w.announced(index) {
				return fmt.Errorf("block %d was not announced to the reordering window", index)
			}
			w.held[index] = append(make([]byte, 0, block.Size), p...)
			w.peak = max(w.peak, len(w.held))
			return nil
		}
		w.cond.Wait()
	}
}

func (w *Window) announced(index int64) bool {
	for _, i := range w.listed {
		if i == index {
			return true
		}
		if i > index {
			return false
		}
	}
	return false
}

// drain writes p (the head) and every held block that follows in order;
// w.mu is held, and the sink is written under it so order is kept.
func (w *Window) drain(index int64, p []byte) error {
	for {
		if err := w.dst.WriteBlock(index, p); err != nil {
			w.err = fmt.Errorf("writing block %d: %w", index, err)
			w.cond.Broadcast()
			return w.err
		}
		w.listed = w.listed[1:]
		if len(w.listed) == 0 {
			break
		}
		next, ok := w.held[w.listed[0]]
		if !ok {
			break
		}
		delete(w.held, w.listed[0])
		index, p = w.listed[0], next
	}
	w.cond.Broadcast()
	return nil
}

// Cancel wakes every waiting Put with ErrCanceled.
func (w *Window) Cancel() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.canceled = true
	w.cond.Broadcast()
}

// Done reports an error unless every announced block was written.
func (w *Window) Done() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if len(w.listed) > 0 {
		return fmt.Errorf("%d listed blocks never arrived, first %d", len(w.listed), w.listed[0])
	}
	return nil
}

// Peak returns the most blocks the window ever held.
func (w *Window) Peak() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}
