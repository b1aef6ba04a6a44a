package raw

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/outfile"
)

// Options controls how an image is laid out and finished.
type Options struct {
	// Split is the size in bytes of each segment, a multiple of 512. Zero
	// writes one file; otherwise the image is FILE.001, FILE.002, … (at
	// least three digits, more when there are over 999 segments), even
	// when it fits in one segment.
	Split int64
	// Hashes names the whole-image digests to compute and write beside the
	// image ("md5", "sha1", "sha256"; see digest.ParseList). Empty computes
	// none.
	Hashes []string
	// Force replaces an existing image at the same path, discards partial
	// files left by an earlier run, and removes the old image's segments
	// that the new one does not reuse.
	Force bool
	// HashProgress, when set, is called while RandomWriter.Close hashes the
	// image by reading it back, with the bytes hashed so far and the total.
	HashProgress func(done, total int64)

	// wrap, when set by a test, wraps every segment file, for example to
	// inject write errors.
	wrap func(file) file
}

// PartialSuffix ends the name each segment is written under until Close
// renames it into place: FILE.partial, or FILE.001.partial, FILE.002.partial,
// …, created 0600 in the image's directory. Close syncs them, writes the
// checksum files and only then renames every segment, so a final name
// always holds a complete image with its checksum files already beside it.
// A Writer removes its partial files when it fails or is aborted. A
// RandomWriter keeps them when it is suspended, when a write or Close fails,
// and after a crash; ResumeRandom finds them by these names and continues,
// so a resumed acquisition ends with the same bytes and hashes as an
// uninterrupted one. CreateRandom and Create refuse to start over partial
// files unless Options.Force discards them.
const PartialSuffix = ".partial"

// sectorSize is the unit segment sizes must be a multiple of: the 512-byte
// sector that forensic tools and EWF count in.
const sectorSize = 512

// MaxSegments bounds the segments of an image: every one is open while
// the image is written, and 2^20 is Linux's default ceiling on open files
// (fs.nr_open), so more could never be opened.
const MaxSegments = 1 << 20

// minDigits is how many digits a segment number has at least: FILE.001,
// the convention of split(1) -a 3, FTK Imager and ewfexport.
const minDigits = 3

// file is what a segment needs from an *os.File.
type file interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

// layout is where each byte of an image goes.
type layout struct {
	path  string
	size  int64
	split int64    // 0 for one file
	names []string // final names, in order
}

func newLayout(path string, size int64, split int64) (layout, error) {
	if size < 0 {
		return layout{}, fmt.Errorf("image size %d is negative", size)
	}
	if split < 0 || split%sectorSize != 0 {
		return layout{}, fmt.Errorf("segment size %d: want a positive multiple of %d", split, sectorSize)
	}
	l := layout{path: path, size: size, split: split}
	if split == 0 {
		l.names = []string{path}
		return l, nil
	}
	n := max(1, (size+split-1)/split)
	if n > MaxSegments {
		return layout{}, fmt.Errorf("segment size %d: %d segments, want at most %d (every segment is open while the image is written)", split, n, MaxSegments)
	}
	digits := max(minDigits, len(strconv.FormatInt(n, 10)))
	for i := int64(1); i <= n; i++ {
		l.names = append(l.names, fmt.Sprintf("%s.%0*d", path, digits, i))
	}
	return l, nil
}

// bounds returns where segment i starts and how long it is.
func (l layout) bounds(i int) (off, n int64) {
	if l.split == 0 {
		return 0, l.size
	}
	off = int64(i) * l.split
	return off, min(l.split, l.size-off)
}

// segments is the set of open partial files of one image being written.
type segments struct {
	l     layout
	files []file
	// open reports which files still need closing.
	open bool
}

func partial(name string) string { return name + PartialSuffix }

