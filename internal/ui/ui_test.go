package ui

import (
	"testing"
	"time"
)

func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n    int64
		noun string
		want string
	}{
		{0, "block", "0 blocks"}, {1, "block", "1 block"}, {2, "block", "2 blocks"},
		{1, "retry", "1 retry"}, {12, "retry", "12 retries"}, {3, "day", "3 days"},
	} {
		if got := Plural(c.n, c.noun); got != c.want {
			t.Errorf("Plural(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}

// A block throttled without end: the blocks done long ago must not
// give an ETA of a few seconds.
func TestETAStalled(t *testing.T) {
	e := &ETA{Window: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	if got := e.Update(t0, 0, 100); got != "--" {
		t.Fatalf("before any progress: %q", got)
	}
	// 99 of 100 blocks done in the first 10 s.
	if got := e.Update(t0.Add(10*time.Second), 99, 1); got != "101ms" {
		t.Fatalf("at 9.9 blocks/s with 1 left: %q, want 101ms", got)
	}
	// The last one never arrives.
	for s := 11; s <= 60; s++ {
		got := e.Update(t0.Add(time.Duration(s)*time.Second), 99, 1)
		if s >= 20 && got != "stalled" {
			t.Fatalf("%d s in, nothing done for %d s: ETA %q, want stalled", s, s-10, got)
		}
	}
	// Progress resumes: an estimate again, from recent progress.
	if got := e.Update(t0.Add(61*time.Second), 100, 0); got != "0s" {
		t.Fatalf("done: %q", got)
	}
}

func TestETARecentRate(t *testing.T) {
	e := &ETA{Window: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	e.Update(t0, 0, 1000)
	e.Update(t0.Add(5*time.Second), 500, 500)  // 100/s early
	e.Update(t0.Add(20*time.Second), 510, 490) // then 10 in 15 s
	// The window reaches back to the sample at 5 s: 20 blocks in 20 s.
	if got := e.Update(t0.Add(25*time.Second), 520, 480); got != "8m0s" {
		t.Fatalf("slowed-down run: ETA %q, want 8m0s (from the recent 1 block/s)", got)
	}
}
