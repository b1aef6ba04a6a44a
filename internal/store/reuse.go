package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// Base is a complete evidence directory of an earlier snapshot of a
// volume, from which an incremental acquisition takes the blocks that did
// not change.
type Base struct {
	*Evidence
	// ManifestSHA256 is the hex SHA-256 of its manifest, checked against
	// its SHA-256 file; Blocks is the manifest's block count.
	ManifestSHA256 string
	Blocks         int64
}

// ImportedBaseError refuses imported evidence as a base: its blocks were
// checked only against the original tool's file names, so they cannot
// enter evidence whose every block is claimed to match what AWS served.
type ImportedBaseError struct{ Dir, Source string }

func (e *ImportedBaseError) Error() string {
	return fmt.Sprintf("base %s was imported from %s, a folder of the original tool, with no AWS checksum: its blocks cannot be reused in evidence fetched from AWS; acquire without --base", e.Dir, e.Source)
}

// OpenBase opens dir as the base of an incremental acquisition. Its
// manifest must be present, agree with evidence.json, name every block
// where it belongs, and match its SHA-256 file. Block files are not read.
func OpenBase(dir string) (*Base, error) {
	ev, err := Open(dir)
	if err != nil {
		return nil, err
	}
	if ev.Meta.Imported() {
		return nil, &ImportedBaseError{Dir: dir, Source: ev.Meta.Source}
	}
	b := &Base{Evidence: ev}
	sum, err := b.entries(func(manifest.Entry) error { b.Blocks++; return nil })
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", dir, err)
	}
	b.ManifestSHA256 = sum
	return b, nil
}

// Entries calls fn for each block of the base's manifest, in index order,
// and checks once more that the manifest is the one OpenBase checked.
func (b *Base) Entries(fn func(manifest.Entry) error) error {
	sum, err := b.entries(fn)
	if err != nil {
		return err
	}
	if sum != b.ManifestSHA256 {
		return fmt.Errorf("base %s: manifest changed since it was opened (sha256 %s, was %s)", b.Dir, sum, b.ManifestSHA256)
	}
	return nil
}

func (b *Base) entries(fn func(manifest.Entry) error) (string, error) {
	mr, c, err := b.Manifest()
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := b.checkHeader(mr.Header()); err != nil {
		return "", err
	}
	for {
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		if err := b.checkEntry(e); err != nil {
			return "", err
		}
		if err := fn(e); err != nil {
			return "", err
		}
	}
	if err := b.checkManifestSum(mr.Sum()); err != nil {
		return "", err
	}
	return mr.Sum().Hex(), nil
}

// CheckForm reports, as an error, whether blocks stored as the base
// stores them can serve as blocks of evidence stored in form f, encrypted
// to recipients: same codec and encryption, and for encrypted blocks the
// same recipients, so that the same keys open both.
func (b *Base) CheckForm(f codec.Form, recipients []string) error {
	c, enc := f.Fields()
	if b.Meta.Codec != c || b.Meta.Encryption != enc {
		return fmt.Errorf("base %s stores blocks as codec %s, encryption %s; this run asks for %s, %s: use the base's --compress/--encrypt, or convert it first",
			b.Dir, b.Meta.Codec, b.Meta.Encryption, c, enc)
	}
	if f.Encrypted {
		have, want := slices.Sorted(slices.Values(b.Meta.Recipients)), slices.Sorted(slices.Values(recipients))
		if !slices.Equal(have, want) {
			return fmt.Errorf("base %s is encrypted to other recipients than this run: its blocks could not be opened with this run's keys", b.Dir)
		}
	}
	return nil
}

// BadSourceError says that a base's block file does not match the
// base's manifest: it is not reused, and the block must be fetched.
type BadSourceError struct {
	Index int64
	Path  string
	What  string
}

func (e *BadSourceError) Error() string {
	return fmt.Sprintf("%s: %s", e.Path, e.What)
}

