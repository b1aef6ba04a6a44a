package acquire

import (
	"context"
	"errors"
	"io"
	"sort"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// Expected yields the blocks a snapshot should list, in ascending index
// order (the manifest of its evidence). Next returns io.EOF after the
// last one.
type Expected interface {
	Next() (index int64, sum block.Sum, err error)
}

// CheckOptions configures Check.
type CheckOptions struct {
	// Full fetches every listed block again, through the same verified
	// fetch, retry and limit stack as an acquisition, and compares the
	// checksum AWS serves it with to the expected one. Without it, only
	// the listing's indexes are compared.
	Full    bool
	Workers int
	MaxRate float64
	// Info, when set, checks the listing's volume and block size before
	// anything is compared.
	Info func(ebs.Info) error
}

// MaxCheckListed bounds the indexes a CheckResult lists per kind; the
// counts are complete.
const MaxCheckListed = 10000

// CheckResult is what Check found. Missing are expected indexes the
// snapshot does not list; Extra, listed indexes not expected; Differ,
// blocks whose AWS checksum is not the expected one; Failed, blocks that
// could not be fetched after every retry. Each list is sorted.
type CheckResult struct {
	Info                                               ebs.Info
	Listed                                             int64
	Fetched                                            int64
	Missing, Extra, Differ, Failed                     []int64
	MissingCount, ExtraCount, DifferCount, FailedCount int64
	Counts                                             ebs.Counts
}

// OK reports whether the snapshot matched in full.
func (r *CheckResult) OK() bool {
	return r.MissingCount+r.ExtraCount+r.DifferCount+r.FailedCount == 0
}

func note(list *[]int64, count *int64, index int64) {
	if len(*list) < MaxCheckListed {
		*list = append(*list, index)
	}
	*count++
}

// Check lists snap (and with Full fetches every block of it) and
// compares it with want. Memory does not grow with the snapshot: both
// sides come in index order, and only blocks being fetched are held.
func Check(ctx context.Context, snap *ebs.Snapshot, want Expected, o CheckOptions) (*CheckResult, error) {
	c := &checker{want: want, full: o.Full, pending: map[int64]block.Sum{}, res: &CheckResult{}}
	c.advance()
	src := NewSnapshot(snap)
	if o.Info != nil {
		info, err := src.Info(ctx)
		if err != nil {
			return nil, err
		}
		if err := o.Info(info); err != nil {
			return nil, err
		}
	}
	res, err := New(src, Options{Workers: o.Workers, MaxRate: o.MaxRate, Want: c.wanted}).Run(ctx, c)
	var incomplete *IncompleteError
	if errors.As(err, &incomplete) {
		for _, f := range incomplete.Failed {
			note(&c.res.Failed, &c.res.FailedCount, f.Index)
		}
		c.res.FailedCount += incomplete.More
		err = nil
	}
	if err != nil {
		return nil, err
	}
	for !c.done { // expected blocks past the last one listed
		note(&c.res.Missing, &c.res.MissingCount, c.next)
		c.advance()
	}
	if c.err != nil {
		return nil, c.err
	}
	r := c.res
	r.Info, r.Listed, r.Fetched, r.Counts = res.Info, res.Listed, res.Stored, res.Counts
	sort.Slice(r.Differ, func(i, j int) bool { return r.Differ[i] < r.Differ[j] })
	return r, nil
}

// checker is the sink of a Check: the listing goroutine merges the
// listing with the expected blocks in wanted; workers compare in Put.
type checker struct {
	want    Expected
	full    bool
	next    int64
	nextSum block.Sum
	done    bool
	err     error

	mu      sync.Mutex
	pending map[int64]block.Sum // being fetched: the expected checksum
	res     *CheckResult
}

func (c *checker) advance() {
	if c.done {
		return
	}
	i, sum, err := c.want.Next()
	if err != nil {
		c.done = true
		if !errors.Is(err, io.EOF) {
			c.err = err
		}
		return
	}
	c.next, c.nextSum = i, sum
}

// wanted is told every listed index, in ascending order.
func (c *checker) wanted(index int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.done && c.next < index {
		note(&c.res.Missing, &c.res.MissingCount, c.next)
		c.advance()
	}
	if c.done || c.next > index {
		note(&c.res.Extra, &c.res.ExtraCount, index)
		return false
	}
	sum := c.nextSum
	c.advance()
	if !c.full {
		return false
	}
	c.pending[index] = sum
	return true
}

// Caps: a check needs nothing of its feeder.
func (c *checker) Caps() sink.Caps { return sink.Caps{} }

// Has is never true: a check holds nothing.
func (c *checker) Has(int64) bool { return false }

// Put compares a fetched block's AWS checksum with the expected one. The
// fetch already verified the data against that checksum.
func (c *checker) Put(b block.Block) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	want, ok := c.pending[b.Index]
	delete(c.pending, b.Index)
	if !ok || want != b.Sum {
		note(&c.res.Differ, &c.res.DifferCount, b.Index)
	}
	return nil
}

// Close and Abort end nothing: the result is read from the checker.
func (c *checker) Close() (sink.Result, error) { return sink.Result{}, nil }

func (c *checker) Abort() error { return nil }
