package emulator

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// gets tries n GetSnapshotBlocks of snap at one instant and returns how
// many were admitted and why the others were not.
func gets(l *limiter, snap string, at time.Time, n int) (ok int, why map[string]int) {
	why = map[string]int{}
	for range n {
		if reason, admitted := l.allowGet(snap, at); admitted {
			ok++
		} else {
			why[reason]++
		}
	}
	return ok, why
}

func newLimiter(perSnap, perAcct float64, b Burst) *limiter {
	l := &limiter{}
	l.set(perSnap, perAcct, 0, b, Burst{})
	return l
}

// TestBucketBurstThenRate: a bucket of depth 50 at 500/s admits 50 at once,
// then exactly one request every 2 ms, however many ask; the depth given
// as a time (100 ms of 500/s) is the same bucket.
func TestBucketBurstThenRate(t *testing.T) {
	for _, b := range []Burst{{Requests: 50}, {Time: 100 * time.Millisecond}} {
		t.Run(b.String(), func(t *testing.T) {
			l := newLimiter(500, 0, b)
			if ok, why := gets(l, "snap-0a", t0, 60); ok != 50 || why[reasonResourceThrottled] != 10 {
				t.Fatalf("at once: %d admitted, %v; want 50, then 10 %s", ok, why, reasonResourceThrottled)
			}
			total := 0
			for ms := 1; ms <= 1000; ms++ {
				ok, _ := gets(l, "snap-0a", t0.Add(time.Duration(ms)*time.Millisecond), 3)
				want := 0
				if ms%2 == 0 {
					want = 1
				}
				if ok != want {
					t.Fatalf("at %d ms: %d of 3 admitted, want %d", ms, ok, want)
				}
				total += ok
			}
			if total != 500 {
				t.Errorf("over the next second: %d admitted, want 500", total)
			}
			// A quiet spell refills the bucket to its depth, no further.
			if ok, _ := gets(l, "snap-0a", t0.Add(time.Hour), 80); ok != 50 {
				t.Errorf("after an hour: %d of 80 admitted, want 50", ok)
			}
		})
	}
}

// TestBucketDepthOneIsSmooth: depth 1 admits one request, then the next no
// sooner than 1/rate later, and never more than one after a quiet spell.
func TestBucketDepthOneIsSmooth(t *testing.T) {
	l := newLimiter(500, 0, Burst{Requests: 1})
	steps := []struct {
		at       time.Duration
		tries    int
		admitted int
	}{
		{0, 5, 1},
		{time.Millisecond, 5, 0},
		{2*time.Millisecond - time.Microsecond, 5, 0},
		{2 * time.Millisecond, 5, 1},
		{3 * time.Millisecond, 5, 0},
		{4 * time.Millisecond, 5, 1},
		{time.Hour, 5, 1},
		{time.Hour + time.Millisecond, 5, 0},
		{time.Hour + 2*time.Millisecond, 5, 1},
	}
	for _, s := range steps {
		if ok, _ := gets(l, "snap-0a", t0.Add(s.at), s.tries); ok != s.admitted {
			t.Errorf("at %v: %d of %d admitted, want %d", s.at, ok, s.tries, s.admitted)
		}
	}
}

// TestBucketRejectedTakesNothing: a thousand throttled requests between two
// refills leave the bucket as it was, so the next token is on time.
func TestBucketRejectedTakesNothing(t *testing.T) {
	l := newLimiter(10, 0, Burst{Requests: 1})
	if ok, _ := gets(l, "snap-0a", t0, 1); ok != 1 {
		t.Fatal("the first request was refused")
	}
	for ms := 1; ms < 100; ms++ {
		if ok, _ := gets(l, "snap-0a", t0.Add(time.Duration(ms)*time.Millisecond), 10); ok != 0 {
			t.Fatalf("at %d ms: %d admitted, want 0", ms, ok)
		}
	}
	if ok, _ := gets(l, "snap-0a", t0.Add(100*time.Millisecond), 3); ok != 1 {
		t.Errorf("at 100 ms, after 990 refusals: %d of 3 admitted, want 1", ok)
	}
}

// TestBucketRoundingAdmitsOnTime: ten refills of a tenth of a token add up
// to 0.9999999999999999 in floating point, which must still admit.
func TestBucketRoundingAdmitsOnTime(t *testing.T) {
	l := newLimiter(10, 0, Burst{Requests: 1})
	gets(l, "snap-0a", t0, 1)
	for ms := 10; ms < 100; ms += 10 {
		if ok, _ := gets(l, "snap-0a", t0.Add(time.Duration(ms)*time.Millisecond), 1); ok != 0 {
			t.Fatalf("at %d ms: admitted early", ms)
		}
	}
	if ok, _ := gets(l, "snap-0a", t0.Add(100*time.Millisecond), 2); ok != 1 {
		t.Errorf("at 100 ms: %d of 2 admitted, want 1", ok)
	}
}

