package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
)

// loadSteps returns the steps report.json records.
func loadSteps(t *testing.T, dir string) []report.Step {
	t.Helper()
	rec, err := report.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Steps
}

// forgeDrop rewrites the manifest of ev without the entry at position n
// (0-based, among block entries), with consistent trailer counts and a
// rewritten manifest.jsonl.sha256, and deletes that block's file: the
// forgery of issue 10, case 2. It returns the dropped entry.
func forgeDrop(t *testing.T, ev string, n int) manifest.Entry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(ev, store.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var (
		out     bytes.Buffer
		dropped manifest.Entry
		seen    int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var probe struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(line, &probe); err != nil {
			t.Fatal(err)
		}
		switch probe.Type {
		case "block":
			if seen == n {
				if err := json.Unmarshal(line, &dropped); err != nil {
					t.Fatal(err)
				}
				seen++
				continue
			}
			seen++
		case "end":
			var tr manifest.Trailer
			if err := json.Unmarshal(line, &tr); err != nil {
				t.Fatal(err)
			}
			tr.Blocks--
			tr.Bytes -= int64(dropped.Length)
			tr.StoredBytes -= dropped.Size
			line, _ = json.Marshal(tr)
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(ev, store.ManifestName), out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256File(t, filepath.Join(ev, store.ManifestName))
	if err := os.WriteFile(filepath.Join(ev, store.ManifestSumName), []byte(sum+"  "+store.ManifestName+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(ev, filepath.FromSlash(dropped.Name))); err != nil {
		t.Fatal(err)
	}
	return dropped
}

// Issue 10, case 2: a manifest forged consistently with itself (entry
// dropped, trailer and checksum file rewritten, block file deleted) is
// caught by the records kept apart from it: report.json and the
// journals. Nothing claims it is fine.
func TestVerifyForgedManifest(t *testing.T) {
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	r := c.ok("verify", ev)
	for _, want := range []string{"compared with report.json: matches (the acquisition record in report.json)",
		"compared with journals: matches (", "verification OK"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("verify of good evidence lacks %q:\n%s", want, r.stdout)
		}
	}
	acquired := sha256File(t, filepath.Join(ev, store.ManifestName))
	rec, err := report.Load(ev)
	if err != nil {
		t.Fatal(err)
	}
	blocks := rec.Acquisition.Blocks

	dropped := forgeDrop(t, ev, 3)
	forged := sha256File(t, filepath.Join(ev, store.ManifestName))
	steps := len(loadSteps(t, ev))
	r = c.fails(exitMismatch, "verification FAILED", "verify", ev)
	wantRecord := fmt.Sprintf("record   manifest.jsonl: manifest.jsonl SHA-256 %s (%d blocks, %d bytes) differs from the acquisition record in report.json (%s, %d blocks, %d bytes)",
		forged, blocks-1, (blocks-1)*524288, acquired, blocks, blocks*524288)
	wantJournal := fmt.Sprintf("journal  block %d  %s/.journal: the journal records block %d", dropped.Index, filepath.ToSlash(store.LeafDir(dropped.Index)), dropped.Index)
	for _, want := range []string{wantRecord, wantJournal, "compared with report.json: DIFFERS", "compared with journals: DIFFERS"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("verify of the forged manifest lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "verification OK") {
		t.Fatalf("forged manifest verified OK:\n%s", r.stdout)
	}
	after := loadSteps(t, ev)
	if len(after) != steps+1 {
		t.Fatalf("%d steps after the failed verify, want %d", len(after), steps+1)
	}
	last := after[len(after)-1]
	if last.Outcome != report.OutcomeFailed || last.Verify == nil || last.Verify.OK {
		t.Fatalf("the forged manifest was recorded as %+v", last)
	}
	var compared []string
	for _, cmp := range last.Verify.Compared {
		compared = append(compared, cmp.Record+"="+cmp.Outcome)
	}
	if got := strings.Join(compared, " "); got != "report.json=differs journals=differs" {
		t.Fatalf("recorded comparisons %q", got)
	}
	for _, s := range after[steps:] {
		if s.Verify != nil && s.Verify.OK {
			t.Fatal(`verify appended "ok": true for the forged manifest`)
		}
	}
}

// Journals may be gone (they are an optimisation of resume): verify says
// it could not compare with them, and still compares with report.json.
// A journal that disagrees is a failure that names it.
func TestVerifyJournals(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	journal := filepath.Join(ev, store.LeafDir(0), ".journal")
	orig, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	// One entry that the manifest does not hold.
	var e manifest.Entry
	first, _, _ := bytes.Cut(orig, []byte("\n"))
	if err := json.Unmarshal(first, &e); err != nil {
		t.Fatal(err)
	}
	e.Index = 2047
	line, _ := json.Marshal(e)
	if err := os.WriteFile(journal, append(bytes.Clone(orig), append(line, '\n')...), 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.fails(exitMismatch, "verification FAILED: 1 problem in ", "verify", ev)
	if !strings.Contains(r.stdout, "journal  block 2047  blocks/00/0000/.journal: the journal records block 2047") {
		t.Fatalf("verify did not name the journal:\n%s", r.stdout)
	}
	if err := os.Remove(journal); err != nil {
		t.Fatal(err)
	}
	r = c.ok("verify", ev)
	if !strings.Contains(r.stdout, "compared with journals: not compared (no leaf journal is left to compare with)") ||
		!strings.Contains(r.stdout, "compared with report.json: matches") {
		t.Fatalf("verify without journals:\n%s", r.stdout)
	}
	// Without report.json, verify says there is nothing to compare with.
	for _, n := range []string{report.JSONName, report.TextName, report.HTMLName} {
		os.Remove(filepath.Join(ev, n))
	}
	r = c.ok("verify", ev)
	if !strings.Contains(r.stdout, "compared with report.json: not compared (no report.json: no acquisition record to compare with)") {
		t.Fatalf("verify without report.json:\n%s", r.stdout)
	}
}

// Issue 10, case 3: a verdict even when the step cannot be recorded. The
// exit code is the evidence's (4 when bad); a good one that could not be
// recorded exits 13 with a warning; --no-record records nothing.
func TestVerifyUnrecordable(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	reportPath := filepath.Join(ev, report.JSONName)
	good, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	// A corrupt report.json cannot be appended to.
	if err := os.WriteFile(reportPath, []byte(`{"format": "ebsimager-report/1", "steps": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.fails(exitUnrecorded, "ebsimager: warning: the verification was not appended to report.json", "verify", ev)
	if !strings.Contains(r.stdout, "verification OK") || !strings.Contains(r.stdout, "compared with report.json: not compared (unreadable") {
		t.Fatalf("verify with a corrupt report.json:\n%s", r.stdout)
	}
	r = c.ok("verify", ev, "--no-record")
	if !strings.Contains(r.stdout, "verification OK") || r.stderr != "" {
		t.Fatalf("verify --no-record: %q %q", r.stdout, r.stderr)
	}
	// Bad evidence: exit 4, whatever happens to the record.
	files := blockFilesOf(t, ev)
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	data[10] ^= 1
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	r = c.fails(exitMismatch, "verification FAILED: 1 problem in ", "verify", ev)
	if !strings.Contains(r.stderr, "warning: the verification was not appended") || !strings.Contains(r.stdout, "mismatch") {
		t.Fatalf("verify of bad evidence with a corrupt report.json: %s\n%s", r.stdout, r.stderr)
	}
	c.fails(exitMismatch, "verification FAILED: 1 problem in ", "verify", ev, "--no-record")
	data[10] ^= 1
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	// --no-record leaves a good record as it is.
	if err := os.WriteFile(reportPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("verify", ev, "--no-record")
	if got, _ := os.ReadFile(reportPath); !bytes.Equal(got, good) {
		t.Fatal("verify --no-record changed report.json")
	}
}

// mountOrSkip runs mount with args; tests that need a mount (a read-only
// bind, a full tmpfs) are skipped where mounting is not permitted.
func mountOrSkip(t *testing.T, target string, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("mount %s: %v %s (needs privileges)", strings.Join(args, " "), err, out)
	}
	t.Cleanup(func() { exec.Command("umount", target).Run() })
}

// Evidence on read-only media and on a full disk: the verdict, then a
// warning and exit 13; with --no-record, exit 0.
func TestVerifyReadOnlyAndFullDisk(t *testing.T) {
	_, endpoint := startEmulator(t, emulator.Options{}, snapA+"=1GiB,0.01,1")
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")

	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o700); err != nil {
		t.Fatal(err)
	}
	mountOrSkip(t, ro, "--bind", ev, ro)
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", ro).CombinedOutput(); err != nil {
		t.Skipf("remount read-only: %v %s", err, out)
	}
	r := c.fails(exitUnrecorded, "read-only file system", "verify", ro)
	if !strings.Contains(r.stdout, "verification OK") {
		t.Fatalf("verify on read-only media:\n%s", r.stdout)
	}
	r = c.ok("verify", ro, "--no-record")
	if !strings.Contains(r.stdout, "verification OK") || strings.Contains(r.stderr, "warning") {
		t.Fatalf("verify --no-record on read-only media: %s\n%s", r.stdout, r.stderr)
	}

	full := filepath.Join(dir, "full")
	if err := os.Mkdir(full, 0o700); err != nil {
		t.Fatal(err)
	}
	mountOrSkip(t, full, "-t", "tmpfs", "-o", "size=32m", "tmpfs", full)
	if out, err := exec.Command("cp", "-a", ev, full).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	// Fill the disk.
	f, err := os.Create(filepath.Join(full, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	r = c.fails(exitUnrecorded, "no space left on device", "verify", filepath.Join(full, "ev"))
	if !strings.Contains(r.stdout, "verification OK") {
		t.Fatalf("verify on a full disk:\n%s", r.stdout)
	}
}

// A key that opens no block is a key error (exit 10, one line), not
// tampering, and nothing is recorded.
func TestVerifyWrongKey(t *testing.T) {
	_, endpoint := startEmulator(t, emulator.Options{}, snapA+"=1GiB,0.01,1")
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	identity, recipient := makeIdentity(t)
	wrong, _ := makeIdentity(t)
	c.ok("acquire", snapA, "--out", ev, "--quiet", "--recipient", recipient)
	r := c.ok("verify", ev, "--identity", identity)
	if !strings.Contains(r.stdout, "verification OK") {
		t.Fatalf("verify with the identity:\n%s", r.stdout)
	}
	steps := len(loadSteps(t, ev))
	r = c.fails(exitWrongKey, "ebsimager: the key given does not open this evidence: none of its", "verify", ev, "--identity", wrong)
	if r.stdout != "" || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("verify with a wrong identity: stdout %q, stderr %q; want one line", r.stdout, r.stderr)
	}
	if got := len(loadSteps(t, ev)); got != steps {
		t.Fatalf("a wrong key was recorded: %d steps, want %d", got, steps)
	}
}

// verify refuses evidence another process is writing (exit 12), and
// takes its lock only while it runs.
func TestVerifyBusy(t *testing.T) {
	_, endpoint := startEmulator(t, emulator.Options{}, snapA+"=1GiB,0.01,1")
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	l, err := dirlock.ForDir(ev, "acquire")
	if err != nil {
		t.Fatal(err)
	}
	steps := len(loadSteps(t, ev))
	c.fails(exitBusy, fmt.Sprintf("another ebsimager process (PID %d, acquire) holds %s", os.Getpid(), ev), "verify", ev)
	if got := len(loadSteps(t, ev)); got != steps {
		t.Fatal("a refused verify was recorded")
	}
	l.Release()
	c.ok("verify", ev)
	if _, err := os.Stat(filepath.Join(ev, dirlock.Name)); !os.IsNotExist(err) {
		t.Fatalf("verify left its lock: %v", err)
	}
}

// verify --help lists exactly the codes verify returns.
func TestVerifyHelpExitCodes(t *testing.T) {
	c := newCLI(t, "")
	r := c.ok("verify", "--help")
	if !strings.Contains(r.stdout, verifyExitCodes) {
		t.Fatalf("verify --help lacks its exit codes:\n%s", r.stdout)
	}
	for _, code := range []int{exitOK, exitError, exitUsage, exitIncomplete, exitMismatch, exitDenied, exitNotFound, exitInvalid,
		exitLocalIO, exitWrongKey, exitQuota, exitBusy, exitUnrecorded, exitInterrupted} {
		if !strings.Contains(r.stdout, fmt.Sprintf(" %d", code)) {
			t.Errorf("verify --help does not list exit %d", code)
		}
	}
	c.fails(exitLocalIO, "no such file or directory", "verify", filepath.Join(t.TempDir(), "nothing"))
	c.fails(exitUsage, "--full applies to --against-snapshot", "verify", t.TempDir(), "--full")
	c.fails(exitUsage, "--workers, --max-rate and --max-attempts apply to --against-snapshot --full", "verify", t.TempDir(), "--against-snapshot", "--workers", "4")
	c.fails(exitError, "is not an evidence directory", "verify", t.TempDir())
}

// --against-snapshot lists the snapshot again and compares indexes; with
// --full it fetches every block and compares AWS checksums. The calls
// are exactly those announced.
func TestVerifyAgainstSnapshot(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, specA, specB)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	rec, err := report.Load(ev)
	if err != nil {
		t.Fatal(err)
	}
	blocks := rec.Acquisition.Blocks

	srv.ResetCounters()
	r := c.ok("verify", ev, "--against-snapshot")
	if !strings.Contains(r.stderr, "about 1 List + 0 Get calls") ||
		!strings.Contains(r.stdout, fmt.Sprintf("compared with the snapshot: matches (%s listing: %d blocks listed, 0 fetched; 1 List + 0 Get calls made)", snapA, blocks)) {
		t.Fatalf("verify --against-snapshot:\n%s\n%s", r.stdout, r.stderr)
	}
	if n, g := srv.Counters().Total("ListSnapshotBlocks"), srv.Counters().Total("GetSnapshotBlock"); n != 1 || g != 0 {
		t.Fatalf("--against-snapshot made %d List and %d Get calls, want 1 and 0", n, g)
	}
	srv.ResetCounters()
	r = c.ok("verify", ev, "--against-snapshot", "--full")
	if !strings.Contains(r.stderr, fmt.Sprintf("about 1 List + %d Get calls", blocks)) ||
		!strings.Contains(r.stdout, fmt.Sprintf("%d blocks listed, %d fetched; 1 List + %d Get calls made", blocks, blocks, blocks)) {
		t.Fatalf("verify --against-snapshot --full:\n%s\n%s", r.stdout, r.stderr)
	}
	if n, g := srv.Counters().Total("ListSnapshotBlocks"), srv.Counters().Total("GetSnapshotBlock"); n != 1 || g != blocks {
		t.Fatalf("--full made %d List and %d Get calls, want 1 and %d", n, g, blocks)
	}
	last := loadSteps(t, ev)
	s := last[len(last)-1].Verify
	if s == nil || s.Snapshot == nil || !s.Snapshot.Full || s.Snapshot.Fetched != blocks || s.Snapshot.Requests.GetCalls != blocks || !s.OK {
		t.Fatalf("recorded step: %+v", s)
	}

	// The manifest lost a block (forged consistently): the snapshot
	// names it.
	dropped := forgeDrop(t, ev, 5)
	r = c.fails(exitMismatch, "verification FAILED", "verify", ev, "--against-snapshot")
	want := fmt.Sprintf("snapshot block %d  %s: the snapshot lists this block, the manifest does not hold it", dropped.Index, snapA)
	if !strings.Contains(r.stdout, want) {
		t.Fatalf("verify --against-snapshot of a manifest that lost block %d lacks %q:\n%s", dropped.Index, want, r.stdout)
	}

	// A snapshot that serves other content: the evidence's own image,
	// one byte changed in one block, served as the same snapshot.
	good := filepath.Join(dir, "good")
	c.ok("acquire", snapA, "--out", good, "--quiet")
	img := filepath.Join(dir, "a.raw")
	c.ok("export", good, "--out", img, "--quiet")
	victim := blockFilesOf(t, good)[7]
	fi, _, err := block.ParseFileName(filepath.Base(victim))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	off := fi.Index*block.Size + 100
	f.ReadAt(one[:], off)
	one[0] ^= 0x20
	f.WriteAt(one[:], off)
	f.Close()
	srv2, endpoint2 := startEmulator(t, emulator.Options{})
	if err := srv2.AddRawImage(snapA, img, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	r = c.fails(exitMismatch, "verification FAILED: 1 problem in ", "verify", good, "--against-snapshot", "--full", "--endpoint-url", endpoint2)
	want = fmt.Sprintf("snapshot block %d  %s: AWS serves this block with another checksum than the manifest's", fi.Index, snapA)
	if !strings.Contains(r.stdout, want) {
		t.Fatalf("verify --full against a changed snapshot lacks %q:\n%s", want, r.stdout)
	}
	if g := srv2.Counters().Total("GetSnapshotBlock"); g != blocks {
		t.Fatalf("--full made %d Get calls, want %d", g, blocks)
	}

	// A block that cannot be fetched: no verdict of OK, exit 3, and the
	// step is recorded as failed.
	failing, _, err := block.ParseFileName(filepath.Base(blockFilesOf(t, good)[2]))
	if err != nil {
		t.Fatal(err)
	}
	srv.SetFaults(emulator.Faults{FailBlocks: []emulator.BlockFault{{Snapshot: snapA, Index: failing.Index, Error: "InternalServerException"}}})
	r = c.fails(exitIncomplete, fmt.Sprintf("block %d", failing.Index), "verify", good, "--against-snapshot", "--full", "--max-attempts", "1")
	if !strings.Contains(r.stdout, "verification INCOMPLETE: 1 block of the snapshot was not fetched, so not compared") || strings.Contains(r.stdout, "verification OK") {
		t.Fatalf("verify --full with a block that cannot be fetched:\n%s", r.stdout)
	}
	st := loadSteps(t, good)
	if v := st[len(st)-1].Verify; v == nil || v.OK || v.Snapshot == nil || v.Snapshot.FailedCount != 1 || fmt.Sprint(v.Snapshot.Failed) != fmt.Sprint([]int64{failing.Index}) {
		t.Fatalf("recorded step: %+v", st[len(st)-1])
	}
	srv.SetFaults(emulator.Faults{})

	// AWS errors keep their documented codes, and nothing is recorded.
	steps := len(loadSteps(t, good))
	srv2.SetFaults(emulator.Faults{Deny: map[string]string{snapA: emulator.DenyUnauthorizedAccount}})
	c.fails(exitDenied, "ebs:ListSnapshotBlocks", "verify", good, "--against-snapshot", "--endpoint-url", endpoint2)
	if got := len(loadSteps(t, good)); got != steps {
		t.Fatalf("a denied comparison was recorded: %d steps, want %d", got, steps)
	}
}
