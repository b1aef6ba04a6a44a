package ebs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ebsimager/ebsimager/internal/block"
)

// scripted fails each call with the next error of its script, then succeeds.
type scripted struct {
	mu     sync.Mutex
	script []error
	tokens []string
}

func (s *scripted) Fetch(_ context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = append(s.tokens, ref.Token)
	if len(s.script) > 0 {
		err := s.script[0]
		s.script = s.script[1:]
		return block.Block{}, err
	}
	return block.Block{Index: ref.Index, Data: buf[:1]}, nil
}

type fakeRefresher struct{ calls int }

func (f *fakeRefresher) Refresh(_ context.Context, stale block.Ref) (block.Ref, error) {
	f.calls++
	return block.Ref{Index: stale.Index, Token: fmt.Sprintf("fresh%d", f.calls)}, nil
}

func noSleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

func status(code int) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("x")}}
}

var (
	errThrottle = &types.RequestThrottledException{Message: new(string), Reason: types.RequestThrottledExceptionReasonResourceLevelThrottle}
	errToken    = &types.ValidationException{Reason: types.ValidationExceptionReasonInvalidBlockToken}
	errDenied   = &types.AccessDeniedException{Reason: types.AccessDeniedExceptionReasonDependencyAccessDenied}
	errCorrupt  = &VerifyError{Index: 1, Reason: "x"}
)

func TestKindOf(t *testing.T) {
	for err, want := range map[error]Kind{
		errThrottle:                            KindThrottle,
		errToken:                               KindBlockToken,
		errDenied:                              KindAccessDenied,
		errCorrupt:                             KindCorrupt,
		status(503):                            KindTransient,
		status(429):                            KindThrottle,
		&types.InternalServerException{}:       KindTransient,
		&types.ResourceNotFoundException{}:     KindNotFound,
		&types.ServiceQuotaExceededException{}: KindQuota,
		&types.ValidationException{Reason: "OTHER"}:      KindInvalid,
		fmt.Errorf("wrapped: %w", context.Canceled):      KindCanceled,
		fmt.Errorf("reading: %w", errors.ErrUnsupported): KindOther,
	} {
		if got := KindOf(fmt.Errorf("op: %w", err)); got != want {
			t.Errorf("KindOf(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestRetry(t *testing.T) {
	p := Policy{Sleep: noSleep, MaxAttempts: 3}
	for name, tc := range map[string]struct {
		script  []error
		wantErr bool
		calls   int
		refresh int
		lastTok string
	}{
		"transient then ok":      {script: []error{status(500), errCorrupt}, calls: 3, lastTok: "t"},
		"exhausted":              {script: []error{status(500), status(502), status(503), status(504)}, wantErr: true, calls: 3},
		"throttles are separate": {script: []error{errThrottle, errThrottle, errThrottle, status(500)}, calls: 5, lastTok: "t"},
		"permanent at once":      {script: []error{errDenied, status(500)}, wantErr: true, calls: 1},
		"stale token refreshed":  {script: []error{errToken}, calls: 2, refresh: 1, lastTok: "fresh1"},
	} {
		t.Run(name, func(t *testing.T) {
			s := &scripted{script: tc.script}
			r := &fakeRefresher{}
			stats := &Stats{}
			_, err := Retry(s, p, stats, r).Fetch(context.Background(), block.Ref{Index: 1, Token: "t"}, make([]byte, 1))
			if (err != nil) != tc.wantErr || len(s.tokens) != tc.calls || r.calls != tc.refresh {
				t.Fatalf("err %v, calls %d (want %d), refreshes %d", err, len(s.tokens), tc.calls, r.calls)
			}
			if !tc.wantErr && s.tokens[len(s.tokens)-1] != tc.lastTok {
				t.Fatalf("last token %q, want %q", s.tokens[len(s.tokens)-1], tc.lastTok)
			}
			if got := stats.Counts().TotalRetries(); got != int64(tc.calls-1) {
				t.Fatalf("retries counted %d, want %d", got, tc.calls-1)
			}
		})
	}
}

func TestDelayBounds(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second, ThrottleBase: 10 * time.Millisecond}
	for n := 1; n < 30; n++ {
		d := p.Delay(KindTransient, n)
		full := min(time.Second, 100*time.Millisecond<<min(n-1, 20))
		if d < full/2 || d > full {
			t.Fatalf("delay %d = %v, want in [%v, %v]", n, d, full/2, full)
		}
	}
	if d := p.Delay(KindThrottle, 1); d < 5*time.Millisecond || d > 10*time.Millisecond {
		t.Fatalf("first throttle delay %v", d)
	}
}

// quotaFetcher throttles any attempt beyond cap in flight, like a server
// at its quota, and records the largest concurrency it saw.
type quotaFetcher struct {
	cap, inflight, peak atomic.Int64
}

func (q *quotaFetcher) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	n := q.inflight.Add(1)
	defer q.inflight.Add(-1)
	for {
		p := q.peak.Load()
		if n <= p || q.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(2 * time.Millisecond)
	if n > q.cap.Load() {
		return block.Block{}, errThrottle
	}
	return block.Block{Index: ref.Index}, nil
}

func TestLimiterConverges(t *testing.T) {
	q := &quotaFetcher{}
	q.cap.Store(12)
	l := NewLimiter(40)
	f := Limit(q, l)
	var wg sync.WaitGroup
	var ok, throttled atomic.Int64
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				if _, err := f.Fetch(context.Background(), block.Ref{}, nil); err == nil {
					ok.Add(1)
				} else {
					throttled.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if q.peak.Load() > 40 {
		t.Fatalf("peak concurrency %d above the cap of 40", q.peak.Load())
	}
	// A service that throttles on concurrency: the limiter settles where
	// most attempts succeed, without collapsing to a trickle.
	if lim := l.Limit(); lim < 6 {
		t.Fatalf("window collapsed to %d", lim)
	}
	if n, thr := ok.Load(), throttled.Load(); n+thr != 64*150 || float64(thr) > 0.25*float64(n+thr) {
		t.Fatalf("%d succeeded, %d throttled: want most of %d attempts to succeed", n, thr, 64*150)
	}
}

func TestLimiterCap(t *testing.T) {
	q := &quotaFetcher{}
	q.cap.Store(1 << 30)
	l := NewLimiter(5)
	f := Limit(q, l)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				f.Fetch(context.Background(), block.Ref{}, nil)
			}
		}()
	}
	wg.Wait()
	if q.peak.Load() > 5 {
		t.Fatalf("peak concurrency %d above --workers 5", q.peak.Load())
	}
}
