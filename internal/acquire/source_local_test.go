package acquire

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/snap4n6ir"
	"github.com/ebsimager/ebsimager/internal/store"
)

// collector keeps a copy of every block put into it.
type collector struct {
	mu     sync.Mutex
	blocks map[int64][]byte
}

func (c *collector) Caps() sink.Caps             { return sink.Caps{} }
func (c *collector) Has(int64) bool              { return false }
func (c *collector) Abort() error                { return nil }
func (c *collector) Close() (sink.Result, error) { return sink.Result{}, nil }
func (c *collector) Put(b block.Block) error {
	if block.SumOf(b.Data) != b.Sum {
		return fmt.Errorf("block %d put with a sum its data does not have", b.Index)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocks == nil {
		c.blocks = map[int64][]byte{}
	}
	c.blocks[b.Index] = slices.Clone(b.Data)
	return nil
}

const testSnap = "snap-0123456789abcdef0"

func sourceData(i int64) []byte {
	p := make([]byte, block.Size)
	for j := range p {
		p[j] = byte(int64(j)*13 + i*7)
	}
	return p
}

// sourceIndexes spreads blocks over several leaf directories.
func sourceIndexes() []int64 {
	var out []int64
	for i := range int64(12) {
		out = append(out, i*1777)
	}
	return out
}

// A folder's bad blocks fail on their own, named as mismatches, and the
// run goes on: every other block arrives, byte for byte.
func TestFolderSource(t *testing.T) {
	dir := t.TempDir()
	idx := sourceIndexes()
	bad := []int64{idx[3], idx[10]}
	for _, i := range idx {
		d := sourceData(i)
		name := block.FileName(block.FileInfo{Index: i, Snapshot: testSnap, Sum: block.SumOf(d), VolumeGiB: 10, BlockSize: block.Size})
		if slices.Contains(bad, i) {
			d = slices.Clone(d)
			d[100] ^= 1
		}
		if err := os.WriteFile(filepath.Join(dir, name), d, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	folder, err := snap4n6ir.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewFolder(folder, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := src.Info(context.Background()); info.SnapshotID != testSnap || info.VolumeGiB != 10 || info.BlockSize != block.Size {
		t.Fatalf("info %+v", info)
	}
	var got collector
	res, err := New(src, Options{Workers: 4}).Run(context.Background(), &got)
	var inc *IncompleteError
	if !errors.As(err, &inc) || !slices.Equal(inc.Indexes(), bad) {
		t.Fatalf("run: %v", err)
	}
	for _, f := range inc.Failed {
		var m *store.Mismatch
		if !errors.As(f.Err, &m) || m.Index != f.Index || !strings.Contains(f.Err.Error(), "sha256") {
			t.Fatalf("block %d failed with %v, want a mismatch", f.Index, f.Err)
		}
	}
	if res.Listed != int64(len(idx)) || res.Stored != int64(len(idx)-len(bad)) || len(got.blocks) != len(idx)-len(bad) {
		t.Fatalf("listed %d, stored %d, got %d blocks", res.Listed, res.Stored, len(got.blocks))
	}
	for _, i := range idx {
		if d, ok := got.blocks[i]; ok == slices.Contains(bad, i) || (ok && !slices.Equal(d, sourceData(i))) {
			t.Fatalf("block %d: got %v", i, ok)
		}
	}
	// From an index on, only the blocks from there are listed.
	var rest collector
	res, err = New(src, Options{Workers: 2, Start: idx[5]}).Run(context.Background(), &rest)
	if !errors.As(err, &inc) || !slices.Equal(inc.Indexes(), bad[1:]) || res.Listed != int64(len(idx)-5) {
		t.Fatalf("from block %d: listed %d, %v", idx[5], res.Listed, err)
	}
	// A first block that does not match its name refuses the folder
	// before anything is read from it.
	first := filepath.Join(dir, snap4nName(t, folder, 0))
	data, _ := os.ReadFile(first)
	data[0] ^= 1
	os.WriteFile(first, data, 0o600)
	var m *store.Mismatch
	if _, err := NewFolder(folder, nil); !errors.As(err, &m) || m.Index != idx[0] {
		t.Fatalf("a folder whose first block is altered: %v", err)
	}
}

func snap4nName(t *testing.T, f *snap4n6ir.Folder, i int) string {
	t.Helper()
	return f.Name(f.Blocks[i])
}

// Evidence reads back, byte for byte, what was stored; a stored file or a
// manifest that does not match its record stops the run.
func TestEvidenceSource(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	st, err := store.Create(dir, store.Meta{SnapshotID: testSnap, VolumeSizeGiB: 10, BlockSize: block.Size}, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	idx := sourceIndexes()
	for _, i := range idx {
		d := sourceData(i)
		if err := st.Put(i, block.SumOf(d), d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Finish(time.Unix(0, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	ev, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	src := NewEvidence(ev, nil)
	var got collector
	res, err := New(src, Options{Workers: 4}).Run(context.Background(), &got)
	if err != nil || res.Stored != int64(len(idx)) || src.StoredBytes() != int64(len(idx))*block.Size {
		t.Fatalf("run: stored %d (%d bytes read): %v", res.Stored, src.StoredBytes(), err)
	}
	for _, i := range idx {
		if !slices.Equal(got.blocks[i], sourceData(i)) {
			t.Fatalf("block %d differs", i)
		}
	}
	// One altered block file.
	victim := filepath.Join(dir, store.LeafDir(idx[7]), block.FileName(block.FileInfo{Index: idx[7], Snapshot: testSnap,
		Sum: block.SumOf(sourceData(idx[7])), VolumeGiB: 10, BlockSize: block.Size}))
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[9] ^= 1
	os.WriteFile(victim, data, 0o600)
	var m *store.Mismatch
	if _, err := New(NewEvidence(ev, nil), Options{Workers: 4}).Run(context.Background(), &collector{}); !errors.As(err, &m) || m.Index != idx[7] {
		t.Fatalf("an altered block file: %v", err)
	}
	data[9] ^= 1
	os.WriteFile(victim, data, 0o600)
	// A manifest its checksum file does not vouch for: its last page is
	// never handed out.
	os.WriteFile(filepath.Join(dir, store.ManifestSumName), []byte(strings.Repeat("0", 64)+"  "+store.ManifestName+"\n"), 0o600)
	var partial collector
	res, err = New(NewEvidence(ev, nil), Options{Workers: 4}).Run(context.Background(), &partial)
	if !errors.As(err, &m) || res.Stored != 0 {
		t.Fatalf("a manifest that does not match its checksum: stored %d, %v", res.Stored, err)
	}
}

// A wrong key names the first sealed block, whichever worker would meet
// a sealed block first: the source opens that block before it hands out
// any page.
func TestEvidenceSourceWrongKeyNamesFirstBlock(t *testing.T) {
	right, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ev")
	st, err := store.Create(dir, store.Meta{SnapshotID: testSnap, VolumeSizeGiB: 10, BlockSize: block.Size},
		store.Options{Form: codec.Form{Encrypted: true}, SealTo: []age.Recipient{right.Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	idx := sourceIndexes()
	for _, i := range idx {
		d := sourceData(i)
		if err := st.Put(i, block.SumOf(d), d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Finish(time.Unix(0, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	ev, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for run := range 20 {
		var got collector
		res, err := New(NewEvidence(ev, store.UnsealWith([]age.Identity{wrong})), Options{Workers: 8}).Run(context.Background(), &got)
		if !errors.Is(err, codec.ErrWrongKey) || !strings.Contains(err.Error(), fmt.Sprintf("block %d", idx[0])) || res.Stored != 0 {
			t.Fatalf("run %d: stored %d, %v; want the wrong key named at block %d before any block", run, res.Stored, err, idx[0])
		}
	}
}
