package casework

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// MaxVolumesAtOnce bounds the volumes acquired at once. Every volume of
// an instance fits (EC2 attaches at most a few dozen), and the account
// limiter shares the quota between them; beyond this, volumes wait for a
// turn, so a --targets file of a thousand snapshots does not start a
// thousand pipelines of up to acquire.DefaultWorkers requests each.
const MaxVolumesAtOnce = 64

// Acquirer acquires the snapshot of v into the case directory's
// v.Directory, calling progress with its counters (from one goroutine),
// and says how it went; Run fills in Status, Error and ExitCode.
type Acquirer func(ctx context.Context, v Volume, progress func(acquire.Progress)) (Result, error)

// Options configures a Run.
type Options struct {
	// Code maps a volume's error to the command's exit code.
	Code func(error) int
	// Progress, when set, is called with every volume's counters every
	// ProgressEvery (default 250 ms) while Run runs, from one goroutine.
	Progress      func([]Progress)
	ProgressEvery time.Duration
}

// Progress is one volume's counters while a case runs.
type Progress struct {
	SnapshotID string
	Device     string
	Status     string // pending while it runs, then its result's
	acquire.Progress
}

// Error is a case whose volumes did not all complete. It unwraps to the
// error that decides the exit code: the first incomplete volume's, or
// else the first failed volume's.
type Error struct {
	NotComplete, Volumes int
	SnapshotID           string
	Err                  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d of %d volumes did not complete (case.txt names each); %s: %v", e.NotComplete, e.Volumes, e.SnapshotID, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Run acquires every volume of c at once (at most MaxVolumesAtOnce), each
// through acq, and records each volume's result in c. A volume's failure
// stops only that volume. c.Status and c.ExitCode say how the whole case
// went; the error is an *Error unless every volume completed.
func Run(ctx context.Context, c *Case, acq Acquirer, o Options) error {
	c.Runs++
	c.Started, c.Finished = time.Now().UTC(), time.Time{}
	errs := make([]error, len(c.Volumes))
	board := newBoard(c.Volumes)
	stop := board.report(o)
	g := &errgroup.Group{}
	g.SetLimit(MaxVolumesAtOnce)
	for i := range c.Volumes {
		g.Go(func() error {
			v := &c.Volumes[i]
			started := time.Now().UTC()
			res, err := acq(ctx, *v, func(p acquire.Progress) { board.set(i, p, StatusPending) })
			res.Status, res.Error, res.ExitCode = status(err), "", 0
			res.Started, res.Finished = started, time.Now().UTC()
			if err != nil {
				res.Error, res.ExitCode = err.Error(), o.Code(err)
			}
			v.Result, errs[i] = res, err
			board.set(i, res.progress(), res.Status)
			return nil
		})
	}
	g.Wait()
	stop()
	c.Finished = time.Now().UTC()
	return c.conclude(errs)
}

// progress is the counters of a volume's finished acquisition, for the
// last progress report.
func (r Result) progress() acquire.Progress {
	return acquire.Progress{
		Listed: r.Blocks, ListingDone: true, Skipped: r.Kept, Stored: r.Fetched, Failed: r.FailedBlocks, Bytes: r.Bytes,
		Counts:  ebs.Counts{ListCalls: r.ListCalls, GetCalls: r.GetCalls, Retries: r.RetriesByKind},
		Elapsed: r.Finished.Sub(r.Started),
	}
}

// status is a volume's status after its acquisition returned err.
func status(err error) string {
	var incomplete *acquire.IncompleteError
	switch {
	case err == nil:
		return StatusComplete
	case errors.As(err, &incomplete):
		return StatusIncomplete
	}
	return StatusFailed
}

// conclude sets the case's status and exit code from its volumes' and
// returns the case's error.
func (c *Case) conclude(errs []error) error {
	c.Status, c.ExitCode = StatusComplete, 0
	decide, notComplete := -1, 0
	for i, v := range c.Volumes {
		switch v.Status {
		case StatusComplete:
			continue
		case StatusIncomplete:
			if c.Status != StatusIncomplete {
				c.Status, decide = StatusIncomplete, i
			}
		default:
			if c.Status == StatusComplete {
				c.Status, decide = StatusFailed, i
			}
		}
		notComplete++
	}
	if decide < 0 {
		return nil
	}
	c.ExitCode = c.Volumes[decide].ExitCode
	return &Error{NotComplete: notComplete, Volumes: len(c.Volumes), SnapshotID: c.Volumes[decide].SnapshotID, Err: errs[decide]}
}

// board holds every volume's latest counters for the progress report.
type board struct {
	mu   sync.Mutex
	vols []Progress
}

func newBoard(vols []Volume) *board {
	b := &board{vols: make([]Progress, len(vols))}
	for i, v := range vols {
		b.vols[i] = Progress{SnapshotID: v.SnapshotID, Device: v.Device, Status: StatusPending}
	}
	return b
}

func (b *board) set(i int, p acquire.Progress, status string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.vols[i].Progress, b.vols[i].Status = p, status
}

func (b *board) copy() []Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Progress, len(b.vols))
	copy(out, b.vols)
	return out
}

// report calls o.Progress every o.ProgressEvery until stop is called,
// which reports once more and returns when the reporting goroutine has
// ended.
func (b *board) report(o Options) (stop func()) {
	if o.Progress == nil {
		return func() {}
	}
	every := o.ProgressEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				o.Progress(b.copy())
				return
			case <-t.C:
				o.Progress(b.copy())
			}
		}
	}()
	return func() { close(done); <-ended }
}
