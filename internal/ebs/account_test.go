package ebs

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/block"
)

// testAccount is an Account on a fake clock whose dispatches the test
// runs itself: no timer ever fires, so no turn comes while waiters queue,
// however slowly the machine schedules them.
type testAccount struct {
	*Account
	c      *fakeClock
	delays []time.Duration // what each scheduled dispatch asked to wait
}

func newTestAccount(perSecond float64) *testAccount {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	ta := &testAccount{Account: NewAccount(perSecond), c: c}
	ta.now = c.now
	ta.after = func(d time.Duration, _ func()) { ta.delays = append(ta.delays, d) } // under a.mu
	return ta
}

// turn moves the clock to the next turn and dispatches it, returning how
// many turns were given.
func (ta *testAccount) turn() int64 {
	ta.mu.Lock()
	ta.c.t = ta.slot
	before := ta.turns
	ta.mu.Unlock()
	ta.dispatch()
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return ta.turns - before
}

func (a *Account) waiting() int { a.mu.Lock(); defer a.mu.Unlock(); return a.live }

// crowd starts n attempts of name waiting for turns under ctx and waits
// until they queue; each sends Wait's result on the returned channel.
func (ta *testAccount) crowd(t *testing.T, ctx context.Context, wg *sync.WaitGroup, name string, n int) <-chan error {
	t.Helper()
	out := make(chan error, n)
	base := ta.waiting()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out <- ta.Wait(ctx, name, int64(i))
		}()
	}
	waitFor(t, func() bool { return ta.waiting() == base+n })
	return out
}

// occupy takes the turns that are due (a fresh or idle account makes up
// accountCatchUp of them), so that the next attempt waits; it returns how
// many it took.
func (ta *testAccount) occupy(t *testing.T) int {
	t.Helper()
	for n := 0; ; n++ {
		ta.mu.Lock()
		due := !ta.slot.After(ta.c.t) && (ta.interval > 0 || n == 0) // uncapped: one
		ta.mu.Unlock()
		if !due {
			return n
		}
		if err := ta.Wait(context.Background(), "warm-up", 0); err != nil {
			t.Fatal(err)
		}
	}
}

// wantStats checks the turns given to each snapshot but "warm-up".
func wantStats(t *testing.T, a *Account, want map[string]int64) {
	t.Helper()
	got := a.Stats()
	delete(got, "warm-up")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("turns %v, want %v", got, want)
	}
}

