package diff

import (
	"errors"
	"io"

	"github.com/ebsimager/ebsimager/internal/volume"
)

// SourceError is a failure to read a snapshot's bytes: a stored block
// that does not verify, an unreadable file, a failed fetch. MapFiles
// stops on it rather than reporting a file system it could not map.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

func sourceErr(err error) error {
	var se *SourceError
	if err == nil || errors.Is(err, io.EOF) || errors.As(err, &se) {
		return err
	}
	return &SourceError{err}
}

// source marks the errors of a volume's reads as SourceErrors, so that
// a file-system reader's own complaints can be told from them.
type source struct{ v volume.Volume }

func (s source) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.v.ReadAt(p, off)
	return n, sourceErr(err)
}

func (s source) Size() int64 { return s.v.Size() }

// Patches returns the changes as the runs of blocks an Overlay of the
// new snapshot over the base's volume reads differently: removed runs
// read as zeros, the others are fetched.
func (d *Diff) Patches() []volume.Patch {
	out := make([]volume.Patch, 0, len(d.Runs))
	for _, r := range d.Runs {
		out = append(out, volume.Patch{Start: r.StartBlock, Blocks: r.Blocks, Removed: r.Kind == Removed})
	}
	return out
}

// Size returns the new snapshot's size in bytes.
func (d *Diff) Size() int64 { return d.VolumeGiB << 30 } // VolumeSize is in GiB
