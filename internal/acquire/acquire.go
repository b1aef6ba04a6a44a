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
	"github.com/ebsimager/ebsimager/internal/sink"
)

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
	// Account, when set, is the account's GetSnapshotBlock quota that
	// this run shares, fairly by Name, with every other run holding it
	// (see ebs.Account); nil is no account limit.
	Account *ebs.Account
	// Name is the snapshot id the account schedules this run's attempts
	// by; runs of different snapshots under one Account need different
	// names. Empty: the source's snapshot id.
	Name string
	// MaxFailed stops the run once this many blocks have failed after
	// every retry; 0 means 1000.
	MaxFailed int
	// Start is the first block index to list (0 for a whole snapshot).
	Start int64
	// Want, when set, filters the listing: only blocks it accepts are
	// fetched. It is called in ascending index order, from one
	// goroutine.
	Want func(index int64) bool
	// Progress, when set, is called with the run's counters every
	// ProgressEvery (default 250 ms) while Run runs, from one goroutine:
	// the command draws them.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

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
	// Stopped is set when the run stopped at the first failure (the
	// sink declared FailFast): blocks after it were not all tried.
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
	src     Source
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

// New prepares a run from src under o's limits.
func New(src Source, o Options) *Acquisition {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.MaxFailed <= 0 {
		o.MaxFailed = 1000
	}
	l := ebs.NewLimiter(o.Workers)
	return &Acquisition{src: src, o: o, limiter: l, fetch: src.Fetcher(ebs.FetchOptions{Limiter: l, MaxRate: o.MaxRate, Account: o.Account, Name: o.Name}), start: time.Now()}
}

// Progress returns the current counters; safe to call from any goroutine.
func (a *Acquisition) Progress() Progress {
	lim := a.limiter.Limit()
	return Progress{
		Listed: a.listed.Load(), ListingDone: a.listingDone.Load(), Skipped: a.skipped.Load(),
		Stored: a.stored.Load(), Failed: a.failed.Load(), Bytes: a.bytes.Load(),
		Concurrency: lim, InFlight: a.limiter.InFlight(), Counts: a.src.Counts(), Elapsed: time.Since(a.start),
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, block.Size); return &b }}

// errTooManyFailures stops a run whose blocks keep failing.
var errTooManyFailures = errors.New("too many blocks failed")

// Run lists the source from Options.Start and fetches every block the
// sink does not hold (and Want accepts) into it, honouring what the sink
// declares in its Caps. It neither closes nor aborts the sink: the caller
// opened it and ends it. Run returns *IncompleteError when some blocks
// failed after every retry.
func (a *Acquisition) Run(ctx context.Context, s sink.Sink) (Result, error) {
	a.start = time.Now()
	res := Result{Started: a.start}
	caps := s.Caps()
	g, ctx := errgroup.WithContext(ctx)
	if caps.Cancel != nil {
		// A Put may wait for blocks that will never come once the run
		// stops: wake it, so that no worker waits forever.
		defer context.AfterFunc(ctx, caps.Cancel)()
	}
	if a.o.Progress != nil {
		defer a.report()()
	}
	refs := make(chan block.Ref, 2*a.o.Workers) // a bounded queue: the list never piles up
	g.Go(func() error {
		defer close(refs)
		defer a.listingDone.Store(true)
		listed := false
		err := a.src.List(ctx, a.o.Start, func(p ebs.Page) error {
			if !listed {
				res.Info, listed = p.Info, true
			}
			return a.queue(ctx, s, caps, p.Refs, refs)
		})
		if err == nil && !listed {
			err = errors.New("listing returned no page")
		}
		return err
	})
	for range a.o.Workers {
		g.Go(func() error {
			bp := bufPool.Get().(*[]byte)
			defer bufPool.Put(bp)
			for ref := range refs {
				if err := a.one(ctx, s, caps, ref, *bp); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	res.Finished = time.Now()
	res.Listed, res.Skipped, res.Stored, res.Bytes = a.listed.Load(), a.skipped.Load(), a.stored.Load(), a.bytes.Load()
	res.Counts = a.src.Counts()
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

// report calls Options.Progress every ProgressEvery until stop is called.
func (a *Acquisition) report() (stop func()) {
	every := a.o.ProgressEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				a.o.Progress(a.Progress())
			}
		}
	}()
	return func() { close(done); <-finished }
}

// queue hands the listed refs the run fetches to the workers: those Want
// accepts and the sink lacks, each announced first when the sink asks.
func (a *Acquisition) queue(ctx context.Context, s sink.Sink, caps sink.Caps, page []block.Ref, refs chan<- block.Ref) error {
	for _, ref := range page {
		a.listed.Add(1)
		if (a.o.Want != nil && !a.o.Want(ref.Index)) || s.Has(ref.Index) {
			a.skipped.Add(1)
			continue
		}
		if caps.Announce != nil {
			if err := caps.Announce(ref.Index); err != nil {
				return err
			}
		}
		select {
		case refs <- ref:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// one fetches and stores a block. A retryable failure that outlived the
// retry policy is recorded; anything else stops the run.
func (a *Acquisition) one(ctx context.Context, s sink.Sink, caps sink.Caps, ref block.Ref, buf []byte) error {
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
		if caps.FailFast {
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
	if err := s.Put(b); err != nil {
		return err
	}
	a.stored.Add(1)
	a.bytes.Add(int64(len(b.Data)))
	return nil
}
