package ext

import (
	"io"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// BenchmarkWalkStat walks the 2000-name tree of an ext4 image and stats
// every file: the metadata-only pass a timeline makes.
func BenchmarkWalkStat(b *testing.B) {
	img, _ := buildImage(b, "ext4", []string{"-b", "4096", "-I", "256"}, 2000)
	f, _ := openImage(b, img)
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := fsys.Walk(f, f.Root(), "/", func(p string, e fsys.DirEntry) error {
			n++
			_, err := f.Stat(e.ID)
			return err
		}); err != nil || n < 2000 {
			b.Fatalf("%d files: %v", n, err)
		}
	}
}

// BenchmarkRead reads the 3 MiB file and the sparse one (300 extents in
// a tree of depth 1) through Open and ReadAt.
func BenchmarkRead(b *testing.B) {
	img, tr := buildImage(b, "ext4", []string{"-b", "4096", "-I", "256"}, 10)
	f, _ := openImage(b, img)
	var ids []fsys.ID
	var size int64
	for _, p := range []string{"/d/big.bin", tr.sparse} {
		id, err := fsys.Lookup(f, p)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
		size += int64(len(tr.files[p]))
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		for _, id := range ids {
			fl, err := f.Open(id, "")
			if err != nil {
				b.Fatal(err)
			}
			for off := int64(0); off < fl.Size(); off += int64(len(buf)) {
				if _, err := fl.ReadAt(buf, off); err != nil && err != io.EOF {
					b.Fatal(err)
				}
			}
		}
	}
}
