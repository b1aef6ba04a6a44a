package ebs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Policy is the retry policy for every EBS request: exponential backoff
// with jitter, and separate budgets for throttling (expected near the
// quota, so generous) and for other retryable failures.
type Policy struct {
	// MaxAttempts bounds attempts per request for server errors, broken
	// connections, corrupt bodies and stale tokens. Default 10: with the
	// default delays that rides out about a minute of failures.
	MaxAttempts int
	// MaxThrottled bounds throttled attempts per request. Default 100.
	MaxThrottled int
	// Base and Max bound the backoff for errors; defaults 200ms and 20s.
	Base, Max time.Duration
	// ThrottleBase is the first backoff after a throttle; default 50ms.
	// The adaptive limiter shrinks concurrency at the same time.
	ThrottleBase time.Duration
	// Sleep waits d or until ctx ends; tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Classify sorts a failure into a Kind, which decides whether it is
	// retried and against which budget; default KindOf, which knows the
	// EBS errors. Callers of other services (STS, EC2) give their own.
	Classify func(error) Kind
}

func (p Policy) kind(err error) Kind {
	if p.Classify != nil {
		return p.Classify(err)
	}
	return KindOf(err)
}

func (p Policy) maxAttempts() int    { return or(p.MaxAttempts, 10) }
func (p Policy) maxThrottled() int   { return or(p.MaxThrottled, 100) }
func (p Policy) base() time.Duration { return orDur(p.Base, 200*time.Millisecond) }
func (p Policy) max() time.Duration  { return orDur(p.Max, 20*time.Second) }
func (p Policy) throttleBase() time.Duration {
	return orDur(p.ThrottleBase, 50*time.Millisecond)
}

func or(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

func orDur(v, d time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return d
}

// Delay returns the wait before retry number n (1-based) after an error
// of kind k: "equal jitter", half fixed and half random, so waits never
// collapse to zero and never synchronise across workers.
func (p Policy) Delay(k Kind, n int) time.Duration {
	base := p.base()
	if k == KindThrottle {
		base = p.throttleBase()
	}
	d := base << min(n-1, 20)
	if d > p.max() || d <= 0 {
		d = p.max()
	}
	half := d / 2
	return half + rand.N(half+1)
}

func (p Policy) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	return Sleep(ctx, d)
}

// Sleep waits d, or until ctx ends and then returns its error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// budget counts one request's failures against the policy.
type budget struct {
	p                Policy
	errors, throttle int
}

// spend records a failure of kind k and reports whether to try again.
func (b *budget) spend(k Kind) bool {
	if !k.Retryable() {
		return false
	}
	if k == KindThrottle {
		b.throttle++
		return b.throttle < b.p.maxThrottled()
	}
	b.errors++
	return b.errors < b.p.maxAttempts()
}

func (b *budget) delay(k Kind) time.Duration {
	if k == KindThrottle {
		return b.p.Delay(k, b.throttle)
	}
	return b.p.Delay(k, b.errors)
}

// Do runs fn until it succeeds, fails permanently, exhausts the policy or
// ctx ends, counting each retry in stats. An expired page token
// (KindPageToken) is returned at once: only the walker of the listing
// can restart it. Do is the engine of the request decorators (Wrap,
// RetryLists); fetches use Retry, which also refreshes block tokens.
func (p Policy) Do(ctx context.Context, stats *Stats, fn func(context.Context) error) error {
	b := budget{p: p}
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		k := p.kind(err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if k == KindPageToken || !b.spend(k) {
			return err
		}
		stats.addRetry(k)
		if err := p.sleep(ctx, b.delay(k)); err != nil {
			return err
		}
	}
}

// Wrap returns call, a request in the shape of every AWS SDK method,
// retried under p: the decorator that puts any client's calls under the
// same policy as the fetches. Each retry is counted in stats by kind.
func Wrap[In, Out, Opt any](p Policy, stats *Stats, call func(context.Context, In, ...Opt) (Out, error)) func(context.Context, In, ...Opt) (Out, error) {
	return func(ctx context.Context, in In, opts ...Opt) (Out, error) {
		var out Out
		err := p.Do(ctx, stats, func(ctx context.Context) error {
			var err error
			out, err = call(ctx, in, opts...)
			return err
		})
		return out, err
	}
}

// countLists counts every attempt of call in stats as a List call.
func countLists[In, Out, Opt any](stats *Stats, call func(context.Context, In, ...Opt) (Out, error)) func(context.Context, In, ...Opt) (Out, error) {
	return func(ctx context.Context, in In, opts ...Opt) (Out, error) {
		stats.addList()
		return call(ctx, in, opts...)
	}
}

// RetryLists wraps api so that its List calls (ListSnapshotBlocks,
// ListChangedBlocks) are retried under p, each attempt counted in stats
// as a List call and each retry by kind. GetSnapshotBlock passes through
// untouched: a fetch is retried by Retry, around its verification. An
// expired page token is returned at once, for the walker to list again
// from the last block it saw (see Snapshot.List).
func RetryLists(api API, p Policy, stats *Stats) API {
	return &retryingLists{
		API:     api,
		blocks:  Wrap(p, stats, countLists(stats, api.ListSnapshotBlocks)),
		changed: Wrap(p, stats, countLists(stats, api.ListChangedBlocks)),
	}
}

