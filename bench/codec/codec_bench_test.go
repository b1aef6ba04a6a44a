package codecbench

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"compress/gzip"

	"filippo.io/age"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// The ext4 corpus copies at most perRoot bytes of regular files from each
// root (documentation, Python sources and bytecode, executables), so the
// disk holds text, binaries and already-compressed files as a system
// volume does.
var roots = []string{"/usr/share/doc", "/usr/lib/python3.11", "/usr/bin"}

const (
	perRoot   = 48 << 20 // 48 MiB per root: about 150 MB of files
	diskSize  = "256M"   // room for the files plus ext4 metadata
	sideCount = 64       // random and zero blocks: 32 MiB each
)

type corpus struct {
	name   string
	blocks [][]byte
}

var (
	corpora    []corpus
	corporaErr error
	corporaDir string
	once       sync.Once
)

// keepEnv names a directory in which to build the disk image and keep it,
// so that run.sh can measure the original tool's Python code on the same
// disk.
const keepEnv = "EBSIMAGER_BENCH_DIR"

func TestMain(m *testing.M) {
	code := m.Run()
	if corporaDir != "" && os.Getenv(keepEnv) == "" {
		os.RemoveAll(corporaDir)
	}
	os.Exit(code)
}

// loadCorpora builds the corpora once per run: the non-zero blocks of a
// fresh ext4 disk (the blocks a snapshot of it would list), random blocks
// (encrypted or compressed content) and zero blocks (listed, yet empty).
func loadCorpora(b *testing.B) []corpus {
	b.Helper()
	testenv.RequireTool(b, "mkfs.ext4")
	once.Do(func() {
		if corporaDir = os.Getenv(keepEnv); corporaDir == "" {
			corporaDir, corporaErr = os.MkdirTemp("", "codecbench")
			if corporaErr != nil {
				return
			}
		}
		var ext4 [][]byte
		ext4, corporaErr = ext4Blocks(corporaDir)
		if corporaErr != nil {
			return
		}
		rng := rand.NewChaCha8([32]byte{42})
		random := make([][]byte, sideCount)
		zero := make([][]byte, sideCount)
		for i := range random {
			random[i] = make([]byte, block.Size)
			rng.Read(random[i])
			zero[i] = make([]byte, block.Size)
		}
		corpora = []corpus{{"ext4", ext4}, {"random", random}, {"zero", zero}}
	})
	if corporaErr != nil {
		b.Fatal(corporaErr)
	}
	return corpora
}

func ext4Blocks(dir string) ([][]byte, error) {
	stage := filepath.Join(dir, "stage")
	defer os.RemoveAll(stage)
	for i, root := range roots {
		budget := int64(perRoot)
		dst := filepath.Join(stage, fmt.Sprint(i))
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || budget <= 0 || !d.Type().IsRegular() {
				return nil // unreadable or special files are skipped
			}
			data, err := os.ReadFile(path)
			if err != nil || int64(len(data)) > budget {
				return nil
			}
			budget -= int64(len(data))
			rel, _ := filepath.Rel(root, path)
			out := filepath.Join(dst, rel)
			if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
				return err
			}
			return os.WriteFile(out, data, 0o600)
		})
		if err != nil {
			return nil, fmt.Errorf("staging %s: %w", root, err)
		}
	}
	img := filepath.Join(dir, "disk.img")
	os.Remove(img)
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", stage, img, diskSize).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mkfs.ext4: %v: %s", err, out)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		return nil, err
	}
	var blocks [][]byte
	for off := 0; off+block.Size <= len(raw); off += block.Size {
		if p := raw[off : off+block.Size]; !block.IsZero(p) {
			blocks = append(blocks, p)
		}
	}
	return blocks, nil
}

// method stores one block into w.
type method struct {
	name string
	new  func(w io.Writer) (io.WriteCloser, error)
}

