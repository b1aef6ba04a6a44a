package xfs

import (
	"io"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// BenchmarkXFS measures the reader on the test image (23,000 files):
// listing the 20,000-entry B+tree directory, walking the whole tree, and
// reading the 3 MiB file.
func BenchmarkXFS(b *testing.B) {
	im := buildImage(b, mkfsBytes, 4096, testTree(4096))
	f, _ := openImage(b, im.path)
	d20000, err := fsys.Lookup(f, "/d20000")
	if err != nil {
		b.Fatal(err)
	}
	big, err := fsys.Lookup(f, "/big.bin")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ReadDir20000", func(b *testing.B) {
		for b.Loop() {
			if ents, err := f.ReadDir(d20000); err != nil || len(ents) != 20000 {
				b.Fatal(len(ents), err)
			}
		}
	})
	b.Run("Walk", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := fsys.Walk(f, f.Root(), "/", func(string, fsys.DirEntry) error { n++; return nil }); err != nil || n < 23000 {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("Read3MiB", func(b *testing.B) {
		for b.Loop() {
			fl, err := f.Open(big, "")
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(fl.Size())
			if _, err := io.Copy(io.Discard, io.NewSectionReader(fl, 0, fl.Size())); err != nil {
				b.Fatal(err)
			}
		}
	})
}
