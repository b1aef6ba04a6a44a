package store

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// A RemoteIndex answers every block's entry from a leaf read back on
// demand, and refuses a leaf whose lines changed after it was indexed.
func TestRemoteIndex(t *testing.T) {
	ctx := context.Background()
	b := &bucket.Memory{}
	r, err := CreateRemote(ctx, b, boundMeta(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var stored []int64
	for leaf := int64(0); leaf < 21; leaf += 2 { // leaves 0, 2, …, 20
		for _, k := range []int64{0, 5, 4000} {
			stored = append(stored, leaf*leafSize+k)
		}
	}
	putRemote(t, r, stored...)
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
	var seen []int64
	ix, err := OpenRemoteIndex(ctx, b, boundMeta(), func(e manifest.Entry) error {
		seen = append(seen, e.Index)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Blocks != int64(len(stored)) || len(seen) != len(stored) || len(ix.spans) != 11 {
		t.Fatalf("index of %d blocks (%d seen), %d leaves; want %d blocks in 11 leaves", ix.Blocks, len(seen), len(ix.spans), len(stored))
	}
	want := map[int64]bool{}
	for _, i := range stored {
		want[i] = true
	}
	// Every leaf twice over: more leaves than the cache holds.
	for range 2 {
		for leaf := int64(0); leaf < 21; leaf++ {
			for _, k := range []int64{0, 1, 5, 4000} {
				i := leaf*leafSize + k
				e, ok, err := ix.Entry(ctx, i)
				if err != nil || ok != want[i] || ok && (e.Index != i || e.SHA256 != remoteBlock(i).Sum.Hex()) {
					t.Fatalf("Entry(%d) = %+v, %v, %v; want listed %v", i, e, ok, err, want[i])
				}
			}
		}
	}
	if len(ix.cache) != remoteIndexCache {
		t.Errorf("%d leaves cached, want %d", len(ix.cache), remoteIndexCache)
	}

	// The manifest altered after the index was made (same length, and
	// for the first leaf of the cache's past): refused, named corrupt.
	data, _ := b.Get(ctx, ManifestName, 1<<30)
	first := bytes.Index(data, []byte(remoteBlock(0).Sum.Hex()))
	altered := bytes.Clone(data)
	copy(altered[first:], remoteBlock(1).Sum.Hex())
	b.Set(ManifestName, altered)
	if _, _, err := ix.Entry(ctx, 0); !errors.Is(err, manifest.ErrCorrupt) {
		t.Errorf("Entry of an altered leaf: %v, want ErrCorrupt", err)
	}
	if _, err := OpenRemoteIndex(ctx, b, boundMeta(), nil); err == nil {
		t.Error("OpenRemoteIndex of an altered manifest: no error")
	}
	b.Delete(ManifestName)
	if _, err := OpenRemoteIndex(ctx, b, boundMeta(), nil); !errors.Is(err, ErrIncomplete) {
		t.Errorf("OpenRemoteIndex without a manifest: %v", err)
	}
}