func methods(b *testing.B) []method {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	rec := id.Recipient()
	seal := func(f codec.Form, recs ...age.Recipient) func(io.Writer) (io.WriteCloser, error) {
		return func(w io.Writer) (io.WriteCloser, error) { return codec.Seal(w, f, recs...) }
	}
	stdGzip := func(level int) func(io.Writer) (io.WriteCloser, error) {
		return func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, level) }
	}
	return []method{
		{"zstd+age", seal(codec.Form{Codec: codec.Zstd, Encrypted: true}, rec)},
		{"zstd", seal(codec.Form{Codec: codec.Zstd})},
		{"gzip+age", seal(codec.Form{Codec: codec.Gzip, Encrypted: true}, rec)},
		{"gzip", seal(codec.Form{Codec: codec.Gzip})},
		{"none+age", seal(codec.Form{Encrypted: true}, rec)},
		// The original tool: Python's gzip.open, level 9 by default. The
		// standard library's deflate at 6 and 9 stands in for zlib.
		{"stdgzip6", stdGzip(6)},
		{"stdgzip9", stdGzip(9)},
	}
}

// ratios caches each method's stored size over a whole corpus.
var ratios sync.Map // "method/corpus" -> int64

func storedSize(b *testing.B, m method, c corpus) int64 {
	key := m.name + "/" + c.name
	if v, ok := ratios.Load(key); ok {
		return v.(int64)
	}
	var n int64
	var buf bytes.Buffer
	for _, blk := range c.blocks {
		buf.Reset()
		store(b, m, &buf, blk)
		n += int64(buf.Len())
	}
	ratios.Store(key, n)
	return n
}

func store(b *testing.B, m method, buf *bytes.Buffer, blk []byte) {
	w, err := m.new(buf)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.Write(blk); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStore compresses (and encrypts) one block per iteration,
// cycling through each corpus. MB/s is input per second; "ratio" is the
// corpus's input size over its stored size, measured over every block.
// Run with -cpu 1 for the per-core figure.
func BenchmarkStore(b *testing.B) {
	cs := loadCorpora(b)
	for _, m := range methods(b) {
		for _, c := range cs {
			b.Run(m.name+"/"+c.name, func(b *testing.B) {
				stored := storedSize(b, m, c)
				var buf bytes.Buffer
				buf.Grow(block.Size + 1024)
				b.SetBytes(block.Size)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					buf.Reset()
					store(b, m, &buf, c.blocks[i%len(c.blocks)])
					i++
				}
				in := int64(len(c.blocks)) * block.Size
				b.ReportMetric(float64(in)/float64(stored), "ratio")
				b.ReportMetric(float64(stored)/float64(len(c.blocks)), "B/block")
			})
		}
	}
}

// BenchmarkAcquireBlock is the per-block CPU cost of acquisition's store
// step with the default form: SHA-256 of the block, zstd, age. Run it
// with -cpu 2 to see what two cores sustain.
func BenchmarkAcquireBlock(b *testing.B) {
	cs := loadCorpora(b)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	f := codec.Form{Codec: codec.Zstd, Encrypted: true}
	blocks := cs[0].blocks
	b.SetBytes(block.Size)
	b.ReportAllocs()
	var next sync.Mutex
	i := 0
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var buf bytes.Buffer
		for pb.Next() {
			next.Lock()
			blk := blocks[i%len(blocks)]
			i++
			next.Unlock()
			sha256.Sum256(blk)
			buf.Reset()
			w, err := codec.Seal(&buf, f, id.Recipient())
			if err != nil {
				b.Error(err)
				return
			}
			w.Write(blk)
			if err := w.Close(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkOpen reads stored blocks back: age, zstd or gzip, the bound
// and ReadBlock, into a reused buffer.
func BenchmarkOpen(b *testing.B) {
	cs := loadCorpora(b)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range []codec.Form{{Codec: codec.Zstd, Encrypted: true}, {Codec: codec.Zstd}, {Codec: codec.Gzip}} {
		var recs []age.Recipient
		var ids []age.Identity
		if f.Encrypted {
			recs, ids = []age.Recipient{id.Recipient()}, []age.Identity{id}
		}
		var stored [][]byte
		for _, blk := range cs[0].blocks {
			var buf bytes.Buffer
			w, err := codec.Seal(&buf, f, recs...)
			if err != nil {
				b.Fatal(err)
			}
			w.Write(blk)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			stored = append(stored, buf.Bytes())
		}
		b.Run(f.String()+"/ext4", func(b *testing.B) {
			dst := make([]byte, 0, block.Size)
			b.SetBytes(block.Size)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r, err := codec.Open(bytes.NewReader(stored[i%len(stored)]), f, ids...)
				if err != nil {
					b.Fatal(err)
				}
				if dst, err = codec.ReadBlock(r, dst); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
