package window

import (
	"errors"
	"fmt"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// Writer takes blocks in ascending index order, one call at a time, and
// ends with Close or Abort (see sink.Sink for what those promise).
type Writer interface {
	WriteBlock(index int64, p []byte) error
	Close() (sink.Result, error)
	Abort() error
}

// ErrCanceled is returned by Put after Cancel.
var ErrCanceled = errors.New("reordering window canceled")

// DefaultSize is the window's bound in blocks: 128 × 512 KiB = 64 MiB.
// Blocks come from up to 128 concurrent fetches (acquire's default cap),
// so one slow block can hold back at most about that many others.
const DefaultSize = 128

// Window is a sink.Sink that reorders blocks for a Writer. It is safe for
// concurrent use.
type Window struct {
	dst  Writer
	size int

	mu       sync.Mutex
	cond     *sync.Cond
	listed   []int64 // announced, not yet written, ascending
	last     int64   // the last index announced, or -1
	held     map[int64][]byte
	free     [][]byte // buffers of held blocks already written, for reuse
	canceled bool
	ended    bool  // Close or Abort
	err      error // the writer's first error
	peak     int
	written  int64
}

var _ sink.Sink = (*Window)(nil)

// New returns a Window of size blocks (DefaultSize if size <= 0) in
// front of dst.
func New(dst Writer, size int) *Window {
	if size <= 0 {
		size = DefaultSize
	}
	w := &Window{dst: dst, size: size, held: make(map[int64][]byte, size), last: -1}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// Caps: blocks are announced in order; a Put may wait, so the feeder
// cancels it; and a block that failed can never be written later, since
// the writer has moved past it.
func (w *Window) Caps() sink.Caps {
	return sink.Caps{Announce: w.Announce, Cancel: w.Cancel, FailFast: true}
}

// Has is always false: a stream does not resume.
func (w *Window) Has(int64) bool { return false }

// Announce announces the next block to come; indexes must ascend.
func (w *Window) Announce(index int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return sink.ErrClosed
	}
	if index <= w.last {
		return fmt.Errorf("block %d announced after block %d: announcements must ascend", index, w.last)
	}
	w.last = index
	w.listed = append(w.listed, index)
	return nil
}

// Put hands over a block. It writes it, and any held blocks that now
// follow it, when it is next; otherwise it keeps a copy, first waiting for
// room when the window is full.
func (w *Window) Put(b block.Block) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		switch {
		case w.ended:
			return sink.ErrClosed
		case w.canceled:
			return ErrCanceled
		case w.err != nil:
			return w.err
		case len(w.listed) > 0 && w.listed[0] == b.Index:
			return w.drain(b.Index, b.Data)
		case len(w.held) < w.size:
			if !w.announced(b.Index) {
				return fmt.Errorf("block %d was not announced to the reordering window", b.Index)
			}
			if _, dup := w.held[b.Index]; dup {
				return fmt.Errorf("block %d put twice", b.Index)
			}
			w.held[b.Index] = append(w.buffer(), b.Data...)
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
// w.mu is held, and the writer is called under it so order is kept. The
// writer does not keep p (both image writers copy it), so the buffer of a
// held block is reused once it is written.
func (w *Window) drain(index int64, p []byte) error {
	owned := false // p is a held copy, not the caller's
	for {
		if err := w.dst.WriteBlock(index, p); err != nil {
			w.err = fmt.Errorf("writing block %d: %w", index, err)
			w.cond.Broadcast()
			return w.err
		}
		if owned {
			w.free = append(w.free, p[:0])
		}
		w.written++
		w.listed = w.listed[1:]
		if len(w.listed) == 0 {
			break
		}
		next, ok := w.held[w.listed[0]]
		if !ok {
			break
		}
		delete(w.held, w.listed[0])
		index, p, owned = w.listed[0], next, true
	}
	w.cond.Broadcast()
	return nil
}

// buffer returns an empty block buffer, reused if one is free.
func (w *Window) buffer() []byte {
	if n := len(w.free); n > 0 {
		b := w.free[n-1]
		w.free = w.free[:n-1]
		return b
	}
	return make([]byte, 0, block.Size)
}

// Cancel wakes every waiting Put with ErrCanceled; every later Put fails
// too. A window whose every announced block was written still closes.
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
	return w.done()
}

func (w *Window) done() error {
	if w.err != nil {
		return w.err
	}
	if len(w.listed) > 0 {
		return fmt.Errorf("%d listed blocks never arrived, first %d", len(w.listed), w.listed[0])
	}
	return nil
}

// Close checks that every announced block was written and closes the
// writer; otherwise it aborts the writer. Result.Blocks counts the blocks
// written.
func (w *Window) Close() (sink.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return sink.Result{}, sink.ErrClosed
	}
	w.end()
	if err := w.done(); err != nil {
		w.dst.Abort()
		return sink.Result{}, err
	}
	res, err := w.dst.Close()
	if err != nil {
		return sink.Result{}, err
	}
	res.Blocks = w.written
	return res, nil
}

// Abort wakes every waiting Put and aborts the writer.
func (w *Window) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return nil
	}
	w.end()
	return w.dst.Abort()
}

// end marks the window ended and drops what it holds; w.mu is held.
func (w *Window) end() {
	w.ended = true
	clear(w.held)
	w.cond.Broadcast()
}

// Peak returns the most blocks the window ever held.
func (w *Window) Peak() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}
