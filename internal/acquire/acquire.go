package acquire

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// Sink receives verified blocks, in any order, from several workers at
// once.
type Sink interface {
	// Has reports whether the sink already holds block index (resume).
	Has(index int64) bool
	// Put stores a verified block. An error stops the acquisition.
	Put(index int64, sum block.Sum, data []byte) error
}

// DefaultWorkers caps concurrency when Options.Workers is zero. AWS's own
// example is 100 connections at 100 ms for 1,000 requests/s, the
// per-snapshot quota; the limiter finds the level below this that the
// latency and the quota call for.
const DefaultWorkers = 128

// Options configures a Run.
type Options struct {
	// Workers caps GetSnapshotBlock attempts in flight; 0 means
	// DefaultWorkers. The adaptive limiter never exceeds it.
	Workers int
	// MaxRate caps attempts per second; 0 means no cap.
	MaxRate float64
	// MaxFailed stops the run once this many blocks have failed after
	// every retry; 0 means 1000.
	MaxFailed int
	// Start is the first block index to list (0 for a whole snapshot).
	Start int64
	// List, when set, replaces the snapshot's own listing
	// (ListSnapshotBlocks): it calls fn with pages of blocks to fetch
	// from index start upwards, in ascending order. Incremental
	// acquisition lists through ListChangedBlocks with it.
	List func(ctx context.Context, start int64, fn func(ebs.Page) error) error
	// Open is called once, with the snapshot's sizes from the first
	// listing page and before any fetch, and returns the sink.
	Open func(ebs.Info) (Sink, error)
	// Want, when set, filters the listing: only blocks it accepts are
	// fetched (incremental acquisition fetches only changed blocks).
	Want func(index int64) bool
	// Listed, when set, is told every block to be fetched, in ascending
	// order, before any worker can fetch it (a reordering sink needs it).
	Listed func(index int64)
	// FailFast stops the run at the first block that fails after every
	// retry, for sinks that cannot be completed later (an E01 stream).
	FailFast bool
}

// Canceler is implemented by sinks whose Put may wait; Run cancels them
// when the run stops, so no worker waits forever.
type Canceler interface{ Cancel() }

// Progress is a snapshot of a running acquisition's counters.
type Progress struct {
	Listed      int64 // blocks listed so far
	ListingDone bool
	Skipped     int64 // already in the sink (resume) or not wanted
	Stored      int64 // fetched, verified and stored in this run
	Failed      int64 // failed after every retry
	Bytes       int64 // bytes stored in this run
	Concurrency int   // the limiter's current bound
	InFlight    int
	Counts      ebs.Counts
	Elapsed     time.Duration
}

// Remaining returns blocks still to fetch, known once listing is done.
func (p Progress) Remaining() int64 { return p.Listed - p.Skipped - p.Stored - p.Failed }

// Result describes a finished run.
type Result struct {
	Info     ebs.Info
	Listed   int64
	Skipped  int64
	Stored   int64
	Bytes    int64
	Started  time.Time
	Finished time.Time
	Counts   ebs.Counts
	MaxLimit int // the highest concurrency the limiter reached
}

// FailedBlock is a block that failed after every retry.
type FailedBlock struct {
	Index int64
	Err   error
}

// IncompleteError reports blocks that could not be fetched. The sink holds
// every other listed block; running again retries only the failed ones.
type IncompleteError struct {
	Failed []FailedBlock // in index order
	More   int64         // failures beyond those listed
	// Stopped is set when the run stopped at the first failure
	// (Options.FailFast): blocks after it were not all tried.
	Stopped bool
}

func (e *IncompleteError) Error() string {
	var b strings.Builder
	n := int64(len(e.Failed)) + e.More
	if n == 1 {
		b.WriteString("1 block failed after every retry:")
	} else {
		fmt.Fprintf(&b, "%d blocks failed after every retry:", n)
	}
	for i, f := range e.Failed {
		if i == 10 {
			fmt.Fprintf(&b, " (and %d more)", int64(len(e.Failed)-10)+e.More)
			break
		}
		fmt.Fprintf(&b, "\n  block %d: %v", f.Index, f.Err)
	}
	return b.String()
}

// Indexes returns the failed indexes listed.
func (e *IncompleteError) Indexes() []int64 {
	out := make([]int64, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f.Index
	}
	return out
}

// Acquisition is one run of the pipeline.
type Acquisition struct {
	snap    *ebs.Snapshot
	o       Options
	limiter *ebs.Limiter
	fetch   ebs.Fetcher
	start   time.Time

	listed, skipped, stored, failed, bytes atomic.Int64
	listingDone                            atomic.Bool
	maxLimit                               atomic.Int64

	mu       sync.Mutex
	failures []FailedBlock
	more     int64
}

