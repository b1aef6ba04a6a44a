// Package bucket is the vocabulary of an object store as the evidence
// needs it: write an object once with the SHA-256 the store checks on
// arrival, read what the store keeps of it, list a prefix. Package
// s3store implements it for S3; Memory implements it in memory for the
// tests of the evidence format. It imports nothing of AWS, so the
// evidence format (package store) stays free of it.
package bucket

import (
	"context"
	"errors"
	"io"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Bucket is an object store under one prefix: every key is relative to
// it. Implementations are safe for concurrent use.
type Bucket interface {
	// PutNew writes body under key, once: ErrExists when the key is
	// taken (nothing is overwritten). sum is body's SHA-256, which the
	// store checks on arrival (an altered body is refused) and keeps
	// with the object. metadata are small strings kept with it; the
	// object carries the store's lock, if any.
	PutNew(ctx context.Context, key string, body []byte, sum block.Sum, metadata map[string]string) error
	// Create writes an object too large to hold in memory under key,
	// once, as it is written: the object exists only when the Writer's
	// Close succeeds (ErrExists when the key is taken: nothing is
	// overwritten), and Abort, or a crash, leaves nothing under key.
	// Every part is sent with its SHA-256, which the store checks on
	// arrival; Close returns the whole object's SHA-256. metadata and
	// the store's lock are as for PutNew.
	Create(ctx context.Context, key string, metadata map[string]string) (Writer, error)
	// Head returns what the store keeps of key; ErrNotFound when absent.
	Head(ctx context.Context, key string) (Object, error)
	// Get reads the whole of key, refusing more than max bytes;
	// ErrNotFound when absent.
	Get(ctx context.Context, key string, max int64) ([]byte, error)
	// GetRange reads length bytes of key from off.
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
	// List returns the keys under prefix in lexicographic order, with
	// their sizes; more than max keys is an error.
	List(ctx context.Context, prefix string, max int) ([]Listed, error)
	// ListLevel returns one level under prefix: the keys directly under
	// it, and the prefixes below it ("prefix/a/"), each in lexicographic
	// order; more than max of them together is an error.
	ListLevel(ctx context.Context, prefix string, max int) (keys []Listed, dirs []string, err error)
	// String names the bucket and prefix for messages ("s3://b/p/").
	String() string
}

// Writer writes one object of Create.
type Writer interface {
	io.Writer
	// Close completes the object and returns its size and SHA-256.
	Close() (size int64, sum block.Sum, err error)
	// Abort abandons it: nothing is left under its key. After Close it
	// does nothing.
	Abort() error
}

// Object is what the store keeps of an object.
type Object struct {
	Size int64
	// SHA256 is the checksum the store verified on arrival and keeps;
	// HasSHA256 is false when it keeps none.
	SHA256    block.Sum
	HasSHA256 bool
	Metadata  map[string]string
}

// Listed is one key of a listing.
type Listed struct {
	Key  string
	Size int64
}

// ErrExists says that PutNew found the key taken.
var ErrExists = errors.New("an object already exists under that key")

// ErrNotFound says that the key does not exist.
var ErrNotFound = errors.New("no such object")

// ErrBadDigest says that the store refused a body that did not hash to
// the SHA-256 given with it.
var ErrBadDigest = errors.New("the body does not match its SHA-256")
