package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
)

const (
	snapIncParent = "snap-0f00000000000f001"
	snapIncChild  = "snap-0f00000000000f002"
	snapIncOther  = "snap-0f00000000000f003"
)

// incPair starts an emulator with a 1 GiB parent (10% allocated) and a
// child differing in 10% of the slots, and returns the changes between
// them, walked with the EBS client, by kind.
func incPair(t *testing.T) (*emulator.Server, string, map[int64]ebs.Change) {
	t.Helper()
	srv, endpoint := startEmulator(t, emulator.Options{}, snapIncParent+"=1GiB,0.1,21")
	if err := srv.AddChild(snapIncChild + "=child-of:" + snapIncParent + ",0.1,22"); err != nil {
		t.Fatal(err)
	}
	changes := map[int64]ebs.Change{}
	snap := &ebs.Snapshot{API: emulatortest.Client(t, endpoint), ID: snapIncChild}
	err := snap.Changes(context.Background(), snapIncParent, 0, func(p ebs.ChangePage) error {
		for _, c := range p.Changes {
			changes[c.Index] = c
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, endpoint, changes
}

type manifestLine struct {
	Type  string `json:"type"`
	Index int64  `json:"index"`
	Name  string `json:"name"`
}

// blockNames returns the manifest's block names by index.
func blockNames(t *testing.T, dir string) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, store.ManifestName))), "\n") {
		var m manifestLine
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "block" {
			out[m.Index] = m.Name
		}
	}
	return out
}

func nlink(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(fi.Sys().(*syscall.Stat_t).Nlink)
}

