package raw

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/digest"
)

// DefaultWindow is how many block copies a ListedWriter keeps at most for
// its hasher: 64 × 512 KiB = 32 MiB. A block that lands while the window
// is full is hashed by reading it back from the image instead, so the
// window bounds memory and never holds a writer back. BenchmarkListedArrival
// chose the size: a retry of 50 to 800 ms at 500 to 1,000 blocks/s lets 25
// to 800 blocks land behind the stalled one, more than any window worth
// its memory, and reading back a block just written (from the page cache)
// costs about what copying it does, so a larger window buys little. 64
// holds the ordinary reordering of the blocks in flight (about 20 at 20 ms
// and 1,000 blocks/s) with room to spare, and whenever the hasher had the
// CPU its hashes were final within 10 ms of the last block.
const DefaultWindow = 64

// maxZeroRun bounds the blocks of holes the hasher takes in one step, so
// it never scans the block states for long while holding the lock that
// writers need: 2^14 blocks are 8 GiB of zeros, seconds of hashing.
const maxZeroRun = 1 << 14

// A ListedWriter puts blocks into a sparse raw image in any order, from
// any number of goroutines, and hashes the image in image order while they
// arrive, so that its hashes are ready when the last block lands. The
// caller announces every block to come with Listed, in ascending order,
// before it can be written (acquire's lister does so before any worker
// fetches it). Each block is one positioned write at once: no writer waits
// for order or for the hasher.
//
// A hasher goroutine follows the image from its start. Blocks never listed
// and blocks that arrive as zeros are holes, hashed as zeros without being
// read. A written block is hashed from a copy kept in memory, or, when the
// window of copies was full as it landed, by reading it back from the
// image. The copies are the memory a ListedWriter holds: at most window
// blocks, plus two bits of state per block of the image.
//
// Unlike a RandomWriter, a ListedWriter cannot be resumed: it ends with
// Close or Abort, and a failed Close removes its partial files.
type ListedWriter struct {
	segs   *segments
	o      Options
	sums   *digest.Set // nil when no hash was asked for
	blocks int64       // blocks in the image, the last one maybe short
	window int

	// life is held shared by WriteBlockAt and exclusively by Close and
	// Abort, so no write races with the end of the image.
	life      sync.RWMutex
	ended     bool
	committed bool // Close moved the image into place

	mu      sync.Mutex
	wake    *sync.Cond // the hasher waits on it for its next block
	state   blockStates
	next    int64            // one past the last block listed: holes below it are known
	awaited int64            // listed blocks not written yet
	landing map[int64]bool   // blocks being written, not yet landed
	held    map[int64][]byte // copies of landed blocks the hasher has not reached
	spare   [][]byte         // copy buffers to reuse
	copies  int              // copy buffers in use: held, being filled or being hashed
	pos     int64            // the block the hasher is at
	closing bool             // Close: nothing more will be listed or written
	stopped bool             // Abort
	err     error            // the first write or listing failure
	stats   ListedStats

	hashed   chan struct{} // closed when the hasher has returned
	wb       *writeback    // starts write-back while the image is written
	hashErr  error         // why the hasher stopped short, read after hashed
	hashedAt time.Time     // when the hasher returned, read after hashed (for benchmarks)
}

// ListedStats says how a ListedWriter's hasher got its bytes.
type ListedStats struct {
	PeakCopies int   // most block copies held at once
	Copied     int64 // written blocks hashed from their copy
	ReadBack   int64 // written blocks hashed by reading them back from the image
}

// The state of one block of a ListedWriter's image.
const (
	stUnlisted uint8 = iota // never listed: a hole
	stAwaited               // listed, not written yet
	stWritten               // written: hash its bytes
	stZeros                 // arrived as zeros: a hole
)

// blockStates packs a 2-bit state per block.
type blockStates []uint64

func newBlockStates(n int64) blockStates { return make(blockStates, (n+31)/32) }

func (s blockStates) get(i int64) uint8 { return uint8(s[i/32]>>(2*(i%32))) & 3 }

func (s blockStates) set(i int64, v uint8) {
	sh := 2 * (i % 32)
	s[i/32] = s[i/32]&^(3<<sh) | uint64(v)<<sh
}

