package inspect_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// countingReader records every ReadAt, as an evidence-directory reader
// that fetches a 512 KiB block per call would see them.
type countingReader struct {
	r       io.ReaderAt
	mu      sync.Mutex
	offsets []int64
	lengths []int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.offsets = append(c.offsets, off)
	c.lengths = append(c.lengths, len(p))
	c.mu.Unlock()
	return c.r.ReadAt(p, off)
}

func sampleRaw(t *testing.T) string {
	t.Helper()
	path, err := sampledisk.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/inspect -run TestSampleDisk -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./internal/inspect -run TestSampleDisk -update rewrites it):\n%s", name, got)
	}
}

// TestSampleDisk pins the JSON and text Inspect gives for the built-in
// sample disk, and that it reads each 512 KiB block it needs only once.
func TestSampleDisk(t *testing.T) {
	f, err := os.Open(sampleRaw(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cr := &countingReader{r: f}
	l, err := inspect.Inspect(cr, sampledisk.Size)
	if err != nil {
		t.Fatal(err)
	}

	js, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sample.json", append(js, '\n'))
	var text bytes.Buffer
	l.Text(&text)
	golden(t, "sample.txt", text.Bytes())

	// Block 0 (MBR, GPT header and entries), block 2047 (the backup GPT),
	// block 2 (ext4 at 1 MiB) and block 130 (NTFS at 65 MiB, its MFT 16 KiB
	// in): four reads of one block each.
	wantOffsets := []int64{0, 2047 * block.Size, 2 * block.Size, 130 * block.Size}
	if !slices.Equal(cr.offsets, wantOffsets) {
		t.Errorf("ReadAt offsets %v, want %v", cr.offsets, wantOffsets)
	}
	for _, n := range cr.lengths {
		if n != block.Size {
			t.Errorf("ReadAt of %d bytes, want whole %d-byte blocks", n, block.Size)
		}
	}

	// The facts the sample disk was built with.
	if len(l.Partitions) != 2 {
		t.Fatalf("%d partitions", len(l.Partitions))
	}
	ext, ntfs := l.Partitions[0].FileSystem, l.Partitions[1].FileSystem
	if ext.Type != "ext4" || ext.Label != "evidence-ext4" || ext.UUID != "0e4d1c2b-3a49-4f5e-8d6c-7b8a9c0d1e2f" ||
		ext.Ext.LastMountedOn != "/srv/evidence" || ext.Ext.LastWrite.Unix() != 1704164645 {
		t.Errorf("ext4 partition: %+v", ext)
	}
	if ntfs.Type != "ntfs" || ntfs.Label != "EVIDENCE-NTFS" || ntfs.Serial != "5EB1A6E5D15C0002" || ntfs.ClusterSize != 4096 {
		t.Errorf("ntfs partition: %+v", ntfs)
	}
	if l.DiskID != "5eb1a6e5-0000-4000-8000-00000000d15c" || l.Partitions[0].GUID != "5eb1a6e5-0001-4000-8000-0000000e0004" {
		t.Errorf("GUIDs: disk %s partition 1 %s", l.DiskID, l.Partitions[0].GUID)
	}
}
