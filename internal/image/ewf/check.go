package ewf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Report is what Check found: the hashes of the media read back, each
// hash the image records and what became of it, and every damage.
type Report struct {
	Segments []string
	Size     int64
	// Read tells whether every chunk was read back; the hashes below are
	// those of the media only then.
	Read   bool
	MD5    [16]byte
	SHA1   [20]byte
	SHA256 [32]byte
	// Stored lists every hash the digest and hash sections record, in
	// file order, including those that cannot be read (Err set).
	Stored []StoredHash
	// Problems lists every damage found, in the order found.
	Problems []error
}

// Matches reports whether the stored hash h is readable and equals the
// hash of the media read back.
func (rep *Report) Matches(h StoredHash) bool {
	if !rep.Read || h.Err != nil {
		return false
	}
	switch h.Algorithm {
	case "md5":
		return bytes.Equal(h.Sum, rep.MD5[:])
	case "sha1":
		return bytes.Equal(h.Sum, rep.SHA1[:])
	}
	return false
}

// OK reports whether the image is intact: no damage, every chunk read,
// and at least one stored hash, every one of them readable and matching.
func (rep *Report) OK() bool {
	if len(rep.Problems) > 0 || !rep.Read || len(rep.Stored) == 0 {
		return false
	}
	for _, h := range rep.Stored {
		if !rep.Matches(h) {
			return false
		}
	}
	return true
}

// Check verifies an image as strictly as the format allows, for the
// verify command. Beyond what Open and Verify check, it reads every
// section even where Open would stop at the first damage, checks every
// section's own checksum (header and header2 zlib streams, volume, disk
// and data, table and table2 headers and entries, digest, hash), that
// every table2 repeats its table, that table entries run in ascending
// order through their sectors section and each stored chunk has the size
// its kind needs, that data sections repeat the volume section, and reads
// back every chunk. Damage is reported in the Report; the error is only
// for a segment file that cannot be opened. progress, if not nil, is
// called as in Verify.
func Check(path string, progress func(done, total int64)) (*Report, error) {
	ext := filepath.Ext(path)
	_, lower, err := parseSegmentExt(ext)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	base := strings.TrimSuffix(path, ext)
	var openErr error
	var names []string
	r, err := openWith(func(n int) (*segment, error) {
		s, err := openSegment(base, lower, n)
		if err != nil {
			openErr = err
			return nil, err
		}
		names = append(names, s.name)
		return s, nil
	}, true)
	rep := &Report{Segments: names}
	if err != nil {
		if openErr != nil {
			return nil, err
		}
		rep.Problems = append(rep.Problems, err)
		return rep, nil
	}
	defer r.Close()
	rep.Size = r.Size()
	rep.Stored = r.stored
	for _, d := range r.damage {
		rep.Problems = append(rep.Problems, d.err)
	}
	if !r.haveMeta2 && r.meta == (Metadata{}) {
		rep.Problems = append(rep.Problems, errors.New("no header2 or header section holds the case metadata"))
	}
	if len(r.stored) == 0 {
		rep.Problems = append(rep.Problems, errors.New("no digest or hash section records a hash of the media"))
	}
	var chunks int64
	for _, t := range r.tables {
		chunks += int64(t.count)
	}
	if need := (r.size + int64(r.chunkSize) - 1) / int64(r.chunkSize); chunks != need || int64(r.vol.Chunks) != need {
		rep.Problems = append(rep.Problems, fmt.Errorf("%d bytes of media in %d-byte chunks need %d chunks; the volume section records %d, the tables list %d",
			r.size, r.chunkSize, need, r.vol.Chunks, chunks))
	}
	for _, t := range r.tables {
		if err := r.checkTable(t); err != nil {
			rep.Problems = append(rep.Problems, fmt.Errorf("%s: table section at offset %d: %w", r.segs[t.seg].name, t.off, err))
		}
	}
	vr, err := r.Verify(progress)
	if err != nil {
		rep.Problems = append(rep.Problems, err)
		return rep, nil
	}
	rep.Read = true
	rep.MD5, rep.SHA1, rep.SHA256 = vr.MD5, vr.SHA1, vr.SHA256
	return rep, nil
}

// openSegment opens segment n of the image at base.
func openSegment(base string, lower bool, n int) (*segment, error) {
	name, err := SegmentName(base, n)
	if err != nil {
		return nil, err
	}
	if lower {
		name = base + strings.ToLower(strings.TrimPrefix(name, base))
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &segment{name: name, r: f, size: st.Size(), c: f}, nil
}

// checkTable reads the entries of t and of its table2 mirror, which must
// both be intact and agree, and checks that they place the chunks one
// after another through the sectors section before the table, each
// stored in a size its kind allows.
func (r *Reader) checkTable(t *table) error {
	e, err := r.readEntries(t)
	if err != nil {
		return err
	}
	if t.mirror != nil {
		e2, err := r.readEntries(t.mirror)
		if err != nil {
			return fmt.Errorf("table2 at offset %d: %w", t.mirror.off, err)
		}
		if !slices.Equal(e, e2) {
			return fmt.Errorf("table2 at offset %d lists other chunk offsets", t.mirror.off)
		}
	}
	if t.start == 0 {
		return nil // chunks inside the table (EWF-S01): no sectors section to hold them
	}
	pos := t.start
	for i, v := range e {
		at := t.base + int64(v&^compressedFlag)
		if at != pos {
			return fmt.Errorf("entry %d: chunk at offset %d, want %d (where the previous one ends)", i, at, pos)
		}
		end := t.end
		if i+1 < len(e) {
			end = t.base + int64(e[i+1]&^compressedFlag)
		}
		if end <= at || end > t.end {
			return fmt.Errorf("entry %d: chunk from %d to %d, outside the sectors section before offset %d", i, at, end, t.end)
		}
		pos = end
	}
	return nil
}
