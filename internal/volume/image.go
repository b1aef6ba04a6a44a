package volume

import (
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
)

// rawImage is a raw image, split or not. Its allocated extents are the
// data extents the file system reports (a sparse image's holes are
// skipped), or the whole image where it cannot tell.
type rawImage struct{ *raw.Reader }

// Ranges returns the image's data extents.
func (r rawImage) Ranges() ([]Range, error) {
	ext, err := r.DataExtents()
	if err != nil {
		return nil, err
	}
	out := make([]Range, 0, len(ext))
	for _, e := range ext {
		out = appendRange(out, Range{e.Off, e.Len})
	}
	return out, nil
}

// e01 is an E01 set; every chunk a read touches is checked. Its
// allocated extent is the whole media: E01 keeps no map of what was
// written (a zero chunk is stored, compressed, like any other).
type e01 struct{ *ewf.Reader }

// ReadAt reads the media; a chunk that fails its check is ErrCorrupt.
func (r e01) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.Reader.ReadAt(p, off)
	return n, markCorrupt(err)
}

// Ranges returns the whole media.
func (r e01) Ranges() ([]Range, error) {
	return appendRange(nil, Range{0, r.Size()}), nil
}
