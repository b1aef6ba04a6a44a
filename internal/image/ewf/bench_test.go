package ewf

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zlib"
)

// benchMedia is 32 MiB mixing log-like text, skewed "binary" bytes,
// random bytes and zeros in about the proportions of a lightly used volume.
func benchMedia() []byte {
	rng := rand.New(rand.NewPCG(5, 6))
	words := make([]string, 2000)
	for i := range words {
		w := make([]byte, 2+rng.IntN(9))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = string(w)
	}
	var text bytes.Buffer
	for text.Len() < 8<<20 {
		fmt.Fprintf(&text, "%d-%02d-%02dT%02d:%02d:%02d host%d %s[%d]:", 2024, 1+rng.IntN(12), 1+rng.IntN(28),
			rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(50), words[rng.IntN(40)], rng.IntN(65536))
		for range 4 + rng.IntN(12) {
			// Zipf-like: a few words are common, most are rare.
			text.WriteString(" " + words[int(float64(len(words))*rng.Float64()*rng.Float64()*rng.Float64())])
		}
		text.WriteByte('\n')
	}
	skewed := make([]byte, 8<<20)
	for i := range skewed {
		skewed[i] = byte(rng.ExpFloat64() * 12) // small values common, like code and tables
	}
	var b bytes.Buffer
	b.Write(text.Bytes()[:8<<20])
	b.Write(skewed)
	b.Write(randomMedia(6<<20, 42))
	b.Write(make([]byte, 10<<20))
	return b.Bytes()
}

// BenchmarkWrite measures the writer end to end (compression, hashing,
// files) on benchMedia.
func BenchmarkWrite(b *testing.B) {
	data := benchMedia()
	for _, level := range []Level{LevelNone, LevelFast, LevelBest} {
		for _, workers := range []int{1, 0} {
			b.Run(fmt.Sprintf("%s/workers%d", level, workers), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				var size int64
				for i := 0; b.Loop(); i++ {
					dir := b.TempDir()
					w, err := Create(filepath.Join(dir, "img"), int64(len(data)), Options{Level: level, Workers: workers})
					if err != nil {
						b.Fatal(err)
					}
					for off := 0; off < len(data); off += 512 << 10 {
						w.Write(data[off:min(off+512<<10, len(data))])
					}
					res, err := w.Close()
					if err != nil {
						b.Fatal(err)
					}
					st, _ := os.Stat(res.Segments[0])
					size = st.Size()
					os.RemoveAll(dir)
				}
				b.ReportMetric(float64(size)/float64(len(data)), "ratio")
			})
		}
	}
}

// BenchmarkCompressLevels compares klauspost/compress zlib levels on the
// chunks of benchMedia that are not zero: the choice behind LevelFast.
func BenchmarkCompressLevels(b *testing.B) {
	data := benchMedia()
	for _, lvl := range []int{1, 2, 3, 4, 5, 6, 9} {
		b.Run(fmt.Sprintf("level%d", lvl), func(b *testing.B) {
			var buf bytes.Buffer
			zw, _ := zlib.NewWriterLevel(&buf, lvl)
			b.SetBytes(int64(len(data)))
			var stored int
			for b.Loop() {
				stored = 0
				for off := 0; off < len(data); off += ChunkSize {
					chunk := data[off : off+ChunkSize]
					buf.Reset()
					zw.Reset(&buf)
					zw.Write(chunk)
					zw.Close()
					stored += min(buf.Len(), ChunkSize+4)
				}
			}
			b.ReportMetric(float64(stored)/float64(len(data)), "ratio")
		})
	}
}

// BenchmarkVerify measures reading back and hashing a fast-compressed
// image.
func BenchmarkVerify(b *testing.B) {
	data := benchMedia()
	dir := b.TempDir()
	w, err := Create(filepath.Join(dir, "img"), int64(len(data)), Options{Level: LevelFast})
	if err != nil {
		b.Fatal(err)
	}
	w.Write(data)
	res, err := w.Close()
	if err != nil {
		b.Fatal(err)
	}
	r, err := Open(res.Segments[0])
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := r.Verify(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadAt measures sequential 512 KiB reads.
func BenchmarkReadAt(b *testing.B) {
	data := benchMedia()
	dir := b.TempDir()
	w, err := Create(filepath.Join(dir, "img"), int64(len(data)), Options{Level: LevelFast})
	if err != nil {
		b.Fatal(err)
	}
	w.Write(data)
	res, err := w.Close()
	if err != nil {
		b.Fatal(err)
	}
	r, err := Open(res.Segments[0])
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.SetBytes(int64(len(data)))
	buf := make([]byte, 512<<10)
	for b.Loop() {
		for off := int64(0); off < r.Size(); off += int64(len(buf)) {
			if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}
