package volume

import (
	"errors"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

// corruptError marks an error as a verification failure: it wraps
// ErrCorrupt as well as the error, whose message it keeps.
type corruptError struct{ err error }

func (e corruptError) Error() string   { return e.err.Error() }
func (e corruptError) Unwrap() []error { return []error{ErrCorrupt, e.err} }

// markCorrupt makes err wrap ErrCorrupt when it reports bytes that failed
// their check: evidence that does not match its record (a stored file or
// block against the manifest, a damaged manifest), a block against its
// checksum, or an E01 chunk that cannot be read back intact.
func markCorrupt(err error) error {
	var (
		mis   *store.Mismatch
		sum   *block.ChecksumError
		chunk *ewf.ChunkError
	)
	switch {
	case err == nil || errors.Is(err, ErrCorrupt):
		return err
	case errors.As(err, &mis), errors.As(err, &sum), errors.As(err, &chunk), errors.Is(err, manifest.ErrCorrupt):
		return corruptError{err}
	}
	return err
}
