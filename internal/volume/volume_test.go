package volume_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/volume"
	"github.com/ebsimager/ebsimager/internal/volume/volumetest"
)

const testSnapshot = "snap-0123456789abcdef0"

// form is a stored form of evidence, with the key that opens it.
type form struct {
	store  store.Options
	unseal func(*store.Evidence) (store.Unseal, error)
}

func plainForm() form { return form{} }

func codecForm(t *testing.T, f codec.Form) form {
	var (
		recips []age.Recipient
		ids    []age.Identity
	)
	if f.Encrypted {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		recips, ids = []age.Recipient{id.Recipient()}, []age.Identity{id}
	}
	unseal := func(*store.Evidence) (store.Unseal, error) { return store.UnsealWith(ids), nil }
	return form{store: store.Options{Form: f, SealTo: recips}, unseal: unseal}
}

// writeEvidence stores the allocated blocks of disk as complete evidence.
func writeEvidence(t testing.TB, disk []byte, allocated []int64, f form) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ev")
	s, err := store.Create(dir, store.Meta{SnapshotID: testSnapshot, VolumeSizeGiB: int64(len(disk)) >> 30, BlockSize: block.Size},
		f.store)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range allocated {
		data := disk[i*block.Size : (i+1)*block.Size]
		if err := s.Put(i, block.SumOf(data), data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Finish(time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// storedFile returns the stored file of block i.
func storedFile(t *testing.T, dir string, i int64) string {
	t.Helper()
	leaf := filepath.Join(dir, store.LeafDir(i))
	entries, err := os.ReadDir(leaf)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("%010d_", i)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			return filepath.Join(leaf, e.Name())
		}
	}
	t.Fatalf("no stored file of block %d in %s", i, leaf)
	return ""
}

// flip changes one byte of file at off (from the end when off < 0).
func flip(t *testing.T, file string, off int64) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += int64(len(data))
	}
	data[off] ^= 0x40
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, source string, o volume.Options) volume.Volume {
	t.Helper()
	v, err := volume.Open(context.Background(), source, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", source, err)
	}
	return v
}

func evidenceFactory(mk func(t *testing.T) form) volumetest.Factory {
	return volumetest.Factory{
		Open: func(t *testing.T, disk []byte, allocated []int64) volume.Volume {
			f := mk(t)
			return open(t, writeEvidence(t, disk, allocated, f), volume.Options{Unseal: f.unseal})
		},
		Damage: func(t *testing.T, disk []byte, allocated []int64, damaged int64) volume.Volume {
			f := mk(t)
			dir := writeEvidence(t, disk, allocated, f)
			flip(t, storedFile(t, dir, damaged), -100)
			return open(t, dir, volume.Options{Unseal: f.unseal})
		},
	}
}

func TestEvidencePlain(t *testing.T) {
	volumetest.Run(t, evidenceFactory(func(*testing.T) form { return plainForm() }))
}

func TestEvidenceZstd(t *testing.T) {
	volumetest.Run(t, evidenceFactory(func(t *testing.T) form { return codecForm(t, codec.Form{Codec: codec.Zstd}) }))
}

func TestEvidenceGzip(t *testing.T) {
	volumetest.Run(t, evidenceFactory(func(t *testing.T) form { return codecForm(t, codec.Form{Codec: codec.Gzip}) }))
}

func TestEvidenceSealed(t *testing.T) {
	volumetest.Run(t, evidenceFactory(func(t *testing.T) form {
		return codecForm(t, codec.Form{Codec: codec.Zstd, Encrypted: true})
	}))
}