// The account gives exactly one turn per interval, evenly spaced, to
// attempts of every snapshot together: 100/s is a turn each 10 ms.
func TestAccountHoldsRate(t *testing.T) {
	ta := newTestAccount(100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	start := ta.c.t
	if n := ta.occupy(t); n != 3 { // the 20 ms a fresh account makes up, and the turn due
		t.Fatalf("a fresh account gave %d turns at once, want 3", n)
	}
	ta.crowd(t, ctx, &wg, "snap-a", 60)
	ta.crowd(t, ctx, &wg, "snap-b", 60)
	for i := range 100 {
		if n := ta.turn(); n != 1 {
			t.Fatalf("turn %d gave %d turns, want 1", i, n)
		}
	}
	if got, want := ta.c.t.Sub(start), time.Second; got != want {
		t.Fatalf("100 turns after the first took until %v, want %v", got, want)
	}
	for i, d := range ta.delays {
		if want := 10 * time.Millisecond; d != want {
			t.Fatalf("dispatch %d scheduled %v ahead, want %v", i, d, want)
		}
	}
	wantStats(t, ta.Account, map[string]int64{"snap-a": 50, "snap-b": 50})
	// A dispatch 50 turns late makes up 20 ms of turns, not 50 turns.
	ta.mu.Lock()
	ta.c.t = ta.slot.Add(50 * 10 * time.Millisecond)
	ta.mu.Unlock()
	ta.dispatch()
	wantStats(t, ta.Account, map[string]int64{"snap-a": 52, "snap-b": 51})
	cancel()
	wg.Wait()
	// The history counts each second's turns by snapshot.
	h := ta.History()
	if len(h) != 2 || !h[0].At.Equal(start) || fmt.Sprint(h[0].Granted) != "map[snap-a:50 snap-b:49 warm-up:3]" ||
		fmt.Sprint(h[1].Granted) != "map[snap-a:2 snap-b:2]" {
		t.Fatalf("history %v", h)
	}
}

// Nobody waiting: an attempt goes at once; once the turns due are taken
// the next one waits for its turn, and idle time is made up no further
// back than accountCatchUp.
func TestAccountIdle(t *testing.T) {
	ta := newTestAccount(100)
	ta.occupy(t)
	ta.c.add(time.Hour)
	if n := ta.occupy(t); n != 3 { // long idle: 20 ms made up, no more
		t.Fatalf("after an hour idle %d turns went at once, want 3", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	ta.crowd(t, ctx, &wg, "snap-a", 3)
	if len(ta.delays) != 1 || ta.delays[0] != 10*time.Millisecond {
		t.Fatalf("scheduled %v, want one dispatch 10ms ahead", ta.delays)
	}
	for range 3 {
		if n := ta.turn(); n != 1 {
			t.Fatalf("a turn gave %d", n)
		}
	}
	wg.Wait()
	if ta.armed || ta.waiting() != 0 {
		t.Fatal("the account stays armed with nobody waiting")
	}
	wantStats(t, ta.Account, map[string]int64{"snap-a": 3})
}

// Unequal demand: snap-b wants a turn only every 4th turn, less than its
// third; snap-a and snap-c, always waiting, share the rest equally.
func TestAccountFairUnequalDemand(t *testing.T) {
	ta := newTestAccount(1000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	ta.occupy(t)
	ta.crowd(t, ctx, &wg, "snap-a", 200)
	ta.crowd(t, ctx, &wg, "snap-c", 200)
	for i := range 400 {
		if i%4 == 0 {
			ta.crowd(t, ctx, &wg, "snap-b", 1)
		}
		if n := ta.turn(); n != 1 {
			t.Fatalf("turn %d gave %d", i, n)
		}
	}
	wantStats(t, ta.Account, map[string]int64{"snap-a": 150, "snap-c": 150, "snap-b": 100})
	cancel()
	wg.Wait()
}

// Two snapshots with unequal queues: turns alternate while both wait;
// once the short queue is served, the other takes every turn.
func TestAccountFairTwo(t *testing.T) {
	ta := newTestAccount(1000)
	ctx := context.Background()
	var wg sync.WaitGroup
	ta.occupy(t)
	ta.crowd(t, ctx, &wg, "root", 5)
	ta.crowd(t, ctx, &wg, "data", 50)
	for range 10 {
		ta.turn()
	}
	wantStats(t, ta.Account, map[string]int64{"root": 5, "data": 5})
	for range 45 {
		ta.turn()
	}
	wantStats(t, ta.Account, map[string]int64{"root": 5, "data": 50})
	wg.Wait()
}

// Within a snapshot the lowest block index goes first.
func TestAccountLowestIndexFirst(t *testing.T) {
	ta := newTestAccount(1000)
	ta.occupy(t)
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
			if err := ta.Wait(context.Background(), "snap-a", idx); err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, idx)
			mu.Unlock()
		}()
		waitFor(t, func() bool { return ta.waiting() == i+1 })
	}
	for turn := range indexes {
		ta.turn()
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == turn+1 })
	}
	wg.Wait()
	if fmt.Sprint(order) != "[1 3 5 7 9]" {
		t.Fatalf("turns in order %v, want [1 3 5 7 9]", order)
	}
}

