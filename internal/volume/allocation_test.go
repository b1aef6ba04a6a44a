package volume

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

// writeListing writes a manifest of snap, a volume of gib GiB, listing
// the blocks listed says, and returns them in order.
func writeListing(t *testing.T, dir, snap string, gib int64, listed func(i int64) bool) []int64 {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, store.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := manifest.NewWriter(f, manifest.Header{SnapshotID: snap, Region: "us-east-1", VolumeSizeGiB: gib,
		VolumeSizeBytes: gib << 30, BlockSize: block.Size, ToolVersion: "test", StartedAt: time.Unix(0, 0), FinishedAt: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for i := int64(0); i < block.Slots(gib); i++ {
		if !listed(i) {
			continue
		}
		sum := sha256.Sum256([]byte(strconv.FormatInt(i, 10)))
		name := filepath.ToSlash(filepath.Join(store.LeafDir(i), block.FileName(block.FileInfo{Index: i, Snapshot: snap, Sum: sum, VolumeGiB: gib, BlockSize: block.Size})))
		if err := w.Add(manifest.Entry{Index: i, SHA256: hex.EncodeToString(sum[:]), Length: block.Size, Name: name,
			Size: block.Size, StoredSHA256: hex.EncodeToString(sum[:]), Codec: "none", Encryption: "none"}); err != nil {
			t.Fatal(err)
		}
		out = append(out, i)
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEvidenceAllocated checks Allocated against the manifest, on one
// large enough for the binary search: every index of the volume gives
// whether it is listed and the next listed block after it, exactly.
func TestEvidenceAllocated(t *testing.T) {
	const snap = "snap-0123456789abcdef0"
	const gib = 8
	rng := rand.New(rand.NewPCG(5, 6))
	dir := t.TempDir()
	listed := writeListing(t, dir, snap, gib, func(i int64) bool { return i != 0 && i < block.Slots(gib)-3 && rng.IntN(5) == 0 })
	v, err := openManifest(&store.Evidence{Dir: dir, Meta: store.Meta{SnapshotID: snap, VolumeSizeGiB: gib, BlockSize: block.Size}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	k := 0 // listed[k] is the first listed block at or after i
	for i := int64(0); i < block.Slots(gib); i++ {
		for k < len(listed) && listed[k] < i {
			k++
		}
		wantOK, wantNext := k < len(listed) && listed[k] == i, int64(-1)
		switch {
		case wantOK && k+1 < len(listed):
			wantNext = listed[k+1]
		case !wantOK && k < len(listed):
			wantNext = listed[k]
		}
		ok, next, err := v.Allocated(context.Background(), i)
		if err != nil || ok != wantOK || next != wantNext {
			t.Fatalf("Allocated(%d) = %v, %d, %v; want %v, %d", i, ok, next, err, wantOK, wantNext)
		}
	}
	for _, i := range []int64{-1, block.Slots(gib), 1 << 40} {
		var beyond *block.BeyondVolumeError
		if _, _, err := Allocated(context.Background(), v, i); !errors.As(err, &beyond) || beyond.Slots != block.Slots(gib) {
			t.Fatalf("Allocated(%d): %v; want beyond the volume of %d blocks", i, err, block.Slots(gib))
		}
	}
}

// TestEvidenceAllocatedEmpty: a manifest without a block has none
// allocated, and no next.
func TestEvidenceAllocatedEmpty(t *testing.T) {
	const snap = "snap-0123456789abcdef0"
	dir := t.TempDir()
	writeListing(t, dir, snap, 1, func(int64) bool { return false })
	v, err := openManifest(&store.Evidence{Dir: dir, Meta: store.Meta{SnapshotID: snap, VolumeSizeGiB: 1, BlockSize: block.Size}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, i := range []int64{0, 1, 2047} {
		if ok, next, err := v.Allocated(context.Background(), i); ok || next != -1 || err != nil {
			t.Fatalf("Allocated(%d) = %v, %d, %v", i, ok, next, err)
		}
	}
}

// sized is a volume of n bytes that keeps no allocation.
type sized int64

func (s sized) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }
func (s sized) Size() int64                       { return int64(s) }
func (s sized) Ranges() ([]Range, error)          { return nil, nil }
func (s sized) Close() error                      { return nil }

// TestAllocatedWithoutAllocation: an image has every block inside it
// allocated, a short last block included, and none beyond.
func TestAllocatedWithoutAllocation(t *testing.T) {
	v := sized(3*block.Size + 512) // four blocks, the last short
	for i, want := range []int64{1, 2, 3, -1} {
		if ok, next, err := Allocated(context.Background(), v, int64(i)); !ok || next != want || err != nil {
			t.Fatalf("Allocated(%d) = %v, %d, %v; want true, %d", i, ok, next, err, want)
		}
	}
	var beyond *block.BeyondVolumeError
	if _, _, err := Allocated(context.Background(), v, 4); !errors.As(err, &beyond) || beyond.Index != 4 || beyond.Slots != 4 {
		t.Fatalf("Allocated(4): %v", err)
	}
}
