package ebs

import (
	"container/heap"
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/block"
)

// DefaultAccountRate is AWS's default GetSnapshotBlock quota of an
// account in a Region, in requests per second (adjustable on request).
const DefaultAccountRate = 1000

// Account is one account's GetSnapshotBlock quota, shared by every
// acquisition that holds it: each attempt of each snapshot waits for a
// turn, and turns come evenly spaced at the account's rate.
//
// Turns are shared max-min fairly by snapshot: the next turn goes to the
// snapshot with an attempt waiting that was served least recently. Every
// snapshot that keeps attempts waiting gets the same share; one that
// wants less than its share (a small volume near its end, one held back
// by its own quota, or a capped one) takes what it wants and leaves the
// rest to the others. Within a snapshot the lowest block index goes
// first, as at the pacer.
//
// An Account holds no goroutine: a timer runs only while attempts wait.
type Account struct {
	mu       sync.Mutex
	interval time.Duration // between turns; 0: no cap, turns are only counted
	rate     float64
	now      func() time.Time
	after    func(time.Duration, func()) // schedules a dispatch; tests replace it
	slot     time.Time                   // when the next turn comes
	armed    bool                        // a dispatch is scheduled
	live     int                         // attempts waiting, over every snapshot
	snaps    map[string]*acctSnap
	order    []*acctSnap // snaps in the order they first asked
	turns    int64       // turns given so far
	origin   time.Time   // the first turn; history counts seconds from it
	hist     []AccountSecond
	dropped  int64 // seconds of history dropped, the oldest first
}

// acctSnap is one snapshot's share of an Account.
type acctSnap struct {
	name      string
	queue     waiters // its waiting attempts, lowest index first
	live      int     // ... not canceled
	served    int64   // the turn it last had; 0: none yet
	granted   int64
	throttled int64
}

// AccountHistory bounds the seconds of history an Account keeps: an
// hour, the newest.
const AccountHistory = 3600

// AccountSecond is one second of an Account's turns: how many each
// snapshot was given in the second starting At.
type AccountSecond struct {
	At      time.Time
	Granted map[string]int64
}

// NewAccount returns an account that gives perSecond turns a second,
// evenly spaced. perSecond <= 0 caps nothing (turns are still counted);
// check a rate from outside with CheckRate first.
func NewAccount(perSecond float64) *Account {
	a := &Account{now: time.Now, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }, snaps: map[string]*acctSnap{}}
	if perSecond > 0 {
		a.rate, a.interval = perSecond, rateInterval(perSecond)
	}
	return a
}

// Rate returns the account's turns per second, 0 for no cap.
func (a *Account) Rate() float64 { return a.rate }

// Wait waits for a turn of the account for an attempt at block index of
// the snapshot name. It returns ctx's error if ctx ends first; a turn
// given is never lost to a cancellation that comes after it.
func (a *Account) Wait(ctx context.Context, name string, index int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	s := a.snap(name)
	now := a.now()
	if a.interval == 0 || (a.live == 0 && !a.slot.After(now)) {
		// Nobody waits and the turn is due: go at once.
		if a.interval > 0 {
			a.advance(now)
		}
		a.record(s, now)
		a.mu.Unlock()
		return nil
	}
	w := &waiter{index: index, ch: make(chan struct{})}
	heap.Push(&s.queue, w)
	s.live++
	a.live++
	if !a.armed {
		a.armed = true
		a.after(a.slot.Sub(now), a.dispatch)
	} else if !a.slot.After(now) {
		// The timer is late (a busy machine fires them late): give the
		// turns due now, fairly, rather than wait for it.
		a.give(now)
	}
	a.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		defer a.mu.Unlock()
		if w.granted {
			return nil
		}
		w.canceled = true
		s.live--
		a.live--
		if s.live == 0 {
			s.queue = nil // only canceled attempts left in it
		}
		return ctx.Err()
	}
}

// snap returns name's share, made on first use; a.mu is held.
func (a *Account) snap(name string) *acctSnap {
	s := a.snaps[name]
	if s == nil {
		s = &acctSnap{name: name}
		a.snaps[name] = s
		a.order = append(a.order, s)
	}
	return s
}

// dispatch gives the turns that have come, each to the snapshot served
// least recently among those with attempts waiting, and rearms itself for
// the next turn.
func (a *Account) dispatch() {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.give(now)
	if a.live == 0 {
		a.armed = false
		return
	}
	a.after(a.slot.Sub(now), a.dispatch)
}

