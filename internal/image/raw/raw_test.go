package raw

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

var allHashes = []string{"md5", "sha1", "sha256"}

// volume is a synthetic disk: its size and the blocks a snapshot lists,
// some of them all zeros.
type volume struct {
	size   int64
	blocks map[int64][]byte
}

func (v volume) indexes() []int64 {
	var idx []int64
	for i := range v.blocks {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	return idx
}

// bytes returns the image the volume must produce: listed blocks at their
// offsets, zeros everywhere else.
func (v volume) bytes() []byte {
	img := make([]byte, v.size)
	for i, p := range v.blocks {
		copy(img[i*block.Size:], p)
	}
	return img
}

// dataBytes is how many bytes of non-zero blocks the volume holds.
func (v volume) dataBytes() int64 {
	var n int64
	for _, p := range v.blocks {
		if !block.IsZero(p) {
			n += int64(len(p))
		}
	}
	return n
}

func randomBlock(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// testVolume is 40 blocks (20 MiB) plus a short 4 KiB tail, holding data in
// a handful of blocks, two listed blocks of zeros and a short last block.
func testVolume(seed uint64) volume {
	rng := rand.New(rand.NewPCG(seed, 7))
	v := volume{size: 40*block.Size + 4096, blocks: map[int64][]byte{}}
	for _, i := range []int64{0, 1, 5, 6, 7, 19, 20, 33} {
		v.blocks[i] = randomBlock(rng, block.Size)
	}
	v.blocks[2] = make([]byte, block.Size)
	v.blocks[21] = make([]byte, block.Size)
	v.blocks[40] = randomBlock(rng, 4096)
	return v
}

func referenceSums(img []byte) map[string]string {
	m := md5.Sum(img)
	s1 := sha1.Sum(img)
	s2 := sha256.Sum256(img)
	return map[string]string{
		"md5":    hex.EncodeToString(m[:]),
		"sha1":   hex.EncodeToString(s1[:]),
		"sha256": hex.EncodeToString(s2[:]),
	}
}

// toolSums hashes the concatenation of files with md5sum, sha1sum and
// sha256sum.
func toolSums(t *testing.T, files ...string) map[string]string {
	t.Helper()
	tools := testenv.RequireTool(t, "md5sum", "sha1sum", "sha256sum")
	out := map[string]string{}
	for i, alg := range allHashes {
		var readers []io.Reader
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			readers = append(readers, fh)
		}
		cmd := exec.Command(tools[i])
		cmd.Stdin = io.MultiReader(readers...)
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tools[i], err)
		}
		out[alg] = strings.Fields(string(b))[0]
	}
	return out
}

