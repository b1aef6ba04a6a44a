package ebs

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Limiter shapes GetSnapshotBlock attempts to what the service allows,
// with two controls.
//
// The pacer spaces attempts evenly at a learned rate, so the service sees
// a smooth stream and not bursts. It starts unpaced. A throttle means the
// snapshot's token bucket is empty; between two throttles a moment apart
// (both at an empty bucket, and too close for it to have filled up in
// between), the successes that completed are exactly what the bucket
// refilled: their count over the time between is the quota. The pacer
// then runs at 99% of that estimate. While attempts wait for it and
// nothing is throttled, the rate creeps up (1% a second near the
// estimate, doubling every second without one or once well past it), so a quota
// that rises is found again. A throttle with no estimate to go by cuts the
// rate to 97% of what completed lately; it cuts only when its attempt
// started after the previous cut, since attempts already in flight at a
// cut say nothing about the new rate. Whatever the bucket's depth, the
// rate settles within a few percent of the refill rate and throttles stay
// a small fraction of attempts: a probe above the quota costs a short run
// of them every few seconds.
//
// The window bounds the attempts in flight: it doubles every round trip
// (slow start) until the first throttle or the cap, then grows by one per
// window of successes while it is in use. A throttle cuts it gently
// (×0.9, with the rate), never below what the pacer's rate needs at the
// measured round trip (with room for jitter): the pacer holds the rate,
// the window only keeps a service that throttles on concurrency, not
// rate, from being flooded. Without throttling the window grows to the
// cap: latency alone is no reason to hold back (AWS's own example is 100
// connections at 100 ms).
type Limiter struct {
	mu       sync.Mutex
	limit    float64
	max      float64
	inflight int
	waiting  int // attempts waiting for a slot
	wake     chan struct{}
	avgRTT   time.Duration
	now      func() time.Time
	slow     bool // slow start: no throttle seen yet

	rate     float64   // attempts per second; 0: unpaced
	quota    float64   // the estimated quota; 0: none yet
	slot     time.Time // when the next paced attempt may start
	queue    waiters   // attempts waiting for the pacer
	armed    bool      // a dispatch is scheduled
	lastCut  time.Time // the last cut
	lastGrow time.Time
	waited   bool    // an attempt waited for the pacer since lastGrow
	ok       int64   // successes so far
	done     []int64 // completion times (UnixNano) of recent successes, a ring
	thr      []mark  // recent throttles, a ring
	best     float64 // the most successes completed in a second
	bestAt   time.Time
	nthr     int64 // throttles so far
}

// mark is a throttle's completion time and the successes completed by then.
type mark struct {
	at int64 // UnixNano
	ok int64
}

// Limiter tuning.
const (
	startLimit  = 8    // enough for ~400 blocks/s at 20 ms before growth
	cutFactor   = 0.9  // the window's gentle cut
	rttWeight   = 0.05 // EWMA weight of a new RTT sample
	quotaShare  = 0.99 // the pacer's rate, of the estimated quota
	cutShare    = 0.97 // the pacer's rate after a throttle, of the measured one
	slowGrowth  = 0.05 // the pacer's growth per second near the estimate
	fastGrowth  = 1.0  // ... without one, or well past it
	growEvery   = 20 * time.Millisecond
	minRate     = 0.5                    // attempts per second: the pacer's floor
	ringSize    = 1024                   // successes remembered for the measured rate
	thrSize     = 256                    // throttles remembered for the estimate
	minSpan     = 100 * time.Millisecond // the shortest span the quota is estimated over
	maxSpan     = 3 * time.Second        // ... and the longest
	maxGap      = 150 * time.Millisecond // the longest gap between throttles within it
	minSamples  = 16                     // the fewest successes a rate is measured from
	windowSlack = 1.5                    // window room over rate × RTT
	tolerated   = 0.02                   // a throttled share that cuts nothing
	bestEvery   = 100 * time.Millisecond // how often the best second is updated
	bestShare   = 0.5                    // the pacer's floor, of the best second
)

// NewLimiter returns a limiter that never allows more than max attempts
// in flight.
func NewLimiter(max int) *Limiter {
	if max < 1 {
		max = 1
	}
	return &Limiter{limit: min(startLimit, float64(max)), max: float64(max), wake: make(chan struct{}), now: time.Now,
		slow: true, done: make([]int64, ringSize), thr: make([]mark, thrSize)}
}

