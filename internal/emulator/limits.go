package emulator

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
)

// A Burst is the depth of a token bucket: how many requests it admits at
// once after a quiet spell. Requests gives the depth as a count of
// requests; Time gives it as that long at the bucket's rate (depth =
// seconds × rate), so it follows the rate when SetRates changes it and
// fits the per-snapshot and per-account buckets alike. Requests wins when
// both are set; the zero Burst is one second of the rate.
//
// A depth below 1 counts as 1, since a bucket that can never hold a whole
// token would admit nothing. Depth 1 is no burst at all: requests are
// admitted no closer together than 1/rate.
type Burst struct {
	Requests float64
	Time     time.Duration
}

// DefaultBurst is one second's worth of the rate, what the zero Burst
// means.
var DefaultBurst = Burst{Time: time.Second}

// Depth is the bucket depth for this rate, at least 1.
func (b Burst) Depth(rate float64) float64 {
	d := rate // one second's worth
	switch {
	case b.Requests > 0:
		d = b.Requests
	case b.Time > 0:
		d = b.Time.Seconds() * rate
	}
	return max(1, d)
}

// String renders b the way ParseBurst reads it.
func (b Burst) String() string {
	switch {
	case b.Requests > 0:
		return strconv.FormatFloat(b.Requests, 'g', -1, 64)
	case b.Time > 0:
		return b.Time.String()
	}
	return DefaultBurst.String()
}

// ParseBurst reads a bucket depth: a number of requests, 1 or more ("50";
// "1" is no burst), or a duration of the rate ("100ms", "0.1s", "1s"). A
// count below 1 is refused: such a bucket could admit nothing.
func ParseBurst(s string) (Burst, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(n) || math.IsInf(n, 0) || n < 1 {
			return Burst{}, fmt.Errorf("bucket depth %q: want a number of requests, 1 or more (1: no burst), or a duration such as 100ms", s)
		}
		return Burst{Requests: n}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Burst{}, fmt.Errorf("bucket depth %q: want a number of requests such as 50, or a duration of the rate such as 100ms", s)
	}
	if d <= 0 {
		return Burst{}, fmt.Errorf("bucket depth %q: want a duration above zero (or 1 for no burst)", s)
	}
	return Burst{Time: d}, nil
}

// whole is how near to 1 a bucket's tokens must come to admit a request.
// Refills are rounded in floating point (ten refills of a tenth of a token
// add up to 0.9999999999999999), and a billionth of a token is no
// difference a client could see, but a missing one would throttle it.
const whole = 1 - 1e-9

// bucket is a token bucket: it holds at most depth tokens, starts full and
// gains rate tokens a second, continuously.
type bucket struct {
	rate, depth float64
	tokens      float64
	last        time.Time
}

func newBucket(rate float64, b Burst, now time.Time) *bucket {
	d := b.Depth(rate)
	return &bucket{rate: rate, depth: d, tokens: d, last: now}
}

// refill adds the tokens earned since the last refill. A clock that steps
// back earns nothing, and the time before last is never counted twice.
func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(b.depth, b.tokens+dt.Seconds()*b.rate)
		b.last = now
	}
}

// ready reports whether a whole token is there.
func (b *bucket) ready() bool { return b.tokens >= whole }

// limiter holds the request quotas. A rate of 0 is unlimited.
type limiter struct {
	mu                 sync.Mutex
	perSnap, perAcct   float64
	list               float64
	getBurst, lstBurst Burst
	snaps              map[string]*bucket
	acct               *bucket
	lists              map[byte]*bucket
}

// set replaces the rates and refills every bucket.
func (l *limiter) set(perSnap, perAcct, list float64, getBurst, listBurst Burst) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.perSnap, l.perAcct, l.list = perSnap, perAcct, list
	l.getBurst, l.lstBurst = getBurst, listBurst
	l.snaps = make(map[string]*bucket)
	l.acct = nil
	l.lists = make(map[byte]*bucket)
}

// allowGet admits a GetSnapshotBlock when both the snapshot's bucket and
// the account's hold a whole token, and then takes one from each. A
// rejected request takes nothing from either; reason says which one was
// short.
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
			sb = newBucket(l.perSnap, l.getBurst, now)
			l.snaps[snap] = sb
		}
		sb.refill(now)
		if !sb.ready() {
			return reasonResourceThrottled, false
		}
	}
	if l.perAcct > 0 {
		if l.acct == nil {
			l.acct = newBucket(l.perAcct, l.getBurst, now)
		}
		ab = l.acct
		ab.refill(now)
		if !ab.ready() {
			return reasonAccountThrottled, false
		}
		ab.tokens--
	}
	if sb != nil {
		sb.tokens--
	}
	return "", true
}

// allowList takes one token from the bucket of a List operation, or none.
func (l *limiter) allowList(op byte, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.list <= 0 {
		return true
	}
	b := l.lists[op]
	if b == nil {
		b = newBucket(l.list, l.lstBurst, now)
		l.lists[op] = b
	}
	b.refill(now)
	if !b.ready() {
		return false
	}
	b.tokens--
	return true
}
