package raw

import (
	"errors"
	"fmt"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/digest"
)

// readBackSize is how much of the image Close reads per call when it hashes
// the finished image: two EBS blocks, matching the digest pipeline's
// buffers, so memory stays bounded whatever the image size.
const readBackSize = 2 * block.Size

// A RandomWriter puts blocks into a sparse raw image in any order, from
// any number of goroutines, as acquire's workers fetch them. Each block is
// one positioned write (pwrite), so writers never wait for each other.
// Because blocks arrive out of order, the whole-image hashes are computed
// by Close, reading the image back sequentially.
//
// Its partial files survive Suspend or a crash, and ResumeRandom picks
// them up again; the caller (which knows which blocks it has stored)
// writes the missing blocks and calls Close. Every RandomWriter ends with
// Close, Suspend or Abort.
type RandomWriter struct {
	// mu is held shared by WriteBlockAt and exclusively by Close,
	// Suspend and Abort, so no write races with the end of the image.
	mu    sync.RWMutex
	segs  *segments
	o     Options
	ended bool
	// committed is set once Close has moved the image into place.
	committed bool

	errMu sync.Mutex
	err   error // the first write failure
}

// CreateRandom starts an image of size bytes at path that blocks can be
// written to in any order. Like Create, it refuses an existing image
// unless o.Force, and refuses partial files left by an earlier run unless
// o.Force discards them; use ResumeRandom to continue them instead.
func CreateRandom(path string, size int64, o Options) (*RandomWriter, error) {
	l, err := newRandomLayout(path, size, o)
	if err != nil {
		return nil, err
	}
	segs, err := createSegments(l, o)
	if err != nil {
		return nil, err
	}
	return &RandomWriter{segs: segs, o: o}, nil
}

// ResumeRandom reopens the partial files that an interrupted CreateRandom
// with the same path, size and o.Split left behind. Blocks already written
// stay; blocks written again are overwritten with the same bytes. After a
// crash only the blocks written before the last successful Sync or Suspend
// are sure to be there: the caller writes every later block again. The
// error wraps fs.ErrNotExist when there is nothing to resume.
func ResumeRandom(path string, size int64, o Options) (*RandomWriter, error) {
	l, err := newRandomLayout(path, size, o)
	if err != nil {
		return nil, err
	}
	segs, err := openSegments(l, o)
	if err != nil {
		return nil, err
	}
	return &RandomWriter{segs: segs, o: o}, nil
}

func newRandomLayout(path string, size int64, o Options) (layout, error) {
	l, err := newLayout(path, size, o.Split)
	if err != nil {
		return layout{}, fmt.Errorf("creating image %s: %w", path, err)
	}
	if len(o.Hashes) > 0 {
		if _, err := digest.ParseList(o.Hashes...); err != nil {
			return layout{}, fmt.Errorf("creating image %s: %w", path, err)
		}
	}
	return l, nil
}

// WriteBlockAt writes the block at index. It is safe to call from many
// goroutines at once. A block of zeros is skipped and stays a hole. p
// holds at most block.Size bytes and is not retained.
func (w *RandomWriter) WriteBlockAt(index int64, p []byte) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.ended {
		return errors.New("writing block to a closed image")
	}
	off, err := blockOffset(w.segs.l.size, index, p)
	if err != nil {
		return err
	}
	if block.IsZero(p) {
		return nil
	}
	if err := w.segs.writeAt(p, off); err != nil {
		err = fmt.Errorf("writing block %d: %w", index, err)
		w.errMu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.errMu.Unlock()
		return err
	}
	return nil
}

// Close syncs the image, hashes it by reading it back from start to end,
// writes the checksum files and renames the segments into place. It must
// only be called once every WriteBlockAt has returned. If a write failed
// or Close fails, the partial files are kept (so the acquisition can be
// resumed) and the error is returned; Abort removes them.
func (w *RandomWriter) Close() (Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return Result{}, errors.New("image already closed")
	}
	w.ended = true
	res, err := w.close()
	if err != nil {
		w.segs.closeFiles()
		return Result{}, fmt.Errorf("finishing image %s: %w", w.segs.l.path, err)
	}
	w.committed = true
	return res, nil
}

func (w *RandomWriter) close() (Result, error) {
	if w.err != nil {
		return Result{}, w.err
	}
	if err := w.segs.sync(); err != nil {
		return Result{}, err
	}
	sums, err := w.hashBack()
	if err != nil {
		return Result{}, err
	}
	if err := w.segs.closeFiles(); err != nil {
		return Result{}, err
	}
	return finish(w.segs, sums, w.o.Force)
}

// hashBack reads the whole image once, in order, through the digest
// pipeline.
func (w *RandomWriter) hashBack() (map[string]string, error) {
	if len(w.o.Hashes) == 0 {
		return nil, nil
	}
	sums, err := digest.New(w.o.Hashes...)
	if err != nil {
		return nil, err
	}
	defer sums.Close()
	r := w.segs.reader()
	buf := make([]byte, readBackSize)
	for off := int64(0); off < r.Size(); {
		n := min(int64(len(buf)), r.Size()-off)
		if _, err := r.ReadAt(buf[:n], off); err != nil {
			return nil, fmt.Errorf("hashing image at byte %d: %w", off, err)
		}
		sums.Write(buf[:n])
		off += n
		if w.o.HashProgress != nil {
			w.o.HashProgress(off, r.Size())
		}
	}
	return sums.Sums(), nil
}

// Sync makes every block whose WriteBlockAt returned before Sync was called
// durable. It is safe to call alongside WriteBlockAt; a caller that records
// progress for resuming records it after Sync returns.
func (w *RandomWriter) Sync() error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.ended {
		return errors.New("syncing a closed image")
	}
	if err := w.segs.sync(); err != nil {
		return fmt.Errorf("syncing image %s: %w", w.segs.l.path, err)
	}
	return nil
}

// Suspend syncs and closes the partial files without finishing the image,
// so that ResumeRandom can continue it later.
func (w *RandomWriter) Suspend() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return errors.New("image already closed")
	}
	w.ended = true
	err := w.segs.sync()
	if cerr := w.segs.closeFiles(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("suspending image %s: %w", w.segs.l.path, err)
	}
	return nil
}

// Abort removes the partial files, whether or not Close or Suspend was
// called. It does nothing once Close has succeeded.
func (w *RandomWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
	if w.committed {
		return nil
	}
	return w.segs.remove()
}
