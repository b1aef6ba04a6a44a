package live

import (
	"context"
	"sort"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// SumLog records the AWS checksum of every block a fetch stack fetched
// and verified, so that a record can name each block read with the
// SHA-256 AWS served it with. It is safe for concurrent use.
type SumLog struct {
	mu   sync.Mutex
	sums map[int64]block.Sum
}

// Record returns a Fetcher that fetches through f and logs, in l, the
// index and checksum of every block f returns verified.
func (l *SumLog) Record(f ebs.Fetcher) ebs.Fetcher {
	return sumRecorder{f: f, log: l}
}

// Sums returns the blocks logged and their checksums, by index.
func (l *SumLog) Sums() map[int64]block.Sum {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int64]block.Sum, len(l.sums))
	for i, s := range l.sums {
		out[i] = s
	}
	return out
}

// Indexes returns the blocks logged, ascending.
func (l *SumLog) Indexes() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int64, 0, len(l.sums))
	for i := range l.sums {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}

type sumRecorder struct {
	f   ebs.Fetcher
	log *SumLog
}

func (r sumRecorder) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	b, err := r.f.Fetch(ctx, ref, buf)
	if err != nil {
		return b, err
	}
	r.log.mu.Lock()
	if r.log.sums == nil {
		r.log.sums = map[int64]block.Sum{}
	}
	r.log.sums[b.Index] = b.Sum
	r.log.mu.Unlock()
	return b, nil
}
