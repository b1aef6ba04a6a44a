// Package fstest holds what the file-system readers' tests share.
package fstest

import (
	"io"
	"os"
	"testing"
)

// OpenImage opens the image file at path with a reader's open function;
// the file is closed when the test ends. It returns the file system and
// the file, for tests that read the image's bytes themselves.
func OpenImage[FS any](t testing.TB, path string, open func(io.ReaderAt, int64) (FS, error)) (FS, *os.File) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fs, err := open(f, st.Size())
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	return fs, f
}
