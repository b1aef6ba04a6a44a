package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// TestReuseStoredFromBucket takes the compressed blocks of a base in a
// bucket into evidence of a later snapshot in a bucket and in a
// directory, by their stored bytes: a tampered base object is a
// BadSourceError and is stored nowhere.
func TestReuseStoredFromBucket(t *testing.T) {
	ctx := context.Background()
	form := codec.Form{Codec: codec.Zstd}
	made := &bucket.Memory{}
	r, err := CreateRemote(ctx, made, remoteMeta(), Options{Form: form})
	if err != nil {
		t.Fatal(err)
	}
	putRemote(t, r, seq(0, 10)...)
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
	want := r.Summary().ManifestSHA256.Hex()
	// The base as a copy of it, block 3's object altered.
	es := remoteManifest(t, made)
	keys, err := made.List(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	b := &bucket.Memory{}
	for _, k := range keys {
		data, _ := made.Get(ctx, k.Key, 1<<30)
		if k.Key == es[3].Name {
			data[len(data)/2] ^= 1
		}
		o, _ := made.Head(ctx, k.Key)
		if err := b.PutNew(ctx, k.Key, data, sha256.Sum256(data), o.Metadata); err != nil {
			t.Fatal(err)
		}
	}
	base, err := OpenBaseBucket(ctx, b)
	if err != nil || base.Blocks != 10 || base.ManifestSHA256 != want || !base.InBucket() {
		t.Fatalf("OpenBaseBucket: %+v, %v; want 10 blocks, manifest %s", base, err, want)
	}
	if err := base.CheckForm(form, nil); err != nil {
		t.Fatal(err)
	}

	meta := remoteMeta()
	meta.SnapshotID = "snap-0123456789abcdef1"
	out := &bucket.Memory{}
	dst, err := CreateRemote(ctx, out, meta, Options{Form: form})
	if err != nil {
		t.Fatal(err)
	}
	st, err := Create(t.TempDir(), meta, Options{Form: form})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		data, err := base.ReadStored(ctx, e)
		var bad *BadSourceError
		if e.Index == 3 {
			if !errors.As(err, &bad) || bad.Index != 3 {
				t.Fatalf("tampered block 3: %v", err)
			}
			// Its bytes given anyway are refused by both.
			data, _ = b.Get(ctx, e.Name, 1<<30)
			if err := dst.ReuseStored(e, data); !errors.As(err, &bad) {
				t.Fatalf("Remote.ReuseStored of tampered bytes: %v", err)
			}
			if err := st.ReuseStored(e, data); !errors.As(err, &bad) {
				t.Fatalf("Store.ReuseStored of tampered bytes: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("block %d: %v", e.Index, err)
		}
		if err := dst.ReuseStored(e, data); err != nil {
			t.Fatal(err)
		}
		if err := st.ReuseStored(e, data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	sink := st.Sink()
	if _, err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	got := remoteManifest(t, out)
	ev, err := Open(st.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var local []manifest.Entry
	mr, c, err := ev.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for {
		e, err := mr.Next()
		if err != nil {
			break
		}
		local = append(local, e)
	}
	if len(got) != 9 || len(local) != 9 {
		t.Fatalf("%d entries in the bucket, %d in the directory; want 9", len(got), len(local))
	}
	for i, e := range got {
		w := es[i]
		if i >= 3 {
			w = es[i+1]
		}
		if e.Index != w.Index || e.StoredSHA256 != w.StoredSHA256 || e.SHA256 != w.SHA256 || e.Codec != "zstd" || local[i] != e {
			t.Fatalf("entry %d: %+v; base %+v; directory %+v", i, e, w, local[i])
		}
		o, err := out.Head(ctx, e.Name)
		if err != nil || o.Metadata[MetaCodec] != "zstd" || o.Metadata[MetaSHA256] != e.SHA256 {
			t.Fatalf("object %s: %+v, %v", e.Name, o, err)
		}
	}
	sum3, _ := es[3].Sum()
	if _, err := out.Head(ctx, dst.Name(3, sum3)); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("block 3 was stored from a tampered base: %v", err)
	}
	res, err := VerifyRemote(ctx, out, dst.Meta(), UnsealWith(nil), nil)
	if err != nil || len(res.Problems) != 0 || res.Blocks != 9 || res.ContentChecked != 9 {
		t.Fatalf("VerifyRemote: %+v, %v", res, err)
	}
}
