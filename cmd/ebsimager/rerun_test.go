package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
)

// blockFiles returns the block files of an evidence directory by index.
func blockFiles(t *testing.T, dir string) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	m, _ := filepath.Glob(filepath.Join(dir, "blocks", "*", "*", "*"))
	for _, p := range m {
		if fi, _, err := block.ParseFileName(filepath.Base(p)); err == nil {
			out[fi.Index] = p
		}
	}
	return out
}

func removeJournals(t *testing.T, dir string) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "blocks", "*", "*", ".journal"))
	if len(m) == 0 {
		t.Fatal("no journals")
	}
	for _, p := range m {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

func flipByte(t *testing.T, path string, at int) {
	t.Helper()
	d, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d[at] ^= 0x20
	if err := os.WriteFile(path, d, 0o600); err != nil {
		t.Fatal(err)
	}
}

func loadRecord(t *testing.T, dir string) *report.Report {
	t.Helper()
	r, err := report.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func acquisitionJSON(t *testing.T, dir string) string {
	t.Helper()
	b, err := json.Marshal(loadRecord(t, dir).Acquisition)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func acquireJSON(t *testing.T, r result) acquireSummary {
	t.Helper()
	var s acquireSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("acquire --json: %v\n%s", err, r.stdout)
	}
	return s
}

// Issue 10, cases 5 and 6: rerunning acquire over complete evidence
// never deletes or rewrites it, even when its journals are gone, and
// fetches nothing.
func TestRerunNeverDestroysEvidence(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	manifestSum := sha256File(t, filepath.Join(ev, store.ManifestName))
	meta := readFile(t, filepath.Join(ev, store.MetaName))
	acq := acquisitionJSON(t, ev)
	files := blockFiles(t, ev)
	unchanged := func(when string) {
		t.Helper()
		if sha256File(t, filepath.Join(ev, store.ManifestName)) != manifestSum {
			t.Fatalf("%s: the manifest was rewritten", when)
		}
		if readFile(t, filepath.Join(ev, store.MetaName)) != meta {
			t.Fatalf("%s: evidence.json was rewritten", when)
		}
		if acquisitionJSON(t, ev) != acq {
			t.Fatalf("%s: the acquisition record was rewritten", when)
		}
	}

	// Case 6: a no-op rerun says it is complete, fetches nothing,
	// rewrites nothing and appends one "acquire" step.
	srv.ResetCounters()
	s := acquireJSON(t, c.ok("acquire", snapA, "--out", ev, "--json"))
	if !s.Complete || s.Fetched != 0 || s.Checked != int64(len(files)) || s.ManifestSHA256 != manifestSum {
		t.Fatalf("no-op rerun: %+v", s)
	}
	if n := srv.Counters().Total("GetSnapshotBlock"); n != 0 {
		t.Fatalf("no-op rerun made %d Get calls", n)
	}
	unchanged("no-op rerun")
	steps := loadRecord(t, ev).Steps
	if len(steps) != 1 || steps[0].Kind != report.StepAcquire || !steps[0].Acquire.Complete || steps[0].Acquire.ManifestSHA256 != manifestSum {
		t.Fatalf("steps after a no-op rerun: %+v", steps)
	}
	if r := c.ok("acquire", snapA, "--out", ev); !strings.Contains(r.stdout, "already complete") {
		t.Fatalf("a no-op rerun does not say it is complete:\n%s", r.stdout)
	}

	// Case 5: without journals, every block file is checked and kept; on
	// a healthy endpoint nothing is fetched.
	removeJournals(t, ev)
	srv.ResetCounters()
	s = acquireJSON(t, c.ok("acquire", snapA, "--out", ev, "--json"))
	if !s.Complete || s.Adopted != int64(len(files)) || s.Fetched != 0 {
		t.Fatalf("rerun without journals: %+v", s)
	}
	if n := srv.Counters().Total("GetSnapshotBlock"); n != 0 {
		t.Fatalf("rerun without journals made %d Get calls", n)
	}
	unchanged("rerun without journals")

	// Without journals, with one block damaged and now denied: nothing
	// that verifies is deleted, the damaged file is set aside, and the
	// manifest stays.
	removeJournals(t, ev)
	var victim int64 = -1
	for i := range files {
		if victim < 0 || i < victim {
			victim = i
		}
	}
	flipByte(t, files[victim], 100)
	srv.SetFaults(emulator.Faults{FailBlocks: []emulator.BlockFault{{Snapshot: snapA, Index: victim, Error: "AccessDeniedException"}}})
	c.fails(exitDenied, "", "acquire", snapA, "--out", ev, "--quiet")
	left := blockFiles(t, ev)
	for i, p := range files {
		if i == victim {
			continue
		}
		if left[i] != p {
			t.Fatalf("block %d (%s), which verified, was removed by a failing rerun", i, p)
		}
	}
	if _, ok := left[victim]; ok {
		t.Fatal("the damaged block file still counts in its leaf")
	}
	moved := filepath.Join(ev, ".unverified", strings.TrimPrefix(files[victim], ev+string(filepath.Separator)))
	if _, err := os.Stat(moved); err != nil {
		t.Fatalf("the damaged file was not set aside: %v", err)
	}
	unchanged("failing rerun")

	// Healed, the rerun fetches that one block and keeps the manifest.
	srv.SetFaults(emulator.Faults{})
	srv.ResetCounters()
	s = acquireJSON(t, c.ok("acquire", snapA, "--out", ev, "--json"))
	if s.Complete || s.Fetched != 1 || srv.Counters().Total("GetSnapshotBlock") != 1 || srv.BlockGets(snapA, victim) != 1 {
		t.Fatalf("healed rerun: %+v, %d Gets", s, srv.Counters().Total("GetSnapshotBlock"))
	}
	unchanged("healed rerun")
	c.ok("verify", ev)
}

// Issue 10, case 7: a kept block is checked against its SHA-256, not its
// size: a same-size corruption is fetched again and reported.
func TestResumeRefetchesCorruptBlock(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	ref := filepath.Join(t.TempDir(), "ref")
	c.ok("acquire", snapA, "--out", ref, "--quiet")
	all := blockFiles(t, ref)
	var idx []int64
	for i := range all {
		idx = append(idx, i)
	}
	failing, corrupt := idx[0], idx[1]
	srv.SetFaults(emulator.Faults{FailBlocks: []emulator.BlockFault{{Snapshot: snapA, Index: failing, Error: "InternalServerException"}}})
	c.fails(exitIncomplete, "block "+strconv.FormatInt(failing, 10), "acquire", snapA, "--out", ev, "--quiet", "--max-attempts", "1")
	flipByte(t, blockFiles(t, ev)[corrupt], 5000)
	srv.SetFaults(emulator.Faults{})
	srv.ResetCounters()
	r := c.ok("acquire", snapA, "--out", ev)
	if !strings.Contains(r.stdout, "1 kept blocks did not match their SHA-256 and were fetched again") {
		t.Fatalf("the summary does not report the refetched block:\n%s", r.stdout)
	}
	if srv.BlockGets(snapA, corrupt) != 1 || srv.BlockGets(snapA, failing) != 1 || srv.Counters().Total("GetSnapshotBlock") != 2 {
		t.Fatalf("gets: corrupt %d, failing %d, total %d", srv.BlockGets(snapA, corrupt), srv.BlockGets(snapA, failing), srv.Counters().Total("GetSnapshotBlock"))
	}
	if a := loadRecord(t, ev).Acquisition; a.RejectedBlocks != 1 || len(a.Unverified) != 1 || a.FetchedBlocks != 2 {
		t.Fatalf("record: rejected %d, unverified %v, fetched %d", a.RejectedBlocks, a.Unverified, a.FetchedBlocks)
	}
	c.ok("verify", ev)
	if manifestBlocks(t, ev) != manifestBlocks(t, ref) {
		t.Fatal("the resumed evidence differs from an uninterrupted acquisition")
	}
}

// Issue 10, case 7 with --base: a corrupt base block is not linked into
// the new evidence (a link shares the inode); it is fetched instead.
func TestBaseCorruptBlockIsFetched(t *testing.T) {
	t.Parallel()
	srv, endpoint, changes := incPair(t)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	base, ref, out := filepath.Join(dir, "base"), filepath.Join(dir, "ref"), filepath.Join(dir, "out")
	c.ok("acquire", snapIncParent, "--out", base, "--quiet")
	c.ok("acquire", snapIncChild, "--out", ref, "--quiet")
	var victim int64 = -1
	for i := range blockFiles(t, base) {
		if _, changed := changes[i]; !changed && (victim < 0 || i < victim) {
			victim = i
		}
	}
	flipByte(t, blockFiles(t, base)[victim], 77)
	srv.ResetCounters()
	s := acquireJSON(t, c.ok("acquire", snapIncChild, "--out", out, "--base", base, "--json"))
	if s.Base == nil || s.Base.RejectedBlocks != 1 || s.Rejected != 1 || srv.BlockGets(snapIncChild, victim) != 1 {
		t.Fatalf("summary %+v base %+v; block %d fetched %d times", s, s.Base, victim, srv.BlockGets(snapIncChild, victim))
	}
	if nlink(t, blockFiles(t, out)[victim]) != 1 {
		t.Fatal("the corrupt base block was linked into the new evidence")
	}
	c.ok("verify", out)
	if manifestBlocks(t, out) != manifestBlocks(t, ref) {
		t.Fatal("the incremental evidence differs from a full acquisition")
	}
	if a := loadRecord(t, out).Acquisition; a.Base.RejectedBlocks != 1 || a.RejectedBlocks != 1 {
		t.Fatalf("record: %+v", a.Base)
	}
}

// Issue 10, case 8: acquire locks its directory for its whole run.
func TestAcquireLock(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{Latency: 30 * time.Millisecond}, snapA+"=1GiB,0.4,1")
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	// A lock file whose flock is gone (its holder died) is taken over.
	os.MkdirAll(ev, 0o700)
	os.WriteFile(filepath.Join(ev, dirlock.Name), []byte("1 acquire\n"), 0o600)

	first := c.command(t.Context(), "acquire", snapA, "--out", ev, "--quiet", "--workers", "2")
	var stderr strings.Builder
	first.Stderr = &stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(journaled(t, ev)) < 5 {
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatalf("the first acquisition stored nothing: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.fails(exitBusy, fmt.Sprintf("another ebsimager process (PID %d, acquire) holds %s", first.Process.Pid, ev), "acquire", snapA, "--out", ev, "--quiet")
	c.fails(exitBusy, fmt.Sprintf("PID %d", first.Process.Pid), "compress", ev)
	if err := first.Wait(); err != nil {
		t.Fatalf("the first acquisition: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(ev, dirlock.Name)); !os.IsNotExist(err) {
		t.Fatalf("lock file left after the run: %v", err)
	}
	c.ok("verify", ev)
}

// Issue 10, case 10: --force over another snapshot's evidence leaves one
// coherent directory, or refuses before deleting anything.
func TestForceReplacesOtherSnapshot(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, specA, specB)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	c.ok("verify", ev)
	sumA := sha256File(t, filepath.Join(ev, store.ManifestName))

	// A file ebsimager did not write: refused, nothing deleted.
	notes := filepath.Join(ev, "case-notes.txt")
	os.WriteFile(notes, []byte("mine"), 0o600)
	c.fails(exitConflict, "case-notes.txt", "acquire", snapB, "--out", ev, "--force", "--quiet")
	if sha256File(t, filepath.Join(ev, store.ManifestName)) != sumA || len(loadRecord(t, ev).Steps) != 1 {
		t.Fatal("a refused --force changed the evidence")
	}
	os.Remove(notes)

	s := acquireJSON(t, c.ok("acquire", snapB, "--out", ev, "--force", "--json"))
	if s.Replaced == nil || s.Replaced.SnapshotID != snapA || s.Replaced.ManifestSHA256 != sumA {
		t.Fatalf("summary: replaced %+v", s.Replaced)
	}
	rec := loadRecord(t, ev)
	if rec.Evidence.SnapshotID != snapB || len(rec.Steps) != 0 || rec.Acquisition.Replaced == nil ||
		rec.Acquisition.Replaced.SnapshotID != snapA || rec.Acquisition.Replaced.ManifestSHA256 != sumA {
		t.Fatalf("record after --force: %+v, steps %+v", rec.Evidence, rec.Steps)
	}
	if m, _ := filepath.Glob(filepath.Join(ev, "blocks", "*", "*", "*"+snapA+"*")); len(m) != 0 {
		t.Fatalf("blocks of %s left: %v", snapA, m)
	}
	c.ok("verify", ev)
	c.ok("export", ev, "--out", filepath.Join(dir, "b.raw"), "--quiet")
	if rec := loadRecord(t, ev); rec.Evidence.SnapshotID != snapB || len(rec.Steps) != 2 {
		t.Fatalf("record after verify and export: %+v, %d steps", rec.Evidence, len(rec.Steps))
	}
}
