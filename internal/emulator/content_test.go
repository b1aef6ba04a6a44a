package emulator_test

import (
	"bytes"
	"crypto/sha256"
	"os"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// rawFixture is a 1.25 GiB image: data blocks, an explicit all-zero
// block, a hole, and a last block cut short by the end of the file.
func rawFixture(t *testing.T) (path string, data map[int64][]byte, fileBlocks int64) {
	const size = 5<<28 + 1000 // 1.25 GiB and 1000 bytes: the last block is partial
	data = map[int64][]byte{
		0: pattern(1), 1: pattern(2), 7: pattern(3), 1000: pattern(4), 2047: pattern(5), 2048: pattern(6),
		2560: pattern(7), // the partial block: only its first 1000 bytes are in the file
	}
	path = writeImage(t, "disk.raw", size, data)
	// Block 3 is written, but with zeros: not a hole, still not listed.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, block.Size), 3*block.Size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	last := make([]byte, block.Size)
	copy(last, data[2560][:1000])
	data[2560] = last // past EOF reads as zeros
	return path, data, (size + block.Size - 1) / block.Size
}

func TestRawImage(t *testing.T) {
	path, data, fileBlocks := rawFixture(t)
	s, ep := emulatortest.Start(t, emulator.Options{})
	c := emulatortest.Client(t, ep)
	if err := s.AddRawImage("snap-0a", path, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRawImage("snap-0b", path, emulator.RawOptions{ListZeroBlocks: true, VolumeGiB: 4}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRawImage("snap-0c", path, emulator.RawOptions{VolumeGiB: 1}); err == nil {
		t.Error("a volume smaller than the file was accepted")
	}

	l := listAll(t, c, "snap-0a", 100, 0)
	want := []int64{0, 1, 7, 1000, 2047, 2048, 2560}
	if !sameInts(l.indexes(), want) {
		t.Fatalf("listed %v, want %v", l.indexes(), want)
	}
	if l.volume != 2 { // ceil(1.25 GiB)
		t.Errorf("VolumeSize %d, want 2", l.volume)
	}
	for _, i := range want {
		got := mustGet(t, c, "snap-0a", i, l.token(i))
		if !bytes.Equal(got, data[i]) {
			t.Errorf("block %d: bytes differ from the file", i)
		}
	}

	lz := listAll(t, c, "snap-0b", 10000, 0)
	if len(lz.blocks) != int(fileBlocks) || lz.volume != 4 {
		t.Fatalf("ListZeroBlocks: %d blocks, volume %d; want %d, 4", len(lz.blocks), lz.volume, fileBlocks)
	}
	for _, i := range []int64{3, 4, 2000} {
		got := mustGet(t, c, "snap-0b", i, lz.token(i))
		if sha256.Sum256(got) != block.ZeroSum {
			t.Errorf("zero block %d is not zeros", i)
		}
	}
	if got := mustGet(t, c, "snap-0b", 7, lz.token(7)); !bytes.Equal(got, data[7]) {
		t.Error("block 7 differs with ListZeroBlocks")
	}
}

// TestChecksums fetches every block of a raw image and of a synthetic
// snapshot and checks the headers against the body.
func TestChecksums(t *testing.T) {
	path, _, _ := rawFixture(t)
	s, ep := emulatortest.Start(t, emulator.Options{})
	c := emulatortest.Client(t, ep)
	if err := s.AddRawImage("snap-0a", path, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSynthetic("snap-0b=1GiB,0.05,9"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"snap-0a", "snap-0b"} {
		l := listAll(t, c, id, 1000, 0)
		if len(l.blocks) == 0 {
			t.Fatalf("%s lists nothing", id)
		}
		for _, b := range l.blocks {
			f, err := getBlock(c, id, int64(*b.BlockIndex), *b.BlockToken)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.verify(); err != nil || f.length != block.Size {
				t.Errorf("%s/%d: %v, length %d", id, *b.BlockIndex, err, f.length)
			}
		}
	}
}

// hashes returns the listed indexes of a snapshot and the SHA-256 of the
// first n blocks.
func hashes(t *testing.T, spec string, n int) ([]int64, [][32]byte) {
	s, ep := emulatortest.Start(t, emulator.Options{})
	c := emulatortest.Client(t, ep)
	if err := s.AddSynthetic(spec); err != nil {
		t.Fatal(err)
	}
	sp, _ := emulator.ParseSyntheticSpec(spec)
	l := listAll(t, c, sp.ID, 10000, 0)
	var sums [][32]byte
	for _, b := range l.blocks[:n] {
		sums = append(sums, sha256.Sum256(mustGet(t, c, sp.ID, int64(*b.BlockIndex), *b.BlockToken)))
	}
	return l.indexes(), sums
}

func TestSyntheticDeterministic(t *testing.T) {
	idxA, sumA := hashes(t, "snap-0a=1GiB,0.5,42", 20)
	idxB, sumB := hashes(t, "snap-0a=1GiB,0.5,42", 20)
	if !sameInts(idxA, idxB) {
		t.Fatal("same spec, different blocks listed")
	}
	for i := range sumA {
		if sumA[i] != sumB[i] {
			t.Fatalf("same spec, block %d differs", idxA[i])
		}
	}
	idxC, sumC := hashes(t, "snap-0a=1GiB,0.5,43", 20)
	if sameInts(idxA, idxC) {
		t.Error("different seed, same blocks listed")
	}
	seen := make(map[[32]byte]bool)
	for _, s := range sumA {
		seen[s] = true
	}
	for _, s := range sumC {
		if seen[s] {
			t.Error("different seed, a block repeats")
		}
	}
	if len(seen) != len(sumA) {
		t.Error("two blocks of one snapshot are equal")
	}
}
