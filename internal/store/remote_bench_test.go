package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
)

// benchBucket keeps the journal batches (which Close reads back) and
// drops the bytes of every other object, so that the heap it samples
// every `every` requests, less what it keeps, is the writer's. Of the
// block objects it keeps a bit each: its listings name them again
// (benchData's blocks, named by name).
type benchBucket struct {
	bucket.Memory // for what the writer reads: journal batches

	mu       sync.Mutex
	kept     int64 // bytes of the objects kept
	base     uint64
	peak     uint64
	requests int
	every    int
	stored   []uint64 // a bit per block object
	name     func(i int64) string
}

// benchData is the content of block i in the benchmark.
func benchData(i int64) []byte {
	return binary.LittleEndian.AppendUint64(nil, uint64(i))
}

func (b *benchBucket) sample() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests++
	if b.requests%b.every != 0 {
		return
	}
	b.measure()
}

// measure records the live heap less the bucket's objects; b.mu is held.
func (b *benchBucket) measure() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if v := ms.HeapAlloc - min(ms.HeapAlloc, b.base+uint64(b.kept)); v > b.peak {
		b.peak = v
	}
}

func (b *benchBucket) PutNew(ctx context.Context, key string, body []byte, sum block.Sum, metadata map[string]string) error {
	b.sample()
	if !strings.Contains(key, journalPrefix) {
		if sha256.Sum256(body) != sum {
			return bucket.ErrBadDigest
		}
		if fi, _, err := block.ParseFileName(path.Base(key)); err == nil {
			b.mu.Lock()
			b.stored[fi.Index/64] |= 1 << (fi.Index % 64)
			b.mu.Unlock()
		}
		return nil
	}
	b.mu.Lock()
	b.kept += int64(len(body) + len(key))
	b.mu.Unlock()
	return b.Memory.PutNew(ctx, key, body, sum, metadata)
}

// Create hashes the object and drops its bytes (the manifest).
func (b *benchBucket) Create(ctx context.Context, key string, metadata map[string]string) (bucket.Writer, error) {
	b.sample()
	return &benchWriter{b: b, h: sha256.New()}, nil
}

type benchWriter struct {
	b    *benchBucket
	h    hash.Hash
	size int64
}

func (w *benchWriter) Write(p []byte) (int, error) {
	w.b.sample()
	w.h.Write(p)
	w.size += int64(len(p))
	return len(p), nil
}

func (w *benchWriter) Close() (int64, block.Sum, error) {
	var s block.Sum
	copy(s[:], w.h.Sum(nil))
	return w.size, s, nil
}

func (w *benchWriter) Abort() error { return nil }

func (b *benchBucket) Get(ctx context.Context, key string, max int64) ([]byte, error) {
	b.sample()
	return b.Memory.Get(ctx, key, max)
}

func (b *benchBucket) List(ctx context.Context, prefix string, max int) ([]bucket.Listed, error) {
	b.sample()
	keys, err := b.Memory.List(ctx, prefix, max)
	if err != nil {
		return nil, err
	}
	var top, leaf int64
	if _, err := fmt.Sscanf(prefix, blocksDir+"/%02d/%04d/", &top, &leaf); err == nil {
		first := (top*topSize + leaf) * leafSize
		for i := first; i < first+leafSize && i/64 < int64(len(b.stored)); i++ {
			if b.stored[i/64]&(1<<(i%64)) != 0 {
				keys = append(keys, bucket.Listed{Key: b.name(i), Size: 8})
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Key < keys[j].Key })
	return keys, nil
}

func (b *benchBucket) ListLevel(ctx context.Context, prefix string, max int) ([]bucket.Listed, []string, error) {
	b.sample()
	return b.Memory.ListLevel(ctx, prefix, max)
}

// BenchmarkRemotePeakHeap measures the S3 writer's peak heap (the
// "peak-MiB" metric, and bytes per stored block) while it stores n tiny
// blocks and writes the manifest, the bucket's own holdings excepted:
//
//	go test ./internal/store -run '^$' -bench RemotePeakHeap -benchtime 1x
func BenchmarkRemotePeakHeap(b *testing.B) {
	for _, n := range []int64{64 << 10, 512 << 10} {
		b.Run(fmt.Sprintf("blocks=%dKi", n>>10), func(b *testing.B) {
			for range b.N {
				bb := &benchBucket{every: 4096, stored: make([]uint64, (n+63)/64)}
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				bb.base = ms.HeapAlloc
				bb.kept = int64(len(bb.stored) * 8)
				meta := remoteMeta()
				meta.VolumeSizeGiB = (n + block.PerGiB - 1) / block.PerGiB
				r, err := CreateRemote(context.Background(), bb, meta, Options{})
				if err != nil {
					b.Fatal(err)
				}
				bb.name = func(i int64) string { return r.Name(i, sha256.Sum256(benchData(i))) }
				for i := range n {
					data := benchData(i)
					if err := r.Put(block.Block{Index: i, Data: data, Sum: sha256.Sum256(data)}); err != nil {
						b.Fatal(err)
					}
				}
				bb.mu.Lock()
				bb.every = 64 // Close's requests are few: sample them closely
				bb.mu.Unlock()
				res, err := r.Close()
				if err != nil {
					b.Fatal(err)
				}
				if res.Blocks != n {
					b.Fatalf("manifest of %d blocks, want %d", res.Blocks, n)
				}
				bb.mu.Lock()
				bb.measure()
				b.ReportMetric(float64(bb.peak)/(1<<20), "peak-MiB")
				b.ReportMetric(float64(bb.peak)/float64(n), "peak-B/block")
				bb.mu.Unlock()
			}
		})
	}
}
