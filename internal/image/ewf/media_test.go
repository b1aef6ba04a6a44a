package ewf

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// Test media. Every size is a multiple of 512 and of neither 32 KiB nor
// the 1 MiB test segment size.

// disk is a small GPT disk with one ext4 partition holding known files.
type disk struct {
	data     []byte
	partLBA  int64             // first sector of the ext4 partition
	files    map[string][]byte // path in the file system -> contents
	fileList []string
}

const (
	diskSize    = 8<<20 + 3*512 // 8 MiB and 3 sectors
	partStart   = 2048          // sectors: the 1 MiB alignment sfdisk uses
	partSectors = 12288         // 6 MiB
)

// buildDisk makes a disk with sfdisk and mkfs.ext4 -d, without mounting.
func buildDisk(t testing.TB) *disk {
	t.Helper()
	tools := testenv.RequireTool(t, "sfdisk", "mkfs.ext4")
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	d := &disk{partLBA: partStart, files: map[string][]byte{}}
	// Enough random bytes that the image spans several 1 MiB segments.
	random := make([]byte, 2_500_000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var text strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&text, "line %d of the evidence notes: the quick brown fox\n", i)
	}
	for name, content := range map[string][]byte{
		"hello.txt":        []byte("hello from ebsimager\n"),
		"random.bin":       random,
		"docs/notes.txt":   []byte(text.String()),
		"docs/deep/id.txt": []byte("snap-0123456789abcdef0\n"),
	} {
		p := filepath.Join(dir, "root", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		d.files[name] = content
		d.fileList = append(d.fileList, name)
	}
	part := filepath.Join(dir, "part.img")
	run(t, tools[1], "-q", "-F", "-b", "1024", "-d", filepath.Join(dir, "root"), part, fmt.Sprint(partSectors/2))
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, diskSize), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tools[0], "-q", img)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: gpt\nstart=%d, size=%d, type=linux\n", partStart, partSectors))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != partSectors*512 {
		t.Fatalf("ext4 image is %d bytes, want %d", len(fs), partSectors*512)
	}
	copy(raw[partStart*512:], fs)
	d.data = raw
	return d
}

// randomMedia is incompressible bytes with a tail that is not a whole
// chunk.
func randomMedia(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// sparseMedia is mostly zeros, with islands of text and random bytes,
// some of them crossing chunk boundaries.
func sparseMedia(size int) []byte {
	b := make([]byte, size)
	rnd := randomMedia(100_000, 7)
	for _, at := range []int{0, 40_000, 1 << 20, 3<<20 - 1000, size - 70_000} {
		if at >= 0 && at < size {
			copy(b[at:], rnd)
		}
	}
	if at := 2<<20 + 5; at < size {
		copy(b[at:], bytes.Repeat([]byte("sparse but not empty "), 3000))
	}
	return b
}

// feed writes data through w in pieces of random length, sending runs of
// zeros through WriteZeros about half the time.
func feed(t testing.TB, w *Writer, data []byte, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1+rng.IntN(200_000))
		piece := data[off : off+n]
		if block.IsZero(piece) && rng.IntN(2) == 0 {
			if err := w.WriteZeros(int64(n)); err != nil {
				t.Fatalf("WriteZeros(%d) at %d: %v", n, off, err)
			}
		} else if k, err := w.Write(piece); err != nil || k != n {
			t.Fatalf("Write(%d bytes) at %d = %d, %v", n, off, k, err)
		}
		off += n
	}
}

var testMeta = Metadata{
	CaseNumber:     "CASE-2024-017",
	EvidenceNumber: "EV-3",
	Examiner:       "Ada Examiner",
	Description:    "EBS snapshot snap-0123456789abcdef0",
	Notes:          "acquired through the EBS direct APIs",
	Model:          "vol-0fedcba9876543210",
	SerialNumber:   "snap-0123456789abcdef0",
	ToolVersion:    "ebsimager 1",
	OS:             "Linux",
	AcquiredAt:     time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
	SystemAt:       time.Date(2024, 5, 6, 7, 8, 10, 0, time.UTC),
}

// writeImage writes data as an E01 at dir/name and returns the result.
func writeImage(t testing.TB, dir, name string, data []byte, o Options) Result {
	t.Helper()
	return writeImageLimits(t, dir, name, data, o, formatLimits)
}

func writeImageLimits(t testing.TB, dir, name string, data []byte, o Options, lim limits) Result {
	t.Helper()
	w, err := create(filepath.Join(dir, name), int64(len(data)), o, lim)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	feed(t, w, data, uint64(len(data)))
	res, err := w.Close()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkResult(t, res, data)
	return res
}

func checkResult(t testing.TB, res Result, data []byte) {
	t.Helper()
	if res.MediaSize != int64(len(data)) {
		t.Errorf("MediaSize = %d, want %d", res.MediaSize, len(data))
	}
	if res.MD5 != md5.Sum(data) {
		t.Errorf("MD5 = %x, want %x", res.MD5, md5.Sum(data))
	}
	if res.SHA1 != sha1.Sum(data) {
		t.Errorf("SHA1 = %x, want %x", res.SHA1, sha1.Sum(data))
	}
	if res.SHA256 != sha256.Sum256(data) {
		t.Errorf("SHA256 = %x, want %x", res.SHA256, sha256.Sum256(data))
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
