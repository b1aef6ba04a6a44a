package convert

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/store"
)

// Phase one runs on the acquire pipeline, as every job that moves blocks
// does: the evidence is the source (acquire.Evidence: each stored file
// read, checked and decoded), and the new form of each block is the sink
// (newForm: written beside the old file, read back and checked). The
// pipeline brings its workers, its limits and its progress; the sink
// brings the order: the entries file is appended in index order, so that
// a rerun can trust its longest prefix, and the first block that cannot
// be read, in index order, is the one a failed conversion names.

// run converts every block of the manifest from index next on and
// appends each new entry to f, in index order.
func (c *conversion) run(ctx context.Context, next int64, f *os.File) error {
	workers := c.o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ev := acquire.NewEvidence(c.ev, c.o.Unseal)
	ev.Check = c.checkOld
	s := newNewForm(c, f)
	_, err := acquire.New(oldForm{ev, s}, acquire.Options{Workers: workers, Start: next, Progress: c.o.Progress, ProgressEvery: c.o.ProgressEvery}).Run(ctx, s)
	c.res.StoredBefore += ev.StoredBytes()
	var inc *acquire.IncompleteError
	if errors.As(err, &inc) && len(inc.Failed) > 0 {
		// Not expected (every failure stops the run), but a block that
		// could not be read is a block that could not be read.
		err = sourceError{inc.Failed[0].Err}
	}
	return err
}

// checkOld refuses an entry that is not stored in the form the directory
// is converted from.
func (c *conversion) checkOld(e manifest.Entry) error {
	mk := c.mk
	fromCodec, fromEnc := mk.From.Form.Fields()
	if e.Codec != fromCodec || e.Encryption != fromEnc || !strings.HasSuffix(e.Name, mk.From.Suffix) ||
		(mk.From.Suffix == "" && strings.Contains(filepath.Base(e.Name), ".")) {
		return &store.Mismatch{Index: e.Index, Name: e.Name,
			What: fmt.Sprintf("stored as %s, but the directory as %s: convert a directory of one form only", entryForm(e), mk.From.Form)}
	}
	return nil
}

// oldForm is the evidence as the conversion's source. A block that
// cannot be read is a sourceError (the conversion is undone), handed to
// the sink to settle in index order: the fetch that met it waits until
// every block before it is settled, so the conversion stops at the first
// unreadable block in index order, whichever a worker met first.
type oldForm struct {
	*acquire.Evidence
	sink *newForm
}

func (s oldForm) List(ctx context.Context, start int64, fn func(ebs.Page) error) error {
	err := s.Evidence.List(ctx, start, fn)
	if err != nil && ctx.Err() == nil {
		return sourceError{err}
	}
	return err
}

func (s oldForm) Fetcher(o ebs.FetchOptions) ebs.Fetcher {
	return oldFetcher{s.Evidence.Fetcher(o), s.sink}
}

type oldFetcher struct {
	f    ebs.Fetcher
	sink *newForm
}

func (f oldFetcher) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	b, err := f.f.Fetch(ctx, ref, buf)
	if err == nil || ctx.Err() != nil {
		return b, err
	}
	return block.Block{}, f.sink.fail(ref.Index, sourceError{err})
}

// newForm is the conversion's sink: each block written in the new form
// beside the old file and checked, then its entry appended to the
// entries file once every block before it is.
type newForm struct {
	c *conversion
	f *os.File

	mu      sync.Mutex
	cond    *sync.Cond
	order   []int64           // announced and not yet recorded, ascending
	settled map[int64]settled // converted, or failed, and not yet recorded
	stopped bool
	err     error // the first failure met in order: nothing is recorded after it
}

// settled is a block's outcome.
type settled struct {
	e       manifest.Entry
	decoded bool
	err     error
}

func newNewForm(c *conversion, f *os.File) *newForm {
	s := &newForm{c: c, f: f, settled: map[int64]settled{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

var _ sink.Sink = (*newForm)(nil)

// Caps: every block is announced in order, so that entries are recorded
// in order; a fetch waiting to report a failure is woken when the run
// stops.
func (s *newForm) Caps() sink.Caps { return sink.Caps{Announce: s.announce, Cancel: s.cancel} }

func (s *newForm) announce(index int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.order = append(s.order, index)
	return nil
}

func (s *newForm) cancel() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.cond.Broadcast()
}

// Has is false: the blocks an interrupted run converted are not listed
// again (the run starts after them).
func (s *newForm) Has(int64) bool { return false }

// Put writes b in the new form, checks it and records it in order.
func (s *newForm) Put(b block.Block) error {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return err
	}
	e, decoded, err := s.c.writeNew(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settled[b.Index] = settled{e: e, decoded: decoded, err: err}
	return s.advance()
}

// fail settles block index as failed with err and waits until every
// block before it is settled, or the run stops; it returns the error
// that stops the run.
func (s *newForm) fail(index int64, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settled[index] = settled{err: err}
	for {
		if err := s.advance(); err != nil {
			return err
		}
		if s.stopped {
			return context.Canceled
		}
		s.cond.Wait()
	}
}

// advance records the settled blocks at the head of the order and
// returns the first failure it meets, then and at every later call: as
// when a crash stops a conversion, nothing is recorded after it. Called
// with mu held.
func (s *newForm) advance() error {
	defer s.cond.Broadcast()
	for s.err == nil && len(s.order) > 0 {
		r, ok := s.settled[s.order[0]]
		if !ok {
			return nil
		}
		if r.err != nil {
			s.err = r.err
			break
		}
		delete(s.settled, s.order[0])
		s.order = s.order[1:]
		s.err = s.c.record(s.f, r.e, r.decoded)
	}
	return s.err
}

// Close and Abort hold nothing: the conversion itself completes or keeps
// what was written.
func (s *newForm) Close() (sink.Result, error) { return sink.Result{}, nil }
func (s *newForm) Abort() error                { return nil }
