package ebs

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Limiter bounds the number of GetSnapshotBlock attempts in flight and
// adapts the bound: additive increase (one more slot per window of
// successes, while the window is in use), multiplicative decrease on
// throttling, at most once per round trip. Throttled requests are cheap,
// so the cut is gentle (×0.9): the aim is to hover just above the quota
// rather than fall below it. Without throttling the bound grows to the
// cap: latency alone is no reason to hold back (AWS's own example is 100
// connections at 100 ms), and a loaded client's round trips inflate
// without any server being saturated.
type Limiter struct {
	mu       sync.Mutex
	limit    float64
	max      float64
	inflight int
	wake     chan struct{}
	avgRTT   time.Duration
	lastCut  time.Time
	now      func() time.Time
}

// Limiter tuning.
const (
	startLimit = 8    // enough for ~400 blocks/s at 20 ms before growth
	cutFactor  = 0.9  // gentle: a throttle costs a fast 400, not a block
	rttWeight  = 0.05 // EWMA weight of a new RTT sample
)

// NewLimiter returns a limiter that never allows more than max attempts
// in flight.
func NewLimiter(max int) *Limiter {
	if max < 1 {
		max = 1
	}
	return &Limiter{limit: min(startLimit, float64(max)), max: float64(max), wake: make(chan struct{}), now: time.Now}
}

// Limit returns the current bound.
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

func (l *Limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.inflight < int(l.limit) {
			l.inflight++
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *Limiter) release(k Kind, ok bool, rtt time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	switch {
	case ok:
		if l.avgRTT == 0 {
			l.avgRTT = rtt
		} else {
			l.avgRTT += time.Duration(rttWeight * float64(rtt-l.avgRTT))
		}
		// Grow only while the window is in use: demand may be below it.
		if l.inflight+1 >= int(l.limit) {
			l.limit = min(l.max, l.limit+1/l.limit)
		}
	case k == KindThrottle:
		now := l.now()
		if now.Sub(l.lastCut) >= max(l.avgRTT, time.Millisecond) {
			l.limit = max(1, l.limit*cutFactor)
			l.lastCut = now
		}
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// Limit wraps next so that each attempt holds one of l's slots.
func Limit(next Fetcher, l *Limiter) Fetcher { return &limited{next: next, l: l} }

type limited struct {
	next Fetcher
	l    *Limiter
}

func (f *limited) Fetch(ctx context.Context, ref block.Ref, buf []byte) (Block, error) {
	if err := f.l.acquire(ctx); err != nil {
		return Block{}, err
	}
	start := f.l.now()
	b, err := f.next.Fetch(ctx, ref, buf)
	f.l.release(KindOf(err), err == nil, f.l.now().Sub(start))
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

func (f *rated) Fetch(ctx context.Context, ref block.Ref, buf []byte) (Block, error) {
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
			return Block{}, ctx.Err()
		}
	}
	return f.next.Fetch(ctx, ref, buf)
}
