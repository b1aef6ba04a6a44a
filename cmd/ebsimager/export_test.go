package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/store"
)

// sidecar is the digest a checksum file records (its first entry).
func sidecar(t *testing.T, path string) string {
	t.Helper()
	for _, l := range strings.Split(readFile(t, path), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			return strings.Fields(l)[0]
		}
	}
	t.Fatalf("%s holds no digest", path)
	return ""
}

// leftovers lists the temporary files of our image writers in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".partial") || strings.HasSuffix(n, ".tmp") || strings.HasSuffix(n, ".lock") {
			out = append(out, n)
		}
	}
	return out
}

// TestExportOutputSafety (issue 10, case 9 and sidecars): --force replaces
// only regular files; nothing inside the evidence, or the same file as any
// of it, is ever an output; checksum files are outputs too; unrelated
// files beside an E01 neither block it nor go away.
func TestExportOutputSafety(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, snapA+"=1GiB,0.02,1")
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	manifestSum := sha256File(t, filepath.Join(ev, store.ManifestName))
	evidenceFiles := func() []string {
		var names []string
		filepath.WalkDir(ev, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() != "report.json" {
				names = append(names, p)
			}
			return nil
		})
		return names
	}
	before := evidenceFiles()

	// A device node (made here: never the real /dev/null), a FIFO, a
	// directory, and links to them: refused with and without --force.
	null := filepath.Join(dir, "null.E01") // .E01: also an E01's first segment
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Logf("mknod (needs root): %v; checking FIFOs and directories only", err)
		null = ""
	}
	fifo := filepath.Join(dir, "fifo.E01")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub.E01")
	os.Mkdir(sub, 0o700)
	os.Symlink(fifo, filepath.Join(dir, "to-fifo.E01"))
	type victim struct{ path, want string }
	victims := []victim{{fifo, "is a FIFO, not a regular file"}, {sub, "is a directory"}, {filepath.Join(dir, "to-fifo.E01"), "symbolic link to a FIFO"}}
	if null != "" {
		victims = append(victims, victim{null, "is a character device, not a regular file"})
	}
	for _, v := range victims {
		fi, _ := os.Lstat(v.path)
		for _, force := range [][]string{nil, {"--force"}} {
			c.fails(exitConflict, v.want, append([]string{"export", ev, "--out", v.path, "--quiet"}, force...)...)
			c.fails(exitConflict, v.want, append([]string{"export", ev, "--format", "e01", "--out", v.path, "--quiet"}, force...)...)
			// As a checksum file beside an image.
			side := strings.TrimSuffix(v.path, ".E01") + ".img"
			os.Symlink(v.path, side+".md5")
			c.fails(exitConflict, v.want[:len("is a")], append([]string{"export", ev, "--out", side, "--quiet"}, force...)...)
			os.Remove(side + ".md5")
		}
		after, err := os.Lstat(v.path)
		if err != nil || after.Mode() != fi.Mode() || !os.SameFile(fi, after) {
			t.Fatalf("%s was replaced: %v %v", v.path, after, err)
		}
	}
	if null != "" {
		if fi, err := os.Lstat(null); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
			t.Fatalf("the device node is no longer one: %v %v", fi, err)
		}
	}

	// The evidence being read: inside it, or the same file by a hard or
	// symbolic link, or through a linked directory.
	hard := filepath.Join(dir, "hard")
	if err := os.Link(filepath.Join(ev, store.ManifestName), hard); err != nil {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(ev, store.ManifestName), filepath.Join(dir, "soft"))
	os.Symlink(ev, filepath.Join(dir, "evlink"))
	for _, args := range [][]string{
		{"--out", filepath.Join(ev, store.ManifestName), "--force"},
		{"--out", filepath.Join(ev, "image.raw")},
		{"--out", filepath.Join(ev, "blocks", "image.raw")},
		{"--out", filepath.Join(dir, "evlink", "image.raw"), "--force"},
		{"--out", filepath.Join(ev, "case"), "--format", "e01"},
		{"--out", filepath.Join(ev, "manifest"), "--format", "e01", "--force"},
	} {
		c.fails(exitConflict, "which this command reads", append([]string{"export", ev, "--quiet"}, args...)...)
	}
	for _, link := range []string{hard, filepath.Join(dir, "soft")} {
		c.fails(exitConflict, "is the same file as "+filepath.Join(ev, store.ManifestName), "export", ev, "--out", link, "--force", "--quiet")
	}
	// Checksum files are outputs: one inside the evidence is refused.
	os.Symlink(filepath.Join(ev, store.ManifestSumName), filepath.Join(dir, "img.raw.sha256"))
	c.fails(exitConflict, "is the same file as "+filepath.Join(ev, store.ManifestSumName), "export", ev, "--out", filepath.Join(dir, "img.raw"), "--force", "--quiet")
	os.Remove(filepath.Join(dir, "img.raw.sha256"))
	if got := sha256File(t, filepath.Join(ev, store.ManifestName)); got != manifestSum {
		t.Fatal("a refused export changed the manifest")
	}
	if after := evidenceFiles(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("refused exports changed the evidence's files:\n%q\nwas\n%q", after, before)
	}
	c.ok("verify", ev)

	// Sidecars of an earlier image are not replaced without --force.
	img := filepath.Join(dir, "img.raw")
	os.WriteFile(img+".sha1", []byte("examiner's note\n"), 0o600)
	r := c.fails(exitConflict, img+".sha1", "export", ev, "--out", img, "--quiet")
	if !strings.Contains(r.stderr, "hint: pass --force") {
		t.Errorf("no --force hint:\n%s", r.stderr)
	}
	if readFile(t, img+".sha1") != "examiner's note\n" {
		t.Fatal("a refused export changed the existing .sha1")
	}
	c.ok("export", ev, "--out", img, "--quiet", "--force")
	if sidecar(t, img+".sha256") != sha256File(t, img) {
		t.Fatal("the image does not match its .sha256")
	}
	c.fails(exitConflict, img+": already exists", "export", ev, "--out", img, "--quiet")

	// E01: case.err is not ours; case.md5 is.
	base := filepath.Join(dir, "case")
	os.WriteFile(base+".err", []byte("errors"), 0o600)
	os.WriteFile(base+".md5", []byte("old"), 0o600)
	c.fails(exitConflict, base+".md5", "export", ev, "--format", "e01", "--out", base, "--quiet")
	if readFile(t, base+".md5") != "old" {
		t.Fatal("a refused E01 export changed case.md5")
	}
	os.Remove(base + ".md5")
	c.ok("export", ev, "--format", "e01", "--out", base, "--quiet")
	c.fails(exitConflict, base+".E01: already exists", "export", ev, "--format", "e01", "--out", base+".E01", "--quiet")
	c.ok("export", ev, "--format", "e01", "--out", base, "--quiet", "--force")
	if readFile(t, base+".err") != "errors" {
		t.Fatal("case.err changed")
	}
	if sidecar(t, base+".sha256") != sidecar(t, img+".sha256") {
		t.Fatal("the E01's media SHA-256 differs from the raw image's")
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Fatalf("left behind: %q", l)
	}

	// The neighbours: block --out and diff --out (whose inputs may be
	// evidence directories and images) follow the same rules.
	for _, v := range victims {
		c.fails(exitConflict, v.want, "block", snapA, "0", "--out", v.path, "--force")
		c.fails(exitConflict, v.want, "diff", snapA, snapB, "--out", v.path, "--force")
	}
	imgSum := sha256File(t, img)
	c.fails(exitConflict, "which this command reads", "diff", snapA, snapB, "--base-evidence", ev, "--out", filepath.Join(ev, store.ManifestName), "--force")
	c.fails(exitConflict, "is the same file as "+img, "diff", snapA, snapB, "--base-evidence", img, "--out", img, "--force")
	c.fails(exitConflict, "is the same file as "+base+".E01", "diff", snapA, snapB, "--evidence", base+".E01", "--base-evidence", ev, "--out", base+".E01", "--force")
	if sha256File(t, img) != imgSum {
		t.Fatal("a refused diff changed the image it reads")
	}
	c.ok("verify", ev)
	c.ok("verify", base+".E01")
}