// A snapshot whose attempts stop waiting (canceled) gives its share to
// the others at once; its canceled attempts get no turn and report the
// cancellation, and the account forgets them.
func TestAccountStoppedSnapshotGivesItsShare(t *testing.T) {
	ta := newTestAccount(1000)
	ctx := context.Background()
	bctx, cancelB := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ta.occupy(t)
	ta.crowd(t, ctx, &wg, "snap-a", 40)
	bres := ta.crowd(t, bctx, &wg, "snap-b", 40)
	ta.crowd(t, ctx, &wg, "snap-c", 40)
	for range 30 {
		ta.turn()
	}
	wantStats(t, ta.Account, map[string]int64{"snap-a": 10, "snap-b": 10, "snap-c": 10})
	cancelB()
	waitFor(t, func() bool { return ta.waiting() == 60 })
	for range 20 {
		ta.turn()
	}
	wantStats(t, ta.Account, map[string]int64{"snap-a": 20, "snap-b": 10, "snap-c": 20})
	ta.mu.Lock()
	if q := ta.snaps["snap-b"]; q.live != 0 || q.queue != nil {
		t.Errorf("snap-b's canceled attempts are still queued: %d live, %d queued", q.live, len(q.queue))
	}
	ta.mu.Unlock()
	for range 40 {
		ta.turn()
	}
	wg.Wait()
	var ok, canceled int
	for range 40 {
		switch err := <-bres; {
		case err == nil:
			ok++
		case errors.Is(err, context.Canceled):
			canceled++
		default:
			t.Fatal(err)
		}
	}
	if ok != 10 || canceled != 30 {
		t.Fatalf("snap-b: %d turns, %d canceled; want 10 and 30", ok, canceled)
	}
	wantStats(t, ta.Account, map[string]int64{"snap-a": 40, "snap-b": 10, "snap-c": 40})
	if ta.armed {
		t.Fatal("armed with nobody waiting")
	}
}

// A canceled wait returns the context's error; one already canceled does
// not queue; the turn then goes to the next waiter.
func TestAccountCancel(t *testing.T) {
	ta := newTestAccount(100)
	ta.occupy(t)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ta.Wait(done, "snap-a", 0); !errors.Is(err, context.Canceled) || ta.waiting() != 0 {
		t.Fatalf("a canceled context: %v, %d waiting", err, ta.waiting())
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	a := ta.crowd(t, ctx, &wg, "snap-a", 1)
	b := ta.crowd(t, context.Background(), &wg, "snap-b", 1)
	cancel()
	if err := <-a; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled wait: %v", err)
	}
	if n := ta.turn(); n != 1 {
		t.Fatalf("a turn gave %d", n)
	}
	if err := <-b; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	wantStats(t, ta.Account, map[string]int64{"snap-a": 0, "snap-b": 1})
}

// With no cap, attempts never wait; their turns are still counted.
func TestAccountUncapped(t *testing.T) {
	for _, rate := range []float64{0, -1} {
		a := NewAccount(rate)
		for i := range 1000 {
			if err := a.Wait(context.Background(), "snap-a", int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		if a.Rate() != 0 || a.Stats()["snap-a"] != 1000 {
			t.Fatalf("rate %v: %v", rate, a.Stats())
		}
	}
}

// The history keeps the newest AccountHistory seconds and starts again
// after a longer gap.
func TestAccountHistoryBounded(t *testing.T) {
	ta := newTestAccount(0)
	start := ta.c.t
	for range AccountHistory + 10 {
		ta.occupy(t)
		ta.c.add(time.Second)
	}
	h := ta.History()
	if len(h) != AccountHistory || !h[0].At.Equal(start.Add(10*time.Second)) || h[len(h)-1].Granted["warm-up"] != 1 {
		t.Fatalf("%d seconds from %v", len(h), h[0].At)
	}
	ta.c.add(10 * AccountHistory * time.Second)
	ta.occupy(t)
	h = ta.History()
	if len(h) != 1 || !h[0].At.Equal(start.Add(11*AccountHistory*time.Second+10*time.Second)) {
		t.Fatalf("after a long gap: %d seconds from %v", len(h), h[0].At)
	}
}

// On the real clock, attempts of several snapshots, some canceled, all
// return, and the account leaves no goroutine or timer behind.
func TestAccountNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	a := NewAccount(5000)
	var wg sync.WaitGroup
	for s := range 4 {
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%3)*time.Millisecond)
				defer cancel()
				if i%3 == 0 {
					ctx = context.Background()
				}
				a.Wait(ctx, fmt.Sprintf("snap-%d", s), int64(i))
			}()
		}
	}
	wg.Wait()
	waitFor(t, func() bool { a.mu.Lock(); defer a.mu.Unlock(); return !a.armed && a.live == 0 })
	waitFor(t, func() bool { return runtime.NumGoroutine() <= base })
	var total int64
	for _, n := range a.Stats() {
		total += n
	}
	if total < 4*17 || total > 200 { // every uncanceled attempt had its turn
		t.Fatalf("%d turns", total)
	}
}

