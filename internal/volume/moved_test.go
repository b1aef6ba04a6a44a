package volume_test

// These tests came from internal/diff, whose evidence, image and Overlay
// volumes this package now holds; their assertions are unchanged, but for
// diff's SourceError, which internal/diff's own test now checks.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// fill returns a block whose bytes name its index.
func fill(index int64, seed byte) []byte {
	b := make([]byte, block.Size)
	for i := range b {
		b[i] = byte(index) ^ byte(i>>9) ^ seed
	}
	return b
}

// evidence stores blocks of a 1 GiB volume as a complete evidence directory.
func evidence(t *testing.T, id string, blocks map[int64][]byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ev")
	s, err := store.Create(dir, store.Meta{SnapshotID: id, VolumeSizeGiB: 1, BlockSize: block.Size}, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, data := range blocks {
		if err := s.Put(i, block.SumOf(data), data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Finish(time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestEvidenceVolume(t *testing.T) {
	blocks := map[int64][]byte{0: fill(0, 1), 3: fill(3, 1), 1500: fill(1500, 1), 2047: fill(2047, 1)}
	dir := evidence(t, "snap-0a", blocks)
	src, err := volume.Open(context.Background(), dir, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if volume.SnapshotID(src) != "snap-0a" || src.Size() != 1<<30 {
		t.Fatalf("snapshot %q, size %d", volume.SnapshotID(src), src.Size())
	}
	// A read across a listed block into an unlisted one, and one at the
	// very end of the volume.
	p := make([]byte, 1000)
	if n, err := src.ReadAt(p, 4*block.Size-500); n != 1000 || err != nil {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	if !bytes.Equal(p[:500], blocks[3][block.Size-500:]) || !bytes.Equal(p[500:], make([]byte, 500)) {
		t.Fatal("bytes across blocks 3 and 4 differ from the evidence")
	}
	if n, err := src.ReadAt(p, 1<<30-600); n != 600 || !errors.Is(err, io.EOF) || !bytes.Equal(p[:600], blocks[2047][block.Size-600:]) {
		t.Fatalf("ReadAt at the end: %d, %v", n, err)
	}
	if n, err := src.ReadAt(p[:10], 1500*block.Size+7); n != 10 || err != nil || !bytes.Equal(p[:10], blocks[1500][7:17]) {
		t.Fatalf("ReadAt in block 1500: %d, %v", n, err)
	}

	// A stored block that was altered is refused when it is read.
	victim := filepath.Join(dir, store.LeafDir(1500))
	entries, _ := os.ReadDir(victim)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "0000001500_") {
			victim = filepath.Join(victim, e.Name())
		}
	}
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[100] ^= 1
	if err := os.WriteFile(victim, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh, err := volume.Open(context.Background(), dir, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	_, err = fresh.ReadAt(p, 1500*block.Size)
	var mis *store.Mismatch
	if !errors.As(err, &mis) || !errors.Is(err, volume.ErrCorrupt) || mis.Index != 1500 {
		t.Fatalf("altered block: %v", err)
	}
	if _, err := fresh.ReadAt(p, 3*block.Size); err != nil {
		t.Fatalf("an intact block after a bad one: %v", err)
	}
}

// With CheckManifest, Open reads the whole manifest; without it, Ranges
// does.
func TestEvidenceRefusesABadManifest(t *testing.T) {
	dir := evidence(t, "snap-0a", map[int64][]byte{7: fill(7, 2)})
	mf := filepath.Join(dir, store.ManifestName)
	orig, err := os.ReadFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func([]byte) []byte
		want string
	}{
		"edited":    {func(b []byte) []byte { return bytes.Replace(b, []byte(`"index":7`), []byte(`"index":8`), 1) }, "manifest sha256"},
		"truncated": {func(b []byte) []byte { return b[:bytes.LastIndexByte(b[:len(b)-1], '\n')+1] }, "no trailer"},
		"missing":   {nil, "no manifest"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.edit == nil {
				os.Remove(mf)
			} else {
				os.WriteFile(mf, tc.edit(bytes.Clone(orig)), 0o600)
			}
			defer os.WriteFile(mf, orig, 0o600)
			_, err := volume.Open(context.Background(), dir, volume.Options{CheckManifest: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.edit == nil {
				return
			}
			v, err := volume.Open(context.Background(), dir, volume.Options{})
			if err != nil {
				t.Fatalf("opened without reading the whole manifest: %v", err)
			}
			defer v.Close()
			if _, err := v.Ranges(); err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, volume.ErrCorrupt) {
				t.Fatalf("Ranges: got %v, want an error containing %q that wraps ErrCorrupt", err, tc.want)
			}
		})
	}
}

func TestOpenImages(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.raw")
	data := fill(1, 3)[:4096]
	if err := os.WriteFile(img, data, 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := volume.Open(context.Background(), img, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := make([]byte, 10)
	if n, err := src.ReadAt(p, 4090); n != 6 || !errors.Is(err, io.EOF) || src.Size() != 4096 || volume.SnapshotID(src) != "" || !bytes.Equal(p[:6], data[4090:]) {
		t.Fatalf("raw image: %d, %v, size %d", n, err, src.Size())
	}
	if _, err := volume.Open(context.Background(), filepath.Join(dir, "none"), volume.Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing image: %v", err)
	}
}

// memVolume is a volume in memory.
type memVolume struct{ *bytes.Reader }

func (m memVolume) Size() int64 { return m.Reader.Size() }
func (m memVolume) Ranges() ([]volume.Range, error) {
	return []volume.Range{{Off: 0, Len: m.Size()}}, nil
}
func (m memVolume) Close() error { return nil }

func TestOverlay(t *testing.T) {
	base := make([]byte, 8*block.Size)
	for i := int64(0); i < 8; i++ {
		copy(base[i*block.Size:], fill(i, 0))
	}
	// Block 1 changed, 2 removed, 9 added; the new snapshot (1 GiB) is
	// larger than the base's 4 MiB image.
	patches := []volume.Patch{{Start: 1, Blocks: 1}, {Start: 2, Blocks: 1, Removed: true}, {Start: 9, Blocks: 1}}
	var fetches []int64
	fetch := func(_ context.Context, index int64, buf []byte) ([]byte, error) {
		fetches = append(fetches, index)
		if index == 9 {
			return fill(index, 9)[:1000], nil // a short block: the rest reads as zeros
		}
		copy(buf, fill(index, 9))
		return buf, nil
	}
	o := volume.NewOverlay(context.Background(), memVolume{bytes.NewReader(base)}, "snap-0b", 1<<30, patches, fetch)
	if o.Size() != 1<<30 {
		t.Fatalf("size %d", o.Size())
	}
	got := make([]byte, 11*block.Size)
	if n, err := o.ReadAt(got, 0); n != len(got) || err != nil {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	want := bytes.Clone(base)
	want = append(want, make([]byte, 3*block.Size)...)
	copy(want[block.Size:], fill(1, 9))          // changed: the new bytes
	clear(want[2*block.Size : 3*block.Size])     // removed: zeros
	copy(want[9*block.Size:], fill(9, 9)[:1000]) // added, beyond the base
	if !bytes.Equal(got, want) {
		t.Fatal("overlay bytes differ")
	}
	o.ReadAt(got[:10], block.Size+5)
	if len(fetches) != 2 || fetches[0] != 1 || fetches[1] != 9 || o.Fetched() != 2 {
		t.Fatalf("fetches %v (%d), want [1 9] once each", fetches, o.Fetched())
	}
	// The base's extent without the removed block, with the added one.
	if r, err := o.Ranges(); err != nil || len(r) != 3 || r[0] != (volume.Range{Off: 0, Len: 2 * block.Size}) ||
		r[1] != (volume.Range{Off: 3 * block.Size, Len: 5 * block.Size}) || r[2] != (volume.Range{Off: 9 * block.Size, Len: block.Size}) {
		t.Fatalf("Ranges() = %v, %v", r, err)
	}

	failing := volume.NewOverlay(context.Background(), memVolume{bytes.NewReader(base)}, "snap-0b", 1<<30, patches,
		func(context.Context, int64, []byte) ([]byte, error) { return nil, errors.New("denied") })
	_, err := failing.ReadAt(got[:10], block.Size)
	if err == nil || !strings.Contains(err.Error(), "fetching block 1 of snap-0b: denied") || errors.Is(err, volume.ErrCorrupt) {
		t.Fatalf("failed fetch: %v", err)
	}
}
