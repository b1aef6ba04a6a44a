package live

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/store"
)

// Blocks read live with an evidence directory are stored there as an
// acquisition stores them: a later acquisition of the directory fetches
// only the rest, and its evidence verifies and has the same manifest
// entries as an acquisition that fetched everything.
func TestEvidenceThenAcquire(t *testing.T) {
	e := newEnv(t, emulator.Options{}, synthID+"=1GiB,0.1,4")
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ev")
	meta := store.Meta{Region: "us-east-1", ToolVersion: "test"}
	v := e.open(t, synthID, Options{Evidence: EvidenceDir(dir, meta, store.Options{}), Readahead: -1})
	ranges, err := v.Ranges()
	if err != nil {
		t.Fatal(err)
	}
	var read []int64 // the first 12 allocated blocks
	for _, r := range ranges {
		for off := r.Off; off < r.End() && len(read) < 12; off += block.Size {
			read = append(read, off/block.Size)
		}
	}
	for _, i := range read {
		readBlock(t, v, i)
		readBlock(t, v, i) // cached: stored once
	}
	// While the volume is open, its directory is locked.
	if _, err := acquireInto(ctx, t, e, dir); !errors.As(err, new(*dirlock.HeldError)) {
		t.Fatalf("acquisition while the live volume is open: %v, want the directory lock held", err)
	}
	if s := v.Stats(); s.Stored != int64(len(read)) || s.Fetched != int64(len(read)) {
		t.Fatalf("stats %+v: want %d fetched and stored", s, len(read))
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	// Read again through a second live volume: nothing is stored twice.
	w := e.open(t, synthID, Options{Evidence: EvidenceDir(dir, meta, store.Options{}), Readahead: -1})
	readBlock(t, w, read[0])
	if s := w.Stats(); s.Stored != 0 || s.Fetched != 1 {
		t.Fatalf("stats %+v: want 1 fetched, none stored", s)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	e.srv.ResetCounters()
	res, err := acquireInto(ctx, t, e, dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped != int64(len(read)) || res.Counts.GetCalls != res.Listed-int64(len(read)) || res.Stored != res.Listed-int64(len(read)) {
		t.Fatalf("acquisition after the live read: %d listed, %d skipped, %d stored, %d Gets; want %d skipped and the rest fetched once",
			res.Listed, res.Skipped, res.Stored, res.Counts.GetCalls, len(read))
	}
	for _, i := range read {
		if g := e.srv.BlockGets(synthID, i); g != 0 {
			t.Fatalf("block %d, stored by the live read, was fetched %d times again", i, g)
		}
	}
	ev, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	vr, err := ev.Verify(ctx, nil, nil)
	if err != nil || !vr.OK() {
		t.Fatalf("verifying the evidence: %v %+v", err, vr)
	}
	full := filepath.Join(t.TempDir(), "full")
	if _, err := acquireInto(ctx, t, e, full); err != nil {
		t.Fatal(err)
	}
	if a, b := blockLines(t, dir), blockLines(t, full); a != b || a == "" {
		t.Fatal("the manifest of the evidence started live differs from a whole acquisition's")
	}
}

// acquireInto acquires synthID into dir, as `acquire --out dir` does,
// and finishes the store when the run completes.
func acquireInto(ctx context.Context, t *testing.T, e *env, dir string) (acquire.Result, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return acquire.Result{}, err
	}
	lock, err := dirlock.ForDir(dir, "acquire")
	if err != nil {
		return acquire.Result{}, err
	}
	defer lock.Release()
	src := acquire.NewSnapshot(e.snapshot(t, synthID))
	info, err := src.Info(ctx)
	if err != nil {
		return acquire.Result{}, err
	}
	st, err := store.Create(dir, store.Meta{SnapshotID: synthID, Region: "us-east-1", ToolVersion: "test",
		VolumeSizeGiB: info.VolumeGiB, BlockSize: info.BlockSize}, store.Options{})
	if err != nil {
		return acquire.Result{}, err
	}
	s := st.Sink()
	res, err := acquire.New(src, acquire.Options{}).Run(ctx, s)
	if err != nil {
		s.Abort()
		return res, err
	}
	s.Started, s.Finished = res.Started, res.Finished
	_, err = s.Close()
	return res, err
}

// blockLines returns the manifest's block entries.
func blockLines(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, store.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, `"type":"block"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// An evidence directory of another snapshot is refused when the volume
// opens, and its lock is released again.
func TestEvidenceOfAnotherSnapshot(t *testing.T) {
	e := newEnv(t, emulator.Options{}, synthID+"=1GiB,0.1,4")
	dir := filepath.Join(t.TempDir(), "ev")
	meta := store.Meta{Region: "us-east-1", ToolVersion: "test"}
	v := e.open(t, rawID, Options{Evidence: EvidenceDir(dir, meta, store.Options{})})
	readBlock(t, v, 0)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	snap := e.snapshot(t, synthID)
	_, err := Open(context.Background(), snap, nil, Options{Evidence: EvidenceDir(dir, meta, store.Options{})})
	var other *store.OtherSnapshotError
	if !errors.As(err, &other) || other.Have != rawID {
		t.Fatalf("Open with the evidence of %s: %v, want it refused", rawID, err)
	}
	lock, err := dirlock.ForDir(dir, "test")
	if err != nil {
		t.Fatalf("the lock was kept after the refusal: %v", err)
	}
	lock.Release()
}