// Reuse stores, as block e.Index of s, the file src that holds the same
// block in the same form (a base's file, described by its manifest entry
// e): hard-linked through a temporary name in the leaf and renamed, or
// copied (temporary file, fsync, rename) when copy is set or linking
// fails, for example across file systems. Either way its bytes are
// checked against the entry's size and stored SHA-256 before it takes
// its final name (a link, through the linked inode itself): a source
// that does not match is a *BadSourceError, and nothing is stored. The
// block is journaled like Put. linked says which was done.
func (s *Store) Reuse(e manifest.Entry, src string, copy bool) (linked bool, err error) {
	if e.Index < 0 || e.Index >= int64(len(s.done))*64 {
		return false, fmt.Errorf("reusing block %d: beyond the %d GiB volume", e.Index, s.meta.VolumeSizeGiB)
	}
	if !s.sameForm(e) {
		c, enc := s.form.Fields()
		return false, fmt.Errorf("reusing block %d: stored as %s/%s, this evidence stores %s/%s", e.Index, e.Codec, e.Encryption, c, enc)
	}
	sum, err := e.Sum()
	if err != nil {
		return false, fmt.Errorf("reusing block %d: %w", e.Index, err)
	}
	leaf := LeafDir(e.Index)
	if err := s.ensureLeaf(leaf); err != nil {
		return false, err
	}
	rel := s.Name(e.Index, sum)
	if !copy {
		linked, err = s.link(rel, src, e)
		if err != nil {
			return false, fmt.Errorf("reusing block %d: %w", e.Index, err)
		}
	}
	if !linked {
		if err := s.copyFile(rel, src, e); err != nil {
			return false, fmt.Errorf("reusing block %d: %w", e.Index, err)
		}
	}
	e.Name = filepath.ToSlash(rel)
	return linked, s.record(leaf, e)
}

// link hard-links src to rel through a temporary name, and checks the
// linked file's bytes against e before renaming it into place. It
// returns false without error when the file system refuses the link, so
// the caller copies instead.
func (s *Store) link(rel, src string, e manifest.Entry) (bool, error) {
	fi, err := os.Lstat(src)
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() || fi.Size() != e.Size {
		return false, &BadSourceError{Index: e.Index, Path: src, What: fmt.Sprintf("%d bytes, the base's manifest says %d", fi.Size(), e.Size)}
	}
	final := filepath.Join(s.dir, rel)
	tmp := filepath.Join(filepath.Dir(final), tempPrefix+filepath.Base(final)+"-link")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.Link(src, tmp); err != nil {
		return false, nil // another file system, or no hard links: copy
	}
	// The link shares the source's inode: what is checked here is what
	// the new evidence holds.
	if err := checkStored(tmp, e.Size, e.StoredSHA256); err != nil {
		os.Remove(tmp)
		return false, &BadSourceError{Index: e.Index, Path: src, What: err.Error() + " (the base's manifest entry)"}
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, nil
}

// copyFile copies src to rel atomically, checking its size and stored
// SHA-256 against e.
func (s *Store) copyFile(rel, src string, e manifest.Entry) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return &BadSourceError{Index: e.Index, Path: src, What: "not a regular file"}
	}
	return s.copyFrom(rel, in, src, e)
}

// copyFrom writes what in holds to rel atomically (temporary file,
// fsync, rename), checking its size and stored SHA-256 against e; src
// names in for messages.
func (s *Store) copyFrom(rel string, in io.Reader, src string, e manifest.Entry) error {
	final := filepath.Join(s.dir, rel)
	f, err := os.CreateTemp(filepath.Dir(final), tempPrefix+filepath.Base(final)+"-*")
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(in, e.Size+1))
	if err != nil {
		return fail(fmt.Errorf("copying %s: %w", src, err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != e.Size || got != e.StoredSHA256 {
		return fail(&BadSourceError{Index: e.Index, Path: src, What: fmt.Sprintf("%d bytes with sha256 %s, the base's manifest says %d bytes with sha256 %s", n, got, e.Size, e.StoredSHA256)})
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), final); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
