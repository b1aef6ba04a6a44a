package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/dirlock"
)

// removeJournals deletes every leaf journal of dir.
func removeJournals(t *testing.T, dir string) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, blocksDir, "*", "*", journalName))
	if len(m) == 0 {
		t.Fatal("no journals to remove")
	}
	for _, p := range m {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	d, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The journal is an optimisation: complete evidence whose journals are
// gone is still complete. A rerun keeps every block file, fetches none,
// and keeps the manifest and evidence.json byte for byte.
func TestRerunWithoutJournalsKeepsEvidence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	sum := fill(t, dir)
	manifestBefore := readBytes(t, filepath.Join(dir, ManifestName))
	metaBefore := readBytes(t, filepath.Join(dir, MetaName))
	removeJournals(t, dir)

	s := newStore(t, dir)
	if s.Resumed() != int64(len(indexes)) || s.Kept().Adopted != int64(len(indexes)) || s.Kept().Rejected != 0 {
		t.Fatalf("resumed %d, kept %+v; want all %d adopted", s.Resumed(), s.Kept(), len(indexes))
	}
	for _, i := range indexes {
		if !s.Has(i) {
			t.Fatalf("block %d does not count as stored", i)
		}
		blockPath(t, dir, i) // still there
	}
	got, err := s.Finish(time.Unix(5, 0), time.Unix(6, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Unchanged || got.ManifestSHA256 != sum.ManifestSHA256 || got.Blocks != sum.Blocks {
		t.Fatalf("finish %+v, want the unchanged manifest %s", got, sum.ManifestSHA256.Hex())
	}
	if !bytes.Equal(readBytes(t, filepath.Join(dir, ManifestName)), manifestBefore) {
		t.Fatal("the manifest of complete evidence was rewritten")
	}
	if !bytes.Equal(readBytes(t, filepath.Join(dir, MetaName)), metaBefore) {
		t.Fatal("evidence.json of complete evidence was rewritten")
	}
	if p := verifyProblems(t, dir); len(p) != 0 {
		t.Fatalf("problems after the rerun: %+v", p)
	}
}

// A rerun never removes the manifest before it knows better, and never
// deletes a block file: one that does not verify is set aside.
func TestRerunSetsAsideWhatDoesNotVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	sum := fill(t, dir)
	removeJournals(t, dir)
	bad := blockPath(t, dir, 9999)
	d := readBytes(t, bad)
	d[7] ^= 1
	os.WriteFile(bad, d, 0o600)
	junk := filepath.Join(dir, LeafDir(0), "notes.txt")
	os.WriteFile(junk, []byte("x"), 0o600)

	s := newStore(t, dir)
	k := s.Kept()
	if s.Has(9999) || s.Resumed() != int64(len(indexes)-1) || k.Rejected != 2 || len(k.Unverified) != 2 {
		t.Fatalf("has 9999 %v, resumed %d, kept %+v", s.Has(9999), s.Resumed(), k)
	}
	for _, u := range k.Unverified {
		moved := readBytes(t, filepath.Join(dir, u.MovedTo))
		if !strings.HasPrefix(u.MovedTo, unverifiedDir+"/") || (!bytes.Equal(moved, d) && string(moved) != "x") {
			t.Fatalf("set aside %+v", u)
		}
	}
	if !strings.Contains(k.Unverified[0].Reason, "its name says") {
		t.Fatalf("reason %q", k.Unverified[1].Reason)
	}
	// The stale manifest stays until the run completes.
	if sha256Of(t, filepath.Join(dir, ManifestName)) != sum.ManifestSHA256.Hex() {
		t.Fatal("the manifest was touched before the run completed")
	}
	// Refetched, the block completes the same evidence.
	orig := blockData(9999)
	d[7] ^= 1
	if !bytes.Equal(d, orig) {
		t.Fatal("test data")
	}
	if err := s.Put(9999, block.SumOf(orig), orig); err != nil {
		t.Fatal(err)
	}
	got, err := s.Finish(time.Now(), time.Now())
	if err != nil || !got.Unchanged || got.ManifestSHA256 != sum.ManifestSHA256 {
		t.Fatalf("finish %+v %v", got, err)
	}
	if p := verifyProblems(t, dir); len(p) != 0 {
		t.Fatalf("problems: %+v", p)
	}
}

func sha256Of(t *testing.T, path string) string {
	t.Helper()
	return block.SumOf(readBytes(t, path)).Hex()
}

// A journaled block kept on resume is checked against its SHA-256, not
// its size: a same-size corruption is set aside and fetched again.
func TestResumeChecksKeptBlocks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	s := newStore(t, dir)
	for _, i := range []int64{3, 4} {
		d := blockData(i)
		if err := s.Put(i, block.SumOf(d), d); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	p := blockPath(t, dir, 4)
	d := readBytes(t, p)
	d[100] ^= 0x80
	os.WriteFile(p, d, 0o600)

	s = newStore(t, dir)
	if !s.Has(3) || s.Has(4) || s.Resumed() != 1 || s.Kept().Rejected != 1 || s.Kept().Checked != 1 {
		t.Fatalf("has 3/4 %v %v, resumed %d, kept %+v", s.Has(3), s.Has(4), s.Resumed(), s.Kept())
	}
	if u := s.Kept().Unverified[0]; !strings.Contains(u.Reason, "stored sha256") || !bytes.Equal(readBytes(t, filepath.Join(dir, u.MovedTo)), d) {
		t.Fatalf("set aside %+v", u)
	}
	s.Close()
}

// Sealed block files without a journal line are adopted only when the
// complete manifest lists them with the same stored bytes.
func TestSealedAdoption(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	form := invForm
	meta := Meta{SnapshotID: snap, VolumeSizeGiB: 8, BlockSize: block.Size}
	s, err := Create(dir, meta, form)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{2, 3} {
		d := blockData(i)
		if err := s.Put(i, block.SumOf(d), d); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := s.Finish(time.Now(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	removeJournals(t, dir)
	s, err = Create(dir, meta, form)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kept().Adopted != 2 || !s.Has(2) || !s.Has(3) {
		t.Fatalf("kept %+v", s.Kept())
	}
	if got, err := s.Finish(time.Now(), time.Now()); err != nil || !got.Unchanged || got.ManifestSHA256 != sum.ManifestSHA256 {
		t.Fatalf("finish %+v %v", got, err)
	}
	// Without a manifest, nothing can vouch for them: set aside.
	os.Remove(filepath.Join(dir, ManifestName))
	removeJournals(t, dir)
	s, err = Create(dir, meta, form)
	if err != nil {
		t.Fatal(err)
	}
	if s.Resumed() != 0 || s.Kept().Rejected != 2 {
		t.Fatalf("kept %+v", s.Kept())
	}
	s.Close()
}

// --force replaces only evidence: a directory that also holds files
// ebsimager did not write is refused before anything is deleted.
func TestForceReplacesOnlyEvidence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	sum := fill(t, dir)
	for _, n := range []string{"report.json", "report.txt", "report.html", KeyName} {
		os.WriteFile(filepath.Join(dir, n), []byte("{}"), 0o600)
	}
	other := Meta{SnapshotID: nextSnap, Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size}
	for _, foreign := range []string{"case-notes.txt", filepath.Join(LeafDir(0), "notes.txt"), filepath.Join(blocksDir, "x")} {
		p := filepath.Join(dir, foreign)
		os.WriteFile(p, []byte("x"), 0o600)
		_, err := Create(dir, other, Options{Force: true})
		var fe *ForeignFileError
		if !errors.As(err, &fe) || fe.Name != filepath.ToSlash(foreign) || !errors.Is(err, ErrNotEvidence) {
			t.Fatalf("forced Create with %s: %v", foreign, err)
		}
		if sha256Of(t, filepath.Join(dir, ManifestName)) != sum.ManifestSHA256.Hex() {
			t.Fatal("a refused --force touched the evidence")
		}
		blockPath(t, dir, 0)
		os.Remove(p)
	}
	os.WriteFile(filepath.Join(dir, dirlock.Name), nil, 0o600) // the lock is ours
	s, err := Create(dir, other, Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Replaced(); r == nil || r.SnapshotID != snap || r.ManifestSHA256 != sum.ManifestSHA256.Hex() {
		t.Fatalf("replaced %+v", r)
	}
	s.Close()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != dirlock.Name+" "+MetaName {
		t.Fatalf("left after --force: %v", names)
	}
}

// A fresh directory that holds only the lock is empty.
func TestLockFileIsNotContent(t *testing.T) {
	dir := t.TempDir()
	l, err := dirlock.ForDir(dir, "acquire")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	s := newStore(t, dir)
	d := blockData(1)
	if err := s.Put(1, block.SumOf(d), d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if p := verifyProblems(t, dir); len(p) != 0 {
		t.Fatalf("problems with the lock file present: %+v", p)
	}
	// That a conversion and an acquisition exclude each other is
	// TestConvertWhileAcquiring (internal/convert).
}

// A base block is checked against its SHA-256 before it is linked: a
// hard link shares the inode, so a corrupt base block must never enter
// the new evidence.
func TestReuseChecksLinkedBlock(t *testing.T) {
	dir := t.TempDir()
	baseDir := filepath.Join(dir, "base")
	fill(t, baseDir)
	b, err := OpenBase(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	e := baseEntries(t, b)[1]
	src := filepath.Join(baseDir, e.Name)
	d := readBytes(t, src)
	d[4096] ^= 1
	os.WriteFile(src, d, 0o600)
	next := filepath.Join(dir, "next")
	s := newNext(t, next)
	_, err = s.Reuse(e, src, false)
	var bad *BadSourceError
	if !errors.As(err, &bad) || bad.Index != e.Index || !strings.Contains(err.Error(), "stored sha256") {
		t.Fatalf("linking a corrupt base block: %v", err)
	}
	if s.Has(e.Index) {
		t.Fatal("a corrupt base block counts as stored")
	}
	s.Close()
	files, _ := os.ReadDir(filepath.Join(next, LeafDir(e.Index)))
	for _, f := range files {
		if f.Name() != journalName {
			t.Fatalf("%s entered the new evidence", f.Name())
		}
	}
}

// In passphrase mode the key file is the new run's (read or written
// before Create): --force keeps it.
func TestForceKeepsTheRunsKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	fill(t, dir)
	os.WriteFile(filepath.Join(dir, KeyName), []byte("key"), 0o600)
	s, err := Create(dir, Meta{SnapshotID: nextSnap, VolumeSizeGiB: 8, BlockSize: block.Size, KeyFile: KeyName}, Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if string(readBytes(t, filepath.Join(dir, KeyName))) != "key" {
		t.Fatal("--force removed the key this run uses")
	}
}
