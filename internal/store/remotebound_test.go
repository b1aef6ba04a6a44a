package store

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// boundMeta is a volume of 21 leaves.
func boundMeta() Meta {
	m := remoteMeta()
	m.VolumeSizeGiB = 100
	return m
}

func journalBatches(t *testing.T, b *bucket.Memory) []string {
	t.Helper()
	keys, err := b.List(context.Background(), "blocks/", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		if strings.Contains(k.Key, "/"+journalPrefix) {
			out = append(out, k.Key)
		}
	}
	return out
}

// The writer holds the journal lines of at most maxPendingLeaves leaves,
// and its manifest, read back from the batches leaf by leaf, lists every
// block in index order.
func TestRemoteBoundedLeaves(t *testing.T) {
	ctx := context.Background()
	b := &bucket.Memory{}
	r, err := CreateRemote(ctx, b, boundMeta(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for leaf := int64(20); leaf >= 0; leaf-- { // 21 leaves, descending
		putRemote(t, r, leaf*leafSize+7, leaf*leafSize+3)
		want = append([]int64{leaf*leafSize + 3, leaf*leafSize + 7}, want...)
	}
	if n := len(r.pending); n != maxPendingLeaves {
		t.Errorf("%d leaves pending, want %d", n, maxPendingLeaves)
	}
	// Five leaves' lines were written as they passed the bound.
	if got := journalBatches(t, b); len(got) != 21-maxPendingLeaves {
		t.Errorf("batches before Close: %q, want %d", got, 21-maxPendingLeaves)
	}
	// Killed here: the rerun resumes every block, leaf by leaf.
	r, err = CreateRemote(ctx, b, boundMeta(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Resumed() != 42 || r.Kept().Adopted != 32 {
		t.Fatalf("resumed %d, adopted %d; want 42, 32", r.Resumed(), r.Kept().Adopted)
	}
	putRemote(t, r, 15*leafSize+9)
	want = append(want[:32], append([]int64{15*leafSize + 9}, want[32:]...)...)
	res, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	es := remoteManifest(t, b)
	if res.Blocks != 43 || len(es) != 43 {
		t.Fatalf("Close = %+v, %d entries; want 43", res, len(es))
	}
	for n, e := range es {
		blk := remoteBlock(want[n])
		if e.Index != want[n] || e.SHA256 != blk.Sum.Hex() || e.Name != r.Name(want[n], blk.Sum) {
			t.Errorf("entry %d = block %d %s, want block %d", n, e.Index, e.Name, want[n])
		}
	}
}

// Close takes each block's entry from the journal batches only as this
// run checked or wrote it.
func TestRemoteCloseChecksJournals(t *testing.T) {
	ctx := context.Background()
	line := func(e manifest.Entry) []byte {
		d, _ := json.Marshal(e)
		return append(d, '\n')
	}
	stale := func(r *Remote, i int64) manifest.Entry {
		blk := remoteBlock(i)
		e := manifest.Entry{Type: "block", Index: i, SHA256: blk.Sum.Hex(), Length: len(blk.Data), Name: r.Name(i, blk.Sum),
			Size: int64(len(blk.Data)), StoredSHA256: strings.Repeat("ab", 32), Codec: "none", Encryption: "none"}
		return e
	}
	t.Run("another line for a stored block", func(t *testing.T) {
		b := &bucket.Memory{}
		r, err := CreateRemote(ctx, b, remoteMeta(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		putRemote(t, r, 1, 2, 3)
		// A line naming block 2's object with another stored SHA-256:
		// the store's checksum of the object tells which is true.
		b.Set("blocks/00/0000/.journal.00000000-000001", line(stale(r, 2)))
		if _, err := r.Close(); err != nil {
			t.Fatal(err)
		}
		es := remoteManifest(t, b)
		if len(es) != 3 || es[1].StoredSHA256 != remoteBlock(2).Sum.Hex() {
			t.Errorf("manifest %+v", es)
		}
	})
	t.Run("a stored block's line gone", func(t *testing.T) {
		b := &bucket.Memory{}
		r, err := CreateRemote(ctx, b, remoteMeta(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		putRemote(t, r, seq(0, 64)...) // one batch written
		batches := journalBatches(t, b)
		if len(batches) != 1 {
			t.Fatalf("batches %q", batches)
		}
		b.Delete(batches[0])
		var c *ConflictError
		if _, err := r.Close(); !errors.As(err, &c) || !strings.Contains(err.Error(), "0 of its journal lines") {
			t.Errorf("Close = %v, want a conflict", err)
		}
		if _, err := b.Head(ctx, ManifestName); !errors.Is(err, bucket.ErrNotFound) {
			t.Errorf("a manifest was written: %v", err)
		}
	})
	t.Run("a line replaced by another hand", func(t *testing.T) {
		b := &bucket.Memory{}
		r, err := CreateRemote(ctx, b, remoteMeta(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		putRemote(t, r, seq(0, 64)...)
		batches := journalBatches(t, b)
		data, _ := b.Get(ctx, batches[0], 1<<20)
		// Block 5's line says another stored SHA-256: the only line, of
		// the right size, but not what this run wrote.
		good := line(stale(r, 5))
		var e manifest.Entry
		lines := strings.SplitAfter(string(data), "\n")
		json.Unmarshal([]byte(lines[5]), &e)
		lines[5] = string(good)
		b.Set(batches[0], []byte(strings.Join(lines, "")))
		var c *ConflictError
		if _, err := r.Close(); !errors.As(err, &c) || !strings.Contains(err.Error(), "no longer hold") {
			t.Errorf("Close = %v, want a conflict", err)
		}
	})
	t.Run("too many lines for a block", func(t *testing.T) {
		b := &bucket.Memory{}
		r, err := CreateRemote(ctx, b, remoteMeta(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		putRemote(t, r, 2)
		var data []byte
		for n := range maxLinesPerBlock + 1 {
			e := stale(r, 2)
			e.StoredSHA256 = strings.Repeat(string("0123456789"[n]), 64)
			data = append(data, line(e)...)
		}
		b.Set("blocks/00/0000/.journal.00000000-000001", data)
		if _, err := r.Close(); err == nil || !strings.Contains(err.Error(), "different journal lines for block 2") {
			t.Errorf("Close = %v", err)
		}
	})
}

// Run objects are not blocks: resume, VerifyRemote and ReadRemoteManifest
// ignore the prefix.
func TestRemoteIgnoresRuns(t *testing.T) {
	ctx := context.Background()
	b := &bucket.Memory{}
	r, err := CreateRemote(ctx, b, remoteMeta(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	putRemote(t, r, seq(0, 10)...)
	r.Abort()
	for range 3 {
		if _, err := PutRun(ctx, b, "acquire", r.Started, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	r, err = CreateRemote(ctx, b, remoteMeta(), Options{})
	if err != nil || r.Resumed() != 10 {
		t.Fatalf("resume beside runs/: %v, resumed %d", err, r.Resumed())
	}
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
	meta, _ := OpenRemote(ctx, b)
	res, err := VerifyRemote(ctx, b, meta, nil, nil)
	if err != nil || !res.OK() || res.Blocks != 10 {
		t.Fatalf("VerifyRemote beside runs/: %+v, %v", res, err)
	}
	if es, err := ReadRemoteManifest(ctx, b, meta); err != nil || len(es) != 10 {
		t.Fatalf("ReadRemoteManifest beside runs/: %d, %v", len(es), err)
	}
	runs, err := ListRuns(ctx, b)
	if err != nil || len(runs) != 3 {
		t.Fatalf("ListRuns = %v, %v", runs, err)
	}
}

// VerifyRemote walks the manifest and the objects leaf by leaf: every
// leaf's problems, the leaves without entries and the keys outside any
// leaf are found, and the journal comparison sums over the leaves.
func TestVerifyRemoteLeafByLeaf(t *testing.T) {
	ctx := context.Background()
	b := &bucket.Memory{}
	r, err := CreateRemote(ctx, b, boundMeta(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var idx []int64
	for _, leaf := range []int64{0, 3, 7} {
		idx = append(idx, leaf*leafSize, leaf*leafSize+1, leaf*leafSize+70)
	}
	putRemote(t, r, idx...)
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
	meta, _ := OpenRemote(ctx, b)
	var done int64
	res, err := VerifyRemote(ctx, b, meta, nil, func(n int64) { done = n })
	if err != nil || !res.OK() || res.Blocks != 9 || res.StoredChecked != 9 || res.ContentChecked != 9 || done != 9 ||
		res.Journals.Outcome != CompareMatch || res.Journals.Detail != "9 entries match their journal lines" {
		t.Fatalf("VerifyRemote = %+v, %v (progress %d)", res, err, done)
	}
	b.Delete(r.Name(3*leafSize+1, remoteBlock(3*leafSize+1).Sum))
	stray := r.Name(5*leafSize, remoteBlock(5*leafSize).Sum)
	b.Set(stray, remoteBlock(5*leafSize).Data)
	b.Set("blocks/zz/x", []byte("x"))
	b.Set("blocks/00/abc/y", []byte("y"))
	res, err = VerifyRemote(ctx, b, meta, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Problems {
		got = append(got, p.Kind+":"+p.Name)
	}
	want := []string{"missing:" + r.Name(3*leafSize+1, remoteBlock(3*leafSize+1).Sum), "extra:blocks/00/0005/" + path.Base(stray), "extra:blocks/00/abc/y", "extra:blocks/zz/x"}
	if strings.Join(got, " ") != strings.Join(want, " ") || res.Blocks != 9 || res.StoredChecked != 8 {
		t.Errorf("problems %q, want %q (%+v)", got, want, res)
	}
}
