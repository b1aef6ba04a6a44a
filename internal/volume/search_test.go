package volume

// TestEvidenceVolumeSearch came from cmd/ebsimager, whose evidence volume
// this package now holds.

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

// openManifest opens the manifest of ev (which need not hold blocks).
func openManifest(ev *store.Evidence) (*evidence, error) {
	f, err := os.Open(filepath.Join(ev.Dir, store.ManifestName))
	if err != nil {
		return nil, err
	}
	v, err := newEvidence(ev, nil, f, Options{})
	if err != nil {
		f.Close()
	}
	return v, err
}

// TestEvidenceVolumeSearch checks the manifest search on a manifest large
// enough for the binary search to do the work: every listed index is
// found with its entry, every other one is not.
func TestEvidenceVolumeSearch(t *testing.T) {
	dir := t.TempDir()
	const snap = "snap-0123456789abcdef0"
	const gib = 16
	path := filepath.Join(dir, store.ManifestName)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := manifest.NewWriter(f, manifest.Header{SnapshotID: snap, Region: "us-east-1", VolumeSizeGiB: gib,
		VolumeSizeBytes: gib << 30, BlockSize: block.Size, ToolVersion: "test", StartedAt: time.Unix(0, 0), FinishedAt: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[int64]string{}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := int64(0); i < block.Slots(gib); i++ {
		if rng.IntN(4) != 0 && i != 0 && i != block.Slots(gib)-1 {
			continue
		}
		sum := sha256.Sum256([]byte(strconv.FormatInt(i, 10)))
		name := filepath.ToSlash(filepath.Join(store.LeafDir(i), block.FileName(block.FileInfo{Index: i, Snapshot: snap, Sum: sum, VolumeGiB: gib, BlockSize: block.Size})))
		listed[i] = name
		if err := w.Add(manifest.Entry{Index: i, SHA256: hex.EncodeToString(sum[:]), Length: block.Size, Name: name,
			Size: block.Size, StoredSHA256: hex.EncodeToString(sum[:]), Codec: "none", Encryption: "none"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(path); fi.Size() < 50*searchWindow {
		t.Fatalf("manifest of %d bytes is too small to search", fi.Size())
	}
	v, err := openManifest(&store.Evidence{Dir: dir, Meta: store.Meta{SnapshotID: snap, VolumeSizeGiB: gib, BlockSize: block.Size}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for i := int64(0); i < block.Slots(gib); i += 1 + rng.Int64N(15) {
		e, ok, err := v.entry(i)
		if err != nil {
			t.Fatalf("entry(%d): %v", i, err)
		}
		name, want := listed[i]
		if ok != want || (ok && (e.Index != i || e.Name != name)) {
			t.Fatalf("entry(%d) = %+v, %v; listed %v", i, e, ok, want)
		}
	}
	for _, i := range []int64{0, block.Slots(gib) - 1} {
		if _, ok, err := v.entry(i); !ok || err != nil {
			t.Fatalf("entry(%d): %v %v", i, ok, err)
		}
	}
	// A manifest of another snapshot is refused.
	if _, err := openManifest(&store.Evidence{Dir: dir, Meta: store.Meta{SnapshotID: "snap-0aaaaaaaaaaaaaaa0", VolumeSizeGiB: gib, BlockSize: block.Size}}); err == nil ||
		!strings.Contains(err.Error(), "disagrees with") {
		t.Fatalf("another snapshot's manifest: %v", err)
	}
}
