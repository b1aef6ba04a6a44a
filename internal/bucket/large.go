package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// LargeObject is one object too large for PutNew, written in order (an
// S3 multipart upload, each part checked on arrival by its SHA-256). It
// does not exist under its key until Commit: Abort, a failure or a crash
// leaves nothing there.
type LargeObject interface {
	io.Writer
	// Flush sends what is still buffered: every byte of the object is
	// then with the store, but the object does not exist yet. Write
	// fails after it.
	Flush() error
	// Commit makes the object exist under its key, once: ErrExists when
	// the key is taken (nothing is overwritten, and the object is
	// dropped). It flushes first if needed.
	Commit() error
	// Abort drops the object; it does nothing after Commit.
	Abort() error
}

// LargeObjects is a Bucket that also writes large objects.
type LargeObjects interface {
	Bucket
	// CreateLarge starts the object key of size bytes (0 if not known;
	// the store sizes its parts by it) with metadata, fixed now, before
	// its bytes are known, and the store's lock.
	CreateLarge(ctx context.Context, key string, size int64, metadata map[string]string) (LargeObject, error)
}

// CheckFree refuses, before anything is written, names that are already
// objects in b: the first one taken is an error wrapping ErrExists that
// names it; a failed HEAD is returned as it is.
func CheckFree(ctx context.Context, b Bucket, names ...string) error {
	for _, n := range names {
		_, err := b.Head(ctx, n)
		if err == nil {
			return fmt.Errorf("%s%s: %w", b.String(), n, ErrExists)
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}
