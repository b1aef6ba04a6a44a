package emulator

import (
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens a second, at most burst saved.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newBucket(rate, burst float64, now time.Time) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
	}
	b.last = now
}

// limiter holds the request quotas. A rate of 0 is unlimited.
type limiter struct {
	mu                 sync.Mutex
	perSnap, perAcct   float64
	list               float64
	getBurst, lstBurst float64
	snaps              map[string]*bucket
	acct               *bucket
	lists              map[byte]*bucket
}

// burstFor is one second's worth of rate, at least one request, unless set.
func burstFor(rate, burst float64) float64 {
	if burst > 0 {
		return burst
	}
	return max(1, rate)
}

// set replaces the rates and refills every bucket.
func (l *limiter) set(perSnap, perAcct, list, getBurst, listBurst float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.perSnap, l.perAcct, l.list = perSnap, perAcct, list
	l.getBurst, l.lstBurst = getBurst, listBurst
	l.snaps = make(map[string]*bucket)
	l.acct = nil
	l.lists = make(map[byte]*bucket)
}

// allowGet takes one GetSnapshotBlock token from the snapshot's bucket and
// the account's, or none; reason says which one was empty.
func (l *limiter) allowGet(snap string, now time.Time) (reason string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perSnap <= 0 && l.perAcct <= 0 {
		return "", true
	}
	var sb, ab *bucket
	if l.perSnap > 0 {
		sb = l.snaps[snap]
		if sb == nil {
			sb = newBucket(l.perSnap, burstFor(l.perSnap, l.getBurst), now)
			l.snaps[snap] = sb
		}
		sb.refill(now)
		if sb.tokens < 1 {
			return reasonResourceThrottled, false
		}
	}
	if l.perAcct > 0 {
		if l.acct == nil {
			l.acct = newBucket(l.perAcct, burstFor(l.perAcct, l.getBurst), now)
		}
		ab = l.acct
		ab.refill(now)
		if ab.tokens < 1 {
			return reasonAccountThrottled, false
		}
		ab.tokens--
	}
	if sb != nil {
		sb.tokens--
	}
	return "", true
}

// allowList takes one token from the bucket of a List operation.
func (l *limiter) allowList(op byte, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.list <= 0 {
		return true
	}
	b := l.lists[op]
	if b == nil {
		b = newBucket(l.list, burstFor(l.list, l.lstBurst), now)
		l.lists[op] = b
	}
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