// New prepares an acquisition of snap. snap.Stats, if set, counts calls.
func New(snap *ebs.Snapshot, o Options) *Acquisition {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.MaxFailed <= 0 {
		o.MaxFailed = 1000
	}
	if snap.Stats == nil {
		snap.Stats = &ebs.Stats{}
	}
	l := ebs.NewLimiter(o.Workers)
	f := ebs.NewFetcher(snap, ebs.FetchOptions{Limiter: l, MaxRate: o.MaxRate})
	return &Acquisition{snap: snap, o: o, limiter: l, fetch: f, start: time.Now()}
}

// Progress returns the current counters; safe to call from any goroutine.
func (a *Acquisition) Progress() Progress {
	lim := a.limiter.Limit()
	return Progress{
		Listed: a.listed.Load(), ListingDone: a.listingDone.Load(), Skipped: a.skipped.Load(),
		Stored: a.stored.Load(), Failed: a.failed.Load(), Bytes: a.bytes.Load(),
		Concurrency: lim, InFlight: a.limiter.InFlight(), Counts: a.snap.Stats.Counts(), Elapsed: time.Since(a.start),
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, block.Size); return &b }}

// errTooManyFailures stops a run whose blocks keep failing.
var errTooManyFailures = errors.New("too many blocks failed")

// Run lists and fetches every block into the sink that Open returns. It
// returns *IncompleteError when some blocks failed after every retry.
func (a *Acquisition) Run(ctx context.Context) (Result, error) {
	a.start = time.Now()
	res := Result{Started: a.start}
	g, ctx := errgroup.WithContext(ctx)
	refs := make(chan block.Ref, 2*a.o.Workers) // a bounded queue: the list never piles up
	ready := make(chan struct{})
	var sink Sink
	g.Go(func() error {
		defer close(refs)
		opened := false
		list := a.snap.List
		if a.o.List != nil {
			list = a.o.List
		}
		err := list(ctx, a.o.Start, func(p ebs.Page) error {
			if !opened {
				s, err := a.o.Open(p.Info)
				if err != nil {
					return err
				}
				sink, res.Info, opened = s, p.Info, true
				if c, ok := s.(Canceler); ok {
					go func() { <-ctx.Done(); c.Cancel() }()
				}
				close(ready)
			}
			for _, ref := range p.Refs {
				a.listed.Add(1)
				if (a.o.Want != nil && !a.o.Want(ref.Index)) || sink.Has(ref.Index) {
					a.skipped.Add(1)
					continue
				}
				if a.o.Listed != nil {
					a.o.Listed(ref.Index)
				}
				select {
				case refs <- ref:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
		if err == nil && !opened {
			err = errors.New("listing returned no page")
		}
		a.listingDone.Store(true)
		return err
	})
	for range a.o.Workers {
		g.Go(func() error {
			select {
			case <-ready:
			case <-ctx.Done():
				return nil
			}
			bp := bufPool.Get().(*[]byte)
			defer bufPool.Put(bp)
			for ref := range refs {
				if err := a.one(ctx, sink, ref, *bp); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	res.Finished = time.Now()
	res.Listed, res.Skipped, res.Stored, res.Bytes = a.listed.Load(), a.skipped.Load(), a.stored.Load(), a.bytes.Load()
	res.Counts = a.snap.Stats.Counts()
	res.MaxLimit = int(a.maxLimit.Load())
	if err != nil && !errors.Is(err, errTooManyFailures) {
		return res, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.failures) > 0 {
		sort.Slice(a.failures, func(i, j int) bool { return a.failures[i].Index < a.failures[j].Index })
		return res, &IncompleteError{Failed: a.failures, More: a.more}
	}
	return res, nil
}

// one fetches and stores a block. A retryable failure that outlived the
// retry policy is recorded; anything else stops the run.
func (a *Acquisition) one(ctx context.Context, sink Sink, ref block.Ref, buf []byte) error {
	if l := int64(a.limiter.Limit()); l > a.maxLimit.Load() {
		a.maxLimit.Store(l)
	}
	b, err := a.fetch.Fetch(ctx, ref, buf)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !ebs.KindOf(err).Retryable() {
			return err
		}
		if a.o.FailFast {
			a.failed.Add(1)
			return &IncompleteError{Failed: []FailedBlock{{Index: ref.Index, Err: err}}, Stopped: true}
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if n := a.failed.Add(1); n > int64(a.o.MaxFailed) {
			a.more++
			return errTooManyFailures
		}
		a.failures = append(a.failures, FailedBlock{Index: ref.Index, Err: err})
		return nil
	}
	if err := sink.Put(b.Index, b.Sum, b.Data); err != nil {
		return err
	}
	a.stored.Add(1)
	a.bytes.Add(int64(len(b.Data)))
	return nil
}
