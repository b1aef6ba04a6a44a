package disk

import (
	"io"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/inspect"
)

// opener opens a file system on the bytes of a part.
type opener func(r io.ReaderAt, size int64) (fsys.FS, error)

// readers maps the file-system types inspect identifies to their
// readers. A type without one opens as fsys.ErrUnsupported.
var readers = map[string]opener{}

// Avoid an unused import while no reader is built in.
var _ = inspect.TypeExt4
