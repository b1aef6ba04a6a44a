package ntfs

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// benchVolume is smallImage in memory: reads cost no system calls, so
// the figures are the parser's.
func benchVolume(b *testing.B) *FS {
	im := smallImage(b)
	vol, err := os.ReadFile(im.path)
	if err != nil {
		b.Fatal(err)
	}
	fs, err := Open(bytes.NewReader(vol), int64(len(vol)))
	if err != nil {
		b.Fatal(err)
	}
	return fs
}

// BenchmarkWalkStat walks the volume (about 240 names) and stats every
// name, as a timeline does.
func BenchmarkWalkStat(b *testing.B) {
	fs := benchVolume(b)
	b.ResetTimer()
	for b.Loop() {
		n := 0
		err := fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
			n++
			_, err := fs.Stat(e.ID)
			return err
		})
		if err != nil || n < 200 {
			b.Fatal(n, err)
		}
	}
}

func benchRead(b *testing.B, p string) {
	fs := benchVolume(b)
	id, err := fsys.Lookup(fs, p)
	if err != nil {
		b.Fatal(err)
	}
	f, err := fs.Open(id, "")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(f.Size())
	b.ResetTimer()
	for b.Loop() {
		if _, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, f.Size())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadCompressed reads a 200 KB LZNT1-compressed file.
func BenchmarkReadCompressed(b *testing.B) { benchRead(b, "/comp/text") }

// BenchmarkReadPlain reads a 100 KB uncompressed file.
func BenchmarkReadPlain(b *testing.B) { benchRead(b, "/big") }
