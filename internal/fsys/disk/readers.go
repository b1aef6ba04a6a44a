package disk

import (
	"io"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/ext"
	"github.com/ebsimager/ebsimager/internal/fsys/fat"
	"github.com/ebsimager/ebsimager/internal/fsys/ntfs"
	"github.com/ebsimager/ebsimager/internal/fsys/xfs"
	"github.com/ebsimager/ebsimager/internal/inspect"
)

// opener opens a file system on the bytes of a part.
type opener func(r io.ReaderAt, size int64) (fsys.FS, error)

// readers maps the file-system types inspect identifies to their
// readers. A type without one opens as fsys.ErrUnsupported, saying the
// reader is not built in.
var readers = map[string]opener{
	inspect.TypeExt2: adapt(ext.Open),
	inspect.TypeExt3: adapt(ext.Open),
	inspect.TypeExt4: adapt(ext.Open),
	inspect.TypeXFS:  adapt(xfs.Open),
	inspect.TypeNTFS: adapt(ntfs.Open),
	// internal/fsys/fat reads FAT12/16/32 and exFAT alike.
	inspect.TypeFAT12: adapt(fat.Open),
	inspect.TypeFAT16: adapt(fat.Open),
	inspect.TypeFAT32: adapt(fat.Open),
	inspect.TypeExFAT: adapt(fat.Open),
}

// adapt turns a reader package's Open, which returns its own *FS, into an
// opener (a nil *FS must not become a non-nil fsys.FS).
func adapt[T fsys.FS](open func(io.ReaderAt, int64) (T, error)) opener {
	return func(r io.ReaderAt, size int64) (fsys.FS, error) {
		f, err := open(r, size)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
}
