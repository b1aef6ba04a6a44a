package ebs

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

type countingFetcher struct{ n int }

func (f *countingFetcher) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	f.n++
	return block.Block{Index: ref.Index}, nil
}

// A rate too slow for a time.Duration must still cap: the second attempt
// waits, it does not start at once.
func TestRateLimitTinyRates(t *testing.T) {
	for _, rate := range []float64{1e-11, 1.08e-10, 1e-300, math.SmallestNonzeroFloat64, math.NaN()} {
		next := &countingFetcher{}
		f := RateLimit(next, rate)
		buf := make([]byte, block.Size)
		if _, err := f.Fetch(context.Background(), block.Ref{}, buf); err != nil {
			t.Fatalf("rate %g: first attempt: %v", rate, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := f.Fetch(ctx, block.Ref{Index: 1}, buf)
		cancel()
		if err == nil || next.n != 1 {
			t.Fatalf("rate %g: second attempt started at once (%d attempts, %v)", rate, next.n, err)
		}
	}
	if d := rateInterval(MinRate); d <= 0 || d < time.Duration(math.MaxInt64)/2 {
		t.Fatalf("interval at MinRate: %v", d)
	}
	if d := rateInterval(1000); d != time.Millisecond {
		t.Fatalf("interval at 1000/s: %v", d)
	}
}

func TestCheckRate(t *testing.T) {
	for _, rate := range []float64{0, MinRate, 1e-9, 0.5, 1000, 1e300} {
		if err := CheckRate(rate); err != nil {
			t.Errorf("rate %g: %v", rate, err)
		}
	}
	for _, tc := range []struct {
		rate float64
		want string
	}{
		{math.NaN(), "finite"}, {math.Inf(1), "finite"}, {math.Inf(-1), "finite"},
		{-1, "negative"}, {1e-11, "slowest rate"}, {MinRate / 2, "slowest rate"},
	} {
		if err := CheckRate(tc.rate); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rate %g: %v, want an error containing %q", tc.rate, err, tc.want)
		}
	}
}

// fakeClock is a settable clock for the limiter's decisions.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time        { return c.t }
func (c *fakeClock) add(d time.Duration)   { c.t = c.t.Add(d) }
func newTestLimiter(c *fakeClock) *Limiter { l := NewLimiter(128); l.now = c.now; return l }
func (l *Limiter) succeed(rtt time.Duration) {
	l.inflight++
	l.release(KindOther, true, l.now().Add(-rtt), rtt)
}
func (l *Limiter) throttled(start time.Time) { l.inflight++; l.release(KindThrottle, false, start, 0) }

// Between two throttles the successes that completed are what the bucket
// refilled: 100 successes in 200 ms is a quota of 500/s, paced at 99%.
func TestLimiterEstimatesQuotaBetweenThrottles(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	l := newTestLimiter(c)
	for range 40 { // slow start: 40 successes 1 ms apart
		c.add(time.Millisecond)
		l.succeed(20 * time.Millisecond)
	}
	if l.Rate() != 0 {
		t.Fatalf("paced at %v before any throttle", l.Rate())
	}
	l.throttled(c.t.Add(-20 * time.Millisecond)) // leaving slow start: no estimate yet
	first := l.Rate()
	if first <= 0 {
		t.Fatal("the first throttle did not start the pacer")
	}
	for i := range 100 {
		c.add(2 * time.Millisecond)
		l.succeed(20 * time.Millisecond)
		if i == 40 || i == 70 { // two more throttles on the way: 3 in 103 attempts
			l.throttled(c.t.Add(-30 * time.Millisecond))
		}
	}
	l.throttled(c.t.Add(-20 * time.Millisecond))
	if got, want := l.Rate(), 0.99*100/0.2; math.Abs(got-want) > 1e-9 {
		t.Fatalf("rate %v after 100 successes between throttles 200 ms apart, want %v", got, want)
	}
	if got := l.quota; math.Abs(got-500) > 1e-9 {
		t.Fatalf("estimated quota %v, want 500", got)
	}
}

// One throttle in 201 attempts is noise (a bucket with no depth to absorb
// jitter): it cuts nothing.
func TestLimiterToleratesRareThrottles(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	l := newTestLimiter(c)
	for range 40 {
		c.add(time.Millisecond)
		l.succeed(20 * time.Millisecond)
	}
	l.throttled(c.t.Add(-20 * time.Millisecond))
	l.mu.Lock()
	l.rate = 500
	l.mu.Unlock()
	for range 200 {
		c.add(2 * time.Millisecond)
		l.succeed(20 * time.Millisecond)
	}
	l.throttled(c.t.Add(-20 * time.Millisecond))
	if got := l.Rate(); got != 500 {
		t.Fatalf("rate %v after 1 throttle in 201 attempts, want 500 (no cut)", got)
	}
}

// A throttle whose attempt started before the last cut is old news: it
// cuts neither the rate nor the window.
func TestLimiterIgnoresThrottlesFromBeforeTheCut(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	l := newTestLimiter(c)
	for range 40 {
		c.add(time.Millisecond)
		l.succeed(20 * time.Millisecond)
	}
	early := c.t.Add(-20 * time.Millisecond)
	l.throttled(early)
	rate, limit := l.Rate(), l.Limit()
	c.add(time.Millisecond)
	l.throttled(early) // in flight at the cut
	if l.Rate() != rate || l.Limit() != limit {
		t.Fatalf("an old throttle cut the rate %v → %v, the window %d → %d", rate, l.Rate(), limit, l.Limit())
	}
	c.add(time.Millisecond)
	l.throttled(c.t) // started after the cut, still no estimate (2 ms apart): cut again
	if got := l.Rate(); math.Abs(got-0.97*rate) > 1e-9 {
		t.Fatalf("rate %v after a fresh throttle a round trip after the cut, want %v", got, 0.97*rate)
	}
}

// Throttles that are not the rate's doing never cut below half the best
// second so far.
func TestLimiterFloorsAtHalfTheBestSecond(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	l := newTestLimiter(c)
	for range 1000 { // a second at 1,000/s
		c.add(time.Millisecond)
		l.succeed(10 * time.Millisecond)
	}
	for range 50 { // throttled again and again, each a round trip after the last cut
		c.add(20 * time.Millisecond)
		l.throttled(c.t)
	}
	if got := l.Rate(); got < 0.5*l.best || l.best < 900 {
		t.Fatalf("rate %v, best second %v: cut below half the best", got, l.best)
	}
}

// Waiting attempts go lowest block index first. The limiter runs on a
// fake clock, so no turn comes while the waiters queue, however slowly
// the machine schedules them; the test then lets one turn come at a time.
func TestPacerGoesLowestIndexFirst(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	l := newTestLimiter(c)
	l.mu.Lock()
	l.rate = 200 // 5 ms apart
	l.slot = c.t.Add(50 * time.Millisecond)
	l.mu.Unlock()
	var (
		mu    sync.Mutex
		order []int64
		wg    sync.WaitGroup
	)
	indexes := []int64{9, 3, 7, 1, 5}
	for i, idx := range indexes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.pace(context.Background(), idx); err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, idx)
			mu.Unlock()
		}()
		waitFor(t, func() bool { return l.queueLen() == i+1 }) // queue them in this order
	}
	for turn := range indexes {
		l.mu.Lock()
		c.t = l.slot // the next turn has come
		l.mu.Unlock()
		l.dispatch()
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == turn+1 })
	}
	wg.Wait()
	if fmt.Sprint(order) != "[1 3 5 7 9]" {
		t.Fatalf("paced in order %v, want [1 3 5 7 9]", order)
	}
}

