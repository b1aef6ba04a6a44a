package live

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// BenchmarkSequentialRead reads 64 MiB of a fully allocated snapshot
// front to back in 1 MiB reads, as a copy or a hash of the volume
// would, from an emulator answering each request after 50 ms; with and
// without readahead.
//
//	go test -run '^$' -bench SequentialRead -benchtime 1x ./internal/live
func BenchmarkSequentialRead(b *testing.B) {
	for _, c := range []struct {
		name      string
		readahead int
	}{{"readahead", 0}, {"none", -1}} {
		b.Run(c.name, func(b *testing.B) {
			srv, endpoint := emulatortest.Start(b, emulator.Options{Latency: 50 * time.Millisecond})
			if err := srv.AddSynthetic(synthID + "=1GiB,1,5"); err != nil {
				b.Fatal(err)
			}
			e := &env{srv: srv, endpoint: endpoint}
			const total, chunk = 64 << 20, 1 << 20
			p := make([]byte, chunk)
			var s Stats
			b.SetBytes(total)
			for b.Loop() {
				snap := e.snapshot(b, synthID)
				v, err := Open(context.Background(), snap, stack(snap), Options{Readahead: c.readahead})
				if err != nil {
					b.Fatal(err)
				}
				for off := int64(0); off < total; off += chunk {
					if _, err := v.ReadAt(p, off); err != nil {
						b.Fatal(err)
					}
				}
				v.settle()
				s = v.Stats()
				v.Close()
			}
			b.Logf("%+v", s)
			b.ReportMetric(float64(s.GetCalls), "gets/op")
			b.ReportMetric(float64(s.GetCalls-total/block.Size), "extra-gets/op")
		})
	}
}

// BenchmarkRanges lists a whole fully allocated snapshot through Ranges
// (a full listing: one List call per 10,000 blocks) and reports the calls
// and the peak Go heap: the allocation index of a fully allocated volume
// is a shared slice per chunk, and no token is kept.
//
//	go test -run '^$' -bench 'Ranges/4TiB' -benchtime 1x ./internal/live
func BenchmarkRanges(b *testing.B) {
	for _, size := range []string{"4TiB", "16TiB"} {
		b.Run(size, func(b *testing.B) {
			srv, endpoint := emulatortest.Start(b, emulator.Options{})
			if err := srv.AddSynthetic(synthID + "=" + size + ",1,1"); err != nil {
				b.Fatal(err)
			}
			e := &env{srv: srv, endpoint: endpoint}
			runtime.GC()
			peak := heapPeak()
			var s Stats
			var n int
			for b.Loop() {
				snap := e.snapshot(b, synthID)
				v, err := Open(context.Background(), snap, nil, Options{})
				if err != nil {
					b.Fatal(err)
				}
				r, err := v.Ranges()
				if err != nil {
					b.Fatal(err)
				}
				n, s = len(r), v.Stats()
				v.Close()
			}
			heap := peak()
			b.ReportMetric(float64(s.ListCalls), "lists/op")
			b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
			b.Logf("%d extents, %d of %d chunks listed in %d Lists; peak heap %d MiB", n, s.ListedChunks, s.Chunks, s.ListCalls, heap>>20)
		})
	}
}
