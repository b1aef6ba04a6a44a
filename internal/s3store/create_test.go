package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
)

// TestMotoCreate: Bucket.Create writes a small object in one PUT (S3's
// checksum is then its SHA-256) and a larger one in parts, locked, once;
// an aborted one leaves nothing; a taken key is ErrExists.
func TestMotoCreate(t *testing.T) {
	c := motoClient(t)
	ctx := context.Background()
	lock := Lock{Mode: Governance, RetainUntil: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
	b := c.Bucket(URL{Bucket: "locked", Prefix: "c/"}, lock)
	write := func(key string, data []byte) (int64, block.Sum, error) {
		w, err := b.Create(ctx, key, nil)
		if err != nil {
			return 0, block.Sum{}, err
		}
		for p := data; len(p) > 0; p = p[min(len(p), 1<<20):] { // in 1 MiB writes
			if _, err := w.Write(p[:min(len(p), 1<<20)]); err != nil {
				return 0, block.Sum{}, err
			}
		}
		return w.Close()
	}
	small := bytes.Repeat([]byte("manifest line\n"), 1000)
	if n, sum, err := write("small", small); err != nil || n != int64(len(small)) || sum != sha256.Sum256(small) {
		t.Fatalf("small object: %d, %x, %v", n, sum, err)
	}
	if o, err := b.Head(ctx, "small"); err != nil || !o.HasSHA256 || o.SHA256 != sha256.Sum256(small) {
		t.Errorf("small object's HEAD: %+v, %v", o, err)
	}
	large := make([]byte, DefaultPartSize+3<<20)
	for i := range large {
		large[i] = byte(i * 7 / 5)
	}
	if n, sum, err := write("large", large); err != nil || n != int64(len(large)) || sum != sha256.Sum256(large) {
		t.Fatalf("large object: %d, %x, %v", n, sum, err)
	}
	got, err := b.Get(ctx, "large", int64(len(large)))
	if err != nil || !bytes.Equal(got, large) {
		t.Fatalf("large object read back: %d bytes, %v", len(got), err)
	}
	o, err := c.Head(ctx, "locked", "c/large")
	if err != nil || o.Lock.Mode != Governance || !o.Lock.RetainUntil.Equal(lock.RetainUntil) {
		t.Errorf("large object's lock: %+v, %v", o.Lock, err)
	}
	// Read back as a stream, in ranged GETs.
	rd, err := bucket.NewReader(ctx, b, "large", int64(len(large)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rd); err != nil || !bytes.Equal(buf.Bytes(), large) {
		t.Errorf("NewReader: %d bytes, %v", buf.Len(), err)
	}
	if _, err := bucket.NewReader(ctx, b, "large", int64(len(large))-1); err == nil {
		t.Error("NewReader past its bound: no error")
	}
	if _, _, err := write("large", large); !errors.Is(err, bucket.ErrExists) {
		t.Errorf("a taken key: %v, want ErrExists", err)
	}
	w, err := b.Create(ctx, "aborted", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(large)
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Head(ctx, "aborted"); !errors.Is(err, bucket.ErrNotFound) {
		t.Errorf("an aborted object: %v, want ErrNotFound", err)
	}
}
