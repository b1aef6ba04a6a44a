package raw

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// dataExtents lists the data extents of the first size bytes of f with
// lseek(2)'s SEEK_DATA and SEEK_HOLE. A file system without them reports
// the whole file as data (the kernel's generic implementation).
func dataExtents(f *os.File, size int64) ([]Extent, error) {
	var out []Extent
	for off := int64(0); off < size; {
		data, err := f.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data at or after off
		}
		if errors.Is(err, unix.EINVAL) && off == 0 {
			return []Extent{{0, size}}, nil // SEEK_DATA unsupported
		}
		if err != nil {
			return nil, err
		}
		if data >= size {
			break
		}
		hole, err := f.Seek(data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		hole = min(hole, size)
		out = append(out, Extent{data, hole - data})
		off = hole
	}
	return out, nil
}
