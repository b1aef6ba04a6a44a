package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
)

// TestBlockOfEverySource reads blocks of the snapshot live, of its
// evidence directory, of a raw export and of an E01 export: each gives
// the block AWS served, exactly (its SHA-256 is the one in the stored
// block's name). The evidence says which blocks it holds; the images
// read every index inside them, a hole as zeros; an index beyond any of
// them is refused.
func TestBlockOfEverySource(t *testing.T) {
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")
	img := filepath.Join(dir, "disk.raw")
	c.ok("export", ev, "--out", img, "--quiet")
	e01 := filepath.Join(dir, "disk")
	c.ok("export", ev, "--out", e01, "--format", "e01", "--quiet")
	idx := blockIndexes(t, ev)
	if len(idx) < 3 || idx[1] == idx[0]+1 && idx[2] == idx[1]+1 {
		t.Fatalf("the test needs a hole after one of the first blocks: %v", idx[:min(3, len(idx))])
	}
	k := 0 // a block followed by a hole
	for idx[k+1] == idx[k]+1 {
		k++
	}
	want, hole, next := idx[k], idx[k]+1, idx[k+1]
	sum := blockName(t, ev, want).Sum.Hex()

	// The snapshot read live: one List (the chunk of the volume) and one
	// Get, where the direct path made one List and one Get too.
	srv.ResetCounters()
	out := filepath.Join(dir, "live.bin")
	r := c.ok("block", snapA, fmtInt(want), "--out", out)
	ctr := srv.Counters()
	lists, gets := ctr.Total(emulator.OpListSnapshotBlocks), ctr.Total(emulator.OpGetSnapshotBlock)
	t.Logf("block %s %d: %d List and %d Get calls", snapA, want, lists, gets)
	if lists != 1 || gets != 1 || sha256File(t, out) != sum {
		t.Fatalf("block %s %d: %d Lists, %d Gets, sha256 %s; want 1, 1, %s", snapA, want, lists, gets, sha256File(t, out), sum)
	}
	if line := "block " + fmtInt(want) + " of " + snapA + ": 524288 bytes, sha256 " + sum + " (verified), written to " + out + "\n"; r.stdout != line {
		t.Fatalf("stdout %q, want %q", r.stdout, line)
	}

	for _, src := range []string{ev, img, e01 + ".E01"} {
		out := filepath.Join(t.TempDir(), "one.bin")
		r := c.ok("block", src, fmtInt(want), "--out", out)
		if got := sha256File(t, out); got != sum || !strings.Contains(r.stdout, "block "+fmtInt(want)+" of "+src+": 524288 bytes, sha256 "+sum+" (verified)") {
			t.Errorf("block %s %d: sha256 %s, want %s; stdout %q", src, want, got, sum, r.stdout)
		}
		beyond := filepath.Join(t.TempDir(), "beyond.bin")
		c.fails(exitInvalid, "block 2048 is beyond the volume of 2048 blocks", "block", src, "2048", "--out", beyond)
		if _, err := os.Stat(beyond); !os.IsNotExist(err) {
			t.Errorf("block %s 2048 wrote a file", src)
		}
	}

	// The evidence names the next block it holds, as the snapshot does.
	for _, src := range []string{snapA, ev} {
		two := filepath.Join(t.TempDir(), "two.bin")
		r := c.fails(exitNotFound, "is not allocated", "block", src, fmtInt(hole), "--out", two)
		if !strings.Contains(r.stderr, "the next allocated block is "+fmtInt(next)) {
			t.Errorf("block %s %d: stderr %q does not name block %d", src, hole, r.stderr, next)
		}
		if _, err := os.Stat(two); !os.IsNotExist(err) {
			t.Errorf("block %s %d: an unallocated block wrote a file", src, hole)
		}
	}
	// The images read the hole as zeros.
	for _, src := range []string{img, e01 + ".E01"} {
		out := filepath.Join(t.TempDir(), "hole.bin")
		c.ok("block", src, fmtInt(hole), "--out", out)
		if got := sha256File(t, out); got != block.ZeroSum.Hex() {
			t.Errorf("block %s %d (a hole): sha256 %s, want zeros' %s", src, hole, got, block.ZeroSum.Hex())
		}
	}

	// A stored block that does not match the manifest is refused (exit
	// 4), and nothing is written.
	victim := blockFile(t, ev, want)
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[4096] ^= 0x01
	if err := os.WriteFile(victim, data, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.bin")
	c.fails(exitMismatch, "reading block "+fmtInt(want)+" of "+ev+": block "+fmtInt(want)+" (", "block", ev, fmtInt(want), "--out", bad)
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatal("a tampered block wrote a file")
	}
	c.fails(exitMismatch, "stored sha256", "block", ev, fmtInt(want), "--out", bad)
}

// blockName returns what the name of block index's stored file says.
func blockName(t *testing.T, ev string, index int64) block.FileInfo {
	t.Helper()
	fi, _, err := block.ParseFileName(filepath.Base(blockFile(t, ev, index)))
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// TestBlockCalls counts the calls of block SNAPSHOT INDEX read live: one
// List (the first chunk of 10,000 slots, which also sizes the volume),
// one more for an index in a chunk not listed yet or whose next block is
// in one, and one Get. These are the calls the direct path made before
// block read through the Volume (a 100-block page from 0, then one from
// INDEX when the first did not reach it).
func TestBlockCalls(t *testing.T) {
	const full, sparse = "snap-0c0000000000000c1", "snap-0d0000000000000d1"
	srv, endpoint := startEmulator(t, emulator.Options{}, specA, full+"=16GiB,1,3", sparse+"=16GiB,0.001,4")
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("acquire", sparse, "--out", ev, "--quiet")
	idx := blockIndexes(t, ev)
	mid := idx[len(idx)/2]
	for _, k := range []struct {
		snap        string
		index       int64
		code        int
		lists, gets int64
	}{
		{snapA, 11, exitOK, 1, 1},
		{snapA, 12, exitNotFound, 1, 0},
		{full, 5, exitOK, 1, 1},
		{full, 9999, exitOK, 2, 1},  // the next block is in chunk 1
		{full, 25000, exitOK, 2, 1}, // chunk 2
		{sparse, idx[0], exitOK, 1, 1},
		{sparse, mid, exitOK, 1, 1}, // one page lists the whole sparse volume
		{sparse, mid + 1, exitNotFound, 1, 0},
		{sparse, idx[len(idx)-1], exitOK, 1, 1},
	} {
		srv.ResetCounters()
		r := c.run("block", k.snap, fmtInt(k.index), "--out", filepath.Join(t.TempDir(), "b"))
		ctr := srv.Counters()
		lists, gets := ctr.Total(emulator.OpListSnapshotBlocks), ctr.Total(emulator.OpGetSnapshotBlock)
		if r.code != k.code || lists != k.lists || gets != k.gets {
			t.Errorf("block %s %d: exit %d, %d List, %d Get; want exit %d, %d List, %d Get\n%s",
				k.snap, k.index, r.code, lists, gets, k.code, k.lists, k.gets, r.stderr)
		}
	}
}