// createSegments makes fresh, sparse partial files for l.
func createSegments(l layout, o Options) (*segments, error) {
	if err := checkOutputs(l, o.Force); err != nil {
		return nil, fmt.Errorf("creating image %s: %w", l.path, err)
	}
	s := &segments{l: l, open: true}
	for i, name := range l.names {
		tmp := partial(name)
		if o.Force {
			if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.remove()
				return nil, fmt.Errorf("discarding %s: %w", tmp, err)
			}
		}
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			s.remove()
			if errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("creating image %s: partial file from an earlier or concurrent run: %w", l.path, err)
			}
			return nil, fmt.Errorf("creating image %s: %w", l.path, err)
		}
		s.files = append(s.files, o.wrapped(f))
		_, n := l.bounds(i)
		// Truncate gives the file its full apparent size without
		// allocating it: every byte not written later stays a hole.
		if err := s.files[i].Truncate(n); err != nil {
			s.remove()
			return nil, fmt.Errorf("sizing %s: %w", tmp, err)
		}
	}
	return s, nil
}

// checkOutputs refuses to start an image whose finishing would replace
// or remove a file it must not: without force, any existing segment or
// checksum file of an image at l.path (finish writes every checksum file
// and removes the ones not computed); with force, any of them that is not
// a regular file.
func checkOutputs(l layout, force bool) error {
	for _, name := range l.outputs() {
		if force {
			if err := outfile.Replaceable(name); err != nil {
				return err
			}
			continue
		}
		if _, err := os.Lstat(name); err == nil {
			return &fs.PathError{Op: "create", Path: name, Err: fs.ErrExist}
		}
	}
	return nil
}

// outputs is every file writing l can create, replace or remove: its
// segments, any segment of an earlier image at l.path, and the checksum
// files.
func (l layout) outputs() []string {
	names := append(existingImage(l.path), l.names...)
	for _, alg := range digest.Algorithms() {
		names = append(names, digest.FileName(l.path, alg))
	}
	return names
}

// Outputs returns every file an image of size bytes at path, split every
// split bytes (0: one file), creates, replaces or, with Force, removes:
// its segments, the segments of an earlier image at path, and its
// checksum files. Partial files are not among them: they are created
// exclusively.
func Outputs(path string, size, split int64) ([]string, error) {
	l, err := newLayout(path, size, split)
	if err != nil {
		return nil, err
	}
	return l.outputs(), nil
}

// openSegments reopens the partial files an interrupted run left for l.
func openSegments(l layout, o Options) (*segments, error) {
	s := &segments{l: l, open: true}
	for i, name := range l.names {
		tmp := partial(name)
		f, err := os.OpenFile(tmp, os.O_RDWR, 0)
		if err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("resuming image %s: %w", l.path, err)
		}
		s.files = append(s.files, o.wrapped(f))
		fi, err := f.Stat()
		if err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("resuming image %s: %w", l.path, err)
		}
		if _, n := l.bounds(i); fi.Size() != n {
			s.closeFiles()
			return nil, fmt.Errorf("resuming image %s: %s holds %d bytes, want %d", l.path, tmp, fi.Size(), n)
		}
	}
	if extra := existingPartials(l); len(extra) > 0 {
		s.closeFiles()
		return nil, fmt.Errorf("resuming image %s: %s does not belong to a %d-byte image split every %d bytes", l.path, extra[0], l.size, l.split)
	}
	return s, nil
}

func (o Options) wrapped(f *os.File) file {
	if o.wrap != nil {
		return o.wrap(f)
	}
	return f
}

// writeAt writes p at image offset off, across segment boundaries.
func (s *segments) writeAt(p []byte, off int64) error {
	for len(p) > 0 {
		i := 0
		if s.l.split > 0 {
			i = int(off / s.l.split)
		}
		start, n := s.l.bounds(i)
		k := min(int64(len(p)), start+n-off)
		if _, err := s.files[i].WriteAt(p[:k], off-start); err != nil {
			return err
		}
		p, off = p[k:], off+k
	}
	return nil
}

