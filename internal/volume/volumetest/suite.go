// Package volumetest is the conformance suite every volume.Volume
// implementation passes: one set of tests, run against each through a
// Factory, as restic's backends share backend/test.Suite.
//
// The suite makes a reference disk, Size bytes of which a few blocks are
// allocated (pseudo-random bytes, one of them all zeros, runs that touch,
// the first and the last block) and every other block is zeros. The
// Factory puts it in its implementation's form (an evidence directory, an
// image, a snapshot in the emulator, …) and opens it. The suite then
// checks, against the reference bytes:
//
//   - Size;
//   - Ranges: exactly the allocated blocks (or, with Covering, extents
//     that cover them and outside which every byte is zero);
//   - random reads at any offset and length, byte for byte, with
//     io.ReaderAt's semantics: a read that reaches the end returns the
//     bytes before it and io.EOF;
//   - reads at, past and straddling the end, zero-length reads, a
//     negative offset;
//   - many goroutines reading at once (run the suite with -race);
//   - a damaged block: every read that touches it fails with an error
//     wrapping volume.ErrCorrupt and returns only the intact bytes before
//     it, while the other blocks still read;
//   - reads after Close fail.
package volumetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// Size is the reference disk's size: 1 GiB, the smallest EBS volume.
// Its unallocated blocks are never written, so the disk costs only its
// allocated blocks' memory.
const Size = 1 << 30

// Allocated are the reference disk's allocated blocks, ascending: the
// first and the last block, runs that touch (0-2, 100-101), a lone block,
// and block 5, allocated but all zeros.
var Allocated = []int64{0, 1, 2, 5, 100, 101, 1000, 1536, Size/block.Size - 1}

// ZeroBlock is the allocated block whose bytes are all zeros.
const ZeroBlock = 5

// Damaged is the allocated block the damage test breaks.
const Damaged = 1000

// Factory makes the volumes of one implementation.
type Factory struct {
	// Open returns a volume holding disk (Size bytes) in which the blocks
	// allocated lists (ascending block indexes) are allocated, every
	// other block being zeros.
	Open func(t *testing.T, disk []byte, allocated []int64) volume.Volume
	// Damage is Open with the stored copy of block damaged (one of
	// allocated) changed, so that its check must fail when it is read: a
	// bit flipped in a stored file, a chunk, or a block served with a
	// wrong checksum. Nil only for a form that keeps no check of its
	// blocks (a raw image); the suite then says so in the test log.
	Damage func(t *testing.T, disk []byte, allocated []int64, damaged int64) volume.Volume
	// Covering says Ranges may report more than the allocated blocks (an
	// image that keeps no allocation map reports its whole media): then
	// they must cover every allocated block, and every byte outside them
	// must read as zeros.
	Covering bool
}

// Disk returns the reference disk: Size bytes, the Allocated blocks
// filled with pseudo-random bytes (ZeroBlock left zero).
func Disk() []byte {
	disk := make([]byte, Size) // untouched pages stay unmapped zeros
	rng := rand.New(rand.NewPCG(12, 2026))
	for _, i := range Allocated {
		if i == ZeroBlock {
			continue
		}
		b := disk[i*block.Size : (i+1)*block.Size]
		for j := 0; j < len(b); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		// Some runs of one byte, which compress, among the noise.
		clear(b[4096:8192])
		for j := 20000; j < 30000; j++ {
			b[j] = 0xA5
		}
	}
	return disk
}

// Run runs the suite against f.
func Run(t *testing.T, f Factory) {
	disk := Disk()
	v := f.Open(t, disk, Allocated)
	t.Cleanup(func() { v.Close() })

	t.Run("Size", func(t *testing.T) {
		if v.Size() != Size {
			t.Fatalf("Size() = %d, want %d", v.Size(), int64(Size))
		}
	})
	t.Run("Ranges", func(t *testing.T) { testRanges(t, v, disk, f.Covering) })
	t.Run("RandomReads", func(t *testing.T) { testRandomReads(t, v, disk) })
	t.Run("End", func(t *testing.T) { testEnd(t, v, disk) })
	t.Run("ZeroLength", func(t *testing.T) { testZeroLength(t, v) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, v, disk) })
	t.Run("Damaged", func(t *testing.T) {
		if f.Damage == nil {
			t.Log("this form keeps no check of its blocks: nothing can tell a damaged block from an intact one")
			return
		}
		testDamaged(t, f.Damage(t, disk, Allocated, Damaged), disk)
	})
	t.Run("Close", func(t *testing.T) {
		w := f.Open(t, disk, Allocated)
		p := make([]byte, 100)
		if _, err := w.ReadAt(p, 0); err != nil {
			t.Fatalf("ReadAt before Close: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if n, err := w.ReadAt(p, 0); err == nil || errors.Is(err, io.EOF) || n != 0 {
			t.Fatalf("ReadAt after Close: %d, %v; want 0 and an error", n, err)
		}
	})
}