func concat(t *testing.T, files []string) []byte {
	t.Helper()
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// allocated returns the bytes of disk a file occupies.
func allocated(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Skip("no stat(2) block count on this platform")
	}
	return st.Blocks * 512 // st_blocks counts 512-byte units (stat(2))
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func writeOrdered(t *testing.T, path string, v volume, o Options) Result {
	t.Helper()
	w, err := Create(path, v.size, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range v.indexes() {
		if err := w.WriteBlock(i, v.blocks[i]); err != nil {
			t.Fatal(err)
		}
	}
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkImage asserts that res describes exactly the bytes of v, that the
// hashes match the standard library's and coreutils', that the image is
// sparse, and that every file is 0600.
func checkImage(t *testing.T, res Result, v volume) {
	t.Helper()
	want := v.bytes()
	if got := concat(t, res.Files); !bytes.Equal(got, want) {
		t.Fatalf("image bytes differ from the volume (%d vs %d bytes)", len(got), len(want))
	}
	if res.Size != v.size {
		t.Errorf("Result.Size = %d, want %d", res.Size, v.size)
	}
	ref := referenceSums(want)
	tool := toolSums(t, res.Files...)
	if len(res.Sums) != len(res.HashFiles) {
		t.Errorf("%d sums but %d checksum files", len(res.Sums), len(res.HashFiles))
	}
	for alg, sum := range res.Sums {
		if sum != ref[alg] || sum != tool[alg] {
			t.Errorf("%s = %s, want %s (Go) and %s (coreutils)", alg, sum, ref[alg], tool[alg])
		}
	}
	var alloc int64
	for _, f := range append(append([]string(nil), res.Files...), res.HashFiles...) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	for _, f := range res.Files {
		alloc += allocated(t, f)
	}
	// Allocation is the data blocks plus at most a file-system block per
	// segment boundary and some slack for metadata; holes take nothing.
	if limit := v.dataBytes() + int64(len(res.Files))*8192 + 64<<10; alloc > limit {
		t.Errorf("image occupies %d bytes on disk, want at most %d for %d data bytes in %d", alloc, limit, v.dataBytes(), v.size)
	}
}

func TestWriterSingle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	v := testVolume(1)
	res := writeOrdered(t, path, v, Options{Hashes: allHashes})
	checkImage(t, res, v)
	if len(res.Sums) != 3 {
		t.Errorf("Sums = %v, want md5, sha1 and sha256", res.Sums)
	}
	if !reflect.DeepEqual(res.Files, []string{path}) {
		t.Errorf("Files = %q, want [%s]", res.Files, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != v.size {
		t.Errorf("apparent size %d, want %d", fi.Size(), v.size)
	}
	wantNames := []string{"disk.raw", "disk.raw.md5", "disk.raw.sha1", "disk.raw.sha256"}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, wantNames) {
		t.Errorf("directory holds %q, want %q", got, wantNames)
	}
	ref := referenceSums(v.bytes())
	for _, alg := range allHashes {
		b, err := os.ReadFile(path + "." + alg)
		if err != nil {
			t.Fatal(err)
		}
		if want := ref[alg] + "  disk.raw\n"; string(b) != want {
			t.Errorf("%s.%s = %q, want %q", path, alg, b, want)
		}
		checkCoreutils(t, dir, alg, "disk.raw."+alg, nil)
	}
}

// checkCoreutils runs "<alg>sum -c hashFile" in dir with stdin as input.
func checkCoreutils(t *testing.T, dir, alg, hashFile string, stdin io.Reader) {
	t.Helper()
	tool := testenv.RequireTool(t, alg+"sum")[0]
	cmd := exec.Command(tool, "-c", "--strict", hashFile)
	cmd.Dir = dir
	cmd.Stdin = stdin
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s -c %s: %v\n%s", tool, hashFile, err, out)
	}
}

func TestWriterSplit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	v := testVolume(2)
	// 2 MiB + 1536 bytes per segment: not a multiple of the block size,
	// so blocks 4/5, 8/9, … straddle segment boundaries, and data blocks
	// 5, 19/20 and 33 land on them.
	split := int64(4*block.Size + 1536)
	res := writeOrdered(t, path, v, Options{Split: split, Hashes: allHashes})
	checkImage(t, res, v)
	var want []string
	for i := 1; i <= 10; i++ {
		want = append(want, fmt.Sprintf("%s.%03d", path, i))
	}
	if !reflect.DeepEqual(res.Files, want) {
		t.Fatalf("Files = %q\nwant %q", res.Files, want)
	}
	for i, f := range res.Files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		wantSize := split
		if i == len(res.Files)-1 {
			wantSize = v.size - 9*split
		}
		if fi.Size() != wantSize {
			t.Errorf("%s holds %d bytes, want %d", f, fi.Size(), wantSize)
		}
	}
	ref := referenceSums(v.bytes())
	for _, alg := range allHashes {
		b, err := os.ReadFile(path + "." + alg)
		if err != nil {
			t.Fatal(err)
		}
		wantFile := "# 10 segments; check with: cat disk.raw.[0-9][0-9][0-9] | " + alg + "sum -c disk.raw." + alg + "\n" +
			ref[alg] + "  -\n"
		if string(b) != wantFile {
			t.Errorf("%s.%s = %q\nwant %q", path, alg, b, wantFile)
		}
		checkCoreutils(t, dir, alg, "disk.raw."+alg, bytes.NewReader(concat(t, res.Files)))
	}
	for _, name := range []string{path, path + ".001"} {
		r, err := Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if r.Size() != v.size || !reflect.DeepEqual(r.Files(), res.Files) {
			t.Errorf("Open(%s): size %d, files %q", name, r.Size(), r.Files())
		}
		got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, v.bytes()) {
			t.Errorf("Open(%s) reads different bytes", name)
		}
		r.Close()
	}
}

