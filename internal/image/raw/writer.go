package raw

import (
	"errors"
	"fmt"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/digest"
)

// A Writer turns the ordered stream of verified blocks of one volume into
// a sparse raw image, hashing the whole image as it goes. It is not safe
// for concurrent use. Every Writer ends with Close or Abort, which release
// its files and hashing goroutines.
type Writer struct {
	segs *segments
	sums *digest.Set // nil when no hash was asked for
	o    Options
	pos  int64 // image bytes accounted for so far, written or hole
	err  error // the first failure; every later call returns it
	done bool
}

// Create starts a raw image of size bytes at path (see Options for split
// images). The image is written under partial names and appears under its
// final names only when Close succeeds. An existing image at path is
// refused unless o.Force; so is a partial file left by another run.
func Create(path string, size int64, o Options) (*Writer, error) {
	l, err := newLayout(path, size, o.Split)
	if err != nil {
		return nil, fmt.Errorf("creating image %s: %w", path, err)
	}
	segs, sums, err := createHashed(path, l, o)
	if err != nil {
		return nil, err
	}
	return &Writer{segs: segs, sums: sums, o: o}, nil
}

// createHashed makes the partial files of layout l and the set of o's
// hashes (nil for none), for a writer that hashes as it goes.
func createHashed(path string, l layout, o Options) (*segments, *digest.Set, error) {
	var sums *digest.Set
	if len(o.Hashes) > 0 {
		var err error
		if sums, err = digest.New(o.Hashes...); err != nil {
			return nil, nil, fmt.Errorf("creating image %s: %w", path, err)
		}
	}
	segs, err := createSegments(l, o)
	if err != nil {
		if sums != nil {
			sums.Close()
		}
		return nil, nil, err
	}
	return segs, sums, nil
}

// WriteBlock puts the block at index into the image. Blocks must come in
// ascending index order; p holds at most block.Size bytes and may be
// shorter only where the image ends. A block of zeros is not written but
// left as a hole, and so is every block skipped between two calls; both
// read back as zeros and are hashed as such. WriteBlock does not retain p.
func (w *Writer) WriteBlock(index int64, p []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return errors.New("writing block to a closed image")
	}
	off, err := blockOffset(w.segs.l.size, index, p)
	if err != nil {
		return err
	}
	if off < w.pos {
		return fmt.Errorf("block %d out of order: image already written to byte %d", index, w.pos)
	}
	if err := w.hashZeros(off - w.pos); err != nil {
		return err
	}
	if block.IsZero(p) {
		err = w.hashZeros(int64(len(p)))
	} else {
		if err := w.segs.writeAt(p, off); err != nil {
			w.err = fmt.Errorf("writing block %d: %w", index, err)
			return w.err
		}
		if w.sums != nil {
			_, err = w.sums.Write(p)
		}
	}
	w.pos = off + int64(len(p))
	return err
}

// blockOffset checks that p fits as the block at index of an image of
// size bytes and returns where it starts.
func blockOffset(size, index int64, p []byte) (int64, error) {
	if len(p) == 0 || len(p) > block.Size {
		return 0, fmt.Errorf("block %d: %d bytes, want 1 to %d", index, len(p), block.Size)
	}
	if index < 0 || index > size/block.Size {
		return 0, fmt.Errorf("block %d: outside an image of %d bytes", index, size)
	}
	off := index * block.Size
	if off+int64(len(p)) > size {
		return 0, fmt.Errorf("block %d: %d bytes at offset %d run past the image end at %d", index, len(p), off, size)
	}
	return off, nil
}

func (w *Writer) hashZeros(n int64) error {
	if w.sums == nil {
		return nil
	}
	return w.sums.WriteZeros(n)
}

// Close hashes whatever holes remain up to the image size, syncs every
// segment, writes the checksum files and renames the segments into place.
// If any write failed, or Close itself fails, every partial file is
// removed and nothing is left under a final name.
func (w *Writer) Close() (Result, error) {
	if w.done {
		return Result{}, errors.New("image already closed")
	}
	if w.err != nil {
		w.Abort()
		return Result{}, w.err
	}
	w.done = true
	res, err := w.close()
	if err != nil {
		if w.sums != nil {
			w.sums.Close()
		}
		w.segs.remove()
		return Result{}, fmt.Errorf("finishing image %s: %w", w.segs.l.path, err)
	}
	return res, nil
}

func (w *Writer) close() (Result, error) {
	if err := w.hashZeros(w.segs.l.size - w.pos); err != nil {
		return Result{}, err
	}
	return syncAndFinish(w.segs, w.sums, w.o.Force)
}

// Abort stops the image and removes its partial files. It does nothing
// after a successful Close.
func (w *Writer) Abort() error {
	if w.done && w.err == nil {
		return nil
	}
	w.done = true
	if w.err == nil {
		w.err = errors.New("image aborted")
	}
	if w.sums != nil {
		w.sums.Close()
	}
	return w.segs.remove()
}
