package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/sampledisk/sampletest"
)

const snapDisk = "snap-0e0000000000000e5"

// TestRealDiskEndToEnd acquires a real GPT disk with ext4 and NTFS
// partitions, built by sfdisk, mkfs.ext4, debugfs, mkntfs and ntfscp,
// then verifies and exports it: the image must be the disk, byte for
// byte, and the Sleuth Kit must read the files back exactly.
func TestRealDiskEndToEnd(t *testing.T) {
	t.Parallel()
	disk := sampletest.Build(t)
	diskSum := sha256File(t, disk)
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapDisk, disk, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapDisk, "--out", ev, "--quiet")
	c.ok("verify", ev)

	img := filepath.Join(dir, "disk.raw")
	r := c.ok("export", ev, "--out", img, "--ext4")
	if got := sha256File(t, img); got != diskSum {
		t.Fatalf("exported image sha256 %s, disk %s", got, diskSum)
	}
	if !strings.Contains(r.stdout, "ext4 in partition 1") {
		t.Fatalf("--ext4 check: %s", r.stdout)
	}
	// The hash files check with the coreutils.
	for _, tool := range []string{"md5sum", "sha1sum", "sha256sum"} {
		alg := strings.TrimSuffix(tool, "sum")
		cmd := exec.Command(tool, "-c", filepath.Base(img)+"."+alg)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s -c: %v\n%s", tool, err, out)
		}
	}
	sampletest.CheckImage(t, img)
	// The image is sparse: unlisted blocks are holes.
	var st statT
	if err := stat(img, &st); err == nil && st.allocated >= st.size {
		t.Fatalf("image allocates %d of %d bytes: not sparse", st.allocated, st.size)
	}

	// --ntfs finds the NTFS partition.
	r = c.ok("export", ev, "--out", filepath.Join(dir, "ntfs.raw"), "--ntfs")
	if !strings.Contains(r.stdout, "ntfs in partition 2") {
		t.Fatalf("--ntfs check: %s", r.stdout)
	}

	// Split export: the segments concatenate to the disk.
	split := filepath.Join(dir, "split.raw")
	c.ok("export", ev, "--out", split, "--split", "300MiB", "--quiet")
	cat := exec.Command("sh", "-c", "cat "+split+".0* | sha256sum")
	out, err := cat.Output()
	if err != nil || !strings.HasPrefix(string(out), diskSum) {
		t.Fatalf("split segments hash %q, want %s (%v)", out, diskSum, err)
	}
	if segs, _ := filepath.Glob(split + ".0*"); len(segs) != 4 {
		t.Fatalf("1 GiB in 300 MiB segments: %d segments %v, want 4", len(segs), segs)
	}

	// Direct mode writes the same bytes.
	direct := filepath.Join(dir, "direct.raw")
	c.ok("acquire", snapDisk, "--image", direct, "--quiet")
	if got := sha256File(t, direct); got != diskSum {
		t.Fatalf("--image sha256 %s, disk %s", got, diskSum)
	}
	if got := strings.Fields(readFile(t, direct+".sha256"))[0]; got != diskSum {
		t.Fatalf("--image hash file says %s, disk %s", got, diskSum)
	}
	if _, err := os.Stat(direct + ".partial"); !os.IsNotExist(err) {
		t.Fatal("direct mode left its partial file")
	}
}