func TestIncrementalAcquire(t *testing.T) {
	t.Parallel()
	srv, endpoint, changes := incPair(t)
	var added, changed, removed int64
	for _, c := range changes {
		switch {
		case c.FirstToken == "":
			added++
		case c.SecondToken == "":
			removed++
		default:
			changed++
		}
	}
	if added == 0 || changed == 0 || removed == 0 {
		t.Fatalf("the child should have all three kinds of change: %d added, %d changed, %d removed", added, changed, removed)
	}
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	full, base, inc, copied := filepath.Join(dir, "full"), filepath.Join(dir, "base"), filepath.Join(dir, "inc"), filepath.Join(dir, "copied")
	c.ok("acquire", snapIncChild, "--out", full, "--quiet")
	c.ok("acquire", snapIncParent, "--out", base, "--quiet")
	baseNames := blockNames(t, base)
	var reusable int64
	for i := range baseNames {
		if _, ok := changes[i]; !ok {
			reusable++
		}
	}
	fullNames := blockNames(t, full)
	if int64(len(fullNames)) != reusable+added+changed {
		t.Fatalf("full acquisition holds %d blocks; the base's %d unchanged, %d added and %d changed make %d",
			len(fullNames), reusable, added, changed, reusable+added+changed)
	}

	srv.ResetCounters()
	r := c.ok("acquire", snapIncChild, "--out", inc, "--base", base, "--json")
	ctr := srv.Counters()
	if got, want := ctr.Total(emulator.OpGetSnapshotBlock), added+changed; got != want {
		t.Errorf("%d GetSnapshotBlock calls, want %d (added + changed)", got, want)
	}
	if got := ctr.Total(emulator.OpListSnapshotBlocks); got != 0 {
		t.Errorf("%d ListSnapshotBlocks calls, want 0", got)
	}
	// 10,000 is ListChangedBlocks' default and largest page.
	if got, want := ctr.Total(emulator.OpListChangedBlocks), (int64(len(changes))+9999)/10000; got != want {
		t.Errorf("%d ListChangedBlocks calls for %d changes, want %d", got, len(changes), want)
	}
	var sum acquireSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	wantBase := report.Base{Directory: base, SnapshotID: snapIncParent, ManifestSHA256: strings.Fields(readFile(t, filepath.Join(base, store.ManifestSumName)))[0],
		ChangedBlocks: int64(len(changes)), ReusedBlocks: reusable, LinkedBlocks: reusable}
	if sum.Base == nil || *sum.Base != wantBase || sum.Blocks != int64(len(fullNames)) || sum.Fetched != added+changed {
		t.Fatalf("summary %+v base %+v; want base %+v, %d blocks, %d fetched", sum, sum.Base, wantBase, len(fullNames), added+changed)
	}
	rec, err := report.Load(inc)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Acquisition.Base == nil || *rec.Acquisition.Base != wantBase || rec.Acquisition.Blocks != int64(len(fullNames)) {
		t.Fatalf("record's base %+v, blocks %d; want %+v, %d", rec.Acquisition.Base, rec.Acquisition.Blocks, wantBase, len(fullNames))
	}
	// The block map marks the changed blocks against the base.
	if m := rec.BlockMap; m == nil || m.ChangedBlocks != int64(len(changes)) || m.ChangedBase != snapIncParent {
		t.Fatalf("block map %+v: want %d changed blocks against %s", m, len(changes), snapIncParent)
	}

	if got, want := manifestBlocks(t, inc), manifestBlocks(t, full); got != want {
		t.Fatalf("incremental manifest differs from the full acquisition's:\n%s\nwant:\n%s", got, want)
	}
	c.ok("verify", inc)
	imgFull, imgInc := filepath.Join(dir, "full.img"), filepath.Join(dir, "inc.img")
	c.ok("export", full, "--out", imgFull, "--quiet")
	c.ok("export", inc, "--out", imgInc, "--quiet")
	if a, b := sha256File(t, imgFull), sha256File(t, imgInc); a != b {
		t.Fatalf("exported incremental sha256 %s, full %s", b, a)
	}
	for i, name := range blockNames(t, inc) {
		want := uint64(1) // fetched by this run
		if _, ok := changes[i]; !ok {
			want = 2 // the base's file, linked
		}
		if got := nlink(t, filepath.Join(inc, name)); got != want {
			t.Fatalf("block %d: link count %d, want %d", i, got, want)
		}
	}

	// Running it again finds every block in place: nothing is fetched or
	// linked, and the manifest is the same.
	srv.ResetCounters()
	r = c.ok("acquire", snapIncChild, "--out", inc, "--base", base, "--json")
	sum = acquireSummary{}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Base.ReusedBlocks != reusable || sum.Base.LinkedBlocks != 0 || sum.Base.CopiedBlocks != 0 || srv.Counters().Total(emulator.OpGetSnapshotBlock) != 0 {
		t.Fatalf("rerun: base %+v, %d gets", sum.Base, srv.Counters().Total(emulator.OpGetSnapshotBlock))
	}
	if got, want := manifestBlocks(t, inc), manifestBlocks(t, full); got != want {
		t.Fatal("rerun changed the manifest")
	}

	r = c.ok("acquire", snapIncChild, "--out", copied, "--base", base, "--copy-base")
	if !strings.Contains(r.stdout, "base       "+snapIncParent) || !strings.Contains(r.stdout, "0 linked, "+fmtInt(reusable)+" copied now") {
		t.Fatalf("summary:\n%s", r.stdout)
	}
	if got, want := manifestBlocks(t, copied), manifestBlocks(t, full); got != want {
		t.Fatal("--copy-base manifest differs from the full acquisition's")
	}
	for i, name := range blockNames(t, copied) {
		if got := nlink(t, filepath.Join(copied, name)); got != 1 {
			t.Fatalf("--copy-base block %d: link count %d, want 1", i, got)
		}
		if info, err := os.Stat(filepath.Join(copied, name)); err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("--copy-base block %d: %v %v, want mode 0600", i, info.Mode(), err)
		}
	}
	for i, name := range baseNames {
		if _, ok := changes[i]; !ok {
			if got := nlink(t, filepath.Join(base, name)); got != 2 {
				t.Fatalf("base block %d: link count %d, want 2 (linked once, by the first incremental run)", i, got)
			}
		}
	}
}