// CreateListed starts an image of size bytes at path whose blocks are
// listed in order and written in any order, holding at most window block
// copies (DefaultWindow if window <= 0). Like Create, it refuses an
// existing image unless o.Force, and refuses partial files left by an
// earlier run unless o.Force discards them.
func CreateListed(path string, size int64, o Options, window int) (*ListedWriter, error) {
	l, err := newRandomLayout(path, size, o)
	if err != nil {
		return nil, err
	}
	if window <= 0 {
		window = DefaultWindow
	}
	segs, sums, err := createHashed(path, l, o)
	if err != nil {
		return nil, err
	}
	n := (size + block.Size - 1) / block.Size
	w := &ListedWriter{
		segs: segs, o: o, sums: sums, blocks: n, window: window,
		state: newBlockStates(n), landing: map[int64]bool{}, held: map[int64][]byte{},
		hashed: make(chan struct{}),
	}
	w.wake = sync.NewCond(&w.mu)
	w.wb = startWriteback(segs)
	go w.hash()
	return w, nil
}

// Listed announces that block index will be written. Indexes must ascend;
// every block not listed is a hole. A bad announcement is also kept as the
// image's error, so that Close fails even if the caller ignores it.
func (w *ListedWriter) Listed(index int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	switch {
	case index < 0 || index >= w.blocks:
		err = fmt.Errorf("block %d listed: outside an image of %d blocks", index, w.blocks)
	case index < w.next:
		err = fmt.Errorf("block %d listed after block %d: the listing must ascend", index, w.next-1)
	case w.closing || w.stopped:
		err = errors.New("listing a block of a closed image")
	}
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		w.wake.Signal()
		return err
	}
	w.state.set(index, stAwaited)
	w.next = index + 1
	w.awaited++
	if index >= w.pos {
		w.wake.Signal()
	}
	return nil
}

// WriteBlockAt writes the listed block at index. It is safe to call from
// many goroutines at once and never waits for other blocks. A block of
// zeros is not written but left as a hole. p holds at most block.Size
// bytes (fewer leave the rest of the block a hole) and is not retained.
// A block written twice, or never listed, is refused and not written.
func (w *ListedWriter) WriteBlockAt(index int64, p []byte) error {
	off, err := blockOffset(w.segs.l.size, index, p)
	if err != nil {
		return err
	}
	zero := block.IsZero(p)
	w.life.RLock()
	defer w.life.RUnlock()
	if w.ended {
		return errors.New("writing block to a closed image")
	}
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	switch st := w.state.get(index); {
	case st == stUnlisted:
		w.mu.Unlock()
		return fmt.Errorf("block %d written but never listed", index)
	case st != stAwaited || w.landing[index]:
		w.mu.Unlock()
		return fmt.Errorf("block %d written twice", index)
	}
	if zero {
		w.land(index, stZeros, nil)
		w.mu.Unlock()
		return nil
	}
	w.landing[index] = true
	var c []byte
	if w.sums != nil && w.copies < w.window {
		if k := len(w.spare); k > 0 {
			c, w.spare = w.spare[k-1], w.spare[:k-1]
		} else {
			c = make([]byte, 0, block.Size)
		}
		w.copies++
		w.stats.PeakCopies = max(w.stats.PeakCopies, w.copies)
	}
	w.mu.Unlock()

	if c != nil {
		c = append(c[:0], p...)
	}
	werr := w.segs.writeAt(p, off)

	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.landing, index)
	if werr != nil {
		werr = fmt.Errorf("writing block %d: %w", index, werr)
		if w.err == nil {
			w.err = werr
		}
		if c != nil {
			w.release(c)
		}
		w.wake.Signal()
		return werr
	}
	w.land(index, stWritten, c)
	w.wb.wrote(len(p))
	return nil
}

// land records that block index is in place; w.mu is held.
func (w *ListedWriter) land(index int64, st uint8, c []byte) {
	w.state.set(index, st)
	w.awaited--
	if c != nil {
		w.held[index] = c
	}
	if index == w.pos {
		w.wake.Signal()
	}
}

// release returns a copy buffer; w.mu is held.
func (w *ListedWriter) release(c []byte) {
	w.copies--
	w.spare = append(w.spare, c[:0])
}

// A step is the hasher's next piece of the image: the holes of blocks
// [pos, end), or the written block pos (from copy, or read back when copy
// is nil).
type step struct {
	pos, end int64
	data     bool
	copy     []byte
}