// TestBucketClockStepsBack: time the clock steps back over is not earned
// twice.
func TestBucketClockStepsBack(t *testing.T) {
	l := newLimiter(500, 0, Burst{Requests: 50})
	gets(l, "snap-0a", t0, 50)
	if ok, _ := gets(l, "snap-0a", t0.Add(-time.Second), 5); ok != 0 {
		t.Errorf("a second back: %d admitted, want 0", ok)
	}
	if ok, _ := gets(l, "snap-0a", t0.Add(2*time.Millisecond), 5); ok != 1 {
		t.Errorf("2 ms after the burst: %d admitted, want 1", ok)
	}
}

// TestBucketsPerSnapshotAndAccount: every snapshot has its own bucket, the
// account one more, and a request refused by either takes nothing from the
// other.
func TestBucketsPerSnapshotAndAccount(t *testing.T) {
	// One second's worth each: 10 per snapshot, 100 for the account.
	l := newLimiter(10, 100, Burst{})
	// A snapshot's refusals take nothing from the account: ten snapshots
	// asking 20 each get 10 each, and the account's 100 are spent.
	for i := range 10 {
		snap := fmt.Sprintf("snap-0b%d", i)
		if ok, why := gets(l, snap, t0, 20); ok != 10 || why[reasonResourceThrottled] != 10 {
			t.Fatalf("%s: %d admitted, %v; want 10, then 10 %s", snap, ok, why, reasonResourceThrottled)
		}
	}
	// The account's refusals take nothing from the snapshot.
	if ok, why := gets(l, "snap-0a", t0, 5); ok != 0 || why[reasonAccountThrottled] != 5 {
		t.Fatalf("snap-0a with the account spent: %d admitted, %v; want 5 %s", ok, why, reasonAccountThrottled)
	}
	// 100 ms later the account has 10 again and snap-0a still its 10.
	if ok, _ := gets(l, "snap-0a", t0.Add(100*time.Millisecond), 20); ok != 10 {
		t.Errorf("snap-0a 100 ms later: %d of 20 admitted, want 10", ok)
	}
}

// TestBucketDepth pins how a Burst becomes a depth, and the clamp to 1.
func TestBucketDepth(t *testing.T) {
	for _, c := range []struct {
		b    Burst
		rate float64
		want float64
	}{
		{Burst{}, 500, 500},
		{Burst{}, 0.5, 1},
		{Burst{Requests: 50}, 500, 50},
		{Burst{Requests: 0.5}, 500, 1},
		{Burst{Time: 100 * time.Millisecond}, 500, 50},
		{Burst{Time: 100 * time.Millisecond}, 1000, 100},
		{Burst{Time: time.Millisecond}, 500, 1},
		{Burst{Requests: 7, Time: time.Second}, 500, 7},
	} {
		if got := c.b.Depth(c.rate); got != c.want {
			t.Errorf("%+v at %v/s: depth %v, want %v", c.b, c.rate, got, c.want)
		}
	}
	// A depth below 1 admits exactly like depth 1.
	l := newLimiter(10, 0, Burst{Time: time.Millisecond})
	if ok, _ := gets(l, "snap-0a", t0, 5); ok != 1 {
		t.Errorf("depth 0.01 clamped: %d of 5 admitted, want 1", ok)
	}
	if ok, _ := gets(l, "snap-0a", t0.Add(100*time.Millisecond), 5); ok != 1 {
		t.Errorf("depth 0.01 clamped, 100 ms later: %d of 5 admitted, want 1", ok)
	}
}

// TestListBuckets: each List operation has its own bucket of the list
// depth.
func TestListBuckets(t *testing.T) {
	l := &limiter{}
	l.set(0, 0, 50, Burst{}, Burst{Requests: 2})
	for _, op := range []byte{'s', 'c'} {
		n := 0
		for range 5 {
			if l.allowList(op, t0) {
				n++
			}
		}
		if n != 2 {
			t.Errorf("op %c: %d of 5 admitted, want 2", op, n)
		}
	}
	if !l.allowList('s', t0.Add(20*time.Millisecond)) || l.allowList('s', t0.Add(20*time.Millisecond)) {
		t.Error("20 ms at 50/s: want exactly one more list")
	}
}

func TestParseBurst(t *testing.T) {
	for in, want := range map[string]Burst{
		"1":     {Requests: 1},
		"50":    {Requests: 50},
		"2.5":   {Requests: 2.5},
		"100ms": {Time: 100 * time.Millisecond},
		"0.1s":  {Time: 100 * time.Millisecond},
		"1s":    {Time: time.Second},
	} {
		got, err := ParseBurst(in)
		if err != nil || got != want {
			t.Errorf("ParseBurst(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, err := ParseBurst(got.String()); err != nil || back != got {
			t.Errorf("ParseBurst(%q.String() = %q) = %+v, %v", in, got.String(), back, err)
		}
	}
	for _, in := range []string{"", "0", "0.5", "-1", "NaN", "Inf", "+Inf", "0s", "-100ms", "fast", "1x"} {
		if b, err := ParseBurst(in); err == nil {
			t.Errorf("ParseBurst(%q) = %+v, want an error", in, b)
		}
	}
	if got := (Burst{}).String(); got != "1s" {
		t.Errorf("zero Burst renders %q, want 1s", got)
	}
}