// A canceled waiter leaves the queue and the others still go.
func TestPacerCancel(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	l := newTestLimiter(c)
	l.mu.Lock()
	l.rate = 100
	l.slot = c.t.Add(30 * time.Millisecond)
	l.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.pace(ctx, 1) }()
	waitFor(t, func() bool { return l.queueLen() == 1 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a canceled wait returned no error")
	}
	go func() { errc <- l.pace(context.Background(), 2) }()
	waitFor(t, func() bool { return l.queueLen() == 2 }) // the canceled waiter is still queued
	l.mu.Lock()
	c.t = l.slot
	l.mu.Unlock()
	l.dispatch()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter after a canceled one was not let go in 5 s")
	}
}

func (l *Limiter) queueLen() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.queue) }

// Slow start doubles the window every round trip while attempts wait for
// a slot, even though a round trip's successes come back together.
func TestLimiterSlowStartDoubles(t *testing.T) {
	l := NewLimiter(128)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var round atomic.Pointer[chan struct{}]
	next := func() { c := make(chan struct{}); old := round.Swap(&c); close(*old) }
	first := make(chan struct{})
	round.Store(&first)
	f := Limit(fetchFunc(func(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
		select {
		case <-*round.Load():
		case <-ctx.Done():
		}
		return block.Block{}, nil
	}), l)
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				f.Fetch(ctx, block.Ref{}, nil)
			}
		}()
	}
	want := 8
	for range 3 {
		waitFor(t, func() bool { return l.InFlight() == want })
		next() // every attempt of the round completes at once
		want *= 2
		waitFor(t, func() bool { return l.Limit() == want })
	}
	cancel()
	wg.Wait()
}

type fetchFunc func(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error)

func (f fetchFunc) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	return f(ctx, ref, buf)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A dispatch that runs late lets at most two waiting attempts go at once
// (the turn that was due and one caught up), never the whole queue.
func TestPacerLateDispatchNoBurst(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	l := newTestLimiter(c)
	l.mu.Lock()
	l.rate = 1000
	l.slot = c.t.Add(-50 * time.Millisecond) // the timer fired 50 turns late
	var ws []*waiter
	for i := range 10 {
		w := &waiter{index: int64(i), ch: make(chan struct{})}
		heap.Push(&l.queue, w)
		ws = append(ws, w)
	}
	l.armed = true
	l.mu.Unlock()
	l.dispatch()
	l.mu.Lock()
	defer l.mu.Unlock()
	granted := 0
	for _, w := range ws {
		if w.granted {
			granted++
		}
		w.canceled = true // the rearmed timer grants nothing more
	}
	if granted != 2 {
		t.Fatalf("a late dispatch let %d attempts go at once, want 2", granted)
	}
}