// give gives the turns due at now, each to the snapshot served least
// recently among those with attempts waiting; a.mu is held.
func (a *Account) give(now time.Time) {
	for a.live > 0 && !a.slot.After(now) {
		s := a.next()
		w := heap.Pop(&s.queue).(*waiter)
		if w.canceled {
			continue
		}
		w.granted = true
		close(w.ch)
		s.live--
		a.live--
		a.record(s, now)
		a.advance(now)
	}
}

// accountCatchUp is how far back the account makes up turns it could not
// give on time: a timer that fires late (a busy machine fires them
// milliseconds late) would otherwise lose turns for good, and the account
// would fall short of its rate. It bounds the burst too: no more than
// rate × (t + accountCatchUp) + 1 turns in any span t, with at least one
// turn's interval of catch-up at a slow rate.
const accountCatchUp = 20 * time.Millisecond

// advance moves the next turn on by an interval after a turn given at
// now, from no further back than accountCatchUp; a.mu is held.
func (a *Account) advance(now time.Time) {
	if floor := now.Add(-max(a.interval, accountCatchUp)); a.slot.Before(floor) {
		a.slot = floor
	}
	a.slot = a.slot.Add(a.interval)
}

// next returns the snapshot with attempts waiting that was served least
// recently, the first to ask among those never served; a.mu is held and
// a.live > 0. The snapshots are few (the volumes of a case): a scan is
// cheap.
func (a *Account) next() *acctSnap {
	var best *acctSnap
	for _, s := range a.order {
		if s.live > 0 && (best == nil || s.served < best.served) {
			best = s
		}
	}
	return best
}

// record records a turn given to s at now; a.mu is held.
func (a *Account) record(s *acctSnap, now time.Time) {
	a.turns++
	s.served = a.turns
	s.granted++
	if a.origin.IsZero() {
		a.origin = now
	}
	sec := int64(max(0, now.Sub(a.origin)) / time.Second)
	last := a.dropped + int64(len(a.hist)) - 1 // the newest second kept
	switch {
	case sec > last+AccountHistory:
		// A gap longer than the history: start it again at sec.
		a.dropped, a.hist = sec, a.hist[:0]
	case sec < last:
		sec = last // a clock that stepped back counts in the newest second
	}
	for i := a.dropped + int64(len(a.hist)); i <= sec; i++ {
		a.hist = append(a.hist, AccountSecond{At: a.origin.Add(time.Duration(i) * time.Second), Granted: map[string]int64{}})
	}
	if n := len(a.hist) - AccountHistory; n > 0 {
		a.hist = append(a.hist[:0:0], a.hist[n:]...)
		a.dropped += int64(n)
	}
	a.hist[len(a.hist)-1].Granted[s.name]++
}

// Stats returns the turns given to each snapshot so far: its
// GetSnapshotBlock attempts, retries included.
func (a *Account) Stats() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int64, len(a.order))
	for _, s := range a.order {
		out[s.name] = s.granted
	}
	return out
}

// Throttles returns, for each snapshot, the attempts the service
// throttled on the account's quota (ACCOUNT_THROTTLED): the account's
// rate is above what the service allows, or other clients share it.
func (a *Account) Throttles() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int64, len(a.order))
	for _, s := range a.order {
		out[s.name] = s.throttled
	}
	return out
}

// History returns the turns given in each second since the first (the
// newest AccountHistory seconds): the throughput of each snapshot over
// time.
func (a *Account) History() []AccountSecond {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]AccountSecond, len(a.hist))
	for i, h := range a.hist {
		out[i] = AccountSecond{At: h.At, Granted: maps.Clone(h.Granted)}
	}
	return out
}

// throttled counts an ACCOUNT_THROTTLED answer to an attempt of name.
func (a *Account) throttled(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.snap(name).throttled++
}

// IsAccountThrottle reports whether err is a throttle on the account's
// quota (RequestThrottledException, reason ACCOUNT_THROTTLED), not on the
// snapshot's: the one throttle a snapshot's own limiter must not learn
// from when an Account paces the account.
func IsAccountThrottle(err error) bool {
	var t *types.RequestThrottledException
	return errors.As(err, &t) && t.Reason == types.RequestThrottledExceptionReasonAccountThrottled
}

// Share wraps next so that each attempt at a block of the snapshot name
// first waits for a turn of a.
func Share(next Fetcher, a *Account, name string) Fetcher {
	return &shared{next: next, a: a, name: name}
}

type shared struct {
	next Fetcher
	a    *Account
	name string
}

func (f *shared) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	if err := f.a.Wait(ctx, f.name, ref.Index); err != nil {
		return block.Block{}, err
	}
	b, err := f.next.Fetch(ctx, ref, buf)
	if err != nil && IsAccountThrottle(err) {
		f.a.throttled(f.name)
	}
	return b, err
}
