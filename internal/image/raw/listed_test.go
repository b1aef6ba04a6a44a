package raw

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// listedVolume is testVolume (holes, two listed blocks of zeros, a short
// last block) plus a data block shorter than a block in the middle, whose
// rest is a hole.
func listedVolume(seed uint64) volume {
	v := testVolume(seed)
	v.blocks[33] = v.blocks[33][:1000]
	return v
}

// fastBlock is n random bytes drawn from seed, much faster than
// randomBlock for many blocks.
func fastBlock(seed int64, n int) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	p := make([]byte, n)
	rand.NewChaCha8(key).Read(p)
	return p
}

// writeListed announces every block of v, writes them in order from
// workers goroutines (one keeps order exactly) and closes the image.
func writeListed(t *testing.T, path string, v volume, o Options, window int, order []int64, workers int) (Result, ListedStats) {
	t.Helper()
	w, err := CreateListed(path, v.size, o, window)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range v.indexes() {
		if err := w.Listed(i); err != nil {
			t.Fatal(err)
		}
	}
	putAll(t, w, v, order, workers)
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return res, w.Stats()
}

// putAll writes the blocks of order from workers goroutines and fails the
// test if any write fails, or if the writes have not all returned within
// a minute (a deadlock guard, not a timing).
func putAll(t *testing.T, w *ListedWriter, v volume, order []int64, workers int) {
	t.Helper()
	ch := make(chan int64)
	errs := make(chan error, len(order))
	var wg sync.WaitGroup
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
	done := make(chan struct{})
	go func() {
		for _, i := range order {
			ch <- i
		}
		close(ch)
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("writes still waiting after a minute: WriteBlockAt blocked")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// fileSums hashes the image files with crypto/*, independently of the
// writer.
func fileSums(t *testing.T, files []string) map[string]string {
	t.Helper()
	return referenceSums(concat(t, files))
}

func TestListedWriterOrders(t *testing.T) {
	v := listedVolume(21)
	idx := v.indexes()
	reverse := slices.Clone(idx)
	slices.Reverse(reverse)
	random := slices.Clone(idx)
	rng := rand.New(rand.NewPCG(3, 4))
	rng.Shuffle(len(random), func(a, b int) { random[a], random[b] = random[b], random[a] })
	headLast := append(slices.Clone(idx[1:]), idx[0])
	data := 0 // written blocks: not zeros
	for _, i := range idx {
		if !block.IsZero(v.blocks[i]) {
			data++
		}
	}
	for _, c := range []struct {
		name    string
		order   []int64
		workers int
		window  int
		split   int64
		// copied is how many written blocks must be hashed from their
		// copy (-1: any); the others are read back.
		copied int
	}{
		{"in-order", idx, 1, DefaultWindow, 0, data},
		{"reverse", reverse, 1, DefaultWindow, 0, data},
		{"random", random, 4, 4, 0, -1},
		{"random-split", random, 4, 3, 4*block.Size + 1536, -1},
		// The head lands last while the window holds 2 copies: every
		// later block lands while the hasher waits for it, so two are
		// copied and the rest, the head included, are read back.
		{"head-last-overflow", headLast, 1, 2, 0, 2},
		{"reverse-overflow-split", reverse, 1, 1, 3 * block.Size, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			res, st := writeListed(t, filepath.Join(dir, "disk.raw"), v, Options{Split: c.split, Hashes: allHashes}, c.window, c.order, c.workers)
			checkImage(t, res, v)
			if want := fileSums(t, res.Files); !reflect.DeepEqual(res.Sums, want) {
				t.Fatalf("sums %v, the files hash to %v", res.Sums, want)
			}
			if st.PeakCopies > c.window {
				t.Errorf("held %d copies, window %d", st.PeakCopies, c.window)
			}
			if st.Copied+st.ReadBack != int64(data) {
				t.Errorf("hashed %d copies and %d read back, want %d written blocks", st.Copied, st.ReadBack, data)
			}
			if c.copied >= 0 && st.Copied != int64(c.copied) {
				t.Errorf("hashed %d blocks from copies (%d read back), want %d", st.Copied, st.ReadBack, c.copied)
			}
			// The ordered writer gives the same checksum files, byte for byte.
			res2 := writeOrdered(t, filepath.Join(t.TempDir(), "disk.raw"), v, Options{Split: c.split, Hashes: allHashes})
			for i := range res.HashFiles {
				a, _ := os.ReadFile(res.HashFiles[i])
				b, _ := os.ReadFile(res2.HashFiles[i])
				if !bytes.Equal(a, b) {
					t.Errorf("%s differs between listed and ordered writers:\n%s\n%s", filepath.Base(res.HashFiles[i]), a, b)
				}
			}
		})
	}
}

// TestListedWriterHeadLastNeverWaits: with a window of 2 and the head of
// 50 blocks arriving last, every write returns while the hasher is stuck
// at block 0, and the image is still hashed right.
func TestListedWriterHeadLastNeverWaits(t *testing.T) {
	v := volume{size: 50 * block.Size, blocks: map[int64][]byte{}}
	for i := range int64(50) {
		v.blocks[i] = fastBlock(i, block.Size)
	}
	path := filepath.Join(t.TempDir(), "disk.raw")
	w, err := CreateListed(path, v.size, Options{Hashes: allHashes}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(50) {
		w.Listed(i)
	}
	var rest []int64
	for i := int64(1); i < 50; i++ {
		rest = append(rest, i)
	}
	putAll(t, w, v, rest, 1) // fails the test if a write blocks
	if st := w.Stats(); st.Copied != 0 || st.ReadBack != 0 || st.PeakCopies != 2 {
		t.Fatalf("before the head: %+v, want 2 copies held and nothing hashed", st)
	}
	putAll(t, w, v, []int64{0}, 1)
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, res, v)
	if st := w.Stats(); st != (ListedStats{PeakCopies: 2, Copied: 2, ReadBack: 48}) {
		t.Fatalf("stats %+v, want 2 copied and 48 read back", st)
	}
}

// TestListedWriterConcurrent writes a larger volume from many goroutines
// that finish in random order, some blocks late, through a small window.
func TestListedWriterConcurrent(t *testing.T) {
	v := volume{size: 120*block.Size + 512, blocks: map[int64][]byte{}}
	for i := int64(0); i <= 120; i++ {
		switch {
		case i%7 == 3: // a hole
		case i%11 == 0:
			v.blocks[i] = make([]byte, min(block.Size, v.size-i*block.Size))
		default:
			v.blocks[i] = fastBlock(i, int(min(block.Size, v.size-i*block.Size)))
		}
	}
	path := filepath.Join(t.TempDir(), "disk.raw")
	w, err := CreateListed(path, v.size, Options{Hashes: allHashes}, 8)
	if err != nil {
		t.Fatal(err)
	}
	// The lister announces ahead of the workers, as acquire's does.
	work := make(chan int64, 16)
	go func() {
		for _, i := range v.indexes() {
			w.Listed(i)
			work <- i
		}
		close(work)
	}()
	var wg sync.WaitGroup
	for k := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(k), 1))
			for i := range work {
				if r.IntN(10) == 0 {
					time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
				}
				if err := w.WriteBlockAt(i, v.blocks[i]); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, res, v)
	if want := fileSums(t, res.Files); !reflect.DeepEqual(res.Sums, want) {
		t.Fatalf("sums %v, the files hash to %v", res.Sums, want)
	}
	if st := w.Stats(); st.PeakCopies > 8 {
		t.Fatalf("held %d copies, window 8", st.PeakCopies)
	}
}

