package volume

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// Allocation is implemented by a volume that knows which of its blocks
// are allocated: an evidence directory (its manifest) and a live
// snapshot (its listing). Images keep no such record.
type Allocation interface {
	// Allocated reports whether block index is allocated, and the next
	// allocated block after it, or -1 when none is. An index outside the
	// volume is a *block.BeyondVolumeError.
	Allocated(ctx context.Context, index int64) (ok bool, next int64, err error)
}

// Allocated reports whether block index of v is allocated, and the next
// allocated block after it (-1: none), when v knows (Allocation). A
// volume that does not know, an image, has every block inside it
// allocated: it reads, holes as zeros. An index outside v is a
// *block.BeyondVolumeError; a volume's last block may be short.
func Allocated(ctx context.Context, v Volume, index int64) (ok bool, next int64, err error) {
	if a, is := v.(Allocation); is {
		return a.Allocated(ctx, index)
	}
	slots := (v.Size() + block.Size - 1) / block.Size
	if err := block.CheckIndex(index, slots); err != nil {
		return false, -1, err
	}
	if index+1 < slots {
		return true, index + 1, nil
	}
	return true, -1, nil
}

// ReadBlock reads block index of v, verified as every read of v is. The
// last block of an image may be short: it returns the bytes there are.
func ReadBlock(v Volume, index int64) ([]byte, error) {
	buf := make([]byte, block.Size)
	n, err := v.ReadAt(buf, index*block.Size)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

var _ Allocation = (*evidence)(nil)

// Allocated finds block index in the manifest, and the entry after it.
func (v *evidence) Allocated(_ context.Context, index int64) (bool, int64, error) {
	if err := block.CheckIndex(index, block.Slots(v.ev.Meta.VolumeSizeGiB)); err != nil {
		return false, -1, err
	}
	_, ok, after, err := v.search(index)
	if err != nil {
		return false, -1, fmt.Errorf("finding block %d in the manifest of %s: %w", index, v.ev.Dir, markCorrupt(err))
	}
	line, _, err := v.lineAt(after)
	if err != nil {
		return false, -1, fmt.Errorf("reading the manifest of %s: %w", v.ev.Dir, markCorrupt(err))
	}
	e, isEntry, err := manifest.ParseLine(line, v.ev.Meta.VolumeSizeGiB)
	switch {
	case err != nil:
		return false, -1, fmt.Errorf("reading the manifest of %s at offset %d: %w", v.ev.Dir, after, markCorrupt(err))
	case !isEntry:
		return ok, -1, nil
	case e.Index <= index:
		return false, -1, fmt.Errorf("reading the manifest of %s at offset %d: %w", v.ev.Dir, after,
			markCorrupt(fmt.Errorf("%w: block %d after block %d", manifest.ErrCorrupt, e.Index, index)))
	}
	return ok, e.Index, nil
}
