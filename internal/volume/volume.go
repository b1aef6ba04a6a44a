package volume

import (
	"errors"
	"io"
)

// Volume is a volume's bytes, readable at any offset by several
// goroutines at once.
//
// ReadAt follows io.ReaderAt: a read that reaches Size returns the bytes
// before it with io.EOF, and a read at or past Size returns 0, io.EOF.
// Bytes in a hole (a block never written) read as zeros.
type Volume interface {
	io.ReaderAt
	// Size is the volume's length in bytes.
	Size() int64
	// Ranges returns the allocated extents in ascending order, merged
	// where they touch: reading outside them gives zeros, so a caller
	// that walks the volume can skip the holes. For a live snapshot it
	// lists the whole snapshot.
	Ranges() ([]Range, error)
	// Close releases the volume; reads after Close fail.
	Close() error
}

// Range is an allocated extent of a volume, in bytes.
type Range struct {
	Off, Len int64
}

// End returns the offset just past r.
func (r Range) End() int64 { return r.Off + r.Len }

// ErrCorrupt is wrapped by every error that reports stored or fetched
// bytes failing their check (a SHA-256, a checksum, a size): the read
// returns the error, never the damaged bytes.
var ErrCorrupt = errors.New("block failed verification")

// Identified is implemented by a volume that says which snapshot it
// holds: an evidence directory, a live snapshot. Images do not say.
type Identified interface {
	SnapshotID() string
}

// SnapshotID returns the snapshot v holds, or "" when v does not say.
func SnapshotID(v Volume) string {
	if id, ok := v.(Identified); ok {
		return id.SnapshotID()
	}
	return ""
}
