package fsmap

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// errOutside is a structure that lies (partly) beyond the volume.
var errOutside = errors.New("beyond the end of the volume")

// errBudget stops a map whose structures make it read far more than a
// real file system's metadata.
var errBudget = errors.New("file system structures reference more metadata than the volume can hold")

// reader reads metadata from the volume within a budget.
type reader struct {
	r      io.ReaderAt
	size   int64
	budget int64 // bytes that may still be read
}

// Metadata is a small share of a real volume: ext inode tables are about
// 1.6% of it at the default 16 KiB per 256-byte inode, an MFT less. An
// eighth of the volume plus 64 MiB leaves room for any real layout and
// bounds the work a hostile one can cause.
func newReader(r io.ReaderAt, size int64) *reader {
	return &reader{r: r, size: size, budget: size/8 + 64<<20}
}

// read returns n bytes at off. Bytes the underlying reader does not have
// (a short image) read as zeros, like an unlisted EBS block; ranges
// beyond size are errOutside.
func (rd *reader) read(off int64, n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("%d bytes at %d: %w", n, off, errOutside)
	}
	buf := make([]byte, n)
	if err := rd.readInto(buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

// readInto is read into buf.
func (rd *reader) readInto(buf []byte, off int64) error {
	n := len(buf)
	if off < 0 || off > rd.size || int64(n) > rd.size-off {
		return fmt.Errorf("%d bytes at %d: %w", n, off, errOutside)
	}
	if int64(n) > rd.budget {
		return errBudget
	}
	rd.budget -= int64(n)
	m, err := rd.r.ReadAt(buf, off)
	if err != nil && m < n && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading %d bytes at %d: %w", n, off, err)
	}
	clear(buf[max(m, 0):]) // bytes the source does not have read as zeros
	return nil
}

// fatal reports whether err must stop the map rather than become a
// warning: read errors of the source and an exhausted budget.
func fatal(err error) bool {
	return err != nil && !errors.Is(err, errOutside)
}

// cleanName makes a name read from disk printable: invalid UTF-8 bytes,
// control characters and a '/' inside a name are written as \xNN.
func cleanName(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, needsEscape) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n <= 1) || needsEscape(r) {
			fmt.Fprintf(&sb, "\\x%02x", s[i])
			i++
			continue
		}
		sb.WriteString(s[i : i+n])
		i += n
	}
	return sb.String()
}

func needsEscape(r rune) bool { return r < 0x20 || r == 0x7f || r == '/' || r == '\\' }
