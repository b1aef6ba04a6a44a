package sampledisk_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/sampledisk/sampletest"
)

func TestFiles(t *testing.T) {
	files := sampledisk.Files()
	want := []struct {
		part int
		fs   string
		path string
		size int64
	}{
		{1, "ext4", "/README.txt", 120},
		{1, "ext4", "/etc/passwd", 218},
		{1, "ext4", "/etc/hostname", 25},
		{1, "ext4", "/home/analyst/notes.txt", 97},
		{1, "ext4", "/usr/local/bin/payload.bin", 256},
		{1, "ext4", "/var/log/auth.log", 976111},
		{2, "ntfs", "/README.txt", 120},
		{2, "ntfs", "/Security.log", 802091},
		{2, "ntfs", "/hosts.txt", 51},
		{2, "ntfs", "/tool.bin", 256},
	}
	if len(files) != len(want) {
		t.Fatalf("Files() has %d entries, want %d: %+v", len(files), len(want), files)
	}
	spanning := 0
	for i, w := range want {
		f := files[i]
		if f.Partition != w.part || f.FS != w.fs || f.Path != w.path || f.Size != w.size {
			t.Errorf("file %d = %+v, want partition %d %s %s size %d", i, f, w.part, w.fs, w.path, w.size)
		}
		if _, err := block.ParseHex(f.SHA256); err != nil {
			t.Errorf("file %s: %v", f.Path, err)
		}
		if f.Size > block.Size {
			spanning++
		}
	}
	if spanning != 2 {
		t.Errorf("%d files span more than one 512 KiB block, want one per partition", spanning)
	}

	// Files returns a copy: changing it must not change the next call.
	files[0].Path = "/changed"
	if got := sampledisk.Files()[0].Path; got != "/README.txt" {
		t.Errorf("Files()[0].Path = %q after the caller changed its copy", got)
	}

	var fromJSON []sampledisk.File
	if err := json.Unmarshal(sampledisk.FilesJSON(), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if len(fromJSON) != len(want) || fromJSON[9].SHA256 != sampledisk.Files()[9].SHA256 {
		t.Errorf("FilesJSON and Files disagree")
	}
}

func TestExtract(t *testing.T) {
	dir := t.TempDir()
	path, err := sampledisk.Extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "sample.raw"); path != want {
		t.Errorf("Extract returned %q, want %q", path, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 1<<30 || fi.Size() != sampledisk.Size || sampledisk.VolumeGiB != 1 {
		t.Errorf("sample.raw is %d bytes, want 1 GiB", fi.Size())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("sample.raw mode %v, want 0600", fi.Mode().Perm())
	}
	// The disk holds about 5 MiB of non-zero data; a dense copy would
	// allocate the full GiB.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > 32<<20 {
		t.Errorf("sample.raw allocates %d bytes, want a sparse file under 32 MiB", st.Blocks*512)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("Extract left %d entries in its directory, want only sample.raw", len(entries))
	}

	// The protective MBR and the GPT header are where a GPT disk keeps them.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, block.Size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if buf[510] != 0x55 || buf[511] != 0xAA || buf[450] != 0xEE || string(buf[512:520]) != "EFI PART" {
		t.Errorf("sample.raw does not start with a protective MBR and a GPT header")
	}
	// 17 of its 2048 EBS blocks hold data: it is small to acquire.
	nonZero := 0
	for off := int64(0); off < sampledisk.Size; off += block.Size {
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !block.IsZero(buf) {
			nonZero++
		}
	}
	if nonZero != 17 {
		t.Errorf("sample.raw has %d non-zero 512 KiB blocks, want 17", nonZero)
	}

	sampletest.CheckImage(t, path)
}

func TestExtractTwiceReplaces(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "sample.raw")
	if err := os.WriteFile(stale, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	path, err := sampledisk.Extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 8)
	if _, err := f.ReadAt(head, 512); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(head, []byte("EFI PART")) {
		t.Errorf("sector 1 starts %q after re-extracting, want the GPT signature", head)
	}
}

func TestExtractMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	_, err := sampledisk.Extract(dir)
	if err == nil || !strings.Contains(err.Error(), "extracting sample disk") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Extract into a missing directory: %v, want an error naming it", err)
	}
}

func TestScriptEmbedded(t *testing.T) {
	s := string(sampledisk.Script())
	if !strings.HasPrefix(s, "#!/usr/bin/env bash\n") || !strings.Contains(s, "mkntfs") || !strings.Contains(s, "sfdisk") {
		t.Errorf("Script() does not return make-sample-disk.sh")
	}
}

// BenchmarkExtract decompresses the 1 GiB sample disk to a sparse file.
func BenchmarkExtract(b *testing.B) {
	dir := b.TempDir()
	b.SetBytes(sampledisk.Size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sampledisk.Extract(dir); err != nil {
			b.Fatal(err)
		}
	}
}