// writeRaw writes disk as a sparse raw image, in segments of seg bytes
// (0: one file), and returns the name to open.
func writeRaw(t *testing.T, disk []byte, allocated []int64, seg int64) string {
	t.Helper()
	base := filepath.Join(t.TempDir(), "disk.raw")
	if seg == 0 {
		seg = int64(len(disk))
	}
	name := base
	for n, off := 1, int64(0); off < int64(len(disk)); n, off = n+1, off+seg {
		if seg < int64(len(disk)) {
			name = fmt.Sprintf("%s.%03d", base, n)
		}
		f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		end := min(off+seg, int64(len(disk)))
		if err := f.Truncate(end - off); err != nil {
			t.Fatal(err)
		}
		for _, i := range allocated { // only the allocated blocks: the rest are holes
			lo, hi := max(off, i*block.Size), min(end, (i+1)*block.Size)
			if lo < hi {
				if _, err := f.WriteAt(disk[lo:hi], lo-off); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if seg < int64(len(disk)) {
		return base + ".001"
	}
	return base
}

func TestRaw(t *testing.T) {
	volumetest.Run(t, volumetest.Factory{
		Open: func(t *testing.T, disk []byte, allocated []int64) volume.Volume {
			return open(t, writeRaw(t, disk, allocated, 0), volume.Options{})
		},
		Covering: true, // the holes the file system reports, at its granularity
	})
}

func TestSplitRaw(t *testing.T) {
	volumetest.Run(t, volumetest.Factory{
		Open: func(t *testing.T, disk []byte, allocated []int64) volume.Volume {
			return open(t, writeRaw(t, disk, allocated, 300<<20+block.Size/2), volume.Options{}) // segments end inside blocks
		},
		Covering: true,
	})
}

// writeE01 writes disk as an E01 set, its chunks stored as they are,
// and returns its first segment.
func writeE01(t *testing.T, disk []byte, allocated []int64) string {
	t.Helper()
	base := filepath.Join(t.TempDir(), "disk")
	w, err := ewf.Create(base, int64(len(disk)), ewf.Options{SegmentSize: 400 << 20, Level: ewf.LevelNone})
	if err != nil {
		t.Fatal(err)
	}
	pos := int64(0)
	for _, i := range allocated {
		if err := w.WriteZeros(i*block.Size - pos); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(disk[i*block.Size : (i+1)*block.Size]); err != nil {
			t.Fatal(err)
		}
		pos = (i + 1) * block.Size
	}
	if err := w.WriteZeros(int64(len(disk)) - pos); err != nil {
		t.Fatal(err)
	}
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return res.Segments[0]
}

// copySet copies the segments of the E01 set at first into a new
// directory and returns the copy's first segment.
func copySet(t *testing.T, first string) string {
	t.Helper()
	dir := t.TempDir()
	segs, err := filepath.Glob(strings.TrimSuffix(first, ".E01") + ".E*")
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments of %s: %v %v", first, segs, err)
	}
	for _, s := range segs {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(s)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, filepath.Base(first))
}

func TestE01(t *testing.T) {
	var set string // written once: 1 GiB of media takes seconds to hash
	made := func(t *testing.T, disk []byte, allocated []int64) string {
		if set == "" {
			set = writeE01(t, disk, allocated)
		}
		return copySet(t, set)
	}
	volumetest.Run(t, volumetest.Factory{
		Open: func(t *testing.T, disk []byte, allocated []int64) volume.Volume {
			return open(t, made(t, disk, allocated), volume.Options{})
		},
		Damage: func(t *testing.T, disk []byte, allocated []int64, damaged int64) volume.Volume {
			first := made(t, disk, allocated)
			segs, _ := filepath.Glob(strings.TrimSuffix(first, ".E01") + ".E*")
			// Every chunk of the block is stored as it is: find each one's
			// bytes in a segment and flip one of them.
			for c := int64(0); c < block.Size/ewf.ChunkSize; c++ {
				at := damaged*block.Size + c*ewf.ChunkSize + 100
				needle, found := disk[at:at+64], false
				for _, s := range segs {
					data, err := os.ReadFile(s)
					if err != nil {
						t.Fatal(err)
					}
					if i := bytes.Index(data, needle); i >= 0 {
						flip(t, s, int64(i))
						found = true
						break
					}
				}
				if !found {
					t.Fatalf("chunk %d of block %d is in no segment of %v", c, damaged, segs)
				}
			}
			return open(t, first, volume.Options{})
		},
		Covering: true, // the whole media
	})
}

// overlayFactory builds the new snapshot as an Overlay over evidence of
// a base that differs from it: block 1 and the damaged block were written
// again, block 3 was removed, blocks 100 and 101 were added.
func overlayFactory() volumetest.Factory {
	mk := func(t *testing.T, disk []byte, allocated []int64, damaged int64) volume.Volume {
		base := make([]byte, len(disk))
		var baseAlloc []int64
		for _, i := range allocated {
			if i != 100 && i != 101 {
				copy(base[i*block.Size:], disk[i*block.Size:(i+1)*block.Size])
				baseAlloc = append(baseAlloc, i)
			}
			if i == 2 {
				baseAlloc = append(baseAlloc, 3)
			}
		}
		for _, i := range []int64{1, 3, volumetest.Damaged} {
			for j := range block.Size {
				base[i*block.Size+int64(j)] = byte(j*7) ^ byte(i)
			}
		}
		patches := []volume.Patch{{Start: 1, Blocks: 1}, {Start: 3, Blocks: 1, Removed: true}, {Start: 100, Blocks: 2}, {Start: volumetest.Damaged, Blocks: 1}}
		b := open(t, writeEvidence(t, base, baseAlloc, plainForm()), volume.Options{})
		t.Cleanup(func() { b.Close() })
		fetch := func(_ context.Context, i int64, buf []byte) ([]byte, error) {
			data := disk[i*block.Size : (i+1)*block.Size]
			if i == damaged {
				return nil, &block.ChecksumError{Index: i, Want: block.SumOf(data), Got: block.SumOf(buf)}
			}
			return buf[:copy(buf, data)], nil
		}
		return volume.NewOverlay(context.Background(), b, "snap-0b", int64(len(disk)), patches, fetch)
	}
	return volumetest.Factory{
		Open: func(t *testing.T, disk []byte, allocated []int64) volume.Volume {
			return mk(t, disk, allocated, -1)
		},
		Damage: mk,
	}
}

func TestOverlaySuite(t *testing.T) {
	volumetest.Run(t, overlayFactory())
}

// The evidence volume's errors: a damaged block wraps both ErrCorrupt
// and the store's Mismatch; the S3 scheme is refused as not supported.
func TestOpenErrors(t *testing.T) {
	if _, err := volume.Open(context.Background(), "s3://bucket/ev", volume.Options{}); !errors.Is(err, volume.ErrNotSupported) {
		t.Fatalf("s3: %v", err)
	}
	if _, err := volume.Open(context.Background(), filepath.Join(t.TempDir(), "none"), volume.Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := volume.Open(context.Background(), "snap-0123456789abcdef0", volume.Options{}); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "not read live here") {
		t.Fatalf("a snapshot without an opener: %v", err)
	}
}

// A snapshot ID goes to the injected opener, unless a file or directory
// of that name exists: the path is read, offline.
func TestOpenSnapshot(t *testing.T) {
	var asked []string
	o := volume.Options{Snapshot: func(_ context.Context, id string) (volume.Volume, error) {
		asked = append(asked, id)
		return memVolume{bytes.NewReader(make([]byte, 4096))}, nil
	}}
	v, err := volume.Open(context.Background(), "snap-0123456789abcdef0", o)
	if err != nil || v.Size() != 4096 || len(asked) != 1 || asked[0] != "snap-0123456789abcdef0" {
		t.Fatalf("Open: %v, asked %v", err, asked)
	}
	o.SnapshotID = "snap-0aaaaaaaaaaaaaaa0"
	if _, err := volume.Open(context.Background(), "snap-0123456789abcdef0", o); err == nil || len(asked) != 1 {
		t.Fatalf("another snapshot than wanted: %v, asked %v", err, asked)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("snap-0123456789abcdef0", []byte("a raw image named like a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	o.SnapshotID = ""
	if v, err := volume.Open(context.Background(), "snap-0123456789abcdef0", o); err != nil || v.Size() != 33 || len(asked) != 1 {
		t.Fatalf("a file named like a snapshot: %v, asked %v", err, asked)
	}
}
