package raw

import (
	"sync/atomic"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/image/window"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// result is r as a sink's result.
func (r Result) result() sink.Result {
	return sink.Result{Files: r.Files, HashFiles: r.HashFiles, Size: r.Size, Hashes: r.Sums}
}

// ListedSink is a ListedWriter as a sink: blocks are announced in order
// and written as they arrive, and the image is hashed in order while they
// do, so its hashes are ready at Close. A direct image does not resume.
type ListedSink struct {
	w      *ListedWriter
	blocks atomic.Int64
}

var _ sink.Sink = (*ListedSink)(nil)

// CreateListedSink starts the sparse raw image of size bytes at path as
// a sink (see CreateListed), holding at most window block copies for its
// hasher (DefaultWindow if window <= 0).
func CreateListedSink(path string, size int64, o Options, window int) (*ListedSink, error) {
	w, err := CreateListed(path, size, o, window)
	if err != nil {
		return nil, err
	}
	return &ListedSink{w: w}, nil
}

// Caps: every block is announced, in order, before it is written, so
// that the hasher knows the holes.
func (s *ListedSink) Caps() sink.Caps { return sink.Caps{Announce: s.w.Listed} }

// Has is always false: a direct image is not resumable.
func (s *ListedSink) Has(int64) bool { return false }

// Put writes b where it belongs at once.
func (s *ListedSink) Put(b block.Block) error {
	if err := s.w.WriteBlockAt(b.Index, b.Data); err != nil {
		return err
	}
	s.blocks.Add(1)
	return nil
}

// Close finishes the image (see ListedWriter.Close).
func (s *ListedSink) Close() (sink.Result, error) {
	r, err := s.w.Close()
	if err != nil {
		return sink.Result{}, err
	}
	res := r.result()
	res.Blocks = s.blocks.Load()
	return res, nil
}

// Abort removes the partial image.
func (s *ListedSink) Abort() error { return s.w.Abort() }

// Stats says how the hasher got its bytes.
func (s *ListedSink) Stats() ListedStats { return s.w.Stats() }

// stream is a Writer as a window.Writer.
type stream struct{ w *Writer }

func (s stream) WriteBlock(index int64, p []byte) error { return s.w.WriteBlock(index, p) }

func (s stream) Close() (sink.Result, error) {
	r, err := s.w.Close()
	if err != nil {
		return sink.Result{}, err
	}
	return r.result(), nil
}

func (s stream) Abort() error { return s.w.Abort() }

// CreateSink starts the raw image of size bytes at path (see Create: split
// or not, hashed as it is written) behind a reordering window of
// window.DefaultSize blocks: blocks put in order go straight through,
// others wait in the window.
func CreateSink(path string, size int64, o Options) (*window.Window, error) {
	w, err := Create(path, size, o)
	if err != nil {
		return nil, err
	}
	return window.New(stream{w}, window.DefaultSize), nil
}

// RandomSink is a RandomWriter as a sink: blocks come in any order, with
// no announcement, and Close hashes the image by reading it back.
type RandomSink struct {
	w      *RandomWriter
	blocks atomic.Int64
}

var _ sink.Sink = (*RandomSink)(nil)

// CreateRandomSink starts the image of size bytes at path as a sink (see
// CreateRandom).
func CreateRandomSink(path string, size int64, o Options) (*RandomSink, error) {
	w, err := CreateRandom(path, size, o)
	if err != nil {
		return nil, err
	}
	return &RandomSink{w: w}, nil
}

// Caps: none; any order, no announcement, no waiting.
func (s *RandomSink) Caps() sink.Caps { return sink.Caps{} }

// Has is always false: the writer does not know which blocks it holds.
func (s *RandomSink) Has(int64) bool { return false }

// Put writes b where it belongs.
func (s *RandomSink) Put(b block.Block) error {
	if err := s.w.WriteBlockAt(b.Index, b.Data); err != nil {
		return err
	}
	s.blocks.Add(1)
	return nil
}

// Close finishes the image (see RandomWriter.Close). A failed Close
// removes the partial files: as a sink, a RandomWriter does not resume.
func (s *RandomSink) Close() (sink.Result, error) {
	r, err := s.w.Close()
	if err != nil {
		s.w.Abort()
		return sink.Result{}, err
	}
	res := r.result()
	res.Blocks = s.blocks.Load()
	return res, nil
}

// Abort removes the partial image.
func (s *RandomSink) Abort() error { return s.w.Abort() }
