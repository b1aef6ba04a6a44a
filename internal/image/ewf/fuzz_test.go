package ewf

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// openMemory opens an image whose segments are byte slices.
func openMemory(segs ...[]byte) (*Reader, error) {
	return openWith(memorySegments(segs), false)
}

func memorySegments(segs [][]byte) func(n int) (*segment, error) {
	return func(n int) (*segment, error) {
		if n > len(segs) {
			return nil, fmt.Errorf("segment %d: %w", n, os.ErrNotExist)
		}
		b := segs[n-1]
		return &segment{name: fmt.Sprintf("mem.E%02d", n), r: bytes.NewReader(b), size: int64(len(b))}, nil
	}
}

// fuzzSeeds writes small valid images: one segment at each level, and one
// split in two segments (with the segment minimum lowered for the test).
func fuzzSeeds(f *testing.F) {
	dir := f.TempDir()
	data := append(randomMedia(40_000, 8)[:40_000-40_000%512], sparseMedia(2 << 20)[2<<20-100_352:]...)
	for i, level := range []Level{LevelNone, LevelFast, LevelBest} {
		res := writeImage(f, dir, fmt.Sprint("one", i), data, Options{Level: level, Meta: testMeta})
		b, err := os.ReadFile(res.Segments[0])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte{})
	}
	lim := formatLimits
	lim.minSegment = 64 << 10
	lim.maxEntries = 2
	res := writeImageLimits(f, dir, "two", data, Options{Level: LevelFast, SegmentSize: 96 << 10}, lim)
	if len(res.Segments) != 2 {
		f.Fatalf("%d segments, want 2", len(res.Segments))
	}
	var segs [][]byte
	for _, s := range res.Segments {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		segs = append(segs, b)
	}
	f.Add(segs[0], segs[1])
	f.Add([]byte{}, []byte{})
	f.Add(fileHeader(1), fileHeader(2))
}

// FuzzOpen feeds hostile segment files to the reader: it must return
// errors, never panic, hang or allocate without bound.
func FuzzOpen(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, seg1, seg2 []byte) {
		segs := [][]byte{seg1}
		if len(seg2) > 0 {
			segs = append(segs, seg2)
		}
		// What Check does beyond the normal reader: open leniently and
		// check every table.
		if r, err := openWith(memorySegments(segs), true); err == nil {
			for _, t := range r.tables {
				r.checkTable(t)
			}
			r.Close()
		}
		r, err := openMemory(segs...)
		if err != nil {
			return
		}
		defer r.Close()
		_ = r.Metadata()
		size := r.Size()
		buf := make([]byte, 70_000)
		for _, off := range []int64{0, size / 2, size - 1, size - 40_000} {
			if off < 0 {
				continue
			}
			n, err := r.ReadAt(buf, off)
			if n > len(buf) || (err == nil && n != len(buf)) {
				t.Fatalf("ReadAt = %d, %v", n, err)
			}
		}
		if size <= 8<<20 {
			r.Verify(nil)
		}
	})
}

// TestFuzzSeedsOpen checks that the seed images are valid, so the fuzzer
// starts from files that reach the deep paths.
func TestFuzzSeedsOpen(t *testing.T) {
	dir := t.TempDir()
	data := sparseMedia(2<<20 + 512)
	lim := formatLimits
	lim.minSegment = 64 << 10
	res := writeImageLimits(t, dir, "img", data, Options{Level: LevelFast, SegmentSize: 64 << 10}, lim)
	var segs [][]byte
	for _, s := range res.Segments {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, b)
	}
	r, err := openMemory(segs...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("in-memory image reads back %d bytes, %v", len(got), err)
	}
	if filepath.Base(r.Segments()[1]) != "mem.E02" {
		t.Errorf("Segments = %q", r.Segments())
	}
}
