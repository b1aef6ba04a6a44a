package s3store

import (
	"context"
	"fmt"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
)

// Bucket is the prefix of a URL as a bucket.Bucket: keys are relative to
// the prefix, and every object is written with Lock.
type Bucket struct {
	c    *Client
	url  URL
	Lock Lock
}

var _ bucket.LargeObjects = (*Bucket)(nil)

// Bucket returns u's prefix through c, every object written with lock.
func (c *Client) Bucket(u URL, lock Lock) *Bucket { return &Bucket{c: c, url: u, Lock: lock} }

// URL returns the bucket and prefix.
func (b *Bucket) URL() URL { return b.url }

// PutNew implements bucket.Bucket.
func (b *Bucket) PutNew(ctx context.Context, key string, body []byte, sum block.Sum, metadata map[string]string) error {
	_, err := b.c.PutNew(ctx, b.url.Bucket, b.url.Key(key), body, sum, metadata, b.Lock)
	return err
}

// CreateLarge implements bucket.LargeObjects: a multipart Upload of key
// in parts of PartSize(size), with the bucket's lock.
func (b *Bucket) CreateLarge(ctx context.Context, key string, size int64, metadata map[string]string) (bucket.LargeObject, error) {
	if size > MaxObjectSize {
		return nil, fmt.Errorf("s3://%s/%s: %d bytes, and an S3 object holds at most %d", b.url.Bucket, b.url.Key(key), size, int64(MaxObjectSize))
	}
	u, err := b.c.NewUpload(ctx, b.url.Bucket, b.url.Key(key), PartSize(size), metadata, b.Lock)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Head implements bucket.Bucket.
func (b *Bucket) Head(ctx context.Context, key string) (bucket.Object, error) {
	o, err := b.c.Head(ctx, b.url.Bucket, b.url.Key(key))
	if err != nil {
		return bucket.Object{}, err
	}
	return bucket.Object{Size: o.Size, SHA256: o.SHA256, HasSHA256: o.HasSHA256, Metadata: o.Metadata}, nil
}

// Get implements bucket.Bucket.
func (b *Bucket) Get(ctx context.Context, key string, max int64) ([]byte, error) {
	return b.c.Get(ctx, b.url.Bucket, b.url.Key(key), max)
}

// GetRange implements bucket.Bucket.
func (b *Bucket) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	return b.c.GetRange(ctx, b.url.Bucket, b.url.Key(key), off, length)
}

// List implements bucket.Bucket: keys relative to the prefix.
func (b *Bucket) List(ctx context.Context, prefix string, max int) ([]bucket.Listed, error) {
	keys, err := b.c.List(ctx, b.url.Bucket, b.url.Key(prefix), max)
	if err != nil {
		return nil, err
	}
	out := make([]bucket.Listed, len(keys))
	for i, k := range keys {
		out[i] = bucket.Listed{Key: k.Key[len(b.url.Prefix):], Size: k.Size}
	}
	return out, nil
}

// ListLevel implements bucket.Bucket: keys and prefixes relative to the
// bucket's prefix.
func (b *Bucket) ListLevel(ctx context.Context, prefix string, max int) ([]bucket.Listed, []string, error) {
	keys, dirs, err := b.c.ListLevel(ctx, b.url.Bucket, b.url.Key(prefix), max)
	if err != nil {
		return nil, nil, err
	}
	out := make([]bucket.Listed, len(keys))
	for i, k := range keys {
		out[i] = bucket.Listed{Key: k.Key[len(b.url.Prefix):], Size: k.Size}
	}
	for i, d := range dirs {
		dirs[i] = d[len(b.url.Prefix):]
	}
	return out, dirs, nil
}

// String implements bucket.Bucket.
func (b *Bucket) String() string { return b.url.String() }
