package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

const nextSnap = "snap-0123456789abcdef1"

func newNext(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Create(dir, Meta{SnapshotID: nextSnap, Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size, ToolVersion: "test"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func baseEntries(t *testing.T, b *Base) []manifest.Entry {
	t.Helper()
	var out []manifest.Entry
	if err := b.Entries(func(e manifest.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReuse(t *testing.T) {
	dir := t.TempDir()
	baseDir, next := filepath.Join(dir, "base"), filepath.Join(dir, "next")
	fill(t, baseDir)
	b, err := OpenBase(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Blocks != int64(len(indexes)) {
		t.Fatalf("base has %d blocks, want %d", b.Blocks, len(indexes))
	}
	entries := baseEntries(t, b)
	s := newNext(t, next)
	for i, e := range entries {
		linked, err := s.Reuse(e, filepath.Join(baseDir, e.Name), i%2 == 1)
		if err != nil {
			t.Fatal(err)
		}
		if linked != (i%2 == 0) {
			t.Fatalf("block %d: linked %v", e.Index, linked)
		}
	}
	if _, err := s.Finish(time.Unix(0, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	nb, err := OpenBase(next)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range baseEntries(t, nb) {
		want := entries[i]
		want.Name = strings.Replace(want.Name, snap, nextSnap, 1)
		if e != want {
			t.Fatalf("entry %d: %+v, want %+v", i, e, want)
		}
		fi, err := os.Stat(filepath.Join(next, e.Name))
		if err != nil {
			t.Fatal(err)
		}
		if n := fi.Sys().(*syscall.Stat_t).Nlink; n != uint64(2-i%2) || fi.Mode().Perm() != 0o600 {
			t.Fatalf("block %d: %d links, mode %v", e.Index, n, fi.Mode())
		}
	}
	// Every reused block counts as stored when the acquisition resumes.
	s = newNext(t, next)
	if s.Resumed() != int64(len(indexes)) {
		t.Fatalf("resumed %d, want %d", s.Resumed(), len(indexes))
	}
	s.Close()
}

func TestReuseRefusesDamagedSource(t *testing.T) {
	dir := t.TempDir()
	baseDir := filepath.Join(dir, "base")
	fill(t, baseDir)
	b, err := OpenBase(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	e := baseEntries(t, b)[0]
	src := filepath.Join(baseDir, e.Name)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	data[100] ^= 1
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newNext(t, filepath.Join(dir, "copy"))
	if _, err := s.Reuse(e, src, true); err == nil || !strings.Contains(err.Error(), "the base's manifest says 524288 bytes with sha256 "+e.StoredSHA256) {
		t.Fatalf("copy of a damaged block: %v", err)
	}
	if s.Has(e.Index) {
		t.Fatal("a damaged block counts as stored")
	}
	if err := os.WriteFile(src, data[:10], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reuse(e, src, false); err == nil || !strings.Contains(err.Error(), "10 bytes, the base's manifest says 524288") {
		t.Fatalf("link of a short block: %v", err)
	}
	s.Close()
	leaf, err := os.ReadDir(filepath.Join(dir, "copy", LeafDir(e.Index)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range leaf {
		if f.Name() != journalName {
			t.Fatalf("%s left behind", f.Name())
		}
	}
	if err := b.CheckForm(codec.Form{Codec: codec.Zstd}, nil); err == nil || !strings.Contains(err.Error(), "stores blocks as codec none, encryption none; this run asks for zstd, none") {
		t.Fatalf("form check: %v", err)
	}
}

// Imported evidence never serves as a base: its blocks carry no AWS
// checksum, and the new evidence would claim one for each.
func TestOpenBaseRefusesImported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "imported")
	s, err := Create(dir, Meta{SnapshotID: snap, Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size, ToolVersion: "test",
		Provenance: ProvenanceImported, Source: "/mnt/usb/" + snap}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := blockData(0)
	if err := s.Put(0, block.SumOf(d), d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(time.Unix(0, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatalf("imported evidence does not open: %v", err)
	}
	_, err = OpenBase(dir)
	var imp *ImportedBaseError
	if !errors.As(err, &imp) || imp.Source != "/mnt/usb/"+snap {
		t.Fatalf("OpenBase of imported evidence: %v, want ImportedBaseError", err)
	}
}
