package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
)

// diskSHA256 is the SHA-256 of snapshot id's volume as the emulator
// serves it, computed here with crypto/sha256 from every listed block
// (zeros elsewhere), independently of ebsimager's evidence and export.
func diskSHA256(t *testing.T, endpoint, id string) string {
	t.Helper()
	snap := &ebs.Snapshot{API: emulatortest.Client(t, endpoint), ID: id}
	blocks := map[int64]block.Ref{}
	var gib int64
	err := snap.List(context.Background(), 0, func(p ebs.Page) error {
		gib = p.Info.VolumeGiB
		for _, r := range p.Refs {
			blocks[r.Index] = r
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h, zero, buf := sha256.New(), make([]byte, block.Size), make([]byte, block.Size)
	for i := range block.Slots(gib) {
		r, ok := blocks[i]
		if !ok {
			h.Write(zero)
			continue
		}
		b, err := snap.Fetch(context.Background(), r, buf)
		if err != nil || len(b.Data) != block.Size {
			t.Fatalf("block %d: %v", i, err)
		}
		h.Write(b.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestIncrementalS3 takes the unchanged blocks of a child snapshot from
// a base in S3 or in a directory, into a directory or S3: every
// combination fetches only the changed blocks, records the base as a
// directory base is recorded, and exports the child's disk bit for bit.
// A tampered object of the base is not taken: its block is fetched.
func TestIncrementalS3(t *testing.T) {
	t.Parallel()
	srv, endpoint, changes := incPair(t)
	var fetched int64
	for _, c := range changes {
		if c.SecondToken != "" {
			fetched++
		}
	}
	c := newCLI(t, endpoint)
	s3c, api := s3Env(t, c)
	disk := diskSHA256(t, endpoint, snapIncChild)
	dir := t.TempDir()
	baseDir, baseS3 := filepath.Join(dir, "base"), "s3://plain/base/"
	c.ok("acquire", snapIncParent, "--out", baseDir, "--quiet")
	c.ok("acquire", snapIncParent, "--out", baseS3, "--quiet")
	bu, _ := s3store.ParseURL(baseS3)
	_, baseEntries := s3Manifest(t, s3c, bu)
	var reusable int64
	for _, e := range baseEntries {
		if _, ok := changes[e.Index]; !ok {
			reusable++
		}
	}
	sumS3, err := s3c.Get(context.Background(), bu.Bucket, bu.Key(store.ManifestSumName), 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	baseSum := map[string]string{
		baseDir: strings.Fields(readFile(t, filepath.Join(baseDir, store.ManifestSumName)))[0],
		baseS3:  strings.Fields(string(sumS3))[0],
	}
	c.fails(exitUsage, "--base and --out name the same evidence "+baseS3, "acquire", snapIncChild, "--base", baseS3, "--out", baseS3)
	c.fails(exitUsage, "--s3-path-style applies to --out s3://bucket/prefix/", "acquire", snapIncChild, "--base", baseDir, "--out", filepath.Join(dir, "x"), "--s3-path-style")
	for _, tc := range []struct {
		base, out string
		extra     []string
	}{
		{baseDir, "s3://plain/inc-from-dir/", nil},
		{baseS3, filepath.Join(dir, "inc-from-s3"), []string{"--s3-path-style"}}, // the flag goes with an S3 base too
		{baseS3, "s3://plain/inc-from-s3/", nil},
	} {
		srv.ResetCounters()
		sum := acquireJSON(t, c.ok(append([]string{"acquire", snapIncChild, "--base", tc.base, "--out", tc.out, "--json"}, tc.extra...)...))
		want := report.Base{Directory: tc.base, SnapshotID: snapIncParent, ManifestSHA256: baseSum[tc.base],
			ChangedBlocks: int64(len(changes)), ReusedBlocks: reusable, CopiedBlocks: reusable}
		if got := srv.Counters().Total(emulator.OpGetSnapshotBlock); got != fetched || sum.Fetched != fetched {
			t.Errorf("%s → %s: %d GetSnapshotBlock calls, %d fetched; want %d (added + changed)", tc.base, tc.out, got, sum.Fetched, fetched)
		}
		if sum.Base == nil || *sum.Base != want || sum.Blocks != reusable+fetched {
			t.Errorf("%s → %s: summary base %+v, %d blocks; want %+v, %d", tc.base, tc.out, sum.Base, sum.Blocks, want, reusable+fetched)
		}
		var rec *report.Report
		if u, err := s3store.ParseURL(tc.out); err == nil {
			rec = s3Record(t, s3c, u)
		} else if rec, err = report.Load(tc.out); err != nil {
			t.Fatal(err)
		}
		if b := rec.Acquisition.Base; b == nil || *b != want || rec.BlockMap == nil || rec.BlockMap.ChangedBlocks != int64(len(changes)) {
			t.Errorf("%s → %s: record's base %+v, block map %+v; want %+v", tc.base, tc.out, b, rec.BlockMap, want)
		}
		c.ok("verify", tc.out, "--quiet")
		img := filepath.Join(dir, "img.raw")
		c.ok("export", tc.out, "--out", img, "--quiet", "--force")
		if got := sha256File(t, img); got != disk {
			t.Errorf("%s → %s: exported sha256 %s, the disk's %s", tc.base, tc.out, got, disk)
		}
	}

	// Tamper with an unchanged block of the base in S3 (an unlocked
	// bucket): its object is refused, not copied, and the block is
	// fetched from the snapshot instead.
	var e = baseEntries[0]
	for _, be := range baseEntries {
		if _, ok := changes[be.Index]; !ok {
			e = be
			break
		}
	}
	bad := tamperS3Object(t, s3c, api, bu, e, 4096, 1)
	srv.ResetCounters()
	out := "s3://plain/inc-tampered/"
	r := c.ok("acquire", snapIncChild, "--base", baseS3, "--out", out, "--json")
	sum := acquireJSON(t, r)
	if got := srv.BlockGets(snapIncChild, e.Index); got != 1 || sum.Base.RejectedBlocks != 1 || sum.Base.ReusedBlocks != reusable-1 || sum.Fetched != fetched+1 || sum.Rejected != 1 {
		t.Fatalf("tampered base block %d: fetched %d times; summary %+v base %+v", e.Index, got, sum, sum.Base)
	}
	ou, _ := s3store.ParseURL(out)
	_, es := s3Manifest(t, s3c, ou)
	for _, x := range es {
		if x.Index == e.Index && (x.StoredSHA256 != e.StoredSHA256 || x.StoredSHA256 == hex.EncodeToString(bad[:])) {
			t.Fatalf("block %d stored with sha256 %s; the snapshot serves %s", e.Index, x.StoredSHA256, e.StoredSHA256)
		}
	}
	img := filepath.Join(dir, "tampered.raw")
	c.ok("export", out, "--out", img, "--quiet")
	if got := sha256File(t, img); got != disk {
		t.Fatalf("exported sha256 %s after a tampered base, the disk's %s", got, disk)
	}
}