func TestLayoutNames(t *testing.T) {
	for _, tc := range []struct {
		size, split int64
		first, last string
		n           int
	}{
		{size: 100, split: 0, first: "d", last: "d", n: 1},
		{size: 0, split: 512, first: "d.001", last: "d.001", n: 1},
		{size: 512, split: 512, first: "d.001", last: "d.001", n: 1},
		{size: 513, split: 512, first: "d.001", last: "d.002", n: 2},
		{size: 999 * 512, split: 512, first: "d.001", last: "d.999", n: 999},
		{size: 1000 * 512, split: 512, first: "d.0001", last: "d.1000", n: 1000},
	} {
		l, err := newLayout("d", tc.size, tc.split)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.names) != tc.n || l.names[0] != tc.first || l.names[len(l.names)-1] != tc.last {
			t.Errorf("size %d split %d: %d names %s..%s, want %d %s..%s", tc.size, tc.split,
				len(l.names), l.names[0], l.names[len(l.names)-1], tc.n, tc.first, tc.last)
		}
	}
	for _, split := range []int64{-512, 1, 513, 1000} {
		if _, err := newLayout("d", 1<<20, split); err == nil {
			t.Errorf("split %d accepted", split)
		}
	}
	if _, err := newLayout("d", -1, 0); err == nil {
		t.Error("negative size accepted")
	}
}

func TestWriteBlockRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.raw")
	w, err := Create(path, 4*block.Size, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	full := bytes.Repeat([]byte{1}, block.Size)
	if err := w.WriteBlock(2, full); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		index int64
		p     []byte
	}{
		{1, full},                           // out of order
		{2, full},                           // repeated
		{4, full},                           // past the end
		{-1, full},                          // negative
		{3, nil},                            // empty
		{3, make([]byte, block.Size+1)},     // too long
		{1 << 50, full},                     // far past the end
		{3, bytes.Repeat([]byte{1}, 1<<10)}, // fine: short block inside the image
	} {
		err := w.WriteBlock(tc.index, tc.p)
		if ok := tc.index == 3 && len(tc.p) == 1<<10; ok != (err == nil) {
			t.Errorf("WriteBlock(%d, %d bytes) = %v", tc.index, len(tc.p), err)
		}
	}
}

func TestRefuseExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	old := testVolume(3)
	writeOrdered(t, path, old, Options{Split: 8 * block.Size, Hashes: allHashes})
	before := concat(t, []string{path + ".001", path + ".002", path + ".003", path + ".004", path + ".005", path + ".006"})

	for _, create := range []func() error{
		func() error { _, err := Create(path, old.size, Options{}); return err },
		func() error { _, err := Create(path, old.size, Options{Split: 4 * block.Size}); return err },
		func() error { _, err := CreateRandom(path, old.size, Options{}); return err },
	} {
		if err := create(); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("creating over an existing image: %v, want fs.ErrExist", err)
		}
	}
	after := concat(t, []string{path + ".001", path + ".002", path + ".003", path + ".004", path + ".005", path + ".006"})
	if !bytes.Equal(before, after) {
		t.Fatal("a refused Create changed the existing image")
	}
	if got := len(dirNames(t, dir)); got != 9 {
		t.Fatalf("directory holds %d names after refused creates, want 9: %q", got, dirNames(t, dir))
	}

	// With Force, an unsplit image with only an MD5 replaces the split one:
	// its segments and its SHA-1/SHA-256 files go.
	v := testVolume(4)
	res := writeOrdered(t, path, v, Options{Hashes: []string{"md5"}, Force: true})
	checkImage(t, res, v)
	if len(res.Sums) != 1 || res.Sums["md5"] == "" {
		t.Errorf("Sums = %v, want only md5", res.Sums)
	}
	want := []string{"disk.raw", "disk.raw.md5"}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a forced replace the directory holds %q, want %q", got, want)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	v := testVolume(5)
	w, err := Create(path, v.size, Options{Split: 4 * block.Size, Hashes: allHashes})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range v.indexes()[:4] {
		if err := w.WriteBlock(i, v.blocks[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(dirNames(t, dir)); got != 11 {
		t.Fatalf("while writing, directory holds %q, want 11 partial segments", dirNames(t, dir))
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Fatalf("after Abort the directory holds %q", got)
	}
	if _, err := w.Close(); err == nil {
		t.Fatal("Close after Abort succeeded")
	}
	if err := w.WriteBlock(30, v.blocks[33]); err == nil {
		t.Fatal("WriteBlock after Abort succeeded")
	}
}

func TestPartialFromEarlierRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(path+PartialSuffix, []byte("left by a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(path, block.Size, Options{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over a partial file: %v, want fs.ErrExist", err)
	}
	// The refused Create must not have removed the other run's file.
	if b, err := os.ReadFile(path + PartialSuffix); err != nil || string(b) != "left by a crash" {
		t.Fatalf("partial file after refused Create: %q, %v", b, err)
	}
	v := volume{size: block.Size, blocks: map[int64][]byte{0: bytes.Repeat([]byte{9}, block.Size)}}
	res := writeOrdered(t, path, v, Options{Force: true, Hashes: allHashes})
	checkImage(t, res, v)
}

// failingFile fails every write once budget bytes have been written, and
// every Sync when failSync is set: a full or broken disk.
type failingFile struct {
	file
	mu       sync.Mutex
	budget   int64
	failSync bool
}

var errInjected = errors.New("injected: no space left on device")

func (f *failingFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if int64(len(p)) > f.budget {
		n, _ := f.file.WriteAt(p[:f.budget], off)
		f.budget = 0
		return n, errInjected
	}
	f.budget -= int64(len(p))
	return f.file.WriteAt(p, off)
}

func (f *failingFile) Sync() error {
	if f.failSync {
		return errInjected
	}
	return f.file.Sync()
}

func TestWriteErrorLeavesNothing(t *testing.T) {
	v := testVolume(6)
	for _, tc := range []struct {
		name     string
		budget   int64
		failSync bool
	}{
		{"write", 3*block.Size + 100, false},
		{"sync", 1 << 40, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "disk.raw")
			o := Options{Hashes: allHashes, wrap: func(f file) file {
				return &failingFile{file: f, budget: tc.budget, failSync: tc.failSync}
			}}
			w, err := Create(path, v.size, o)
			if err != nil {
				t.Fatal(err)
			}
			var writeErr error
			for _, i := range v.indexes() {
				if writeErr = w.WriteBlock(i, v.blocks[i]); writeErr != nil {
					break
				}
			}
			_, closeErr := w.Close()
			if !errors.Is(closeErr, errInjected) {
				t.Fatalf("Close = %v, want the injected error", closeErr)
			}
			if tc.failSync == (writeErr != nil) {
				t.Fatalf("WriteBlock error = %v", writeErr)
			}
			if got := dirNames(t, dir); len(got) != 0 {
				t.Fatalf("after a failed write the directory holds %q", got)
			}
		})
	}
}

