package raw

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// BenchmarkListedArrival feeds a ListedWriter the way acquire does: a
// lister announces 2,048 blocks (1 GiB, all data) in order and hands them
// to 128 workers at a paced rate; each block takes 20 ms, and a fraction
// of them a retry of 50 to 800 ms more, so they land out of order. It
// reports, per window size: the most copies held, the share of blocks
// the hasher had to read back, the longest WriteBlockAt (it never waits
// for other blocks, so this is one pwrite), how long the hashes took to
// be final after the last block landed, and the fraction of the paced
// rate the writes kept. The rows "hash=none" write the same blocks with
// no hash, no copy and no read-back: their WriteBlockAt times are the
// machine's (pwrite, scheduling) for comparison. Run it alone, for
// example:
//
//	go test -run '^$' -bench ListedArrival -benchtime 1x ./internal/image/raw
func BenchmarkListedArrival(b *testing.B) {
	const (
		blocks  = 2048
		workers = 128
		latency = 20 * time.Millisecond
	)
	data := fastBlock(1, block.Size)
	for _, sc := range []struct {
		name  string
		rate  float64 // blocks per second
		retry float64 // fraction of blocks retried
	}{
		{"500/s", 500, 0},
		{"500/s-retry5%", 500, 0.05},
		{"1000/s", 1000, 0},
		{"1000/s-retry5%", 1000, 0.05},
		{"1000/s-retry20%", 1000, 0.20},
	} {
		for _, window := range []int{0, 16, 32, 64, 128} {
			name := fmt.Sprintf("%s/window=%d", sc.name, window)
			o := Options{Hashes: allHashes}
			if window == 0 {
				name, o = sc.name+"/hash=none", Options{}
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(blocks * block.Size)
				for b.Loop() {
					path := filepath.Join(b.TempDir(), "disk.raw")
					w, err := CreateListed(path, blocks*block.Size, o, window)
					if err != nil {
						b.Fatal(err)
					}
					rng := rand.New(rand.NewPCG(uint64(window), 1))
					delay := make([]time.Duration, blocks)
					for i := range delay {
						delay[i] = latency
						if rng.Float64() < sc.retry {
							delay[i] += 50*time.Millisecond + time.Duration(rng.Int64N(int64(750*time.Millisecond)))
						}
					}
					work := make(chan int64, 2*workers)
					var (
						mu       sync.Mutex
						puts     []time.Duration
						lastLand time.Time
					)
					start := time.Now()
					go func() {
						for i := range int64(blocks) {
							time.Sleep(time.Until(start.Add(time.Duration(float64(i) / sc.rate * float64(time.Second)))))
							w.Listed(i)
							work <- i
						}
						close(work)
					}()
					var wg sync.WaitGroup
					for range workers {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := range work {
								time.Sleep(delay[i])
								t0 := time.Now()
								if err := w.WriteBlockAt(i, data); err != nil {
									b.Error(err)
								}
								t1 := time.Now()
								mu.Lock()
								puts = append(puts, t1.Sub(t0))
								if t1.After(lastLand) {
									lastLand = t1
								}
								mu.Unlock()
							}
						}()
					}
					wg.Wait()
					if _, err := w.Close(); err != nil {
						b.Fatal(err)
					}
					st := w.Stats()
					b.ReportMetric(float64(st.PeakCopies), "peak-copies")
					b.ReportMetric(100*float64(st.ReadBack)/blocks, "%read-back")
					slices.Sort(puts)
					b.ReportMetric(float64(puts[len(puts)-1].Microseconds())/1000, "max-put-ms")
					b.ReportMetric(float64(puts[len(puts)*99/100].Microseconds())/1000, "p99-put-ms")
					b.ReportMetric(float64(max(0, w.hashedAt.Sub(lastLand).Milliseconds())), "hash-tail-ms")
					b.ReportMetric(blocks/sc.rate/lastLand.Sub(start).Seconds(), "of-rate")
				}
			})
		}
	}
}