// TestExportFlagsThatDoNotApply: flags that would be ignored, and sizes
// outside what the help promises, are refused with exit 2 and a reason.
func TestExportFlagsThatDoNotApply(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, snapA+"=1GiB,0.01,1")
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	out := filepath.Join(dir, "x")
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"--compression applies only to an E01", []string{"export", ev, "--out", out, "--compression", "best"}},
		{"--segment-size applies only to an E01", []string{"export", ev, "--out", out, "--segment-size", "1GiB"}},
		{"--split, --hash", []string{"export", ev, "--out", out, "--format", "e01", "--split", "1GiB"}},
		{"--split, --hash", []string{"export", ev, "--out", out, "--format", "e01", "--hash", "md5"}},
		{"--segment-size 3GiB: want 1MiB to 2GiB", []string{"export", ev, "--out", out, "--format", "e01", "--segment-size", "3GiB"}},
		{"--segment-size 1KiB: want 1MiB to 2GiB", []string{"export", ev, "--out", out, "--format", "e01", "--segment-size", "1KiB"}},
		{"want a positive number of bytes below 8 EiB", []string{"export", ev, "--out", out, "--format", "e01", "--segment-size", "1e30TiB"}},
		{"want a positive number of bytes below 8 EiB", []string{"export", ev, "--out", out, "--split", "NaN"}},
		{"--split 1KiB: want at least 1MiB", []string{"export", ev, "--out", out, "--split", "1KiB"}},
		{"--compression applies only to an E01", []string{"acquire", snapA, "--image", out + ".raw", "--compression", "none"}},
		{"--segment-size applies only to an E01", []string{"acquire", snapA, "--image", out + ".raw", "--segment-size", "1GiB"}},
		{"--segment-size applies only to an E01", []string{"acquire", snapA, "--out", out, "--segment-size", "1GiB"}},
		{"--hash applies only to a raw --image", []string{"acquire", snapA, "--out", out, "--hash", "md5"}},
		{"--hash applies only to a raw --image", []string{"acquire", snapA, "--image", out + ".E01", "--hash", "md5"}},
		{"--segment-size 3GiB: want 1MiB to 2GiB", []string{"acquire", snapA, "--image", out + ".E01", "--segment-size", "3GiB"}},
	} {
		c.fails(exitUsage, tc.want, tc.args...)
	}
	// Every segment is open while the image is written: more segments than
	// open files is refused before anything is written.
	cmd := c.command(t.Context(), "export", ev, "--out", out, "--split", "1MiB", "--quiet")
	cmd.Args = append([]string{"sh", "-c", `ulimit -n 256 && exec "$0" "$@"`, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = "/bin/sh"
	b, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != exitUsage || !strings.Contains(string(b), "1024 segments") || !strings.Contains(string(b), "ulimit -n") {
		t.Fatalf("--split 1MiB with ulimit -n 256: %v\n%s", err, b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("refused commands left files: %v", ents)
	}
	// 650MB is no whole number of sectors: segments are cut at 650MB
	// rounded down to a sector.
	c.ok("export", ev, "--out", out, "--split", "650MB", "--quiet")
	if fi, err := os.Stat(out + ".001"); err != nil || fi.Size() != 650_000_000-650_000_000%512 {
		t.Fatalf("first segment of --split 650MB: %v %v", fi, err)
	}
}

// TestDamageExitCodes: export, verify and inspect exit alike (4) for the
// same damage: a missing block file, a corrupt manifest.
func TestDamageExitCodes(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	blocksImage(t, disk, 8<<20, map[int64]byte{0: 0x11, 1: 0x22, 5: 0x55})
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapDiffBase, disk, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	good := filepath.Join(dir, "good")
	c.ok("acquire", snapDiffBase, "--out", good, "--quiet")
	for _, damage := range []struct {
		name string
		do   func(ev string)
	}{
		{"missing block file", func(ev string) { os.Remove(blockFile(t, ev, 0)) }},
		{"corrupt manifest", func(ev string) {
			m := filepath.Join(ev, store.ManifestName)
			lines := strings.SplitAfter(readFile(t, m), "\n")
			lines[1] = "{\"type\":\"block\",\"garbage\n"
			os.WriteFile(m, []byte(strings.Join(lines, "")), 0o600)
		}},
	} {
		ev := filepath.Join(dir, strings.ReplaceAll(damage.name, " ", "-"))
		if b, err := exec.Command("cp", "-a", good, ev).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, b)
		}
		damage.do(ev)
		for _, args := range [][]string{{"verify", ev}, {"inspect", ev}, {"export", ev, "--out", ev + ".raw", "--quiet"}} {
			if r := c.run(args...); r.code != exitMismatch {
				t.Errorf("%s: %s exits %d, want %d\n%s", damage.name, args[0], r.code, exitMismatch, r.stderr)
			}
		}
		if _, err := os.Lstat(ev + ".raw"); err == nil {
			t.Errorf("%s: export left an image", damage.name)
		}
	}
}