func TestRandomWriter(t *testing.T) {
	v := testVolume(7)
	for _, split := range []int64{0, 4*block.Size + 1536} {
		t.Run(fmt.Sprintf("split=%d", split), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "disk.raw")
			var progress []int64
			o := Options{Split: split, Hashes: allHashes, HashProgress: func(done, total int64) {
				if total != v.size {
					t.Errorf("HashProgress total %d, want %d", total, v.size)
				}
				progress = append(progress, done)
			}}
			w, err := CreateRandom(path, v.size, o)
			if err != nil {
				t.Fatal(err)
			}
			writeShuffled(t, w, v, v.indexes(), 4)
			res, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, res, v)
			if len(progress) == 0 || progress[len(progress)-1] != v.size {
				t.Errorf("HashProgress ended at %v, want %d", progress, v.size)
			}
			// The same volume through the ordered writer gives the same
			// checksum files, byte for byte.
			dir2 := t.TempDir()
			res2 := writeOrdered(t, filepath.Join(dir2, "disk.raw"), v, Options{Split: split, Hashes: allHashes})
			for i := range res.HashFiles {
				a, _ := os.ReadFile(res.HashFiles[i])
				b, _ := os.ReadFile(res2.HashFiles[i])
				if !bytes.Equal(a, b) {
					t.Errorf("%s differs between random and ordered writers:\n%s\n%s", filepath.Base(res.HashFiles[i]), a, b)
				}
			}
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(res.Files[0]); err != nil {
				t.Fatalf("Abort after Close removed the image: %v", err)
			}
		})
	}
}

// writeShuffled writes the given blocks of v in a random order from
// workers goroutines at once.
func writeShuffled(t *testing.T, w *RandomWriter, v volume, idx []int64, workers int) {
	t.Helper()
	idx = append([]int64(nil), idx...)
	rng := rand.New(rand.NewPCG(11, 12))
	rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
	ch := make(chan int64)
	var wg sync.WaitGroup
	errs := make(chan error, len(idx))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				if err := w.WriteBlockAt(i, v.blocks[i]); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, i := range idx {
		ch <- i
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRandomResume(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	v := testVolume(8)
	o := Options{Split: 4 * block.Size, Hashes: allHashes}
	if _, err := ResumeRandom(path, v.size, o); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ResumeRandom with nothing to resume: %v, want fs.ErrNotExist", err)
	}
	w, err := CreateRandom(path, v.size, o)
	if err != nil {
		t.Fatal(err)
	}
	idx := v.indexes()
	writeShuffled(t, w, v, idx[:3], 3)
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	writeShuffled(t, w, v, idx[3:6], 3)
	if err := w.Suspend(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBlockAt(idx[7], v.blocks[idx[7]]); err == nil {
		t.Fatal("WriteBlockAt after Suspend succeeded")
	}
	if err := w.Sync(); err == nil {
		t.Fatal("Sync after Suspend succeeded")
	}
	for _, name := range dirNames(t, dir) {
		if !strings.HasSuffix(name, PartialSuffix) {
			t.Fatalf("after Suspend the directory holds %s", name)
		}
	}
	if _, err := CreateRandom(path, v.size, o); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CreateRandom over partial files: %v, want fs.ErrExist", err)
	}
	if _, err := ResumeRandom(path, v.size+block.Size, o); err == nil {
		t.Fatal("ResumeRandom with a different size succeeded")
	}
	if _, err := ResumeRandom(path, v.size, Options{Split: 8 * block.Size}); err == nil {
		t.Fatal("ResumeRandom with a different split succeeded")
	}
	w, err = ResumeRandom(path, v.size, o)
	if err != nil {
		t.Fatal(err)
	}
	// The resumed run writes what is missing and, like a real re-run,
	// some blocks again.
	writeShuffled(t, w, v, idx[4:], 3)
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, res, v)
}

