package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/store"
)

// TestSaveBlocksThenAcquire: inspect a snapshot live with --save-blocks
// DIR, then acquire it into DIR. The acquisition fetches exactly the
// blocks the inspection did not store, the evidence verifies, its
// manifest's blocks are those of a fresh acquisition, and its record
// keeps the read-live step, which came first.
func TestSaveBlocksThenAcquire(t *testing.T) {
	dir := t.TempDir()
	disk, err := sampledisk.Extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapDisk, disk, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	fresh := filepath.Join(dir, "fresh")
	c.ok("acquire", snapDisk, "--out", fresh, "--quiet")
	allocated := int64(len(blockIndexes(t, fresh)))
	want := inspectOK(t, fresh, "--json")

	ev := filepath.Join(dir, "ev")
	srv.ResetCounters()
	r := c.ok("inspect", snapDisk, "--json", "--save-blocks", ev)
	ctr := srv.Counters()
	lists, gets := ctr.Total(emulator.OpListSnapshotBlocks), ctr.Total(emulator.OpGetSnapshotBlock)
	saved := int64(len(blockIndexes(t, ev)))
	t.Logf("inspect --save-blocks: %d List and %d Get calls, %d blocks stored of %d allocated", lists, gets, saved, allocated)
	if r.stdout != want || saved == 0 || saved != gets || !strings.Contains(r.stderr, fmtInt(saved)+" blocks stored in "+ev) {
		t.Fatalf("inspect --save-blocks: %d Gets, %d blocks stored; stdout\n%s\nstderr %s", gets, saved, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(ev, store.ManifestName)); !os.IsNotExist(err) {
		t.Fatalf("a live read wrote a manifest: %v", err)
	}
	rec, err := report.Load(ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Steps) != 1 || rec.Acquisition != nil {
		t.Fatalf("record after the live read: %d steps, acquisition %v", len(rec.Steps), rec.Acquisition)
	}
	s := rec.Steps[0]
	if s.Kind != report.StepReadLive || s.Outcome != report.OutcomeOK || s.ReadLive == nil || s.ReadLive.SnapshotID != snapDisk ||
		s.ReadLive.StoredBlocks != saved || s.ReadLive.Requests.ListCalls != lists || s.ReadLive.Requests.GetCalls != gets {
		js, _ := json.Marshal(s)
		t.Fatalf("read-live step %s; want %d stored, %d List, %d Get", js, saved, lists, gets)
	}

	srv.ResetCounters()
	c.ok("acquire", snapDisk, "--out", ev, "--quiet")
	if got := srv.Counters().Total(emulator.OpGetSnapshotBlock); got != allocated-saved {
		t.Fatalf("acquire after the live read made %d Gets; want %d allocated - %d stored = %d", got, allocated, saved, allocated-saved)
	}
	c.ok("verify", ev)
	if got, want := blockLines(t, ev), blockLines(t, fresh); got != want {
		t.Fatalf("manifest blocks differ from a fresh acquisition's:\n%s\nfresh:\n%s", got, want)
	}
	rec, err = report.Load(ev)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Acquisition == nil || len(rec.Steps) < 1 || rec.Steps[0].Kind != report.StepReadLive ||
		rec.Steps[0].FinishedAt.After(rec.Acquisition.StartedAt) || rec.Acquisition.FetchedBlocks != allocated-saved {
		js, _ := json.Marshal(rec)
		t.Fatalf("record after the acquisition: %s", js)
	}
	for _, s := range rec.Steps[1:] {
		if s.Kind == report.StepReadLive {
			t.Fatalf("the read-live step is recorded twice: %+v", rec.Steps)
		}
	}
}

// blockLines returns the block lines of dir's manifest.
func blockLines(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, store.ManifestName))), "\n") {
		var m manifestLine
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "block" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSaveBlocksRefusals: --save-blocks stores blocks of a snapshot only,
// into a directory of that snapshot only (refused as acquire refuses
// it); block stores the one block it reads.
func TestSaveBlocksRefusals(t *testing.T) {
	srv, endpoint := startEmulator(t, emulator.Options{}, specA, specB)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	save := filepath.Join(dir, "save")
	for _, cmd := range [][]string{{"inspect", ev}, {"block", ev, "0", "--out", filepath.Join(dir, "x.bin")}} {
		c.fails(exitUsage, "--save-blocks: "+ev+" is not a snapshot", append(cmd, "--save-blocks", save)...)
		if _, err := os.Stat(save); !os.IsNotExist(err) {
			t.Fatalf("%s --save-blocks made %s", cmd[0], save)
		}
	}
	// Evidence of another snapshot: the error acquire gives.
	ra := c.fails(exitConflict, ev+" holds evidence of "+snapA+", not "+snapB, "acquire", snapB, "--out", ev, "--quiet")
	srv.ResetCounters()
	ri := c.fails(exitConflict, ev+" holds evidence of "+snapA+", not "+snapB, "inspect", snapB, "--save-blocks", ev)
	if first := strings.SplitN(ri.stderr, "\n", 2)[0]; !strings.Contains(ra.stderr, strings.TrimPrefix(first, "ebsimager: opening evidence of "+snapB+": ")) {
		t.Fatalf("inspect: %q; acquire: %q", ri.stderr, ra.stderr)
	}
	if n := srv.Counters().Total(emulator.OpGetSnapshotBlock); n != 0 {
		t.Fatalf("a refused --save-blocks made %d Gets", n)
	}
	c.ok("verify", ev)
	rec, err := report.Load(ev)
	if err != nil || len(rec.Steps) != 1 || rec.Steps[0].Kind != report.StepVerify {
		t.Fatalf("the refused reads touched the record: %v %+v", err, rec)
	}

	// block --save-blocks stores its one block; acquire fetches the rest.
	idx := blockIndexes(t, ev)
	c.ok("block", snapA, fmtInt(idx[3]), "--out", filepath.Join(dir, "one.bin"), "--save-blocks", save)
	if got := blockIndexes(t, save); len(got) != 1 || got[0] != idx[3] {
		t.Fatalf("block --save-blocks stored %v; want [%d]", got, idx[3])
	}
	srv.ResetCounters()
	c.ok("acquire", snapA, "--out", save, "--quiet")
	if got, want := srv.Counters().Total(emulator.OpGetSnapshotBlock), int64(len(idx)-1); got != want {
		t.Fatalf("acquire after block --save-blocks: %d Gets; want %d", got, want)
	}
	if got, want := blockLines(t, save), blockLines(t, ev); got != want {
		t.Fatal("manifest blocks differ from a fresh acquisition's")
	}
}