// Limit returns the current bound on attempts in flight.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// InFlight returns the attempts now running.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight
}

// Rate returns the pacer's rate in attempts per second, 0 while unpaced.
func (l *Limiter) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}

// pace waits for the attempt's turn at the pacer's rate. Waiting
// attempts go in block order, lowest index first: a retried block, or
// one that a slow response held back, goes before blocks listed after it,
// so a reordering sink downstream waits as little as possible.
func (l *Limiter) pace(ctx context.Context, index int64) error {
	l.mu.Lock()
	if l.rate <= 0 {
		l.mu.Unlock()
		return nil
	}
	now := l.now()
	if len(l.queue) == 0 && !l.slot.After(now) {
		l.slot = now.Add(l.interval())
		l.mu.Unlock()
		return nil
	}
	w := &waiter{index: index, ch: make(chan struct{})}
	heap.Push(&l.queue, w)
	l.waited = true
	if !l.armed {
		l.armed = true
		time.AfterFunc(l.slot.Sub(now), l.dispatch)
	}
	l.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		if w.granted {
			return nil
		}
		w.canceled = true
		return ctx.Err()
	}
}

// dispatch lets the waiting attempts whose turns have come go, lowest
// index first, and rearms itself for the next turn.
func (l *Limiter) dispatch() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for len(l.queue) > 0 && !l.slot.After(now) {
		w := heap.Pop(&l.queue).(*waiter)
		if w.canceled {
			continue
		}
		w.granted = true
		close(w.ch)
		// A late timer may catch up by one turn, never more: no bursts.
		if floor := now.Add(-l.interval()); l.slot.Before(floor) {
			l.slot = floor
		}
		l.slot = l.slot.Add(l.interval())
	}
	if len(l.queue) == 0 {
		l.armed = false
		return
	}
	time.AfterFunc(l.slot.Sub(now), l.dispatch)
}

// interval is the pacer's spacing of attempts; l.mu is held.
func (l *Limiter) interval() time.Duration {
	if l.rate <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / l.rate)
}

// waiter is an attempt waiting for the pacer.
type waiter struct {
	index    int64
	ch       chan struct{}
	granted  bool
	canceled bool
}

// waiters is a heap of waiting attempts, lowest block index first.
type waiters []*waiter

func (q waiters) Len() int           { return len(q) }
func (q waiters) Less(i, j int) bool { return q[i].index < q[j].index }
func (q waiters) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *waiters) Push(x any)        { *q = append(*q, x.(*waiter)) }
func (q *waiters) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return w
}

func (l *Limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.inflight < int(l.limit) {
			l.inflight++
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.waiting++
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
		}
		l.mu.Lock()
		l.waiting--
		l.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// unacquire gives back a slot no attempt used.
func (l *Limiter) unacquire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	close(l.wake)
	l.wake = make(chan struct{})
}

// measured returns the rate at which successes completed lately: over the
// last minSpan, or the last minSamples successes if that span is longer.
// ok is false with fewer than two successes to measure.
func (l *Limiter) measured(now time.Time) (rate float64, ok bool) {
	n := int(min(l.ok, ringSize))
	from := now.Add(-minSpan).UnixNano()
	count, first := 0, int64(0)
	for i := 1; i <= n; i++ {
		t := l.done[(l.ok-int64(i))%ringSize]
		if t < from && count >= minSamples {
			break
		}
		first = t
		count++
	}
	span := now.UnixNano() - first
	if count < 2 || span <= 0 {
		return 0, false
	}
	return float64(count-1) / (float64(span) / float64(time.Second)), true
}

// delivered returns the successes completed in the last second, or over
// the ring's span if it is shorter, per second.
func (l *Limiter) delivered(now time.Time) float64 {
	n := min(l.ok, ringSize)
	from := now.Add(-time.Second).UnixNano()
	count := int64(0)
	oldest := now.UnixNano()
	for i := int64(1); i <= n; i++ {
		t := l.done[(l.ok-i)%ringSize]
		if t < from {
			break
		}
		oldest = t
		count++
	}
	span := time.Second
	if count == n && n == ringSize {
		span = time.Duration(now.UnixNano() - oldest)
	}
	if span <= 0 {
		return 0
	}
	return float64(count) / span.Seconds()
}

