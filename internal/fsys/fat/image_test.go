package fat

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// This file builds the test volumes with the real tools: mkfs.vfat and
// mtools for FAT, mkfs.exfat and the exfat-fuse driver for exFAT.

func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "MTOOLS_SKIP_CHECK=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// content is a file's deterministic bytes: n bytes derived from seed.
func content(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	block := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n]
}

// tree is the files a test volume holds: path (from the root, with a
// leading slash) to bytes. Directories are implied by the paths.
type tree map[string][]byte

// writeTree writes t under dir.
func writeTree(tb testing.TB, dir string, files tree) {
	tb.Helper()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// sampleTree is the tree every test volume starts from: long and
// Unicode names, 8.3 names in lower and mixed case, an empty file, a
// nested directory, a file of big bytes, and (when many is 600) a
// directory of 600 entries that spans many clusters.
func sampleTree(big, many int) tree {
	t := tree{
		"/hello.txt":                       []byte("hello\n"),
		"/lower.txt":                       []byte("lower case 8.3 name\n"),
		"/UPPER.TXT":                       []byte("upper case 8.3 name\n"),
		"/A long name with ünïcode ✓.txt":  content("unicode", 1234),
		"/empty":                           {},
		"/Sub/Deep/deeper.bin":             content("deeper", 5000),
		"/Sub/big.bin":                     content("big", big),
		"/Sub/a name that needs 3 entries": content("three", 77),
	}
	for i := 0; i < many; i++ {
		t[fmt.Sprintf("/many/entry number %03d of the big directory.txt", i)] = content(fmt.Sprint("many", i), i%7)
	}
	return t
}

// fatImage makes a FAT volume of sizeMiB with mkfs.vfat (args choose
// the variant), copies files in with mcopy, then fragments /frag.bin:
// six small files are written, two deleted, and the file written into
// the gaps they leave. It returns the image path and what it holds.
func fatImage(t testing.TB, sizeMiB int, files tree, args ...string) (string, tree) {
	t.Helper()
	testenv.RequireTool(t, "mkfs.vfat", "mcopy", "mdel", "mattrib", "mmd")
	dir := t.TempDir()
	img := filepath.Join(dir, "fat.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, int64(sizeMiB)<<20); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.vfat", append(append([]string{}, args...), "-n", "TESTVOL", img)...)
	src := filepath.Join(dir, "src")
	writeTree(t, src, files)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	cp := []string{"-s", "-i", img}
	for _, e := range entries {
		cp = append(cp, filepath.Join(src, e.Name()))
	}
	run(t, "mcopy", append(cp, "::")...)

	all := tree{}
	for p, b := range files {
		all[p] = b
	}
	// Fragment: fill, punch two holes, write a file larger than each.
	csize := clusterSizeOf(t, img)
	run(t, "mmd", "-i", img, "::frag")
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("f%d", i)
		b := content(name, 2*csize)
		writeTree(t, filepath.Join(dir, "fr"), tree{"/" + name: b})
		run(t, "mcopy", "-i", img, filepath.Join(dir, "fr", name), "::frag/"+name)
		all["/frag/"+name] = b
	}
	run(t, "mdel", "-i", img, "::frag/f2", "::frag/f4")
	delete(all, "/frag/f2")
	forgetNextFree(t, img)
	delete(all, "/frag/f4")
	frag := content("frag", 6*csize+100)
	writeTree(t, filepath.Join(dir, "fr"), tree{"/frag.bin": frag})
	run(t, "mcopy", "-i", img, filepath.Join(dir, "fr", "frag.bin"), "::frag.bin")
	all["/frag.bin"] = frag
	// A read-only file.
	ro := []byte("read only\n")
	writeTree(t, filepath.Join(dir, "fr"), tree{"/ro.txt": ro})
	run(t, "mcopy", "-i", img, filepath.Join(dir, "fr", "ro.txt"), "::ro.txt")
	run(t, "mattrib", "-i", img, "+r", "::ro.txt")
	all["/ro.txt"] = ro
	return img, all
}

// forgetNextFree sets a FAT32 volume's FSInfo "next free cluster" hint
// to 0xFFFFFFFF, "unknown" (fatgen103, FSI_Nxt_Free), so that mtools
// looks for free clusters from the start and fills the holes deleted
// files left; without it, it allocates past the last file written.
func forgetNextFree(t testing.TB, img string) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 512)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if le.Uint16(b[22:]) != 0 { // FAT12/16: a 16-bit FAT size, no FSInfo
		return
	}
	at := int64(le.Uint16(b[48:]))*int64(le.Uint16(b[11:])) + 492
	if _, err := f.WriteAt([]byte{0xFF, 0xFF, 0xFF, 0xFF}, at); err != nil {
		t.Fatal(err)
	}
}

// clusterSizeOf reads the cluster size from a FAT boot sector.
func clusterSizeOf(t testing.TB, img string) int {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 512)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return int(binary.LittleEndian.Uint16(b[11:])) * int(b[13])
}

// exfatImage makes an exFAT volume of sizeMiB with mkfs.exfat (args
// added), mounts it with exfat-fuse on a loop device (the driver needs a
// block device when run as root), and lets fill write to it.
func exfatImage(t testing.TB, sizeMiB int, args []string, fill func(mnt string)) string {
	t.Helper()
	testenv.RequireTool(t, "mkfs.exfat", "mount.exfat-fuse", "losetup", "fusermount")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if testenv.CI() {
			t.Fatalf("/dev/fuse is required under CI=true: %v", err)
		}
		t.Skipf("no /dev/fuse: %v", err)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "exfat.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, int64(sizeMiB)<<20); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.exfat", append(append([]string{}, args...), "-L", "EXVOL", img)...)
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		// No loop device to be had (an unprivileged container).
		if testenv.CI() {
			t.Fatalf("losetup is required under CI=true: %v\n%s", err, out)
		}
		t.Skipf("losetup: %v\n%s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	detached := false
	defer func() {
		if !detached {
			exec.Command("losetup", "-d", dev).Run()
		}
	}()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	// -d keeps the driver in the foreground, so the test knows when it
	// has written everything out and exited.
	drv := exec.Command("mount.exfat-fuse", "-d", dev, mnt)
	drv.Env = append(os.Environ(), "TZ=UTC")
	if err := drv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- drv.Wait() }()
	mounted := false
	defer func() {
		if mounted {
			exec.Command("fusermount", "-u", mnt).Run()
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			drv.Process.Kill()
			<-exited
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); !mounted; {
		m, _ := os.ReadFile("/proc/self/mounts")
		mounted = strings.Contains(string(m), " "+mnt+" ")
		if !mounted {
			if time.Now().After(deadline) {
				t.Fatalf("exfat-fuse did not mount %s", dev)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fill(mnt)
	run(t, "fusermount", "-u", mnt)
	mounted = false
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exfat-fuse: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("exfat-fuse did not exit after the unmount")
	}
	exited <- nil
	run(t, "losetup", "-d", dev)
	detached = true
	return img
}