func TestRandomWriteError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	v := testVolume(9)
	o := Options{Hashes: allHashes, wrap: func(f file) file {
		return &failingFile{file: f, budget: 2 * block.Size}
	}}
	w, err := CreateRandom(path, v.size, o)
	if err != nil {
		t.Fatal(err)
	}
	var failed int
	for _, i := range v.indexes() {
		if err := w.WriteBlockAt(i, v.blocks[i]); err != nil {
			if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), fmt.Sprintf("block %d", i)) {
				t.Fatalf("WriteBlockAt(%d) = %v", i, err)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no write failed")
	}
	if _, err := w.Close(); !errors.Is(err, errInjected) {
		t.Fatalf("Close = %v, want the injected error", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed image exists under its final name: %v", err)
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"disk.raw.partial"}) {
		t.Fatalf("after a failed Close the directory holds %q, want the partial file kept for resuming", got)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Fatalf("after Abort the directory holds %q", got)
	}
}

func TestNoHashes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	v := testVolume(10)
	res := writeOrdered(t, path, v, Options{})
	if len(res.Sums) != 0 || len(res.HashFiles) != 0 {
		t.Fatalf("Result without hashes: %+v", res)
	}
	if got := concat(t, res.Files); !bytes.Equal(got, v.bytes()) {
		t.Fatal("image bytes differ")
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"disk.raw"}) {
		t.Fatalf("directory holds %q", got)
	}
	if _, err := Create(filepath.Join(dir, "other"), 1, Options{Hashes: []string{"crc32"}}); err == nil {
		t.Fatal("Create accepted an unknown hash")
	}
	if _, err := CreateRandom(filepath.Join(dir, "other"), 1, Options{Hashes: []string{"crc32"}}); err == nil {
		t.Fatal("CreateRandom accepted an unknown hash")
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"disk.raw"}) {
		t.Fatalf("refused creates left %q", got)
	}
}