func TestIncrementalErrors(t *testing.T) {
	t.Parallel()
	srv, endpoint, _ := incPair(t)
	if err := srv.AddSynthetic(snapIncOther + "=1GiB,0.1,23"); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	other, zst, base := filepath.Join(dir, "other"), filepath.Join(dir, "zst"), filepath.Join(dir, "base")
	c.ok("acquire", snapIncOther, "--out", other, "--quiet")
	c.ok("acquire", snapIncParent, "--out", zst, "--quiet", "--compress=zstd")
	c.ok("acquire", snapIncParent, "--out", base, "--quiet")
	out := filepath.Join(dir, "out")
	absent := func(what string) {
		t.Helper()
		if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: %s was written (%v)", what, out, err)
		}
	}

	srv.ResetCounters()
	r := c.fails(exitInvalid, "UNRELATED_SNAPSHOTS", "acquire", snapIncChild, "--out", out, "--base", other)
	if !strings.Contains(r.stderr, "base "+other+" holds "+snapIncOther+", which is not of "+snapIncChild+"'s volume lineage") ||
		!strings.Contains(r.stderr, "hint: --base takes the evidence of an earlier snapshot") {
		t.Fatalf("unrelated base:\n%s", r.stderr)
	}
	if n := srv.Counters().Total(emulator.OpGetSnapshotBlock); n != 0 {
		t.Fatalf("%d blocks fetched with an unrelated base", n)
	}
	absent("unrelated base")

	c.fails(exitError, "base "+zst+" stores blocks as codec zstd, encryption none; this run asks for none, none", "acquire", snapIncChild, "--out", out, "--base", zst)
	absent("base of another form")
	c.fails(exitError, "stores blocks as codec none, encryption none; this run asks for gzip, none", "acquire", snapIncChild, "--out", out, "--base", base, "--compress=gzip")
	absent("base of another form")

	c.fails(exitUsage, "holds evidence of "+snapIncParent+" itself", "acquire", snapIncParent, "--out", out, "--base", base)
	c.fails(exitUsage, "--base needs --out", "acquire", snapIncChild, "--image", out, "--base", base)
	c.fails(exitUsage, "--copy-base applies to --base", "acquire", snapIncChild, "--out", out, "--copy-base")
	c.fails(exitUsage, "name the same directory", "acquire", snapIncChild, "--out", base, "--base", base)
	absent("usage errors")

	// A base whose manifest does not match its SHA-256 file is refused.
	sumFile := filepath.Join(base, store.ManifestSumName)
	if err := os.WriteFile(sumFile, []byte(strings.Repeat("0", 64)+"  "+store.ManifestName+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.fails(exitMismatch, "manifest.jsonl.sha256 says "+strings.Repeat("0", 64), "acquire", snapIncChild, "--out", out, "--base", base)
	absent("tampered base")
	if err := os.Remove(sumFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(base, store.ManifestName)); err != nil {
		t.Fatal(err)
	}
	c.fails(exitIncomplete, "no manifest", "acquire", snapIncChild, "--out", out, "--base", base)
	absent("incomplete base")
}

// TestIncrementalEncrypted takes encrypted blocks from an encrypted base
// with the same recipient, and refuses a base encrypted to another.
func TestIncrementalEncrypted(t *testing.T) {
	t.Parallel()
	_, endpoint, _ := incPair(t)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	identity, recipient := makeIdentity(t)
	_, other := makeIdentity(t)
	base, inc, full := filepath.Join(dir, "base"), filepath.Join(dir, "inc"), filepath.Join(dir, "full")
	c.ok("acquire", snapIncParent, "--out", base, "--quiet", "--recipient", recipient)
	c.ok("acquire", snapIncChild, "--out", full, "--quiet")
	c.fails(exitError, "base "+base+" is encrypted to other recipients than this run", "acquire", snapIncChild, "--out", inc, "--base", base, "--recipient", other)
	if _, err := os.Stat(inc); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("refused run wrote %s (%v)", inc, err)
	}
	c.ok("acquire", snapIncChild, "--out", inc, "--quiet", "--base", base, "--recipient", recipient)
	c.ok("verify", inc, "--identity", identity)
	if got, want := exportSHA256(t, c, inc, "--identity", identity), exportSHA256(t, c, full); got != want {
		t.Fatalf("encrypted incremental exports with sha256 %s, the full acquisition %s", got, want)
	}
}
