package ewf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zlib"
)

func TestParallelOutputIsIdentical(t *testing.T) {
	d := buildDisk(t)
	data := append(append([]byte{}, d.data...), sparseMedia(3<<20+512)...)
	for _, level := range []Level{LevelNone, LevelFast, LevelBest} {
		t.Run(level.String(), func(t *testing.T) {
			var want [][]byte
			for _, workers := range []int{1, 2, 5} {
				dir := t.TempDir()
				res := writeImage(t, dir, "img", data, Options{Level: level, SegmentSize: MinSegmentSize, Workers: workers, Meta: testMeta})
				var got [][]byte
				for _, s := range res.Segments {
					b, err := os.ReadFile(s)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, b)
				}
				if want == nil {
					want = got
					if level != LevelNone && len(got) < 2 {
						t.Fatalf("%d segments, want several", len(got))
					}
					continue
				}
				if len(got) != len(want) {
					t.Fatalf("Workers=%d: %d segments, Workers=1: %d", workers, len(got), len(want))
				}
				for i := range got {
					if !bytes.Equal(got[i], want[i]) {
						t.Errorf("Workers=%d: segment %d differs from Workers=1", workers, i+1)
					}
				}
			}
		})
	}
}

// TestSparseStaysSmall checks empty-block compression: zero chunks cost a
// few dozen bytes at every level.
func TestSparseStaysSmall(t *testing.T) {
	const size = 64 << 20
	for _, level := range []Level{LevelNone, LevelFast, LevelBest} {
		dir := t.TempDir()
		w, err := Create(filepath.Join(dir, "img"), size, Options{Level: level})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteZeros(size); err != nil {
			t.Fatal(err)
		}
		res, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(res.Segments[0])
		if err != nil {
			t.Fatal(err)
		}
		chunks := int64(size / ChunkSize)
		// Each chunk costs its stored form plus an entry in table and table2.
		if max := chunks*int64(len(zeroChunk)+8) + 8192; st.Size() > max {
			t.Errorf("%s: %d zero chunks take %d bytes, more than %d", level, chunks, st.Size(), max)
		}
		r := openImage(t, res.Segments[0])
		vr, err := r.Verify(nil)
		if err != nil || !vr.MD5OK || !vr.SHA1OK {
			t.Errorf("%s: Verify = %+v, %v", level, vr, err)
		}
	}
}

func TestCloseShortRemovesEverything(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "img"), 4<<20, Options{SegmentSize: MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomMedia(3<<20, 4)); err != nil {
		t.Fatal(err)
	}
	_, err = w.Close()
	if err == nil || !strings.Contains(err.Error(), "3145728 of 4194304 media bytes written") {
		t.Errorf("Close = %v, want a short write error", err)
	}
	assertEmpty(t, dir)
	if _, err := w.Write([]byte{1}); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestAbortRemovesEverything(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "img"), 4<<20, Options{SegmentSize: MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomMedia(3<<20, 4)); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, dir)
	if _, err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}
}