// reader returns a Reader over the open partial files.
func (s *segments) reader() *Reader {
	r := &Reader{names: s.l.names, size: s.l.size}
	for i, f := range s.files {
		off, _ := s.l.bounds(i)
		r.parts = append(r.parts, f)
		r.offs = append(r.offs, off)
	}
	return r
}

func (s *segments) sync() error {
	for i, f := range s.files {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", partial(s.l.names[i]), err)
		}
	}
	return nil
}

func (s *segments) closeFiles() error {
	if !s.open {
		return nil
	}
	s.open = false
	var first error
	for i, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = fmt.Errorf("closing %s: %w", partial(s.l.names[i]), err)
		}
	}
	return first
}

// remove closes and deletes the partial files s created or opened, and
// no others: a name it failed to create may belong to another run.
func (s *segments) remove() error {
	s.closeFiles()
	var first error
	for _, name := range s.l.names[:len(s.files)] {
		if err := os.Remove(partial(name)); err != nil && !errors.Is(err, fs.ErrNotExist) && first == nil {
			first = err
		}
	}
	return first
}

// commit renames every partial file to its final name. If any step
// fails, the segments already moved go back to their partial names, so no
// final name is left holding part of an image.
func (s *segments) commit(force bool) error {
	var err error
	moved := 0
	for _, name := range s.l.names {
		if err = place(partial(name), name, force); err != nil {
			break
		}
		moved++
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(s.l.path))
	}
	if err != nil {
		for _, name := range s.l.names[:moved] {
			os.Rename(name, partial(name))
		}
		return err
	}
	return nil
}

// place renames tmp to name. Without force it must not replace an existing
// name: os.Link fails if the name exists, and tmp is removed only once the
// link is made. On file systems without hard links (exFAT, some network
// shares) it falls back to a rename once it has seen that the name is
// free.
func place(tmp, name string, force bool) error {
	if force {
		return wrapMove(tmp, os.Rename(tmp, name))
	}
	err := os.Link(tmp, name)
	if err == nil {
		if err := os.Remove(tmp); err != nil {
			os.Remove(name)
			return wrapMove(tmp, err)
		}
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return wrapMove(tmp, err)
	}
	if _, serr := os.Lstat(name); !errors.Is(serr, fs.ErrNotExist) {
		return wrapMove(tmp, err)
	}
	return wrapMove(tmp, os.Rename(tmp, name))
}

func wrapMove(tmp string, err error) error {
	if err != nil {
		return fmt.Errorf("moving %s into place: %w", tmp, err)
	}
	return nil
}