// In the fetch stack, each attempt, retries included, waits for the
// account's turn; an ACCOUNT_THROTTLED answer teaches the snapshot's
// limiter nothing and is counted by the account, while a
// RESOURCE_LEVEL_THROTTLE is the limiter's to learn from.
func TestFetcherSharesAccount(t *testing.T) {
	acct := &types.RequestThrottledException{Message: aws.String("slow down"), Reason: types.RequestThrottledExceptionReasonAccountThrottled}
	res := &types.RequestThrottledException{Message: aws.String("slow down"), Reason: types.RequestThrottledExceptionReasonResourceLevelThrottle}
	api := &flakyAPI{pageSize: 10, getErrs: map[int32][]error{1: {acct, acct, res}}}
	snap := &Snapshot{API: api, ID: "snap-a", Policy: Policy{ThrottleBase: time.Microsecond}, Stats: &Stats{}}
	a := NewAccount(0)
	l := NewLimiter(8)
	f := NewFetcher(snap, FetchOptions{Limiter: l, Account: a, Name: "snap-a"})
	buf := make([]byte, block.Size)
	for i := range int64(3) {
		if _, err := f.Fetch(context.Background(), block.Ref{Index: i, Token: "fresh"}, buf); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Stats()["snap-a"]; got != 6 {
		t.Fatalf("%d turns for 3 blocks and 3 retries, want 6", got)
	}
	if got := a.Throttles()["snap-a"]; got != 1+1 {
		t.Fatalf("%d account throttles counted, want 2", got)
	}
	l.mu.Lock()
	nthr, ok := l.nthr, l.ok
	l.mu.Unlock()
	if nthr != 1 || ok != 3 {
		t.Fatalf("the limiter learned %d throttles and %d successes, want 1 (the snapshot's) and 3", nthr, ok)
	}
	// Without an account, the limiter learns from every throttle.
	api = &flakyAPI{pageSize: 10, getErrs: map[int32][]error{1: {acct, acct, res}}}
	snap.API = api
	l = NewLimiter(8)
	f = NewFetcher(snap, FetchOptions{Limiter: l})
	if _, err := f.Fetch(context.Background(), block.Ref{Index: 1, Token: "fresh"}, buf); err != nil {
		t.Fatal(err)
	}
	if l.nthr != 3 {
		t.Fatalf("without an account the limiter learned %d throttles, want 3", l.nthr)
	}
}

// When the timer is late, an attempt that arrives with a turn due has
// that turn given at once, to whoever's turn it is, without the timer.
func TestAccountLateTimer(t *testing.T) {
	ta := newTestAccount(100)
	ta.occupy(t)
	var wg sync.WaitGroup
	ctx := context.Background()
	ta.crowd(t, ctx, &wg, "snap-a", 2)
	ta.mu.Lock()
	ta.c.t = ta.slot.Add(5 * time.Millisecond) // due, and the timer has not fired
	ta.mu.Unlock()
	wg.Add(1)
	go func() { defer wg.Done(); ta.Wait(ctx, "snap-b", 0) }()
	waitFor(t, func() bool { return ta.Stats()["snap-a"] == 1 && ta.waiting() == 2 })
	wantStats(t, ta.Account, map[string]int64{"snap-a": 1, "snap-b": 0})
	ta.turn()
	ta.turn()
	wg.Wait()
	wantStats(t, ta.Account, map[string]int64{"snap-a": 2, "snap-b": 1})
	if len(ta.delays) != 2 {
		t.Fatalf("%d dispatches scheduled, want 2 (at the first wait, and after the next turn)", len(ta.delays))
	}
}
