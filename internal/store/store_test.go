package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

const snap = "snap-0123456789abcdef0"

func blockData(i int64) []byte {
	p := make([]byte, block.Size)
	for j := range p {
		p[j] = byte(int64(j)*7 + i)
	}
	return p
}

func newStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Create(dir, Meta{SnapshotID: snap, Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size, ToolVersion: "test"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var indexes = []int64{0, 1, 9999, 10000, 16383}

func fill(t *testing.T, dir string) Summary {
	t.Helper()
	s := newStore(t, dir)
	for _, i := range indexes {
		d := blockData(i)
		if err := s.Put(i, block.SumOf(d), d); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := s.Finish(time.Unix(0, 0), time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestPutFinishRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	sum := fill(t, dir)
	if sum.Blocks != int64(len(indexes)) || sum.Bytes != int64(len(indexes))*block.Size {
		t.Fatalf("summary %+v", sum)
	}
	// The original tool's name, in the leaf of 10,000 blocks.
	want := filepath.Join(dir, "blocks", "00", "0001", block.FileName(block.FileInfo{Index: 10000, Snapshot: snap, Sum: block.SumOf(blockData(10000)), VolumeGiB: 8, BlockSize: block.Size}))
	got, err := os.ReadFile(want)
	if err != nil || !bytes.Equal(got, blockData(10000)) {
		t.Fatalf("block file %s: %v", want, err)
	}
	if fi, _ := os.Stat(want); fi.Mode().Perm() != 0o600 {
		t.Fatalf("block file mode %v", fi.Mode())
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", fi.Mode())
	}
	ev, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int64
	err = ev.Blocks(context.Background(), nil, func(e manifest.Entry, data []byte) error {
		if !bytes.Equal(data, blockData(e.Index)) {
			t.Errorf("block %d bytes differ", e.Index)
		}
		seen = append(seen, e.Index)
		return nil
	})
	if err != nil || len(seen) != len(indexes) {
		t.Fatalf("Blocks: %v %v", seen, err)
	}
	res, err := ev.Verify(context.Background(), nil, nil)
	if err != nil || !res.OK() || res.ContentChecked != int64(len(indexes)) || res.ManifestSHA256 != sum.ManifestSHA256.Hex() {
		t.Fatalf("verify %+v %v", res, err)
	}
}

func verifyProblems(t *testing.T, dir string) []Problem {
	t.Helper()
	ev, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ev.Verify(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Problems
}

func blockPath(t *testing.T, dir string, i int64) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, LeafDir(i), block.FileName(block.FileInfo{Index: i, Snapshot: snap, Sum: block.SumOf(blockData(i)), VolumeGiB: 8, BlockSize: block.Size})))
	if len(m) != 1 {
		t.Fatalf("block %d not found", i)
	}
	return m[0]
}

func TestVerifyCatches(t *testing.T) {
	for name, tc := range map[string]struct {
		damage func(t *testing.T, dir string)
		want   []Problem
	}{
		"flipped byte": {func(t *testing.T, dir string) {
			p := blockPath(t, dir, 9999)
			d, _ := os.ReadFile(p)
			d[100] ^= 1
			os.WriteFile(p, d, 0o600)
		}, []Problem{{Index: 9999, Kind: "mismatch"}}},
		"missing block": {func(t *testing.T, dir string) { os.Remove(blockPath(t, dir, 1)) }, []Problem{{Index: 1, Kind: "missing"}}},
		"extra block": {func(t *testing.T, dir string) {
			d := blockData(5)
			name := block.FileName(block.FileInfo{Index: 5, Snapshot: snap, Sum: block.SumOf(d), VolumeGiB: 8, BlockSize: block.Size})
			os.WriteFile(filepath.Join(dir, LeafDir(5), name), d, 0o600)
		}, []Problem{{Index: 5, Kind: "extra"}}},
		"extra leaf": {func(t *testing.T, dir string) {
			d := blockData(20000)
			os.MkdirAll(filepath.Join(dir, LeafDir(20000)), 0o700)
			name := block.FileName(block.FileInfo{Index: 20000, Snapshot: snap, Sum: block.SumOf(d), VolumeGiB: 8, BlockSize: block.Size})
			os.WriteFile(filepath.Join(dir, LeafDir(20000), name), d, 0o600)
		}, []Problem{{Index: 20000, Kind: "extra"}}},
		"tampered block with its stored digest rewritten": {func(t *testing.T, dir string) {
			// The attacker flips a byte, records the new bytes' SHA-256 as
			// the stored digest and rewrites the manifest's checksum file:
			// only the content digest, from AWS, still tells.
			p := blockPath(t, dir, 9999)
			d, _ := os.ReadFile(p)
			d[100] ^= 1
			os.WriteFile(p, d, 0o600)
			mp := filepath.Join(dir, ManifestName)
			m, _ := os.ReadFile(mp)
			old := `"stored_sha256":"` + block.SumOf(blockData(9999)).Hex()
			m = bytes.Replace(m, []byte(old), []byte(`"stored_sha256":"`+block.SumOf(d).Hex()), 1)
			os.WriteFile(mp, m, 0o600)
			os.WriteFile(filepath.Join(dir, ManifestSumName), []byte(block.SumOf(m).Hex()+"  "+ManifestName+"\n"), 0o600)
		}, []Problem{{Index: 9999, Kind: "journal"}, {Index: 9999, Kind: "mismatch"}}}, // the journal still holds the true stored digest
		"edited manifest": {func(t *testing.T, dir string) {
			p := filepath.Join(dir, ManifestName)
			d, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(d, []byte(`"region":"us-east-1"`), []byte(`"region":"us-east-2"`), 1), 0o600)
		}, []Problem{{Index: -1, Kind: "manifest"}}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ev")
			fill(t, dir)
			if p := verifyProblems(t, dir); len(p) != 0 {
				t.Fatalf("clean store has problems %+v", p)
			}
			tc.damage(t, dir)
			p := verifyProblems(t, dir)
			if len(p) != len(tc.want) {
				t.Fatalf("problems %+v, want %+v", p, tc.want)
			}
			for i := range p {
				if p[i].Index != tc.want[i].Index || p[i].Kind != tc.want[i].Kind {
					t.Fatalf("problems %+v, want %+v", p, tc.want)
				}
			}
		})
	}
}

func TestResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	s := newStore(t, dir)
	for _, i := range []int64{3, 4} {
		d := blockData(i)
		if err := s.Put(i, block.SumOf(d), d); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// A crash after a rename but before the journal line: an orphan file.
	d := blockData(7)
	orphan := filepath.Join(dir, LeafDir(7), block.FileName(block.FileInfo{Index: 7, Snapshot: snap, Sum: block.SumOf(d), VolumeGiB: 8, BlockSize: block.Size}))
	os.WriteFile(orphan, d, 0o600)
	// A crash mid-write: a temporary file, and a torn journal line.
	os.WriteFile(filepath.Join(dir, LeafDir(7), tempPrefix+"x"), d[:100], 0o600)
	jf, _ := os.OpenFile(filepath.Join(dir, LeafDir(7), journalName), os.O_APPEND|os.O_WRONLY, 0)
	jf.WriteString(`{"type":"block","index":8,"sha`)
	jf.Close()

	// An orphan whose content is not what its name says.
	d9 := blockData(9)
	badOrphan := filepath.Join(dir, LeafDir(9), block.FileName(block.FileInfo{Index: 9, Snapshot: snap, Sum: block.SumOf(d), VolumeGiB: 8, BlockSize: block.Size}))
	os.WriteFile(badOrphan, d9, 0o600)

	s = newStore(t, dir)
	// The orphan that verifies is evidence: adopted, never deleted.
	if s.Resumed() != 3 || !s.Has(3) || !s.Has(4) || !s.Has(7) || s.Has(8) || s.Has(9) {
		t.Fatalf("resumed %d, has 3/4/7/8/9 = %v %v %v %v %v", s.Resumed(), s.Has(3), s.Has(4), s.Has(7), s.Has(8), s.Has(9))
	}
	if _, err := os.Stat(orphan); err != nil {
		t.Fatalf("orphan block file that verifies: %v", err)
	}
	if _, err := os.Stat(badOrphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an orphan that does not verify still counts in its leaf")
	}
	if k := s.Kept(); k.Adopted != 1 || k.Rejected != 1 || k.Unverified[0].MovedTo != filepath.ToSlash(filepath.Join(unverifiedDir, LeafDir(9), filepath.Base(badOrphan))) {
		t.Fatalf("kept %+v", k)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, LeafDir(7), tempPrefix+"*")); len(m) != 0 {
		t.Fatalf("temporary files survived: %v", m)
	}
}