// hash is the hasher goroutine: it follows the image from the start until
// its end, or until the writer fails or is aborted.
func (w *ListedWriter) hash() {
	defer close(w.hashed)
	defer func() { w.hashedAt = time.Now() }()
	r := w.segs.reader()
	var buf []byte // for reading blocks back, made on first use
	for {
		w.mu.Lock()
		s, done, err := w.nextStep()
		w.mu.Unlock()
		if err != nil || done {
			w.hashErr = err
			return
		}
		if err := w.hashStep(s, r, &buf); err != nil {
			w.hashErr = err
			return
		}
		w.mu.Lock()
		w.pos = s.end
		if s.copy != nil {
			w.release(s.copy)
		}
		w.mu.Unlock()
	}
}

// nextStep waits until the hasher can go on from w.pos and says how far;
// w.mu is held.
func (w *ListedWriter) nextStep() (step, bool, error) {
	for {
		switch {
		case w.stopped:
			return step{}, false, errors.New("image aborted")
		case w.err != nil:
			return step{}, false, w.err
		case w.pos == w.blocks:
			return step{}, true, nil
		}
		switch w.state.get(w.pos) {
		case stWritten:
			s := step{pos: w.pos, end: w.pos + 1, data: true, copy: w.held[w.pos]}
			if s.copy != nil {
				delete(w.held, w.pos)
				w.stats.Copied++
			} else if w.sums != nil {
				w.stats.ReadBack++
			}
			return s, false, nil
		case stAwaited:
			if w.closing {
				return step{}, false, fmt.Errorf("%d listed blocks were never written, the first block %d", w.awaited, w.pos)
			}
		default: // a hole, once no block can be listed at it any more
			limit := w.next
			if w.closing {
				limit = w.blocks
			}
			if w.pos < limit {
				end := w.pos + 1
				for end < limit && end-w.pos < maxZeroRun {
					if st := w.state.get(end); st != stUnlisted && st != stZeros {
						break
					}
					end++
				}
				return step{pos: w.pos, end: end}, false, nil
			}
		}
		w.wake.Wait()
	}
}

// hashStep feeds the bytes of s to the hashes, without w.mu.
func (w *ListedWriter) hashStep(s step, r *Reader, buf *[]byte) error {
	if w.sums == nil {
		return nil
	}
	from, to := s.pos*block.Size, min(s.end*block.Size, w.segs.l.size)
	if !s.data {
		return w.sums.WriteZeros(to - from)
	}
	if s.copy != nil {
		w.sums.Write(s.copy)
		return w.sums.WriteZeros(to - from - int64(len(s.copy)))
	}
	if *buf == nil {
		*buf = make([]byte, block.Size)
	}
	p := (*buf)[:to-from]
	if _, err := r.ReadAt(p, from); err != nil {
		return fmt.Errorf("reading block %d back to hash it: %w", s.pos, err)
	}
	w.sums.Write(p)
	return nil
}

// Stats returns how the hasher got its bytes so far.
func (w *ListedWriter) Stats() ListedStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Close waits for the hasher to reach the end of the image, syncs it,
// writes the checksum files and renames the segments into place. It must
// only be called once every WriteBlockAt has returned. It fails if a write
// or an announcement failed, or if a listed block was never written; then,
// as whenever Close fails, the partial files are removed and nothing is
// left under a final name.
func (w *ListedWriter) Close() (Result, error) {
	w.life.Lock()
	defer w.life.Unlock()
	if w.ended {
		return Result{}, errors.New("image already closed")
	}
	w.ended = true
	w.mu.Lock()
	w.closing = true
	w.wake.Signal()
	w.mu.Unlock()
	<-w.hashed
	w.wb.stop()
	res, err := w.close()
	if err != nil {
		if w.sums != nil {
			w.sums.Close()
		}
		w.segs.remove()
		return Result{}, fmt.Errorf("finishing image %s: %w", w.segs.l.path, err)
	}
	w.committed = true
	return res, nil
}

func (w *ListedWriter) close() (Result, error) {
	if w.hashErr != nil {
		return Result{}, w.hashErr
	}
	return syncAndFinish(w.segs, w.sums, w.o.Force)
}

// Abort stops the hasher and removes the partial files, whether or not
// Close was called. It does nothing once Close has succeeded.
func (w *ListedWriter) Abort() error {
	w.life.Lock()
	defer w.life.Unlock()
	w.ended = true
	if w.committed {
		return nil
	}
	w.mu.Lock()
	w.stopped = true
	w.wake.Signal()
	w.mu.Unlock()
	<-w.hashed
	w.wb.stop()
	if w.sums != nil {
		w.sums.Close()
	}
	return w.segs.remove()
}