// TestCommitRefusesLateArrival covers a file that appears under a final
// name while the image is being written: Close must not replace it, must
// undo the segments it already moved, and must leave nothing of its own.
func TestCommitRefusesLateArrival(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	v := testVolume(12)
	w, err := Create(path, v.size, Options{Split: 8 * block.Size, Hashes: allHashes})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range v.indexes() {
		if err := w.WriteBlock(i, v.blocks[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path+".003", []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Close = %v, want fs.ErrExist", err)
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"disk.raw.003"}) {
		t.Fatalf("after a refused Close the directory holds %q, want only the other file", got)
	}
	if b, _ := os.ReadFile(path + ".003"); string(b) != "someone else's" {
		t.Fatalf("the other file now holds %q", b)
	}
}

func BenchmarkWriter(b *testing.B) {
	// 64 MiB with data in three blocks of four, written in order, and the
	// same blocks written shuffled by four goroutines.
	v := volume{size: 128 * block.Size, blocks: map[int64][]byte{}}
	rng := rand.New(rand.NewPCG(13, 14))
	for i := int64(0); i < 128; i++ {
		if i%4 != 3 {
			v.blocks[i] = randomBlock(rng, block.Size)
		}
	}
	idx := v.indexes()
	b.Run("ordered", func(b *testing.B) {
		b.SetBytes(v.size)
		for b.Loop() {
			path := filepath.Join(b.TempDir(), "disk.raw")
			w, err := Create(path, v.size, Options{Hashes: allHashes})
			if err != nil {
				b.Fatal(err)
			}
			for _, i := range idx {
				if err := w.WriteBlock(i, v.blocks[i]); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("random", func(b *testing.B) {
		b.SetBytes(v.size)
		for b.Loop() {
			path := filepath.Join(b.TempDir(), "disk.raw")
			w, err := CreateRandom(path, v.size, Options{Hashes: allHashes})
			if err != nil {
				b.Fatal(err)
			}
			ch := make(chan int64)
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range ch {
						if err := w.WriteBlockAt(i, v.blocks[i]); err != nil {
							b.Error(err)
						}
					}
				}()
			}
			for _, i := range idx {
				ch <- i
			}
			close(ch)
			wg.Wait()
			if _, err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCreateRefusesSidecars: checksum files of an earlier image are that
// image's record; without Force neither writer may overwrite or remove
// them, even when the image itself is gone.
func TestCreateRefusesSidecars(t *testing.T) {
	for _, alg := range allHashes {
		for _, hashes := range [][]string{allHashes, {"md5"}} {
			dir := t.TempDir()
			path := filepath.Join(dir, "disk.raw")
			side := path + "." + alg
			os.WriteFile(side, []byte("kept\n"), 0o600)
			v := testVolume(3)
			_, err := Create(path, v.size, Options{Hashes: hashes})
			if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), side) {
				t.Fatalf("Create beside %s: %v, want fs.ErrExist naming it", side, err)
			}
			_, err = CreateRandom(path, v.size, Options{Hashes: hashes})
			if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), side) {
				t.Fatalf("CreateRandom beside %s: %v, want fs.ErrExist naming it", side, err)
			}
			if b, _ := os.ReadFile(side); string(b) != "kept\n" {
				t.Fatalf("%s changed to %q", side, b)
			}
			if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"disk.raw." + alg}) {
				t.Fatalf("directory holds %q", got)
			}
			// Force replaces it with the new image's checksum file, or
			// removes it when that hash is not computed.
			res := writeOrdered(t, path, v, Options{Hashes: hashes, Force: true})
			checkImage(t, res, v)
			if b, err := os.ReadFile(side); err == nil && string(b) == "kept\n" {
				t.Fatalf("Force kept the old %s", side)
			}
		}
	}
}

// TestForceReplacesOnlyRegularFiles: a FIFO, a directory or a link to one
// under an output's name is refused even with Force, and left as it was.
func TestForceReplacesOnlyRegularFiles(t *testing.T) {
	v := testVolume(4)
	for _, tc := range []struct {
		name  string
		split int64
		make  func(string) error
	}{
		{"disk.raw", 0, func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"disk.raw", 0, func(p string) error { return os.Mkdir(p, 0o700) }},
		{"disk.raw.sha256", 0, func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"disk.raw.002", 4 * block.Size, func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"disk.raw.077", 4 * block.Size, func(p string) error { return syscall.Mkfifo(p, 0o600) }}, // an old segment Force would remove
		{"disk.raw", 0, func(p string) error {
			fifo := filepath.Join(filepath.Dir(p), "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				return err
			}
			return os.Symlink(fifo, p)
		}},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "disk.raw")
		victim := filepath.Join(dir, tc.name)
		if err := tc.make(victim); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Lstat(victim)
		for _, random := range []bool{false, true} {
			o := Options{Hashes: allHashes, Force: true, Split: tc.split}
			var err error
			if random {
				_, err = CreateRandom(path, v.size, o)
			} else {
				_, err = Create(path, v.size, o)
			}
			if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), victim) {
				t.Fatalf("%s as %v (random %v): %v, want a refusal naming it", tc.name, before.Mode(), random, err)
			}
		}
		after, err := os.Lstat(victim)
		if err != nil || after.Mode() != before.Mode() || !os.SameFile(before, after) {
			t.Fatalf("%s was replaced: %v %v", victim, after, err)
		}
	}
}

// TestRemovePartials removes exactly the partial files an image at path
// can have, and nothing else.
func TestRemovePartials(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	ours := []string{"disk.raw.partial", "disk.raw.001.partial", "disk.raw.0042.partial"}
	theirs := []string{"disk.raw", "disk.raw.001", "disk.raw.md5", "disk.raw.x.partial", "disk.raw.01a.partial", "other.raw.partial", "disk.raw.lock"}
	for _, n := range append(append([]string(nil), ours...), theirs...) {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	removed, err := RemovePartials(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range removed {
		got = append(got, filepath.Base(r))
	}
	sort.Strings(got)
	want := append([]string(nil), ours...)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("removed %q, want %q", got, want)
	}
	left := dirNames(t, dir)
	sort.Strings(theirs)
	if !reflect.DeepEqual(left, theirs) {
		t.Fatalf("left %q, want %q", left, theirs)
	}
}