// estimate returns the quota from the latest throttle and the oldest one
// between minSpan and maxSpan before it with no gap of more than maxGap
// between throttles (a gap means the rate fell below the quota, and the
// bucket may have filled and lost tokens), and the share of the attempts
// that completed between them that were throttled.
func (l *Limiter) estimate() (quota, throttled float64, ok bool) {
	n := min(l.nthr, thrSize)
	last := l.thr[(l.nthr-1)%thrSize]
	prev := last
	var best mark
	var count int64
	for i := int64(2); i <= n; i++ {
		m := l.thr[(l.nthr-i)%thrSize]
		if time.Duration(prev.at-m.at) > maxGap || time.Duration(last.at-m.at) > maxSpan {
			break
		}
		prev = m
		if time.Duration(last.at-m.at) >= minSpan {
			best, count = m, i-1
		}
	}
	if count == 0 {
		return 0, 0, false
	}
	succeeded := last.ok - best.ok
	if succeeded < minSamples {
		return 0, 0, false
	}
	span := time.Duration(last.at - best.at)
	return float64(succeeded) / span.Seconds(), float64(count) / float64(count+succeeded), true
}

func (l *Limiter) release(k Kind, ok bool, start time.Time, rtt time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	now := l.now()
	switch {
	case ok:
		if l.avgRTT == 0 {
			l.avgRTT = rtt
		} else {
			l.avgRTT += time.Duration(rttWeight * float64(rtt-l.avgRTT))
		}
		l.done[l.ok%ringSize] = now.UnixNano()
		l.ok++
		if now.Sub(l.bestAt) >= bestEvery {
			l.best = max(l.best, l.delivered(now))
			l.bestAt = now
		}
		// Grow only while the window is in use: demand may be below it.
		// Attempts waiting for a slot are demand too: the successes of one
		// round trip come in a clump, and each one counts.
		if l.inflight+1 >= int(l.limit) || l.waiting > 0 {
			if l.slow {
				l.limit = min(l.max, l.limit+1)
			} else {
				l.limit = min(l.max, l.limit+1/l.limit)
			}
		}
		if l.rate > 0 && now.Sub(l.lastGrow) >= growEvery {
			if l.waited {
				g := fastGrowth
				if l.quota > 0 && l.rate >= quotaShare*l.quota && l.rate < 1.05*l.quota {
					g = slowGrowth
				}
				l.rate *= 1 + g*now.Sub(l.lastGrow).Seconds()
			}
			l.lastGrow, l.waited = now, false
		}
	case k == KindThrottle:
		l.slow = false
		l.thr[l.nthr%thrSize] = mark{at: now.UnixNano(), ok: l.ok}
		l.nthr++
		q, share, known := l.estimate()
		if known {
			l.quota = q
		}
		fresh := start.After(l.lastCut) // attempts in flight at the last cut are old news
		switch {
		case known && share < tolerated && l.rate > 0:
			// A few throttles among many successes: a bucket with no
			// depth to absorb jitter, or a rate a hair above the quota.
			// Cutting would only chase the noise down.
			fresh = false
		case !known && l.rate > 0 && l.nthr >= 2 && l.ok-l.thr[(l.nthr-2)%thrSize].ok >= int64(1/tolerated):
			// A lone throttle after many successes: the same noise.
			fresh = false
		case known && (fresh || l.rate == 0 || quotaShare*q < l.rate):
			l.rate = max(minRate, quotaShare*q)
		case !fresh:
		case l.rate == 0: // leaving slow start
			// What completed lately, or what the window carried in a
			// round trip, whichever is more: completions come in clumps
			// while the window grows.
			m, _ := l.measured(now)
			m = max(m, float64(l.limit)/max(l.avgRTT.Seconds(), 0.001))
			l.rate = max(minRate, cutShare*m)
		case l.quota > 0: // an older estimate
			l.rate = max(minRate, cutShare*min(l.rate, l.quota))
		default: // a round trip after a cut, still above the quota
			l.rate = max(minRate, l.rate/2)
		}
		if !known && fresh && l.rate > 0 {
			// No estimate: what completed lately stands in for one, so
			// that growth slows near it.
			if m, ok := l.measured(now); ok {
				l.quota = m
			}
		}
		// Throttles that are not the rate's doing (a busy account, a
		// flaky service) would otherwise cut the rate again and again:
		// never below half the best second so far.
		l.rate = max(l.rate, l.best*bestShare)
		if fresh {
			l.lastCut = now
			floor := windowSlack * l.rate * l.avgRTT.Seconds()
			l.limit = max(1, min(l.limit, max(l.limit*cutFactor, floor)))
		}
		l.lastGrow, l.waited = now, false
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// Limit wraps next so that each attempt holds one of l's slots and waits
// for the pacer's turn.
func Limit(next Fetcher, l *Limiter) Fetcher { return &limited{next: next, l: l} }

type limited struct {
	next Fetcher
	l    *Limiter
	// notAccount: throttles on the account's quota are not the
	// snapshot's to learn from, since an Account paces them (see
	// NewFetcher).
	notAccount bool
}

func (f *limited) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	// The slot first, then the pacer's turn: an attempt that passed the
	// pacer must not then wait for a slot, or attempts queued at the window
	// would leave in a burst when slots free up.
	if err := f.l.acquire(ctx); err != nil {
		return block.Block{}, err
	}
	if err := f.l.pace(ctx, ref.Index); err != nil {
		f.l.unacquire()
		return block.Block{}, err
	}
	start := f.l.now()
	b, err := f.next.Fetch(ctx, ref, buf)
	k := KindOf(err)
	if k == KindThrottle && f.notAccount && IsAccountThrottle(err) {
		k = KindOther // neither a success nor a throttle of this snapshot
	}
	f.l.release(k, err == nil, start, f.l.now().Sub(start))
	return b, err
}

// MinRate is the slowest rate RateLimit can space attempts for: one
// attempt per the longest time.Duration (about 292 years), about 1.08e-10
// per second.
const MinRate = float64(time.Second) / math.MaxInt64

// CheckRate refuses a rate cap that RateLimit cannot honour: NaN, an
// infinity, a negative rate, or one below MinRate. Zero (no cap) is fine.
func CheckRate(perSecond float64) error {
	switch {
	case math.IsNaN(perSecond) || math.IsInf(perSecond, 0):
		return fmt.Errorf("rate %v: want a finite number of blocks per second", perSecond)
	case perSecond < 0:
		return fmt.Errorf("rate %g: must not be negative", perSecond)
	case perSecond > 0 && perSecond < MinRate:
		return fmt.Errorf("rate %g: the slowest rate that can be honoured is %.3g blocks per second (one per %v)", perSecond, MinRate, time.Duration(math.MaxInt64))
	}
	return nil
}

// RateLimit wraps next so that attempts start no faster than perSecond,
// evenly spaced (no bursts). perSecond <= 0 returns next unchanged; a rate
// too slow to express (below MinRate, or NaN) spaces attempts by the
// longest time.Duration, never by none: check it with CheckRate first.
func RateLimit(next Fetcher, perSecond float64) Fetcher {
	if perSecond <= 0 {
		return next
	}
	return &rated{next: next, interval: rateInterval(perSecond)}
}

// rateInterval is the spacing of attempts at perSecond, clamped to a
// time.Duration: a float64 that does not fit converts to an undefined
// value (a negative one on amd64, which meant no cap at all).
func rateInterval(perSecond float64) time.Duration {
	d := float64(time.Second) / perSecond
	if !(d < math.MaxInt64) { // too long, or NaN
		return math.MaxInt64
	}
	return time.Duration(d)
}

type rated struct {
	next     Fetcher
	interval time.Duration
	mu       sync.Mutex
	slot     time.Time
}

func (f *rated) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	f.mu.Lock()
	now := time.Now()
	if f.slot.Before(now) {
		f.slot = now
	}
	at := f.slot
	f.slot = f.slot.Add(f.interval)
	f.mu.Unlock()
	if wait := time.Until(at); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return block.Block{}, ctx.Err()
		}
	}
	return f.next.Fetch(ctx, ref, buf)
}
