package ebs

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// bucketServer is a GetSnapshotBlock stand-in with a token bucket (rate
// per second, depth tokens, starting full) and a fixed latency, split
// evenly before and after admission; it returns no data.
type bucketServer struct {
	latency      time.Duration
	rate, depth  float64
	mu           sync.Mutex
	tokens       float64
	last         time.Time
	ok, throttle atomic.Int64
}

func (s *bucketServer) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	time.Sleep(s.latency / 2)
	s.mu.Lock()
	now := time.Now()
	if s.last.IsZero() {
		s.tokens, s.last = s.depth, now
	}
	s.tokens = min(s.depth, s.tokens+now.Sub(s.last).Seconds()*s.rate)
	s.last = now
	admit := s.tokens >= 1
	if admit {
		s.tokens--
	}
	s.mu.Unlock()
	time.Sleep(s.latency / 2)
	if !admit {
		s.throttle.Add(1)
		return block.Block{}, errThrottle
	}
	s.ok.Add(1)
	return block.Block{Index: ref.Index}, nil
}

// BenchmarkLimiterHoldsQuota measures the fraction of a token bucket's
// rate that Retry(Limit(...)) sustains with 128 workers, and the
// throttles per 1,000 attempts, for bucket depths of none (one token), a
// tenth of a second and a second. It measures; it asserts nothing.
//
//	go test -run '^$' -bench LimiterHoldsQuota -benchtime 1x ./internal/ebs
func BenchmarkLimiterHoldsQuota(b *testing.B) {
	for _, c := range []struct {
		latency time.Duration
		rate    float64
	}{{20 * time.Millisecond, 500}, {100 * time.Millisecond, 1000}} {
		for _, burst := range []float64{0, 0.1, 1} {
			name := fmt.Sprintf("%v-%g-burst%gs", c.latency, c.rate, burst)
			b.Run(name, func(b *testing.B) {
				for range b.N {
					frac, thr := holdQuota(c.latency, c.rate, max(1, burst*c.rate), int(c.rate*16))
					b.ReportMetric(frac, "quota-fraction")
					b.ReportMetric(thr, "throttles/1000")
				}
			})
		}
	}
}

func holdQuota(latency time.Duration, rate, depth float64, blocks int) (frac, throttlesPerK float64) {
	s := &bucketServer{latency: latency, rate: rate, depth: depth}
	l := NewLimiter(128)
	f := Retry(Limit(s, l), Policy{}, &Stats{}, nil)
	refs := make(chan block.Ref)
	var wg sync.WaitGroup
	start := time.Now()
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range refs {
				f.Fetch(context.Background(), r, nil)
			}
		}()
	}
	for i := range blocks {
		refs <- block.Ref{Index: int64(i)}
	}
	close(refs)
	wg.Wait()
	el := time.Since(start).Seconds()
	ok, thr := s.ok.Load(), s.throttle.Load()
	return float64(ok) / el / rate, 1000 * float64(thr) / float64(ok+thr)
}
