package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

const (
	snapA    = "snap-0a0000000000000a1"
	snapB    = "snap-0b0000000000000b2"
	snapDeny = "snap-0d0000000000000d3"
	snapKMS  = "snap-0d0000000000000d4"
	specA    = snapA + "=1GiB,0.1,1"
	specB    = snapB + "=1GiB,0.1,2"
	specDeny = snapDeny + "=1GiB,0.1,3"
	specKMS  = snapKMS + "=1GiB,0.1,4"
	commands = "acquire block budget case cat compress decrypt demo diff emulate encrypt export import-4n6ir inspect ls mount policy snapshot timeline triage uncompress verify"
)

func TestHelp(t *testing.T) {
	c := newCLI(t, "")
	r := c.ok("--help")
	golden(t, "help-root", r.stdout)
	for _, name := range strings.Fields(commands) {
		r := c.ok(name, "--help")
		if !strings.Contains(r.stdout, "Usage:\n  ebsimager "+name) {
			t.Errorf("%s --help:\n%s", name, r.stdout)
		}
		if name == "acquire" || name == "export" {
			golden(t, "help-"+name, r.stdout)
		}
	}
	if r := c.ok("--version"); !strings.HasPrefix(r.stdout, "ebsimager version ") {
		t.Fatalf("--version: %q", r.stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	c := newCLI(t, "")
	for _, args := range [][]string{
		{"acquire"},
		{"acquire", snapA},
		{"acquire", snapA, "--out", "x", "--image", "y"},
		{"acquire", snapA, "--out", "x", "--workers", "-1"},
		{"acquire", snapA, "--out", "x", "--bogus"},
		{"block", snapA, "notanumber", "--out", "x"},
		{"block", snapA, "1"},
		{"export", "dir"},
		{"export", "dir", "--out", "x", "--split", "lots"},
		{"export", "dir", "--out", "x", "--hash", "crc32"},
		{"export", "dir", "--out", "x", "--ext4", "--ntfs"},
		{"verify"},
		{"nosuchcommand"},
	} {
		r := c.run(args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "ebsimager: ") {
			t.Errorf("ebsimager %s: exit %d, stderr %q; want exit %d", strings.Join(args, " "), r.code, r.stderr, exitUsage)
		}
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{Faults: emulator.Faults{Deny: map[string]string{
		snapDeny: emulator.DenyUnauthorizedAccount, snapKMS: emulator.DenyDependencyAccessDenied,
	}}}, specA, specB, specDeny, specKMS)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")

	c.fails(exitInvalid, `invalid snapshot id "snap-XYZ"`, "acquire", "snap-XYZ", "--out", ev)
	c.fails(exitInvalid, `invalid snapshot id "vol-0123"`, "budget", "vol-0123")
	c.fails(exitNotFound, "hint: check the snapshot id", "acquire", "snap-0123456789abcdef0", "--out", ev)
	c.fails(exitDenied, "ebs:ListSnapshotBlocks", "acquire", snapDeny, "--out", ev)
	c.fails(exitDenied, "kms:Decrypt", "acquire", snapKMS, "--out", ev)
	if _, err := os.Stat(ev); err == nil {
		entries, _ := os.ReadDir(ev)
		if len(entries) > 0 {
			t.Fatalf("failed acquisitions left %d entries in %s", len(entries), ev)
		}
	}

	// An output path under a regular file cannot be created.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o600)
	c.fails(exitLocalIO, "not a directory", "acquire", snapA, "--out", filepath.Join(file, "ev"))

	// Evidence of another snapshot is refused; the same one resumes.
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	before := sha256File(t, filepath.Join(ev, store.ManifestName))
	c.fails(exitConflict, "holds evidence of "+snapA+", not "+snapB, "acquire", snapB, "--out", ev)
	if sha256File(t, filepath.Join(ev, store.ManifestName)) != before {
		t.Fatal("a refused acquisition changed the evidence")
	}
	r := c.ok("acquire", snapA, "--out", ev, "--json")
	var sum acquireSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Fetched != 0 || sum.Resumed != sum.Blocks || sum.Blocks == 0 {
		t.Fatalf("re-running a complete acquisition: %+v %v", sum, err)
	}
	c.fails(exitConflict, "already exists", "block", snapA, "0", "--out", file)

	// An image that exists is refused without --force.
	img := filepath.Join(dir, "img.raw")
	c.ok("export", ev, "--out", img, "--quiet")
	c.fails(exitConflict, "exists", "export", ev, "--out", img)
	c.ok("export", ev, "--out", img, "--quiet", "--force")
	c.fails(exitMismatch, "holds no EXT file system", "export", ev, "--out", filepath.Join(dir, "img2.raw"), "--ext4")
	if _, err := os.Stat(filepath.Join(dir, "img2.raw")); err != nil {
		t.Fatalf("--ext4 check failure removed or never wrote the image: %v", err)
	}
}

func TestVerifyCommand(t *testing.T) {
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	r := c.ok("verify", ev)
	if !strings.Contains(r.stdout, "verification OK") {
		t.Fatalf("verify: %s", r.stdout)
	}
	// Flip one byte of one block.
	var victim string
	filepath.WalkDir(filepath.Join(ev, "blocks"), func(p string, d os.DirEntry, err error) error {
		if victim == "" && !d.IsDir() && d.Name() != ".journal" {
			victim = p
		}
		return nil
	})
	data, _ := os.ReadFile(victim)
	data[1000] ^= 0x40
	os.WriteFile(victim, data, 0o600)
	fi, _, _ := block.ParseFileName(filepath.Base(victim))
	r = c.fails(exitMismatch, "verification FAILED: 1 problem in ", "verify", ev)
	if !strings.Contains(r.stdout, "mismatch") || !strings.Contains(r.stdout, "block "+fmtInt(fi.Index)) {
		t.Fatalf("verify did not name block %d:\n%s", fi.Index, r.stdout)
	}
	c.fails(exitMismatch, "stored sha256", "export", ev, "--out", filepath.Join(t.TempDir(), "x.raw"))
}

func fmtInt(i int64) string { return strconv.FormatInt(i, 10) }

func TestBlockAndBudget(t *testing.T) {
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	var names []string
	filepath.WalkDir(filepath.Join(ev, "blocks"), func(p string, d os.DirEntry, err error) error {
		if !d.IsDir() && d.Name() != ".journal" {
			names = append(names, d.Name())
		}
		return nil
	})
	first, _, err := block.ParseFileName(names[0])
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "one.bin")
	r := c.ok("block", snapA, fmtInt(first.Index), "--out", out)
	if got := sha256File(t, out); got != first.Sum.Hex() || !strings.Contains(r.stdout, got) {
		t.Fatalf("block %d: sha256 %s, want %s", first.Index, got, first.Sum.Hex())
	}
	// An unallocated index says so and names the next allocated block.
	next, _, _ := block.ParseFileName(names[1])
	if next.Index > first.Index+1 {
		r := c.fails(exitNotFound, "is not allocated", "block", snapA, fmtInt(first.Index+1), "--out", filepath.Join(dir, "two.bin"))
		if !strings.Contains(r.stderr, "next allocated block is "+fmtInt(next.Index)) {
			t.Fatalf("stderr %q does not name the next block %d", r.stderr, next.Index)
		}
		if _, err := os.Stat(filepath.Join(dir, "two.bin")); !os.IsNotExist(err) {
			t.Fatal("an unallocated block wrote a file")
		}
	}
	srv.ResetCounters()
	r = c.ok("budget", snapA, "--json")
	var e map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"snapshot_id", "region", "volume_size_bytes", "block_size", "blocks", "download_bytes",
		"list_requests", "get_requests", "estimated_cost_usd", "estimated_seconds"} {
		if _, ok := e[k]; !ok {
			t.Errorf("budget --json lacks %q", k)
		}
	}
	n := float64(len(names))
	want := n*0.003/1000 + 0.0006/1000
	if e["blocks"] != n || e["get_requests"] != n || e["list_requests"] != 1.0 || e["volume_size_bytes"] != float64(1<<30) ||
		e["download_bytes"] != n*block.Size || abs(e["estimated_cost_usd"].(float64)-want) > 1e-12 {
		t.Fatalf("budget %v; want %v blocks costing %v", e, n, want)
	}
	if c := srv.Counters(); c.Total("ListSnapshotBlocks") != 1 || c.Total("GetSnapshotBlock") != 0 {
		t.Fatalf("budget made %d List and %d Get calls, want 1 and 0", c.Total("ListSnapshotBlocks"), c.Total("GetSnapshotBlock"))
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func TestDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if testenv.CI() {
			t.Fatalf("mounting a small tmpfs (CI runs as root): %v %s", err, out)
		}
		t.Skipf("cannot mount a small tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	ev := filepath.Join(mnt, "ev")
	c.fails(exitLocalIO, "no space left on device", "acquire", snapA, "--out", ev, "--quiet")
	// Nothing half-written sits under a block name.
	stored := 0
	filepath.WalkDir(filepath.Join(ev, "blocks"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".journal" {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
			return nil
		}
		fi, _, err := block.ParseFileName(d.Name())
		if err != nil || sha256File(t, p) != fi.Sum.Hex() {
			t.Errorf("%s does not hold the block its name says", p)
		}
		stored++
		return nil
	})
	if stored == 0 {
		t.Fatal("no block was stored before the disk filled")
	}
	// Nothing is lost: moved to a disk with room, the acquisition resumes.
	moved := filepath.Join(t.TempDir(), "ev")
	if out, err := exec.Command("cp", "-a", ev, moved).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	r := c.ok("acquire", snapA, "--out", moved, "--json")
	var sum acquireSummary
	json.Unmarshal([]byte(r.stdout), &sum)
	if sum.Resumed != int64(stored) || sum.Fetched != sum.Blocks-int64(stored) {
		t.Fatalf("resume after disk full: %+v, %d were stored", sum, stored)
	}
	c.ok("verify", moved)
}

// journaled returns the indexes the journals of an evidence directory list.
func journaled(t *testing.T, dir string) []int64 {
	t.Helper()
	var out []int64
	filepath.WalkDir(filepath.Join(dir, "blocks"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Name() != ".journal" {
			return nil
		}
		data, _ := os.ReadFile(p)
		for _, line := range strings.Split(string(data), "\n") {
			var e struct{ Index int64 }
			if json.Unmarshal([]byte(line), &e) == nil && line != "" {
				out = append(out, e.Index)
			}
		}
		return nil
	})
	return out
}

func TestKill9Resume(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{Latency: 20 * time.Millisecond}, snapA+"=1GiB,0.4,1")
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ref, ev := filepath.Join(dir, "ref"), filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ref, "--quiet")
	srv.ResetCounters()

	cmd := c.command(t.Context(), "acquire", snapA, "--out", ev, "--quiet", "--workers", "4")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(journaled(t, ev)) < 50 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the acquisition stored nothing in two minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	before := journaled(t, ev)
	if _, err := os.Stat(filepath.Join(ev, store.ManifestName)); err == nil {
		t.Fatal("killed too late: the acquisition had finished")
	}
	c.fails(exitIncomplete, "no manifest: the acquisition has not completed", "verify", ev) // an incomplete directory is not evidence yet

	r := c.ok("acquire", snapA, "--out", ev, "--json")
	var sum acquireSummary
	json.Unmarshal([]byte(r.stdout), &sum)
	if sum.Resumed < int64(len(before)) {
		t.Fatalf("resumed %d blocks, %d were journaled before the kill", sum.Resumed, len(before))
	}
	for _, i := range before {
		if n := srv.BlockGets(snapA, i); n != 1 {
			t.Fatalf("block %d was stored before the kill but fetched %d times", i, n)
		}
	}
	// Identical to the uninterrupted acquisition.
	if a, b := manifestBlocks(t, ref), manifestBlocks(t, ev); a != b {
		t.Fatal("the resumed acquisition's manifest entries differ from an uninterrupted one's")
	}
	c.ok("verify", ev)
	img1, img2 := filepath.Join(dir, "1.raw"), filepath.Join(dir, "2.raw")
	c.ok("export", ref, "--out", img1, "--quiet")
	c.ok("export", ev, "--out", img2, "--quiet")
	if a, b := strings.Fields(readFile(t, img1+".sha256"))[0], strings.Fields(readFile(t, img2+".sha256"))[0]; a != b {
		t.Fatalf("images differ: %s vs %s", a, b)
	}
}

func TestInterrupt(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{Latency: 20 * time.Millisecond}, snapA+"=1GiB,0.4,1")
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	cmd := c.command(t.Context(), "acquire", snapA, "--out", ev, "--quiet", "--workers", "4")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); len(journaled(t, ev)) < 20; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("acquire journaled fewer than 20 blocks in a minute; stderr %q", stderr.String())
		}
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("Ctrl-C: exit %d (%v), stderr %q", code, err, stderr.String())
	}
	filepath.WalkDir(ev, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temporary file left after Ctrl-C: %s", p)
		}
		return nil
	})
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	c.ok("verify", ev)
}

func manifestBlocks(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(readFile(t, filepath.Join(dir, store.ManifestName)), "\n") {
		if !strings.Contains(l, `"type":"header"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
