package listing

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys/disk/disktest"
)

// BenchmarkTimeline writes the bodyfile of an ext4 volume of 5,000 files
// in 50 directories, read from a file (the page cache): the cost of the
// walk, the inode reads and the formatting.
func BenchmarkTimeline(b *testing.B) {
	dir := b.TempDir()
	files := map[string]string{}
	for i := range 5000 {
		files[fmt.Sprintf("d%02d/file-%04d.log", i%50, i)] = "x"
	}
	tree := filepath.Join(dir, "tree")
	disktest.Tree(b, tree, files)
	img := filepath.Join(dir, "ext4.img")
	disktest.Ext4(b, img, 64*disktest.MiB, tree)
	d := openB(b, img)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Timeline(d, "", false, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/5050, "ns/file")
}