func TestListedWriterNoHashes(t *testing.T) {
	dir := t.TempDir()
	v := listedVolume(22)
	res, st := writeListed(t, filepath.Join(dir, "disk.raw"), v, Options{}, 4, v.indexes(), 2)
	if len(res.Sums) != 0 || len(res.HashFiles) != 0 {
		t.Fatalf("Result without hashes: %+v", res)
	}
	if st != (ListedStats{}) {
		t.Fatalf("without hashes the writer copied or read back: %+v", st)
	}
	if got := concat(t, res.Files); !bytes.Equal(got, v.bytes()) {
		t.Fatal("image bytes differ")
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"disk.raw"}) {
		t.Fatalf("directory holds %q", got)
	}
}

// TestListedWriterRejects covers hostile or mistaken calls: each is
// refused with an error naming the block, writes nothing, and (but for a
// bad listing) leaves the image good.
func TestListedWriterRejects(t *testing.T) {
	dir := t.TempDir()
	v := listedVolume(23)
	path := filepath.Join(dir, "disk.raw")
	w, err := CreateListed(path, v.size, Options{Hashes: allHashes}, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range v.indexes() {
		w.Listed(i)
	}
	other := bytes.Repeat([]byte{0xee}, block.Size)
	for _, c := range []struct {
		index int64
		p     []byte
		want  string
	}{
		{41, other[:1], "block 41: outside an image of"},
		{-1, other, "block -1: outside an image of"},
		{40, other, "run past the image end"},
		{0, nil, "block 0: 0 bytes"},
		{3, other, "block 3 written but never listed"},
	} {
		if err := w.WriteBlockAt(c.index, c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("WriteBlockAt(%d, %d bytes) = %v, want %q", c.index, len(c.p), err, c.want)
		}
	}
	putAll(t, w, v, v.indexes(), 3)
	for _, i := range []int64{0, 2, 33} { // written before the hasher got there or after
		if err := w.WriteBlockAt(i, other); err == nil || err.Error() != fmt.Sprintf("block %d written twice", i) {
			t.Errorf("second WriteBlockAt(%d) = %v, want refused", i, err)
		}
	}
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, res, v) // the refused writes changed nothing
	if err := w.WriteBlockAt(0, v.blocks[0]); err == nil {
		t.Fatal("WriteBlockAt after Close succeeded")
	}
	if _, err := w.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(res.Files[0]); err != nil {
		t.Fatalf("Abort after Close removed the image: %v", err)
	}
}