// numbered returns the names path.<digits> that exist, in no set order.
func numbered(path string, suffix string) []string {
	matches, _ := filepath.Glob(globEscape(path) + ".[0-9]*" + suffix)
	var out []string
	for _, m := range matches {
		digits := strings.TrimSuffix(strings.TrimPrefix(m, path+"."), suffix)
		if allDigits(digits) {
			out = append(out, m)
		}
	}
	return out
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// globEscape quotes the glob metacharacters in a literal path.
func globEscape(path string) string {
	var b strings.Builder
	for _, r := range path {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// existingImage returns the names of an image at path that exist: path
// itself and any path.<digits> segment.
func existingImage(path string) []string {
	var names []string
	if _, err := os.Lstat(path); err == nil {
		names = append(names, path)
	}
	return append(names, numbered(path, "")...)
}

// existingPartials returns partial files at path that are not part of l.
func existingPartials(l layout) []string {
	var extra []string
	for _, name := range append(numbered(l.path, PartialSuffix), partial(l.path)) {
		if _, err := os.Lstat(name); err == nil && !slices.Contains(l.names, strings.TrimSuffix(name, PartialSuffix)) {
			extra = append(extra, name)
		}
	}
	return extra
}

// finish moves a synced, closed image into place: with force it first
// removes what the new image does not replace of an old one at the same
// path, then it writes the checksum files for sums, and last it renames
// the segments. The checksum files go before the segments so that a final
// image name never exists without them; if the segments cannot be moved,
// the checksum files are removed again.
// syncAndFinish takes the sums of set (if any), syncs and closes every
// segment, and finishes the image (see finish).
func syncAndFinish(s *segments, set *digest.Set, force bool) (Result, error) {
	var sums map[string]string
	if set != nil {
		sums = set.Sums()
	}
	if err := s.sync(); err != nil {
		return Result{}, err
	}
	if err := s.closeFiles(); err != nil {
		return Result{}, err
	}
	return finish(s, sums, force)
}

func finish(s *segments, sums map[string]string, force bool) (Result, error) {
	if force {
		for _, old := range existingImage(s.l.path) {
			if !slices.Contains(s.l.names, old) {
				if err := os.Remove(old); err != nil {
					return Result{}, fmt.Errorf("removing %s of the replaced image: %w", old, err)
				}
			}
		}
	}
	res := Result{Files: s.l.names, Size: s.l.size, Sums: sums}
	for _, alg := range digest.Algorithms() {
		sum, ok := sums[alg]
		name := digest.FileName(s.l.path, alg)
		if !ok {
			// A checksum file for an algorithm not computed this time can
			// only describe some other image.
			if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Result{}, fmt.Errorf("removing stale %s: %w", name, err)
			}
			continue
		}
		if err := digest.WriteHashFile(name, hashEntries(s.l, alg, sum)...); err != nil {
			removeAll(res.HashFiles)
			return Result{}, err
		}
		res.HashFiles = append(res.HashFiles, name)
	}
	if err := s.commit(force); err != nil {
		removeAll(res.HashFiles)
		return Result{}, err
	}
	return res, nil
}

func removeAll(names []string) {
	for _, n := range names {
		os.Remove(n)
	}
}

// hashEntries is the content of one checksum file: the image file's name
// for a single file, or "-" for a split image, whose segments are checked
// together on standard input, with a comment saying how.
func hashEntries(l layout, alg, sum string) []digest.Entry {
	base := filepath.Base(l.path)
	if l.split == 0 {
		return []digest.Entry{{Sum: sum, Name: base}}
	}
	var entries []digest.Entry
	if !strings.ContainsAny(base, "\r\n") {
		digits := len(l.names[0]) - len(l.path) - 1
		pattern := base + "." + strings.Repeat("[0-9]", digits)
		entries = append(entries, digest.Entry{Comment: fmt.Sprintf("%d segments; check with: cat %s | %ssum -c %s",
			len(l.names), pattern, alg, filepath.Base(digest.FileName(l.path, alg)))})
	}
	return append(entries, digest.Entry{Sum: sum, Name: "-"})
}

// Result describes a finished image.
type Result struct {
	// Files are the image's segments in order (one for an unsplit image).
	Files []string
	// Size is the image's length in bytes.
	Size int64
	// Sums maps each algorithm in Options.Hashes to its lowercase hex
	// digest of the whole image.
	Sums map[string]string
	// HashFiles are the checksum files written beside the image, in
	// digest.Algorithms order.
	HashFiles []string
}

// RemovePartials removes the partial files an image at path can have
// (path.partial, path.NNN.partial) and returns their names. They belong
// to a run that ended without finishing or aborting its image (kill -9,
// power loss): call it only while holding the image's lock, which every
// writer of path holds for as long as its partial files exist.
func RemovePartials(path string) ([]string, error) {
	var removed []string
	for _, name := range append(numbered(path, PartialSuffix), partial(path)) {
		if _, err := os.Lstat(name); err != nil {
			continue
		}
		if err := os.Remove(name); err != nil {
			return removed, fmt.Errorf("removing %s left by an interrupted run: %w", name, err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}
