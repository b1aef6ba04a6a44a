package store

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// The journals are an independent record of every entry: one the
// manifest lost, or one that differs, is named; a missing journal is
// said to be so, not judged.
func TestVerifyJournalRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	fill(t, dir)
	ev, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ev.Verify(context.Background(), nil, nil)
	if err != nil || !res.OK() || res.Journals.Outcome != CompareMatch {
		t.Fatalf("clean store: %+v %v", res, err)
	}
	journal := filepath.Join(dir, LeafDir(9999), journalName)
	orig, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	// A journal whose entry for 9999 names another stored digest.
	entries, err := readJournal(journal)
	if err != nil {
		t.Fatal(err)
	}
	var forged []byte
	for _, e := range entries {
		if e.Index == 9999 {
			e.StoredSHA256 = strings.Repeat("ab", 32)
		}
		forged = append(forged, []byte(fmt.Sprintf(`{"type":%q,"index":%d,"sha256":%q,"length":%d,"name":%q,"size":%d,"stored_sha256":%q,"codec":%q,"encryption":%q}`+"\n",
			e.Type, e.Index, e.SHA256, e.Length, e.Name, e.Size, e.StoredSHA256, e.Codec, e.Encryption))...)
	}
	os.WriteFile(journal, forged, 0o600)
	res, _ = ev.Verify(context.Background(), nil, nil)
	if len(res.Problems) != 1 || res.Problems[0].Index != 9999 || res.Problems[0].Kind != "journal" ||
		!strings.Contains(res.Problems[0].Detail, "stored_sha256 "+strings.Repeat("ab", 32)+" in the journal") || res.Journals.Outcome != CompareDiffers {
		t.Fatalf("forged journal: %+v", res)
	}
	os.WriteFile(journal, orig, 0o600)
	for _, leaf := range indexes {
		os.Remove(filepath.Join(dir, LeafDir(leaf), journalName))
	}
	res, _ = ev.Verify(context.Background(), nil, nil)
	if !res.OK() || res.Journals.Outcome != CompareNotPossible {
		t.Fatalf("no journals: %+v", res)
	}
}

// A key that opens no block is not tampering; a key that opens some
// blocks and not others is.
func TestVerifyKeyRejected(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	s, err := Create(dir, Meta{SnapshotID: snap, Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: 512 << 10},
		Options{Form: codec.Form{Encrypted: true}, seal: toySeal})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range indexes {
		d := blockData(i)
		if err := s.Put(i, block.SumOf(d), d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Finish(time.Unix(0, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	ev, _ := Open(dir)
	reject := func(bad func(int64) bool) Unseal {
		return func(src io.Reader, e manifest.Entry) (io.Reader, error) {
			if bad(e.Index) {
				return nil, fmt.Errorf("%w: no identity matched", ErrKeyRejected)
			}
			return toyUnseal(src, e)
		}
	}
	res, err := ev.Verify(context.Background(), reject(func(int64) bool { return true }), nil)
	if err != nil || !res.OK() || !res.KeyOpensNone || res.KeyRejected != int64(len(indexes)) {
		t.Fatalf("a key that opens nothing: %+v %v", res, err)
	}
	res, _ = ev.Verify(context.Background(), reject(func(i int64) bool { return i == 9999 }), nil)
	if len(res.Problems) != 1 || res.Problems[0].Index != 9999 || res.KeyOpensNone || !strings.Contains(res.Problems[0].Detail, "other recipients") {
		t.Fatalf("a key that opens all but one block: %+v", res)
	}
}

// A journal line naming a block of another leaf (or a hostile index) is
// an error naming the journal, for resume as for verify; the journal is
// never trusted for blocks outside its leaf.
func TestJournalLineOutsideItsLeaf(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	fill(t, dir)
	journal := filepath.Join(dir, LeafDir(0), journalName)
	f, err := os.OpenFile(journal, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `{"type":"block","index":%d,"sha256":%q,"length":524288,"name":"x","size":524288,"stored_sha256":%q,"codec":"none","encryption":"none"}`+"\n",
		int64(1)<<40, strings.Repeat("ab", 32), strings.Repeat("ab", 32))
	f.Close()
	if _, err := readJournal(journal); err == nil || !strings.Contains(err.Error(), "does not belong in this leaf") {
		t.Fatalf("readJournal: %v", err)
	}
	ev, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, _ := ev.Verify(context.Background(), nil, nil)
	if res.OK() || len(res.Problems) != 1 || res.Problems[0].Kind != "journal" {
		t.Fatalf("verify with a stray journal line: %+v", res.Problems)
	}
	if _, err := Create(dir, Meta{SnapshotID: snap, Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size, ToolVersion: "test"}, Options{}); err == nil ||
		!strings.Contains(err.Error(), "does not belong in this leaf") {
		t.Fatalf("resume with a stray journal line: %v", err)
	}
}