func TestAbortAfterCloseKeepsImage(t *testing.T) {
	dir := t.TempDir()
	data := randomMedia(1<<20, 5)
	w, err := Create(filepath.Join(dir, "img"), int64(len(data)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	readAllMatches(t, openImage(t, res.Segments[0]), data)
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s left behind", e.Name())
	}
}

func TestWritePastTheEnd(t *testing.T) {
	dir := t.TempDir()
	data := randomMedia(64<<10+512, 6)
	w, err := Create(filepath.Join(dir, "img"), int64(len(data)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	n, err := w.Write(append(data[:len(data)-512:len(data)-512], make([]byte, 1000)...))
	if n != len(data) || err == nil {
		t.Errorf("Write past the end = %d, %v; want %d and an error", n, err, len(data))
	}
	if err := w.WriteZeros(1); err == nil {
		t.Error("WriteZeros past the end succeeded")
	}
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := append(data[:len(data)-512:len(data)-512], make([]byte, 512)...)
	checkResult(t, res, want)
}

func TestCreateRejects(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "img")
	for _, tc := range []struct {
		size int64
		o    Options
		want string
	}{
		{0, Options{}, "media size 0"},
		{1000, Options{}, "media size 1000: want a positive multiple of 512"},
		{4096, Options{SegmentSize: 1000}, "segment size 1000: want at least 1048576"},
		{4096, Options{Level: 7}, "compression level 7"},
		{4096, Options{Workers: -1}, "workers -1"},
		{(1 << 32) * ChunkSize * 2, Options{}, "chunks"},
	} {
		w, err := Create(base, tc.size, tc.o)
		if err == nil {
			w.Abort()
			t.Errorf("Create(%d, %+v) succeeded", tc.size, tc.o)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create(%d, %+v) = %v, want %q", tc.size, tc.o, err, tc.want)
		}
	}
	assertEmpty(t, dir)
	for _, name := range []string{"img.E01", "img.E07", "img.EAB"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("evidence"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Create(base, 4096, Options{}); !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), p) {
			t.Errorf("Create beside %s = %v, want os.ErrExist naming it", name, err)
		}
		os.Remove(p)
	}
	// Not names this package writes: lower case (case.err is someone's
	// error log), or not a segment extension.
	for _, name := range []string{"img.raw", "img.E01.sha256", "img2.E01", "img.err", "img.exe", "img.e01", "img.E01.lock", "img.E00"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w, err := Create(base, 4096, Options{})
	if err != nil {
		t.Fatalf("Create beside unrelated files: %v", err)
	}
	w.Abort()
}

// TestCloseKeepsImageWhenNameTaken: a segment name taken while writing
// makes Close fail without overwriting it or losing the image.
func TestCloseKeepsImageWhenNameTaken(t *testing.T) {
	dir := t.TempDir()
	data := randomMedia(64<<10, 12)
	w, err := Create(filepath.Join(dir, "img"), int64(len(data)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	taken := filepath.Join(dir, "img.E01")
	if err := os.WriteFile(taken, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = w.Close()
	if !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), "kept as "+w.segs[0].tmp) {
		t.Fatalf("Close = %v, want os.ErrExist and the kept name", err)
	}
	if b, _ := os.ReadFile(taken); string(b) != "someone else's" {
		t.Errorf("%s was overwritten", taken)
	}
	other := filepath.Join(t.TempDir(), "kept.E01")
	if err := os.Rename(w.segs[0].tmp, other); err != nil {
		t.Fatal(err)
	}
	readAllMatches(t, openImage(t, other), data)
}

func TestSegmentNames(t *testing.T) {
	for n, want := range map[int]string{
		1: ".E01", 9: ".E09", 10: ".E10", 99: ".E99", 100: ".EAA", 101: ".EAB", 125: ".EAZ",
		126: ".EBA", 775: ".EZZ", 776: ".FAA", MaxSegments: ".ZZZ",
	} {
		got, err := SegmentExt(n)
		if err != nil || got != want {
			t.Errorf("SegmentExt(%d) = %q, %v; want %q", n, got, err, want)
		}
		back, lower, err := parseSegmentExt(want)
		if err != nil || back != n || lower {
			t.Errorf("parseSegmentExt(%q) = %d, %v, %v; want %d", want, back, lower, err, n)
		}
		back, lower, err = parseSegmentExt(strings.ToLower(want))
		if err != nil || back != n || !lower {
			t.Errorf("parseSegmentExt(%q) = %d, %v, %v; want %d", strings.ToLower(want), back, lower, err, n)
		}
	}
	for _, n := range []int{0, -1, MaxSegments + 1} {
		if ext, err := SegmentExt(n); err == nil {
			t.Errorf("SegmentExt(%d) = %q, want an error", n, ext)
		}
	}
	seen := map[string]bool{}
	for n := 1; n <= MaxSegments; n++ {
		ext, err := SegmentExt(n)
		if err != nil || seen[ext] {
			t.Fatalf("SegmentExt(%d) = %q, %v (seen before: %v)", n, ext, err, seen[ext])
		}
		seen[ext] = true
	}
	if got := SegmentNames("/x/img", 3); !equalStrings(got, []string{"/x/img.E01", "/x/img.E02", "/x/img.E03"}) {
		t.Errorf("SegmentNames = %q", got)
	}
	if got := len(SegmentNames("img", MaxSegments+5)); got != MaxSegments {
		t.Errorf("SegmentNames returns %d names, want %d", got, MaxSegments)
	}
}

func TestHeaderTexts(t *testing.T) {
	m := testMeta
	m.Notes = "two\tlines\nhere"
	m.Examiner = "Zoë"
	got2 := decodeHeader2(header2Text(m))
	want2 := "3\nmain\na\tc\tn\te\tt\tmd\tsn\tav\tov\tm\tu\tp\tdc\n" +
		"EBS snapshot snap-0123456789abcdef0\tCASE-2024-017\tEV-3\tZoë\ttwo lines here\tvol-0fedcba9876543210\t" +
		"snap-0123456789abcdef0\tebsimager 1\tLinux\t1714979289\t1714979290\t0\t\n\n" +
		"srce\n0\t1\np\tn\tid\tev\ttb\tlo\tpo\tah\tgu\taq\n0\t0\n\t\t\t\t\t-1\t-1\t\t\t\n\n" +
		"sub\n0\t1\np\tn\tid\tnu\tco\tgu\n0\t0\n\t\t\t\t1\t\n\n"
	if got2 != want2 {
		t.Errorf("header2 text\n%q\nwant\n%q", got2, want2)
	}
	if b := header2Text(m); b[0] != 0xff || b[1] != 0xfe || len(b)%2 != 0 {
		t.Errorf("header2 starts % x, want the UTF-16LE byte order mark", b[:2])
	}
	got := string(headerText(m))
	want := "1\r\nmain\r\nc\tn\ta\te\tt\tav\tov\tm\tu\tp\r\n" +
		"CASE-2024-017\tEV-3\tEBS snapshot snap-0123456789abcdef0\tZo?\ttwo lines here\tebsimager 1\tLinux\t" +
		"2024 5 6 7 8 9\t2024 5 6 7 8 10\t0\r\n\r\n"
	if got != want {
		t.Errorf("header text\n%q\nwant\n%q", got, want)
	}
	back, err := parseHeaderText(got2)
	if err != nil {
		t.Fatal(err)
	}
	m.Notes = "two lines here"
	if !sameMeta(back, m) {
		t.Errorf("parsed header2 = %+v, want %+v", back, m)
	}
	back, err = parseHeaderText(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.AcquiredAt != m.AcquiredAt.UTC() || back.Examiner != "Zo?" || back.Model != "" {
		t.Errorf("parsed header = %+v", back)
	}
}

func TestSectionEncodings(t *testing.T) {
	d := descriptor{Type: "sectors", Next: 123456789012, Size: 987654321}
	b := d.marshal()
	if len(b) != descriptorSize {
		t.Fatalf("descriptor is %d bytes", len(b))
	}
	back, err := parseDescriptor(b)
	if err != nil || back != d {
		t.Errorf("parseDescriptor = %+v, %v; want %+v", back, err, d)
	}
	b[20] ^= 1
	if _, err := parseDescriptor(b); !errors.Is(err, errChecksum) {
		t.Errorf("parseDescriptor of a damaged descriptor = %v", err)
	}
	// The fixed bytes of ewfacquire's encase6 volume section for 6 chunks
	// of 64 sectors, 332 sectors, fast compression.
	v := volume{MediaType: 1, Chunks: 6, SectorsPerChunk: 64, BytesPerSector: 512, Sectors: 332,
		MediaFlags: 3, Compression: 1, ErrorGranule: 64}
	vb := v.marshal()
	if got := fmt.Sprintf("%x", vb[:60]); got != "01000000"+"06000000"+"40000000"+"00020000"+"4c010000"+
		"00000000"+"00000000"+"00000000"+"00000000"+"03000000"+"00000000"+"00000000"+"00000000"+"01000000"+"40000000" {
		t.Errorf("volume data starts %s", got)
	}
	if got := fmt.Sprintf("%x", vb[1048:]); got != "db00126b" {
		t.Errorf("volume checksum %s, want ewfacquire's db00126b", got)
	}
	pv, err := parseVolume(vb)
	if err != nil || pv != v {
		t.Errorf("parseVolume = %+v, %v; want %+v", pv, err, v)
	}
	if got := fmt.Sprintf("%x", tableHeader(6, 1865)); got != "060000000000000049070000000000000000000057004504" {
		t.Errorf("table header %s, want ewfacquire's", got)
	}
	if got := fmt.Sprintf("%x", fileHeader(2)); got != "455646090d0aff000102000000" {
		t.Errorf("file header %s", got)
	}
}

// TestEmptyBlocks checks that chunks of one repeated byte are stored
// compressed at every level, zero chunks as libewf's 52-byte stream.
func TestEmptyBlocks(t *testing.T) {
	zr, err := zlib.NewReader(bytes.NewReader(zeroChunk))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, make([]byte, ChunkSize)) {
		t.Fatalf("zeroChunk inflates to %d bytes, %v; want %d zeros", len(got), err, ChunkSize)
	}
	data := make([]byte, 4*ChunkSize+1024)
	for i := range ChunkSize {
		data[ChunkSize+i] = 0xff
		data[2*ChunkSize+i] = byte(i) // not uniform: stays raw with LevelNone
	}
	for i := range 1024 {
		data[4*ChunkSize+i] = 0xee
	}
	for _, level := range []Level{LevelNone, LevelFast, LevelBest} {
		dir := t.TempDir()
		res := writeImage(t, dir, "img", data, Options{Level: level})
		r := openImage(t, res.Segments[0])
		readAllMatches(t, r, data)
		for chunk, max := range map[int64]int64{0: int64(len(zeroChunk)), 1: 100, 3: int64(len(zeroChunk)), 4: 100} {
			if _, stored := chunkLocation(t, r, chunk); stored > max {
				t.Errorf("%s: chunk %d takes %d bytes, want at most %d", level, chunk, stored, max)
			}
		}
		if _, stored := chunkLocation(t, r, 2); level == LevelNone && stored != ChunkSize+4 {
			t.Errorf("none: chunk 2 takes %d bytes, want %d", stored, ChunkSize+4)
		}
	}
}

// TestReplace: with Replace, Close renames over the old image's segments
// and removes the old segments beyond the new set, but nothing else.
func TestReplace(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "img")
	old := randomMedia(3<<20, 21)
	w, err := Create(base, int64(len(old)), Options{SegmentSize: 1 << 20, Level: LevelNone})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(old)
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Segments) < 3 {
		t.Fatalf("old image has %d segments, want at least 3", len(res.Segments))
	}
	unrelated := []string{"img.err", "img.txt"}
	for _, n := range unrelated {
		os.WriteFile(filepath.Join(dir, n), []byte(n), 0o600)
	}
	if _, err := Create(base, 4096, Options{}); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over an image without Replace: %v", err)
	}
	data := randomMedia(64<<10, 22)
	w, err = Create(base, int64(len(data)), Options{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	res, err = w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Segments) != 1 {
		t.Fatalf("new image: %d segments", len(res.Segments))
	}
	want := append([]string{"img.E01"}, unrelated...)
	slices.Sort(want)
	var got []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("directory holds %q, want %q", got, want)
	}
	readAllMatches(t, openImage(t, base+".E01"), data)

	// A segment that is not a regular file is never replaced.
	fifo := base + ".E01"
	os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(base, 4096, Options{Replace: true}); !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Create with Replace over a FIFO: %v", err)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v %v", fi, err)
	}
}

// TestRemoveTemps removes exactly the temporary segments a killed writer
// leaves, found by the names openSegment makes.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "img")
	w, err := Create(base, 4<<20, Options{SegmentSize: 1 << 20, Level: LevelNone})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(randomMedia(3<<20, 23)) // three segments started, none closed
	var ours []string
	for _, s := range w.segs {
		ours = append(ours, s.tmp)
	}
	// Leave them as a killed process would: open and unfinished.
	theirs := []string{"img.E01", "img.E01.lock", "img.e01.123.tmp", "img.E01.12a.tmp", "img.E01..tmp", "img.E01.5.tmp.x", "other.E01.5.tmp", "img.err.5.tmp"}
	for _, n := range theirs {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	removed, err := RemoveTemps(base)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ours)
	slices.Sort(removed)
	if len(ours) == 0 || !slices.Equal(removed, ours) {
		t.Fatalf("removed %q, want %q", removed, ours)
	}
	for _, n := range theirs {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	w.Abort()
}