type retryingLists struct {
	API
	blocks  func(context.Context, *ebsapi.ListSnapshotBlocksInput, ...func(*ebsapi.Options)) (*ebsapi.ListSnapshotBlocksOutput, error)
	changed func(context.Context, *ebsapi.ListChangedBlocksInput, ...func(*ebsapi.Options)) (*ebsapi.ListChangedBlocksOutput, error)
}

func (r *retryingLists) ListSnapshotBlocks(ctx context.Context, in *ebsapi.ListSnapshotBlocksInput, opts ...func(*ebsapi.Options)) (*ebsapi.ListSnapshotBlocksOutput, error) {
	return r.blocks(ctx, in, opts...)
}

func (r *retryingLists) ListChangedBlocks(ctx context.Context, in *ebsapi.ListChangedBlocksInput, opts ...func(*ebsapi.Options)) (*ebsapi.ListChangedBlocksOutput, error) {
	return r.changed(ctx, in, opts...)
}

// Refresher gives a fresh reference for a block whose token was refused.
type Refresher interface {
	Refresh(ctx context.Context, stale block.Ref) (block.Ref, error)
}

// Retry wraps next with the policy: retryable failures are tried again
// after a backoff; an INVALID_BLOCK_TOKEN re-lists the block through r
// and retries at once with the new token. Each retry is counted in stats.
func Retry(next Fetcher, p Policy, stats *Stats, r Refresher) Fetcher {
	return &retrying{next: next, p: p, stats: stats, r: r}
}

type retrying struct {
	next  Fetcher
	p     Policy
	stats *Stats
	r     Refresher
}

func (f *retrying) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	b := budget{p: f.p}
	for {
		blk, err := f.next.Fetch(ctx, ref, buf)
		if err == nil {
			return blk, nil
		}
		if ctx.Err() != nil {
			return block.Block{}, fmt.Errorf("fetching block %d: %w", ref.Index, ctx.Err())
		}
		k := f.p.kind(err)
		if !b.spend(k) {
			if k.Retryable() {
				return block.Block{}, fmt.Errorf("giving up on block %d after %d attempts: %w", ref.Index, b.errors+b.throttle, err)
			}
			return block.Block{}, err
		}
		f.stats.addRetry(k)
		if k == KindBlockToken && f.r != nil {
			fresh, rerr := f.r.Refresh(ctx, ref)
			if rerr != nil {
				return block.Block{}, fmt.Errorf("refreshing token of block %d: %w", ref.Index, rerr)
			}
			ref = fresh
			continue
		}
		if err := f.p.sleep(ctx, b.delay(k)); err != nil {
			return block.Block{}, fmt.Errorf("fetching block %d: %w", ref.Index, err)
		}
	}
}

// Relister refreshes block tokens by listing again from the refused
// block. One re-list serves the blocks after it too: the fresh tokens of
// the last re-listed page are kept, so a burst of refusals (every token
// of an older listing going stale at once) costs one List call per page,
// not one per block.
type Relister struct {
	Snap *Snapshot

	mu    sync.Mutex
	fresh map[int64]string
}

// relistPage is the page size of a re-list: big enough that a burst of
// stale tokens in one region costs one call, small enough to be quick.
const relistPage = 1000

// Refresh implements Refresher.
func (r *Relister) Refresh(ctx context.Context, stale block.Ref) (block.Ref, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tok, ok := r.fresh[stale.Index]; ok && tok != stale.Token {
		return block.Ref{Index: stale.Index, Token: tok}, nil
	}
	snap := *r.Snap
	snap.PageSize = relistPage
	fresh := make(map[int64]string, relistPage)
	errStop := fmt.Errorf("stop")
	err := snap.List(ctx, stale.Index, func(p Page) error {
		for _, ref := range p.Refs {
			fresh[ref.Index] = ref.Token
		}
		if len(p.Refs) > 0 {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return block.Ref{}, err
	}
	r.fresh = fresh
	tok, ok := fresh[stale.Index]
	if !ok {
		return block.Ref{}, fmt.Errorf("block %d is no longer listed", stale.Index)
	}
	return block.Ref{Index: stale.Index, Token: tok}, nil
}

// Stats counts requests and retries; it is safe for concurrent use and
// a nil *Stats counts nothing.
type Stats struct {
	lists, gets atomic.Int64
	retries     [len(kindNames)]atomic.Int64
}

func (s *Stats) addList() {
	if s != nil {
		s.lists.Add(1)
	}
}

func (s *Stats) addGet() {
	if s != nil {
		s.gets.Add(1)
	}
}

func (s *Stats) addRetry(k Kind) {
	if s != nil && int(k) < len(s.retries) {
		s.retries[k].Add(1)
	}
}

// Counts is a copy of Stats.
type Counts struct {
	ListCalls int64            `json:"list_calls"`
	GetCalls  int64            `json:"get_calls"`
	Retries   map[string]int64 `json:"retries_by_kind"`
}

// TotalRetries sums the retries of every kind.
func (c Counts) TotalRetries() int64 {
	var n int64
	for _, v := range c.Retries {
		n += v
	}
	return n
}

// Counts returns the current counts.
func (s *Stats) Counts() Counts {
	c := Counts{Retries: map[string]int64{}}
	if s == nil {
		return c
	}
	c.ListCalls, c.GetCalls = s.lists.Load(), s.gets.Load()
	for k := range s.retries {
		if n := s.retries[k].Load(); n > 0 {
			c.Retries[Kind(k).String()] = n
		}
	}
	return c
}
