package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

const remoteSnap = "snap-0123456789abcdef0"

func remoteMeta() Meta {
	return Meta{SnapshotID: remoteSnap, Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size, ToolVersion: "test"}
}

// remoteBlock is block i's bytes: distinct, and compressible.
func remoteBlock(i int64) block.Block {
	data := bytes.Repeat([]byte(fmt.Sprintf("block %d ", i)), 1000)
	return block.Block{Index: i, Data: data, Sum: sha256.Sum256(data)}
}

func putRemote(t *testing.T, r *Remote, idx ...int64) {
	t.Helper()
	for _, i := range idx {
		if err := r.Put(remoteBlock(i)); err != nil {
			t.Fatalf("Put(%d): %v", i, err)
		}
	}
}

func seq(from, to int64) []int64 {
	var s []int64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// remoteManifest reads the manifest in b and checks its .sha256.
func remoteManifest(t *testing.T, b *bucket.Memory) []manifest.Entry {
	t.Helper()
	ctx := context.Background()
	data, err := b.Get(ctx, ManifestName, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	sumLine, err := b.Get(ctx, ManifestSumName, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x  %s\n", sha256.Sum256(data), ManifestName); string(sumLine) != want {
		t.Errorf("%s = %q, want %q", ManifestSumName, sumLine, want)
	}
	mr, err := manifest.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var es []manifest.Entry
	for {
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			return es
		}
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
}

func TestRemoteWritesOnceAndResumes(t *testing.T) {
	ctx := context.Background()
	b := &bucket.Memory{}
	r, err := CreateRemote(ctx, b, remoteMeta(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 70 blocks of leaf 0 (one batch of 64 journaled, 6 pending) and
	// 2 of leaf 1; then the process dies: no Close, no Abort.
	putRemote(t, r, append(seq(0, 70), leafSize, leafSize+1)...)
	keys, _ := b.List(ctx, "blocks/", 1000)
	var batches []string
	for _, k := range keys {
		if strings.Contains(k.Key, "/.journal.") {
			batches = append(batches, k.Key)
		}
	}
	if len(keys) != 73 || len(batches) != 1 || !strings.HasPrefix(batches[0], "blocks/00/0000/.journal.") {
		t.Fatalf("after 72 Puts: %d objects, journal batches %q; want 72 blocks and one batch of leaf 0", len(keys), batches)
	}
	e := remoteBlock(5)
	o, err := b.Head(ctx, r.Name(5, e.Sum))
	if err != nil || o.SHA256 != e.Sum || o.Metadata[MetaSHA256] != e.Sum.Hex() || o.Metadata[MetaLength] != fmt.Sprint(len(e.Data)) {
		t.Errorf("block 5's object: %+v, %v", o, err)
	}

	// The rerun fetches nothing twice: 64 journaled blocks checked, 8
	// adopted, their lines journaled again.
	puts := b.Puts()
	r, err = CreateRemote(ctx, b, remoteMeta(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if k := r.Kept(); r.Resumed() != 72 || k.Checked != 72 || k.Adopted != 8 {
		t.Errorf("resumed %d, kept %+v; want 72 resumed, 72 checked, 8 adopted", r.Resumed(), k)
	}
	for _, i := range append(seq(0, 70), leafSize, leafSize+1) {
		if !r.Has(i) {
			t.Fatalf("block %d not kept", i)
		}
	}
	if r.Has(70) || b.Puts() != puts {
		t.Errorf("Has(70) = %v; the rerun's opening wrote %d objects", r.Has(70), b.Puts()-puts)
	}
	putRemote(t, r, 70, 71)
	// A block stored meanwhile by another run (the same bytes): kept.
	if err := r.Put(remoteBlock(3)); err != nil {
		t.Errorf("Put of a block already there with the same bytes: %v", err)
	}
	res, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	es := remoteManifest(t, b)
	if res.Blocks != 74 || len(es) != 74 || res.Unchanged {
		t.Fatalf("Close = %+v, manifest of %d entries; want 74 blocks", res, len(es))
	}
	for n, want := range append(seq(0, 72), leafSize, leafSize+1) {
		blk := remoteBlock(want)
		if e := es[n]; e.Index != want || e.SHA256 != blk.Sum.Hex() || e.StoredSHA256 != e.SHA256 || e.Size != int64(len(blk.Data)) || e.Name != r.Name(want, blk.Sum) {
			t.Errorf("entry %d = %+v, want block %d", n, e, want)
		}
	}

	// Complete evidence: a rerun rewrites nothing.
	puts = b.Puts()
	r, err = CreateRemote(ctx, b, remoteMeta(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.Close(); err != nil || !res.Unchanged || res.Blocks != 74 || b.Puts() != puts {
		t.Errorf("rerun of complete evidence: %+v, %v, %d objects written", res, err, b.Puts()-puts)
	}
	// More blocks for complete evidence: refused, never rewritten.
	r, _ = CreateRemote(ctx, b, remoteMeta(), Options{})
	putRemote(t, r, 100)
	if _, err := r.Close(); !errors.Is(err, ErrNotEvidence) || !strings.Contains(err.Error(), "complete evidence of other blocks") {
		t.Errorf("Close over complete evidence of other blocks: %v", err)
	}
}

func TestRemoteRefusesWhatDoesNotVerify(t *testing.T) {
	ctx := context.Background()
	start := func(t *testing.T, form codec.Form) *bucket.Memory {
		b := &bucket.Memory{}
		r, err := CreateRemote(ctx, b, remoteMeta(), Options{Form: form})
		if err != nil {
			t.Fatal(err)
		}
		putRemote(t, r, seq(0, 66)...) // 64 journaled, 2 not
		return b
	}
	for name, tc := range map[string]struct {
		index  int64
		form   codec.Form
		tamper func(b *bucket.Memory, key string)
		want   string
	}{
		"journaled, altered": {5, codec.Plain, func(b *bucket.Memory, k string) { b.Set(k, []byte("altered")) }, "bytes, its journal line says"},
		"unjournaled, altered": {65, codec.Plain, func(b *bucket.Memory, k string) {
			d, _ := b.Get(ctx, k, 1<<20)
			d[0] ^= 1
			b.Set(k, d)
		}, "content sha256"},
		"sealed, unjournaled, metadata lost": {65, codec.Form{Codec: codec.Zstd}, func(b *bucket.Memory, k string) {
			d, _ := b.Get(ctx, k, 1<<20)
			b.Delete(k)
			b.PutNew(ctx, k, d, sha256.Sum256(d), nil)
		}, "metadata naming it"},
	} {
		t.Run(name, func(t *testing.T) {
			b := start(t, tc.form)
			r := &Remote{meta: remoteMeta(), form: tc.form}
			r.meta.Codec, r.meta.Encryption = tc.form.Fields()
			tc.tamper(b, r.Name(tc.index, remoteBlock(tc.index).Sum))
			_, err := CreateRemote(ctx, b, remoteMeta(), Options{Form: tc.form})
			var c *ConflictError
			if !errors.As(err, &c) || !errors.Is(err, ErrNotEvidence) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CreateRemote = %v, want a ConflictError saying %q", err, tc.want)
			}
		})
	}
	t.Run("sealed, unjournaled, adopted", func(t *testing.T) {
		form := codec.Form{Codec: codec.Zstd}
		b := start(t, form)
		r, err := CreateRemote(ctx, b, remoteMeta(), Options{Form: form})
		if err != nil || r.Resumed() != 66 || r.Kept().Adopted != 2 {
			t.Fatalf("resumed %d, adopted %d, %v", r.Resumed(), r.Kept().Adopted, err)
		}
		putRemote(t, r, seq(66, 80)...)
		if _, err := r.Close(); err != nil {
			t.Fatal(err)
		}
		es := remoteManifest(t, b)
		blk := remoteBlock(65)
		if len(es) != 80 || es[65].Codec != "zstd" || es[65].Length != len(blk.Data) || es[65].SHA256 != blk.Sum.Hex() || es[65].Size >= int64(len(blk.Data)) {
			t.Errorf("%d entries; entry 65 = %+v", len(es), es[65])
		}
		d, _ := b.Get(ctx, es[65].Name, 1<<20)
		if fmt.Sprintf("%x", sha256.Sum256(d)) != es[65].StoredSHA256 {
			t.Error("entry 65's stored_sha256 is not its object's")
		}
	})
	t.Run("another snapshot, a foreign object", func(t *testing.T) {
		b := start(t, codec.Plain)
		m := remoteMeta()
		m.SnapshotID = "snap-0fedcba9876543210"
		var other *OtherSnapshotError
		if _, err := CreateRemote(ctx, b, m, Options{}); !errors.As(err, &other) {
			t.Errorf("another snapshot's evidence: %v", err)
		}
		if _, err := CreateRemote(ctx, b, remoteMeta(), Options{Force: true}); err == nil || !strings.Contains(err.Error(), "--force") {
			t.Errorf("--force: %v", err)
		}
		b.Set("blocks/00/0000/notes.txt", []byte("x"))
		if _, err := CreateRemote(ctx, b, remoteMeta(), Options{}); !errors.Is(err, ErrNotEvidence) || !strings.Contains(err.Error(), "not a block file name") {
			t.Errorf("a foreign object: %v", err)
		}
		b.Delete("blocks/00/0000/notes.txt")
		b.Set("blocks/00/notes/x", []byte("x"))
		if _, err := CreateRemote(ctx, b, remoteMeta(), Options{}); !errors.Is(err, ErrNotEvidence) || !strings.Contains(err.Error(), "not a name this tool writes") {
			t.Errorf("a foreign object: %v", err)
		}
		b2 := &bucket.Memory{}
		b2.Set("holiday.jpg", []byte("x"))
		if _, err := CreateRemote(ctx, b2, remoteMeta(), Options{}); !errors.Is(err, ErrNotEvidence) {
			t.Errorf("a prefix holding other objects: %v", err)
		}
	})
}

func TestVerifyRemote(t *testing.T) {
	ctx := context.Background()
	b := &bucket.Memory{}
	r, err := CreateRemote(ctx, b, remoteMeta(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	putRemote(t, r, seq(0, 70)...)
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
	meta, err := OpenRemote(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	res, err := VerifyRemote(ctx, b, meta, nil, nil)
	if err != nil || !res.OK() || res.Blocks != 70 || res.StoredChecked != 70 || res.ContentChecked != 70 || res.Journals.Outcome != CompareMatch {
		t.Fatalf("VerifyRemote = %+v, %v", res, err)
	}
	b.Delete(r.Name(3, remoteBlock(3).Sum))
	altered := remoteBlock(4).Data
	altered[7] ^= 1
	b.Set(r.Name(4, remoteBlock(4).Sum), altered)
	b.Set(r.Name(200, remoteBlock(200).Sum), remoteBlock(200).Data)
	res, err = VerifyRemote(ctx, b, meta, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, p := range res.Problems {
		kinds = append(kinds, fmt.Sprintf("%d:%s", p.Index, p.Kind))
	}
	if got := strings.Join(kinds, " "); got != "3:missing 4:mismatch 200:extra" || !strings.Contains(res.Problems[1].Detail, "the store's checksum is") {
		t.Errorf("problems %s (%+v)", got, res.Problems)
	}
}
