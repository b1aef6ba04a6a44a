package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

func evidenceBlock(i int64) block.Block {
	data := bytes.Repeat([]byte(fmt.Sprintf("block %d of the evidence ", i)), 2000)
	return block.Block{Index: i, Data: data, Sum: sha256.Sum256(data)}
}

// TestMotoEvidence writes evidence (zstd) into a locked bucket through
// store.Remote, stops without closing (as a killed process would),
// resumes, and checks every object: S3's checksum is the stored bytes'
// SHA-256, the metadata name the block, and the retention is the one
// asked for.
func TestMotoEvidence(t *testing.T) {
	c := motoClient(t)
	ctx := context.Background()
	until := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	lock := Lock{Mode: Compliance, RetainUntil: until, LegalHold: true}
	u, _ := ParseURL("s3://locked/case-1/snap-0123456789abcdef0/")
	b := c.Bucket(u, lock)
	meta := store.Meta{SnapshotID: "snap-0123456789abcdef0", Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size, ToolVersion: "test"}
	form := store.Options{Form: codec.Form{Codec: codec.Zstd}}
	r, err := store.CreateRemote(ctx, b, meta, form)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(70) {
		if err := r.Put(evidenceBlock(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Killed: no Close, no Abort. The rerun keeps all 70 blocks.
	r, err = store.CreateRemote(ctx, b, meta, form)
	if err != nil {
		t.Fatal(err)
	}
	if k := r.Kept(); r.Resumed() != 70 || k.Adopted != 6 {
		t.Fatalf("resumed %d, kept %+v; want 70 resumed, 6 adopted", r.Resumed(), k)
	}
	for i := int64(70); i < 100; i++ {
		if err := r.Put(evidenceBlock(i)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.Close()
	if err != nil || res.Blocks != 100 {
		t.Fatalf("Close = %+v, %v", res, err)
	}
	data, err := b.Get(ctx, store.ManifestName, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != res.Manifest {
		t.Errorf("the manifest object's SHA-256 is not the one Close returned")
	}
	mr, err := manifest.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		blk := evidenceBlock(e.Index)
		o, err := c.Head(ctx, "locked", u.Key(e.Name))
		if err != nil {
			t.Fatal(err)
		}
		if e.Index != int64(n) || e.SHA256 != blk.Sum.Hex() || o.SHA256.Hex() != e.StoredSHA256 || o.Size != e.Size || o.Lock != lock ||
			o.Metadata[store.MetaSHA256] != blk.Sum.Hex() || o.Metadata[store.MetaCodec] != "zstd" || o.Metadata[store.MetaLength] != fmt.Sprint(len(blk.Data)) {
			t.Fatalf("entry %d = %+v; its object %+v", n, e, o)
		}
		n++
	}
	if n != 100 {
		t.Errorf("%d entries, want 100", n)
	}
	for _, name := range []string{store.MetaName, store.ManifestName, store.ManifestSumName} {
		if o, err := c.Head(ctx, "locked", u.Key(name)); err != nil || o.Lock != lock || !o.HasSHA256 {
			t.Errorf("%s: %+v, %v", name, o, err)
		}
	}
	// Complete: a rerun writes nothing.
	r, err = store.CreateRemote(ctx, b, meta, form)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.Close(); err != nil || !res.Unchanged {
		t.Errorf("rerun of complete evidence: %+v, %v", res, err)
	}
}

// TestMotoTamperedEvidence: in a bucket without Object Lock, an object
// replaced behind the evidence's back is found by the rerun, which
// stops without writing anything.
func TestMotoTamperedEvidence(t *testing.T) {
	c := motoClient(t)
	ctx := context.Background()
	u, _ := ParseURL("s3://plain/ev/")
	b := c.Bucket(u, Lock{})
	meta := store.Meta{SnapshotID: "snap-0123456789abcdef0", Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size, ToolVersion: "test"}
	r, err := store.CreateRemote(ctx, b, meta, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(64) {
		if err := r.Put(evidenceBlock(i)); err != nil {
			t.Fatal(err)
		}
	}
	blk := evidenceBlock(7)
	altered := bytes.Clone(blk.Data)
	altered[100] ^= 1
	sum := sha256.Sum256(altered)
	// Replaced with a consistent checksum: S3 accepts it, the journal
	// line does not.
	if _, err := c.api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("plain"), Key: aws.String(u.Key(r.Name(7, blk.Sum))), Body: bytes.NewReader(altered),
		ChecksumSHA256: aws.String(b64(sum[:]))}); err != nil {
		t.Fatal(err)
	}
	_, err = store.CreateRemote(ctx, b, meta, store.Options{})
	var conflict *store.ConflictError
	if !errors.As(err, &conflict) || !strings.Contains(err.Error(), "stored sha256 "+hex.EncodeToString(sum[:])) {
		t.Errorf("rerun over a tampered object: %v", err)
	}
}
