package ebs

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

type countingFetcher struct{ n int }

func (f *countingFetcher) Fetch(ctx context.Context, ref block.Ref, buf []byte) (Block, error) {
	f.n++
	return Block{Index: ref.Index}, nil
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
