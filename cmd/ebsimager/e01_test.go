package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/sampledisk/sampletest"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// TestE01 exports the sample disk as E01, one segment and several, writes
// one straight from acquire, and has libewf and the Sleuth Kit check them.
func TestE01(t *testing.T) {
	t.Parallel()
	tools := testenv.RequireTool(t, "ewfverify", "ewfinfo", "ewfexport")
	ewfverify, ewfinfo, ewfexport := tools[0], tools[1], tools[2]
	dir := t.TempDir()
	disk, err := sampledisk.Extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	diskSum := sha256File(t, disk)
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapDisk, disk, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapDisk, "--out", ev, "--quiet", "--case-number", "C-42", "--examiner", "J. Doe", "--description", "web server")

	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	one := filepath.Join(dir, "one")
	c.ok("export", ev, "--format", "e01", "--out", one, "--quiet", "--notes", "exported by the test")
	if out := run(ewfverify, "-q", one+".E01"); !strings.Contains(out, "SUCCESS") {
		t.Fatalf("ewfverify:\n%s", out)
	}
	info := run(ewfinfo, one+".E01")
	for _, want := range []string{"C-42", "J. Doe", "web server", "exported by the test", "fb5f77a8a875735bd299e4a00aa4f283", "53fecad2e5478cb40c6cf66c34b1b954f9f96795"} {
		if !strings.Contains(info, want) {
			t.Errorf("ewfinfo lacks %q:\n%s", want, info)
		}
	}
	run(ewfexport, "-u", "-q", "-f", "raw", "-t", filepath.Join(dir, "back"), one+".E01")
	if got := sha256File(t, filepath.Join(dir, "back.raw")); got != diskSum {
		t.Fatalf("ewfexport gave back %s, disk is %s", got, diskSum)
	}
	sampletest.CheckImage(t, one+".E01")
	c.ok("verify", one+".E01")

	// Several segments: uncompressed, the disk's 8.5 MiB of data (its
	// zeros take 52 bytes a chunk whatever the level) span 2 MiB segments.
	multi := filepath.Join(dir, "multi")
	c.ok("export", ev, "--format", "e01", "--out", multi, "--compression", "none", "--segment-size", "2MiB", "--quiet")
	segs, _ := filepath.Glob(multi + ".E0*")
	if len(segs) < 3 {
		t.Fatalf("segments %v, want at least 3", segs)
	}
	if out := run(ewfverify, "-q", multi+".E01"); !strings.Contains(out, "SUCCESS") {
		t.Fatalf("ewfverify of several segments:\n%s", out)
	}
	c.ok("verify", multi+".E01")

	// Straight from acquire.
	direct := filepath.Join(dir, "direct.E01")
	c.ok("acquire", snapDisk, "--image", direct, "--quiet", "--case-number", "C-43")
	if out := run(ewfverify, "-q", direct); !strings.Contains(out, "SUCCESS") {
		t.Fatalf("ewfverify of acquire --image .E01:\n%s", out)
	}
	if got := strings.Fields(readFile(t, filepath.Join(dir, "direct.sha256"))); !strings.Contains(strings.Join(got, " "), diskSum) {
		t.Fatalf("direct.sha256 %v lacks the disk's %s", got, diskSum)
	}

	// A flipped byte inside a chunk (in the text of a log file the disk
	// holds; chunks are stored uncompressed here) is caught by both.
	flipped := false
	for _, seg := range segs {
		data, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.Index(string(data), "sshd["); i >= 0 {
			data[i] ^= 0x01
			os.WriteFile(seg, data, 0o600)
			flipped = true
			break
		}
	}
	if !flipped {
		t.Fatal("no chunk holds the log text to corrupt")
	}
	if out, err := exec.Command(ewfverify, "-q", multi+".E01").CombinedOutput(); err == nil && strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("ewfverify missed the flipped byte:\n%s", out)
	}
	c.fails(exitMismatch, "verification FAILED", "verify", multi+".E01")

	// A missing segment is a clear error.
	os.Remove(multi + ".E03")
	c.fails(exitLocalIO, "segment 3 is missing", "verify", multi+".E01")
}
