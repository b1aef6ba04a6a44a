package live

import (
	"context"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
)

const sampleID = "snap-00000000000000b03"

// inspect sees the same layout in the sample disk read live as in its raw
// image, and reads only the blocks its probes touch.
func TestInspectMatchesRawImage(t *testing.T) {
	path, err := sampledisk.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, emulator.Options{})
	if err := e.srv.AddRawImage(sampleID, path, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, err := inspect.Inspect(f, sampledisk.Size)
	if err != nil {
		t.Fatal(err)
	}
	v := e.open(t, sampleID, Options{})
	got, err := inspect.Inspect(v, v.Size())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("layout read live\n%+v\nfrom the raw image\n%+v", got, want)
	}
	if len(got.Partitions) != 2 {
		t.Fatalf("%d partitions, want the sample's 2", len(got.Partitions))
	}
	v.settle()
	s := v.Stats()
	t.Logf("inspect of the sample disk read live: %d Lists, %d Gets, %d blocks fetched (%d ahead), %d cache hits, %d holes",
		s.ListCalls, s.GetCalls, s.Fetched, s.Readahead, s.Hits, s.Holes)
	if s.Fetched > 32 {
		t.Fatalf("inspect fetched %d blocks of the sample disk: more than its probes need", s.Fetched)
	}
}

// BenchmarkInspectLive16TiB inspects a fully allocated 16 TiB synthetic
// snapshot read live (33,554,432 blocks; a full listing is 3,356 List
// calls) and reports the requests, the bytes fetched, the peak Go heap
// and the process's peak RSS (VmHWM, emulator included: an upper bound).
//
//	go test -run '^$' -bench InspectLive16TiB -benchtime 1x ./internal/live
func BenchmarkInspectLive16TiB(b *testing.B) {
	benchInspect(b, func(srv *emulator.Server) (string, error) {
		return synthID, srv.AddSynthetic(synthID + "=16TiB,1,1")
	})
}

// BenchmarkInspectLive64TiB is the same at the largest EBS volume
// (134,217,728 blocks; 13,422 List calls for a full listing).
func BenchmarkInspectLive64TiB(b *testing.B) {
	benchInspect(b, func(srv *emulator.Server) (string, error) {
		return synthID, srv.AddSynthetic(synthID + "=64TiB,1,1")
	})
}

// BenchmarkInspectLiveSample16TiB inspects the sample disk (GPT, ext4,
// NTFS) as the start of a 16 TiB snapshot read live: a layout whose
// probes reach into both partitions.
func BenchmarkInspectLiveSample16TiB(b *testing.B) {
	dir := b.TempDir()
	benchInspect(b, func(srv *emulator.Server) (string, error) {
		path, err := sampledisk.Extract(dir)
		if err != nil {
			return "", err
		}
		return sampleID, srv.AddRawImage(sampleID, path, emulator.RawOptions{VolumeGiB: 16 << 10})
	})
}

func benchInspect(b *testing.B, add func(*emulator.Server) (string, error)) {
	srv, endpoint := emulatortest.Start(b, emulator.Options{})
	id, err := add(srv)
	if err != nil {
		b.Fatal(err)
	}
	e := &env{srv: srv, endpoint: endpoint}
	runtime.GC()
	before := rss(b, "VmRSS")
	peak := heapPeak()
	var s Stats
	var layout *inspect.Layout
	for b.Loop() {
		snap := e.snapshot(b, id)
		v, err := Open(context.Background(), snap, stack(snap), Options{})
		if err != nil {
			b.Fatal(err)
		}
		if layout, err = inspect.Inspect(v, v.Size()); err != nil {
			b.Fatal(err)
		}
		v.settle()
		s = v.Stats()
		v.Close()
	}
	heap := peak()
	b.ReportMetric(float64(s.ListCalls), "lists/op")
	b.ReportMetric(float64(s.GetCalls), "gets/op")
	b.ReportMetric(float64(s.Bytes)/(1<<20), "MiB-fetched/op")
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(rss(b, "VmHWM"))/(1<<20), "peak-RSS-MiB")
	parts := make([]string, 0, len(layout.Partitions))
	for _, p := range layout.Partitions {
		fs := "-"
		if p.FileSystem != nil {
			fs = p.FileSystem.Type
		}
		parts = append(parts, strconv.Itoa(p.Number)+":"+fs)
	}
	b.Logf("%s: table %s, partitions [%s]; %d Lists, %d Gets (%d ahead), %d bytes, %d holes, %d of %d chunks listed, %d cache hits; "+
		"RSS %d MiB before, peak %d MiB; peak heap %d MiB",
		id, layout.Table, strings.Join(parts, " "), s.ListCalls, s.GetCalls, s.Readahead, s.Bytes, s.Holes, s.ListedChunks, s.Chunks, s.Hits,
		before>>20, rss(b, "VmHWM")>>20, heap>>20)
}

// heapPeak samples the Go heap in use until the returned function is
// called, which returns the highest figure seen.
func heapPeak() func() uint64 {
	var (
		top  atomic.Uint64
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapInuse > top.Load() {
			top.Store(m.HeapInuse)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() uint64 {
		close(stop)
		wg.Wait()
		sample()
		return top.Load()
	}
}

// rss returns a /proc/self/status figure (VmRSS, VmHWM) in bytes, 0 where
// there is none.
func rss(b *testing.B, field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	return 0
}