func TestOtherSnapshot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	fill(t, dir)
	other := Meta{SnapshotID: "snap-1", Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size}
	_, err := Create(dir, other, Options{})
	var e *OtherSnapshotError
	if !errors.As(err, &e) || e.Have != snap || e.Want != "snap-1" {
		t.Fatalf("Create over another snapshot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); err != nil {
		t.Fatal("refused Create touched the evidence")
	}
	s, err := Create(dir, other, Options{Force: true})
	if err != nil || s.Resumed() != 0 {
		t.Fatalf("forced Create: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "blocks", "*", "*", "*"+snap+"*")); len(m) != 0 {
		t.Fatalf("old blocks survived --force: %v", m)
	}
	// A directory that is not evidence is never touched, even forced.
	plain := t.TempDir()
	os.WriteFile(filepath.Join(plain, "notes.txt"), []byte("x"), 0o600)
	if _, err := Create(plain, other, Options{Force: true}); !errors.Is(err, ErrNotEvidence) {
		t.Fatalf("Create in a foreign directory: %v", err)
	}
}

func TestSealedForm(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	// A toy reversible seal, to exercise the stored-hash path without codec.
	s, err := Create(dir, Meta{SnapshotID: snap, VolumeSizeGiB: 8, BlockSize: block.Size}, invForm)
	if err != nil {
		t.Fatal(err)
	}
	d := blockData(2)
	if err := s.Put(2, block.SumOf(d), d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	ev, _ := Open(dir)
	res, _ := ev.Verify(context.Background(), nil, nil)
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Detail, "no decoder") || res.StoredChecked != 1 {
		t.Fatalf("verify without decoder: %+v", res)
	}
	res, _ = ev.Verify(context.Background(), toyUnseal, nil)
	if !res.OK() || res.ContentChecked != 1 {
		t.Fatalf("verify with decoder: %+v", res)
	}
}

// Numbers in evidence.json are bounded before anything is sized by them,
// and a damaged evidence.json is damage (a *Mismatch) to every reader.
func TestOpenRefusesBadMeta(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir)
	good, err := os.ReadFile(filepath.Join(dir, MetaName))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"volume_size_gib": 8,`, `"volume_size_gib": -3306282043331051520,`, "evidence.json: volume size -3306282043331051520 GiB: EBS volumes are at most 64 TiB"},
		{`"volume_size_gib": 8,`, `"volume_size_gib": 65537,`, "evidence.json: volume size 65537 GiB"},
		{`"block_size": 524288,`, `"block_size": 0,`, "evidence.json: block size 0, want 524288"},
		{`"snapshot_id": "` + snap + `",`, `"snapshot_id": "../x",`, "evidence.json: invalid snapshot id"},
		{`"region"`, `"provenance": "somewhere", "region"`, `evidence.json: provenance "somewhere"`},
		{`{`, `[`, "evidence.json: "},
	} {
		bad := strings.Replace(string(good), tc.from, tc.to, 1)
		if bad == string(good) {
			t.Fatalf("no %s in %s", tc.from, good)
		}
		if err := os.WriteFile(filepath.Join(dir, MetaName), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir)
		var m *Mismatch
		if !errors.As(err, &m) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a Mismatch starting %q", tc.to, err, tc.want)
		}
	}
}
