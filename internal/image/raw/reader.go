package raw

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/ebsimager/ebsimager/internal/digest"
)

// A Reader reads a raw image, split or not, as one io.ReaderAt. It is safe
// for concurrent use.
type Reader struct {
	names []string
	parts []io.ReaderAt
	offs  []int64 // where each part starts in the image
	size  int64
	files []*os.File // what Close closes; nil for a writer's own reader
}

// Open opens the raw image at path. path may name an unsplit image FILE, the
// first segment FILE.001 of a split image (any number of digits), or the
// base FILE of a split image whose segments are FILE.001, FILE.002, ….
// Segments must be numbered from 1 without gaps, and all but the last
// must have the same size.
func Open(path string) (*Reader, error) {
	names, err := segmentNames(path)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", path, err)
	}
	r := &Reader{names: names}
	var first int64
	for i, name := range names {
		f, err := os.Open(name)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("opening image %s: %w", path, err)
		}
		r.files = append(r.files, f)
		fi, err := f.Stat()
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("opening image %s: %w", path, err)
		}
		if !fi.Mode().IsRegular() {
			r.Close()
			return nil, fmt.Errorf("opening image %s: %s is not a regular file", path, name)
		}
		n := fi.Size()
		if len(names) > 1 {
			switch {
			case i == 0:
				first = n
				if n == 0 {
					r.Close()
					return nil, fmt.Errorf("opening image %s: first segment %s is empty", path, name)
				}
			case i < len(names)-1 && n != first:
				r.Close()
				return nil, fmt.Errorf("opening image %s: segment %s holds %d bytes, want %d like %s", path, name, n, first, names[0])
			case i == len(names)-1 && (n == 0 || n > first):
				r.Close()
				return nil, fmt.Errorf("opening image %s: last segment %s holds %d bytes, want 1 to %d", path, name, n, first)
			}
		}
		r.parts = append(r.parts, f)
		r.offs = append(r.offs, r.size)
		r.size += n
	}
	return r, nil
}

// segmentNames resolves path to the ordered list of files of its image.
func segmentNames(path string) ([]string, error) {
	if base, digits, ok := splitSuffix(path); ok {
		if n, _ := strconv.Atoi(digits); n == 1 {
			return numberedFrom(base, len(digits))
		}
		if first := fmt.Sprintf("%s.%0*d", base, len(digits), 1); exists(first) {
			return nil, fmt.Errorf("%s is segment %s of a split image: open %s", path, digits, first)
		}
		// Otherwise a name that merely ends in digits, like vol.2024.
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return nil, fmt.Errorf("%s is a directory", path)
		}
		return []string{path}, nil
	}
	for _, name := range numbered(path, "") {
		if _, digits, _ := splitSuffix(name); strings.TrimLeft(digits, "0") == "1" {
			return numberedFrom(path, len(digits))
		}
	}
	return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
}

// splitSuffix splits FILE.001 into FILE and 001.
func splitSuffix(path string) (base, digits string, ok bool) {
	i := strings.LastIndexByte(path, '.')
	if i <= 0 || !allDigits(path[i+1:]) {
		return path, "", false
	}
	if !exists(path) {
		return path, "", false
	}
	return path[:i], path[i+1:], true
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// numberedFrom lists base.1, base.2, … with width digits until one is
// missing, and fails if a higher-numbered segment exists past the gap.
func numberedFrom(base string, width int) ([]string, error) {
	var names []string
	for i := 1; ; i++ {
		name := fmt.Sprintf("%s.%0*d", base, width, i)
		if _, err := os.Stat(name); errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	if all := numbered(base, ""); len(all) != len(names) {
		sort.Strings(all)
		return nil, fmt.Errorf("segments of %s are not numbered 1 to %d without gaps: found %q", base, len(names), all)
	}
	return names, nil
}

// ReadAt reads len(p) bytes at image offset off, across segments. Like
// any io.ReaderAt it returns io.EOF when it reads short at the end.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading image at offset %d: negative offset", off)
	}
	total := 0
	for len(p) > 0 {
		if off >= r.size {
			return total, io.EOF
		}
		// The last part starting at or before off holds it.
		i := sort.Search(len(r.offs), func(i int) bool { return r.offs[i] > off }) - 1
		end := r.size
		if i+1 < len(r.offs) {
			end = r.offs[i+1]
		}
		k := min(int64(len(p)), end-off)
		n, err := r.parts[i].ReadAt(p[:k], off-r.offs[i])
		total += n
		if n < int(k) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return total, fmt.Errorf("reading %s at offset %d: %w", r.names[i], off-r.offs[i]+int64(n), err)
		}
		p, off = p[k:], off+k
	}
	return total, nil
}

// Size returns the image's length in bytes.
func (r *Reader) Size() int64 { return r.size }

// Files returns the image's files in order.
func (r *Reader) Files() []string { return append([]string(nil), r.names...) }

// Close closes every segment.
func (r *Reader) Close() error {
	var first error
	for _, f := range r.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	r.files = nil
	return first
}

// Extent is a run of an image's bytes.
type Extent struct{ Off, Len int64 }

// DataExtents returns where the image holds data, in ascending order and
// merged where they touch: each segment's data extents as the file system
// reports them (SEEK_DATA and SEEK_HOLE on Linux), so that the holes of a
// sparse image cost nothing to skip. Where the file system cannot tell,
// a segment is data from end to end. Bytes outside the extents read as
// zeros.
func (r *Reader) DataExtents() ([]Extent, error) {
	var out []Extent
	add := func(off, n int64) {
		if k := len(out); k > 0 && out[k-1].Off+out[k-1].Len == off {
			out[k-1].Len += n
			return
		}
		out = append(out, Extent{off, n})
	}
	for i, part := range r.parts {
		end := r.size
		if i+1 < len(r.offs) {
			end = r.offs[i+1]
		}
		size := end - r.offs[i]
		f, ok := part.(*os.File)
		if !ok {
			add(r.offs[i], size)
			continue
		}
		ext, err := dataExtents(f, size)
		if err != nil {
			return nil, fmt.Errorf("finding the data of %s: %w", r.names[i], err)
		}
		for _, e := range ext {
			add(r.offs[i]+e.Off, e.Len)
		}
	}
	return out, nil
}

// Sums reads the whole image and returns its hashes with the algorithms
// algs (as package digest names them). progress, if not nil, is called
// with the bytes read so far.
func (r *Reader) Sums(algs []string, progress func(done, total int64)) (map[string]string, error) {
	set, err := digest.New(algs...)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 4<<20)
	for off := int64(0); off < r.size; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), r.size-off)], off)
		if n > 0 {
			set.Write(buf[:n])
			off += int64(n)
			if progress != nil {
				progress(off, r.size)
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if n == 0 {
			break
		}
	}
	return set.Sums(), nil
}