// ExpectedRanges returns the byte ranges of the allocated blocks, merged.
func ExpectedRanges(allocated []int64) []volume.Range {
	var out []volume.Range
	for _, i := range allocated {
		r := volume.Range{Off: i * block.Size, Len: block.Size}
		if k := len(out); k > 0 && out[k-1].End() == r.Off {
			out[k-1].Len += r.Len
			continue
		}
		out = append(out, r)
	}
	return out
}

func testRanges(t *testing.T, v volume.Volume, disk []byte, covering bool) {
	got, err := v.Ranges()
	if err != nil {
		t.Fatalf("Ranges: %v", err)
	}
	want := ExpectedRanges(Allocated)
	if !covering {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Ranges() = %v, want %v", got, want)
		}
		return
	}
	end := int64(0)
	for i, r := range got {
		if r.Len <= 0 || r.Off < end || (i > 0 && r.Off == end) || r.End() > Size {
			t.Fatalf("Ranges() = %v: not ascending, merged, non-empty and within %d bytes", got, int64(Size))
		}
		// Every byte between the previous range and this one is zero.
		checkZeros(t, v, end, r.Off)
		end = r.End()
	}
	checkZeros(t, v, end, Size)
	for _, w := range want {
		covered := false
		for _, r := range got {
			covered = covered || (r.Off <= w.Off && w.End() <= r.End())
		}
		if !covered {
			t.Fatalf("Ranges() = %v does not cover the allocated %v", got, w)
		}
	}
}

// checkZeros reads [from, to) of v, which must be zeros.
func checkZeros(t *testing.T, v volume.Volume, from, to int64) {
	t.Helper()
	buf := make([]byte, 4<<20)
	for off := from; off < to; {
		n := min(int64(len(buf)), to-off)
		if _, err := v.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
		}
		if !isZero(buf[:n]) {
			t.Fatalf("bytes at %d to %d, outside Ranges, are not zeros", off, off+n)
		}
		off += n
	}
}

var zeros = make([]byte, 4<<20)

func isZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeros))
		if !bytes.Equal(p[:n], zeros[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// checkRead reads n bytes at off and compares them, and the error, with
// the reference.
func checkRead(v volume.Volume, disk []byte, off int64, n int) error {
	p := bytes.Repeat([]byte{0xEE}, n) // a read must overwrite every byte it returns
	got, err := v.ReadAt(p, off)
	want := int(max(0, min(int64(n), int64(len(disk))-off)))
	switch {
	case got != want:
		return fmt.Errorf("ReadAt(%d bytes at %d) = %d, %v; want %d bytes", n, off, got, err, want)
	case want < n && !errors.Is(err, io.EOF):
		return fmt.Errorf("ReadAt(%d bytes at %d) read %d: err %v, want io.EOF", n, off, got, err)
	case want == n && err != nil && !errors.Is(err, io.EOF):
		return fmt.Errorf("ReadAt(%d bytes at %d): %v", n, off, err)
	case want == n && errors.Is(err, io.EOF) && off+int64(n) < int64(len(disk)):
		return fmt.Errorf("ReadAt(%d bytes at %d): io.EOF before the end", n, off)
	case got > 0 && !bytes.Equal(p[:got], disk[off:off+int64(got)]):
		return fmt.Errorf("ReadAt(%d bytes at %d): the bytes differ from the reference", n, off)
	}
	return nil
}

// randomRead picks a read: mostly in and around the allocated blocks and
// across their edges, some anywhere, lengths from 1 byte to 2.5 blocks.
func randomRead(rng *rand.Rand) (int64, int) {
	var off int64
	switch rng.IntN(4) {
	case 0:
		off = rng.Int64N(Size)
	case 1: // across the start or the end of an allocated block
		i := Allocated[rng.IntN(len(Allocated))]
		off = max(0, i*block.Size+rng.Int64N(2)*block.Size-rng.Int64N(4096))
	default:
		i := Allocated[rng.IntN(len(Allocated))]
		off = i*block.Size + rng.Int64N(block.Size)
	}
	n := 1 + rng.IntN(5*block.Size/2)
	if rng.IntN(3) == 0 {
		n = 1 + rng.IntN(4096)
	}
	return off, n
}

func testRandomReads(t *testing.T, v volume.Volume, disk []byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		off, n := randomRead(rng)
		if err := checkRead(v, disk, off, n); err != nil {
			t.Fatal(err)
		}
	}
	// Whole blocks, each allocated one and its neighbours.
	for _, i := range Allocated {
		for _, j := range []int64{i - 1, i, i + 1} {
			if j >= 0 && j < Size/block.Size {
				if err := checkRead(v, disk, j*block.Size, block.Size); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func testEnd(t *testing.T, v volume.Volume, disk []byte) {
	for _, c := range []struct {
		off int64
		n   int
	}{
		{Size - 600, 1000},                      // straddling the end
		{Size - 600, 600},                       // up to the end exactly
		{Size - 3*block.Size/2, 2 * block.Size}, // two blocks, straddling
		{Size, 10},                              // at the end
		{Size + 12345, 10},                      // past it
		{Size - 1, 1},
	} {
		if err := checkRead(v, disk, c.off, c.n); err != nil {
			t.Error(err)
		}
	}
	if n, err := v.ReadAt(make([]byte, 10), -1); err == nil || n != 0 {
		t.Errorf("ReadAt at offset -1 = %d, %v; want 0 and an error", n, err)
	}
}

func testZeroLength(t *testing.T, v volume.Volume) {
	for _, off := range []int64{0, 3 * block.Size, Size - 1} {
		if n, err := v.ReadAt(nil, off); n != 0 || err != nil {
			t.Errorf("ReadAt(nil, %d) = %d, %v; want 0, nil", off, n, err)
		}
	}
	for _, off := range []int64{Size, Size + 1} {
		if n, err := v.ReadAt([]byte{}, off); n != 0 || (err != nil && !errors.Is(err, io.EOF)) {
			t.Errorf("ReadAt(empty, %d) = %d, %v; want 0 and nil or io.EOF", off, n, err)
		}
	}
}

func testConcurrent(t *testing.T, v volume.Volume, disk []byte) {
	const readers, reads = 8, 30
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for r := range readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for range reads {
				off, n := randomRead(rng)
				if rng.IntN(2) == 0 { // many readers of one block at once
					off, n = Allocated[r%3]*block.Size+int64(rng.IntN(1000)), 1+rng.IntN(block.Size)
				}
				if err := checkRead(v, disk, off, n); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testDamaged(t *testing.T, v volume.Volume, disk []byte) {
	defer v.Close()
	start := int64(Damaged * block.Size)
	for _, c := range []struct {
		off int64
		n   int
	}{
		{start, block.Size},                  // the block
		{start + 1000, 10},                   // inside it
		{start - 100, 200},                   // from the block before into it
		{start - block.Size, 3 * block.Size}, // across it
		{start, block.Size},                  // again: the failure is not cached as good bytes
	} {
		p := make([]byte, c.n)
		n, err := v.ReadAt(p, c.off)
		if !errors.Is(err, volume.ErrCorrupt) {
			t.Fatalf("ReadAt(%d bytes at %d) of a damaged block = %d, %v; want an error wrapping volume.ErrCorrupt", c.n, c.off, n, err)
		}
		if int64(n) > max(0, start-c.off) || !bytes.Equal(p[:n], disk[c.off:c.off+int64(n)]) {
			t.Fatalf("ReadAt(%d bytes at %d) of a damaged block returned %d bytes: only the intact bytes before it may be", c.n, c.off, n)
		}
	}
	// The other blocks still read.
	for _, i := range []int64{Allocated[0], Damaged - 1, Damaged + 1, Allocated[len(Allocated)-1]} {
		if err := checkRead(v, disk, i*block.Size, block.Size); err != nil {
			t.Fatalf("after the damaged block: %v", err)
		}
	}
}
