// Package atomicfile writes a whole file so that its final name never
// holds half of it: the bytes go to a temporary file (0600) in the same
// directory, which is synced, closed and renamed into place, and the
// directory is synced so the rename survives a crash.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temporary file this package makes,
// so a directory scan can tell them from finished files.
const TempPrefix = ".tmp-"

// Write writes path through fn.
func Write(path string, fn func(io.Writer) error) error {
	return write(path, TempPrefix+filepath.Base(path)+"-*", func(f *os.File) error {
		bw := bufio.NewWriterSize(f, 1<<16)
		if err := fn(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// WriteFile is Write for a writer that needs the file itself (WriteAt,
// Truncate: a sparse file). The temporary file's name is short, so a
// path whose last element is already 255 bytes long can be written.
func WriteFile(path string, fn func(*os.File) error) error {
	return write(path, TempPrefix+"*", fn)
}

// write is Write and WriteFile: fn fills a temporary file (0600) named
// by pattern in path's directory, which is synced, renamed to path and
// its directory synced; on any error the temporary file is removed.
func write(path, pattern string, fn func(*os.File) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, pattern) // CreateTemp makes 0600 files
	if err != nil {
		return err
	}
	err = fn(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return SyncDir(dir)
}

// WriteBytes writes data to path.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir makes the renames done in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
