package store

import (
	"path/filepath"
	"sync"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// Sink is a Store as a sink.Sink. It resumes: Has reports the blocks
// earlier runs stored, and Abort keeps every verified block for the next
// run. Close writes the manifest (see Finish).
type Sink struct {
	st *Store
	// Started and Finished are the times the manifest records; set them
	// before Close. A zero Started is when Sink was called, a zero
	// Finished when Close is.
	Started, Finished time.Time

	mu      sync.Mutex
	ended   bool
	summary Summary
}

var _ sink.Sink = (*Sink)(nil)

// Sink returns s as a sink.Sink; s's own methods stay usable beside it
// (Reuse, Kept, Resumed).
func (s *Store) Sink() *Sink { return &Sink{st: s, Started: time.Now()} }

// Caps: none needed; the store takes blocks in any order, and resumes.
func (k *Sink) Caps() sink.Caps { return sink.Caps{Resumes: true} }

// Has reports whether the store holds block index.
func (k *Sink) Has(index int64) bool { return k.st.Has(index) }

// Put stores b (see Store.Put).
func (k *Sink) Put(b block.Block) error {
	k.mu.Lock()
	ended := k.ended
	k.mu.Unlock()
	if ended {
		return sink.ErrClosed
	}
	return k.st.Put(b.Index, b.Sum, b.Data)
}

// Close writes the manifest of every stored block (see Finish).
func (k *Sink) Close() (sink.Result, error) {
	if err := k.end(); err != nil {
		return sink.Result{}, err
	}
	finished := k.Finished
	if finished.IsZero() {
		finished = time.Now()
	}
	ms, err := k.st.Finish(k.Started, finished)
	if err != nil {
		return sink.Result{}, err
	}
	k.summary = ms
	m := k.st.Meta()
	return sink.Result{
		Files:     []string{filepath.Join(k.st.dir, ManifestName)},
		HashFiles: []string{filepath.Join(k.st.dir, ManifestSumName)},
		Size:      m.VolumeSizeGiB << 30, Blocks: ms.Blocks,
		Manifest: ms.ManifestSHA256.Hex(), Unchanged: ms.Unchanged,
	}, nil
}

// Abort closes the store without a manifest. Every verified block stays
// (nothing unverified was ever stored), for the next run to resume.
func (k *Sink) Abort() error {
	if err := k.end(); err != nil {
		return nil
	}
	return k.st.Close()
}

func (k *Sink) end() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ended {
		return sink.ErrClosed
	}
	k.ended = true
	return nil
}

// Summary is what Close wrote.
func (k *Sink) Summary() Summary { return k.summary }