// startExport starts an export and waits until it has begun writing: its
// temporary file exists.
func startExport(t *testing.T, c *cli, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := c.command(t.Context(), append([]string{"export"}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		for _, l := range leftovers(t, dir) {
			if !strings.HasSuffix(l, ".lock") {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the export wrote nothing in a minute")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestExportKill9AndLock: an export killed with -9 leaves temporary files
// that the next export of the same output removes, ending with the same
// image; while an export runs, another of the same output (with or
// without --force, under any spelling) is refused as busy, and the
// survivor keeps its checksum files.
func TestExportKill9AndLock(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, snapA+"=1GiB,0.25,1")
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o700)
	ref := filepath.Join(dir, "ref.raw")
	c.ok("export", ev, "--out", ref, "--quiet")
	refSum := sha256File(t, ref)

	for _, format := range []string{"raw", "e01"} {
		img, final := filepath.Join(out, "img.raw"), filepath.Join(out, "img.raw")
		args := []string{ev, "--out", img, "--quiet"}
		sums := img
		if format == "e01" {
			img, final, sums = filepath.Join(out, "img"), filepath.Join(out, "img.E01"), filepath.Join(out, "img")
			args = []string{ev, "--out", img, "--format", "e01", "--compression", "best", "--quiet"}
		}
		cmd := startExport(t, c, out, args...)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if _, err := os.Lstat(final); err == nil {
			t.Fatalf("%s: killed too late: the export had finished", format)
		}
		left := leftovers(t, out)
		if len(left) == 0 {
			t.Fatalf("%s: the killed export left nothing to clean up", format)
		}
		r := c.ok(append([]string{"export"}, args...)...)
		if !strings.Contains(r.stderr, "left by an interrupted run") {
			t.Errorf("%s: the rerun did not say what it removed:\n%s", format, r.stderr)
		}
		if l := leftovers(t, out); len(l) > 0 {
			t.Fatalf("%s: left after the rerun: %q (killed run left %q)", format, l, left)
		}
		if format == "raw" && sha256File(t, img) != refSum {
			t.Fatalf("the rerun's image differs from an uninterrupted export")
		}
		if sidecar(t, sums+".sha256") != refSum {
			t.Fatalf("%s: the rerun's .sha256 is not the volume's", format)
		}

		// While one export runs, a second of the same output is busy (12)
		// whether or not it has --force; the first finishes with its
		// checksum files.
		second := append([]string{"export"}, args...)
		if format == "e01" {
			second[3] = img + ".E01" // the same set, spelt as BASE.E01
		}
		first := startExport(t, c, out, append(args, "--force")...)
		c.fails(exitBusy, "PID", second...)
		c.fails(exitBusy, "PID", append(second, "--force")...)
		if err := first.Wait(); err != nil {
			t.Fatalf("%s: the first export: %v", format, err)
		}
		for _, alg := range []string{"md5", "sha1", "sha256"} {
			if _, err := os.Stat(sums + "." + alg); err != nil {
				t.Fatalf("%s: the surviving export lost its .%s: %v", format, alg, err)
			}
		}
		if sidecar(t, sums+".sha256") != refSum {
			t.Fatalf("%s: .sha256 after the race is not the volume's", format)
		}
		if format == "raw" && sha256File(t, img) != refSum {
			t.Fatal("the image after the race differs")
		}
		if l := leftovers(t, out); len(l) > 0 {
			t.Fatalf("%s: left after the race: %q", format, l)
		}
	}
}

// TestAcquireImageKill9: acquire --image takes the same lock as export and
// likewise removes what a killed run of the same image left, for a raw
// image and an E01, and --force replaces an E01 made straight from acquire.
func TestAcquireImageKill9(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{Latency: 20 * time.Millisecond}, snapA+"=1GiB,0.1,1")
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	ref := filepath.Join(dir, "ref.raw")
	c.ok("export", ev, "--out", ref, "--quiet")
	refSum := sha256File(t, ref)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o700)
	for _, name := range []string{"img.raw", "img.E01"} {
		args := []string{"acquire", snapA, "--image", filepath.Join(out, name), "--quiet", "--workers", "2"}
		cmd := c.command(t.Context(), args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
			if l := leftovers(t, out); len(l) > 1 { // the lock and a temporary file
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("%s: nothing written in a minute", name)
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		r := c.ok(args...)
		if !strings.Contains(r.stderr, "left by an interrupted run") {
			t.Errorf("%s: the rerun did not say what it removed:\n%s", name, r.stderr)
		}
		if l := leftovers(t, out); len(l) > 0 {
			t.Fatalf("%s: left after the rerun: %q", name, l)
		}
		sums := filepath.Join(out, name)
		if name == "img.E01" {
			sums = filepath.Join(out, "img")
		}
		if sidecar(t, sums+".sha256") != refSum {
			t.Fatalf("%s: the rerun's .sha256 is not the volume's", name)
		}
		c.fails(exitConflict, "hint: pass --force", args...)
		c.ok(append(args, "--force")...)
		if sidecar(t, sums+".sha256") != refSum {
			t.Fatalf("%s: after --force the .sha256 is not the volume's", name)
		}
	}
	if sha256File(t, filepath.Join(out, "img.raw")) != refSum {
		t.Fatal("acquire --image differs from export")
	}
	c.ok("verify", filepath.Join(out, "img.E01"))
}