// TestListedWriterBadListing: a listing out of order or out of range is
// refused, and the image then fails and leaves nothing.
func TestListedWriterBadListing(t *testing.T) {
	for _, c := range []struct {
		name string
		list []int64
		want string
	}{
		{"descending", []int64{0, 5, 3}, "block 3 listed after block 5: the listing must ascend"},
		{"repeated", []int64{0, 5, 5}, "block 5 listed after block 5"},
		{"outside", []int64{0, 41}, "block 41 listed: outside an image of 41 blocks"},
		{"negative", []int64{-1}, "block -1 listed: outside"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			v := listedVolume(24)
			w, err := CreateListed(filepath.Join(dir, "disk.raw"), v.size, Options{Hashes: allHashes}, 4)
			if err != nil {
				t.Fatal(err)
			}
			var lerr error
			for _, i := range c.list {
				lerr = w.Listed(i)
			}
			if lerr == nil || !strings.Contains(lerr.Error(), c.want) {
				t.Fatalf("Listed = %v, want %q", lerr, c.want)
			}
			if err := w.WriteBlockAt(0, v.blocks[0]); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("WriteBlockAt after a bad listing = %v, want the listing's error", err)
			}
			if _, err := w.Close(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Close = %v, want %q", err, c.want)
			}
			if got := dirNames(t, dir); len(got) != 0 {
				t.Fatalf("after a failed Close the directory holds %q", got)
			}
		})
	}
}

// TestListedWriterMissingBlock: a listed block that never arrives makes
// Close fail without inventing hashes, and nothing is left.
func TestListedWriterMissingBlock(t *testing.T) {
	dir := t.TempDir()
	v := listedVolume(25)
	w, err := CreateListed(filepath.Join(dir, "disk.raw"), v.size, Options{Hashes: allHashes}, 4)
	if err != nil {
		t.Fatal(err)
	}
	idx := v.indexes()
	for _, i := range idx {
		w.Listed(i)
	}
	putAll(t, w, v, slices.DeleteFunc(slices.Clone(idx), func(i int64) bool { return i == 6 || i == 20 }), 2)
	res, err := w.Close()
	if err == nil || !strings.Contains(err.Error(), "2 listed blocks were never written, the first block 6") {
		t.Fatalf("Close with blocks 6 and 20 missing = %+v, %v", res, err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Fatalf("after a failed Close the directory holds %q", got)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after a failed Close: %v", err)
	}
}

func TestListedWriterWriteError(t *testing.T) {
	dir := t.TempDir()
	v := listedVolume(26)
	o := Options{Hashes: allHashes, wrap: func(f file) file {
		return &failingFile{file: f, budget: 2 * block.Size}
	}}
	w, err := CreateListed(filepath.Join(dir, "disk.raw"), v.size, o, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range v.indexes() {
		w.Listed(i)
	}
	var failed int
	for _, i := range v.indexes() {
		if err := w.WriteBlockAt(i, v.blocks[i]); err != nil {
			if !errors.Is(err, errInjected) {
				t.Fatalf("WriteBlockAt(%d) = %v", i, err)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no write failed")
	}
	if _, err := w.Close(); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "writing block 5") {
		t.Fatalf("Close = %v, want the injected error at block 5", err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Fatalf("after a failed Close the directory holds %q", got)
	}
}

// TestListedWriterAbort: Abort while the hasher waits for a block stops
// it and removes the partial files.
func TestListedWriterAbort(t *testing.T) {
	dir := t.TempDir()
	v := listedVolume(27)
	w, err := CreateListed(filepath.Join(dir, "disk.raw"), v.size, Options{Hashes: allHashes, Split: 8 * block.Size}, 2)
	if err != nil {
		t.Fatal(err)
	}
	idx := v.indexes()
	for _, i := range idx {
		w.Listed(i)
	}
	putAll(t, w, v, idx[1:], 2)
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Fatalf("after Abort the directory holds %q", got)
	}
	if err := w.WriteBlockAt(idx[0], v.blocks[idx[0]]); err == nil {
		t.Fatal("WriteBlockAt after Abort succeeded")
	}
	if _, err := w.Close(); err == nil {
		t.Fatal("Close after Abort succeeded")
	}
}

func TestBlockStates(t *testing.T) {
	s := newBlockStates(70)
	want := make([]uint8, 70)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		i, v := rng.Int64N(70), uint8(rng.IntN(4))
		s.set(i, v)
		want[i] = v
		for j := range int64(70) {
			if s.get(j) != want[j] {
				t.Fatalf("after set(%d, %d): get(%d) = %d, want %d", i, v, j, s.get(j), want[j])
			}
		}
	}
}
