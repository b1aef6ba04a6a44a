package disk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/disk/disktest"
)

const MiB = disktest.MiB

// fakeFS records the bytes a reader was opened on.
type fakeFS struct {
	fsys.FS
	r    io.ReaderAt
	size int64
}

// withFakeReader makes typ open as a fakeFS for the test's length.
func withFakeReader(t *testing.T, typ string) {
	old, had := readers[typ]
	readers[typ] = func(r io.ReaderAt, size int64) (fsys.FS, error) { return &fakeFS{r: r, size: size}, nil }
	t.Cleanup(func() {
		if had {
			readers[typ] = old
		} else {
			delete(readers, typ)
		}
	})
}

func openDisk(t *testing.T, path string) *Disk {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ext4Image(t *testing.T, dir string, size int64) string {
	t.Helper()
	tree := filepath.Join(dir, "tree")
	disktest.Tree(t, tree, map[string]string{"etc/hostname": "evidence\n", "var/log/auth.log": "login\n"})
	img := filepath.Join(dir, "ext4.img")
	disktest.Ext4(t, img, size, tree)
	return img
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll reads size bytes of r.
func readAll(t *testing.T, r io.ReaderAt, size int64) []byte {
	t.Helper()
	b := make([]byte, size)
	if n, err := r.ReadAt(b, 0); int64(n) != size {
		t.Fatalf("read %d of %d bytes: %v", n, size, err)
	}
	return b
}

type partWant struct {
	name, kind, typ, enc string
	offset, length       int64
}

func checkParts(t *testing.T, d *Disk, want []partWant) {
	t.Helper()
	var got []partWant
	for _, p := range d.Parts {
		got = append(got, partWant{p.Name, p.Kind, p.Type, p.Encryption, p.Offset, p.Length})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("parts:\n%v\nwant:\n%v\nwarnings: %v", got, want, d.Warnings)
	}
}

// TestGPT lists a GPT disk's partitions, opens the ext4 one's reader on
// exactly the partition's bytes, and reports the encrypted ones and the
// missing one.
func TestGPT(t *testing.T) {
	dir := t.TempDir()
	ext := ext4Image(t, dir, 8*MiB)
	luks := filepath.Join(dir, "luks.img")
	disktest.LUKS1(t, luks, 4*MiB)
	bl := filepath.Join(dir, "bitlocker.img")
	disktest.BitLocker(t, bl, 2*MiB)
	img := filepath.Join(dir, "disk.img")
	off := disktest.Disk(t, img, "gpt", 32*MiB, []disktest.Partition{
		{Size: 8 * MiB, Type: disktest.TypeLinux, Image: ext},
		{Size: 4 * MiB, Type: disktest.TypeLinux, Image: luks},
		{Size: 2 * MiB, Type: disktest.TypeBasic, Image: bl},
		{Size: 2 * MiB, Type: disktest.TypeLinux},
	})
	d := openDisk(t, img)
	checkParts(t, d, []partWant{
		{"1", KindPartition, "ext4", "", off[0], 8 * MiB},
		{"2", KindPartition, "luks1", "LUKS1", off[1], 4 * MiB},
		{"3", KindPartition, "BitLocker", "BitLocker", off[2], 2 * MiB},
		{"4", KindPartition, "unknown", "", off[3], 2 * MiB},
	})

	withFakeReader(t, "ext4")
	for _, name := range []string{"1", "p1", ""} {
		f, err := d.Open(name)
		if err != nil {
			t.Fatalf("Open(%q): %v", name, err)
		}
		ff := f.(*fakeFS)
		if ff.size != 8*MiB || !bytes.Equal(readAll(t, ff.r, ff.size), fileBytes(t, ext)) {
			t.Fatalf("Open(%q): the reader does not see partition 1's bytes (%d bytes)", name, ff.size)
		}
	}
	for _, c := range []struct {
		name string
		is   error
		want string
	}{
		{"2", fsys.ErrEncrypted, "partition 2 is encrypted with LUKS1"},
		{"3", fsys.ErrEncrypted, "partition 3 is encrypted with BitLocker"},
		{"4", fsys.ErrUnsupported, "partition 4 (unknown): its file system is not recognised"},
		{"5", fsys.ErrNotFound, `no part "5" on this volume (it holds partition 1 (ext4), partition 2 (luks1, encrypted), partition 3 (BitLocker, encrypted), partition 4 (unknown))`},
		{"vg/lv", fsys.ErrNotFound, `no part "vg/lv"`},
	} {
		_, err := d.Open(c.name)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q): %v; want %v containing %q", c.name, err, c.is, c.want)
		}
	}
	delete(readers, "ext4")
	if _, err := d.Open("1"); !errors.Is(err, fsys.ErrUnsupported) || !strings.Contains(err.Error(), "partition 1 (ext4): the ext4 reader is not built into this ebsimager") {
		t.Errorf("Open(1) without an ext4 reader: %v", err)
	}
}

// TestMBRLogical lists primary and logical MBR partitions by the numbers
// Linux gives them, skipping the extended one.
func TestMBRLogical(t *testing.T) {
	dir := t.TempDir()
	ext := ext4Image(t, dir, 4*MiB)
	luks := filepath.Join(dir, "luks.img")
	disktest.LUKS1(t, luks, 4*MiB)
	img := filepath.Join(dir, "disk.img")
	off := disktest.Disk(t, img, "dos", 24*MiB, []disktest.Partition{
		{Size: 4 * MiB, Type: disktest.TypeLinux, Image: ext},
		{Size: 4*MiB + 4*MiB + 2*MiB, Type: disktest.TypeExtended},
		{Size: 4 * MiB, Type: disktest.TypeLinux, Image: ext},
		{Size: 4 * MiB, Type: disktest.TypeLinux, Image: luks},
	})
	mmls := disktest.Run(t, "mmls", img)
	for _, o := range off {
		if !strings.Contains(mmls, fmt.Sprintf("%010d", o/512)) {
			t.Fatalf("mmls does not show a partition at sector %d:\n%s", o/512, mmls)
		}
	}
	d := openDisk(t, img)
	checkParts(t, d, []partWant{
		{"1", KindPartition, "ext4", "", off[0], 4 * MiB},
		{"5", KindPartition, "ext4", "", off[2], 4 * MiB},
		{"6", KindPartition, "luks1", "LUKS1", off[3], 4 * MiB},
	})
	if _, err := d.Single(); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "partition 5 (ext4)") {
		t.Fatalf("Single on two ext4 partitions: %v", err)
	}
	withFakeReader(t, "ext4")
	f, err := d.Open("5")
	if err != nil {
		t.Fatal(err)
	}
	if ff := f.(*fakeFS); !bytes.Equal(readAll(t, ff.r, ff.size), fileBytes(t, ext)) {
		t.Fatal("partition 5's reader does not see its bytes")
	}
}

// TestBare opens a file system with no partition table as the part "".
func TestBare(t *testing.T) {
	dir := t.TempDir()
	ext := ext4Image(t, dir, 4*MiB)
	d := openDisk(t, ext)
	checkParts(t, d, []partWant{{"", KindBare, "ext4", "", 0, 4 * MiB}})
	withFakeReader(t, "ext4")
	if _, err := d.Open(""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open("1"); !errors.Is(err, fsys.ErrNotFound) || !strings.Contains(err.Error(), "a bare ext4 file system, addressed as /path") {
		t.Fatalf("Open(1) on a bare file system: %v", err)
	}
}
