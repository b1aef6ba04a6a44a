package ntfs

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// $STANDARD_INFORMATION and $FILE_NAME fields.
const (
	siCreated  = 0x00
	siModified = 0x08
	siChanged  = 0x10 // the MFT record's change time
	siAccessed = 0x18
	siFlags    = 0x20
	siMinLen   = 0x30 // NTFS 1.2's; NTFS 3 adds owner, security and USN fields

	dosReadOnly = 0x0001
	dosHidden   = 0x0002

	fnFlags     = 0x38
	fnReparse   = 0x3C // the reparse tag, for a file with a reparse point
	fnNameLen   = 0x40
	fnNamespace = 0x41
	fnName      = 0x42

	fnFlagReparse = 0x0400
	fnFlagDir     = 0x10000000 // FILE_ATTR_DUP_FILE_NAME_INDEX_PRESENT

	nsDOS = 2 // a DOS 8.3 name beside a long one

	tagMountPoint = 0xA0000003 // IO_REPARSE_TAG_MOUNT_POINT: a junction
	tagSymlink    = 0xA000000C // IO_REPARSE_TAG_SYMLINK
	tagDedup      = 0x80000013 // IO_REPARSE_TAG_DEDUP: the data lives in a chunk store
	tagWOF        = 0x80000017 // IO_REPARSE_TAG_WOF: the data is in a compressed stream

	// ntEpochDelta is the 100 ns intervals from 1601-01-01 (NTFS times)
	// to 1970-01-01.
	ntEpochDelta = 116444736000000000
)

// file is a base record with the attributes of its extension records.
type file struct {
	rec   *record
	attrs []attr
}

// load reads file id's base record and, through its attribute list, the
// attributes in its extension records, each extension record once.
func (fs *FS) load(id fsys.ID) (*file, error) {
	rec, err := fs.readRecord(uint64(id))
	if err != nil {
		return nil, err
	}
	if rec.flags&recFlagInUse == 0 {
		return nil, fmt.Errorf("ntfs: MFT record %d: %w: %w", id, errNotInUse, fsys.ErrNotFound)
	}
	if rec.ext {
		return nil, fmt.Errorf("ntfs: MFT record %d: an extension record of record %d: %w", id, rec.base, fsys.ErrNotFound)
	}
	f := &file{rec: rec}
	list, ok := findAttr(rec.attrs, attrAttrList, "")
	if !ok {
		f.attrs = rec.attrs
		return f, nil
	}
	for _, a := range rec.attrs {
		if a.typ != attrAttrList {
			f.attrs = append(f.attrs, a)
		}
	}
	what := fmt.Sprintf("MFT record %d", id)
	entries, err := fs.attrList(list, what)
	if err != nil {
		return nil, err
	}
	ids := tskIDs(entries, uint64(id), list.id)
	exts := map[uint64]*record{}
	used := map[[2]uint64]bool{}
	for _, e := range entries {
		if e.ref == uint64(id) {
			continue // an attribute of the base record, taken above
		}
		ext, ok := exts[e.ref]
		if !ok {
			if ext, err = fs.readRecord(e.ref); err != nil {
				return nil, fmt.Errorf("%s: attribute list: %w", what, notFoundIsCorrupt(err))
			}
			if ext.flags&recFlagInUse == 0 || !ext.ext || ext.base != uint64(id) {
				return nil, corruptf("%s: attribute list names record %d, whose base is %d (in use: %t)", what, e.ref, ext.base, ext.flags&recFlagInUse != 0)
			}
			if ext.seq != e.seq {
				return nil, corruptf("%s: attribute list names record %d with sequence %d; the record has %d (reused)", what, e.ref, e.seq, ext.seq)
			}
			exts[e.ref] = ext
		}
		k := -1
		for i, a := range ext.attrs {
			if a.typ == e.typ && a.name == e.name && (a.resident || a.startVCN == e.startVCN) && !used[[2]uint64{e.ref, uint64(i)}] {
				k = i
				break
			}
		}
		if k < 0 {
			return nil, corruptf("%s: attribute list names type 0x%x %q at VCN %d in record %d, which lacks it", what, e.typ, e.name, e.startVCN, e.ref)
		}
		used[[2]uint64{e.ref, uint64(k)}] = true
		a := ext.attrs[k]
		if n, ok := ids[attrKey{a.typ, a.name}]; ok {
			a.id = n
		}
		f.attrs = append(f.attrs, a)
	}
	return f, nil
}

type attrKey struct {
	typ  uint32
	name string
}

// tskIDs numbers the attributes that live in extension records as Sleuth
// Kit does, so that addresses match fls: attribute instances are unique
// only within one record, so it gives each attribute (by type and name)
// whose first list entry is not in the base record the next number
// after the largest id in the list (or the list's own id), in list
// order.
func tskIDs(entries []listEntry, base uint64, listID uint16) map[attrKey]uint16 {
	next := listID
	first := map[attrKey]uint64{}
	var order []attrKey
	for _, e := range entries {
		next = max(next, e.id)
		k := attrKey{e.typ, e.name}
		if _, ok := first[k]; !ok {
			first[k] = e.ref
			order = append(order, k)
		}
	}
	ids := map[attrKey]uint16{}
	for _, k := range order {
		if first[k] != base {
			next++
			ids[k] = next
		}
	}
	return ids
}

// notFoundIsCorrupt turns a missing record that a structure names into
// corruption.
func notFoundIsCorrupt(err error) error {
	if errors.Is(err, fsys.ErrNotFound) && !errors.Is(err, fsys.ErrCorrupt) {
		return fmt.Errorf("%w: %w", err, fsys.ErrCorrupt)
	}
	return err
}

// reparseTag returns the tag of the file's reparse point, or 0.
func (f *file) reparseTag() uint32 {
	if a, ok := findAttr(f.attrs, attrReparse, ""); ok && a.resident && len(a.value) >= 8 {
		return ondisk.U32(a.value, 0)
	}
	return 0
}

func (f *file) typ() fsys.Type {
	switch tag := f.reparseTag(); {
	case tag == tagSymlink || tag == tagMountPoint:
		return fsys.TypeSymlink
	case f.rec.flags&recFlagDir != 0:
		return fsys.TypeDir
	}
	return fsys.TypeRegular
}

// ntTime converts an NTFS time (100 ns intervals since 1601) to a time;
// 0 is the zero time.
func ntTime(t uint64) time.Time {
	if t == 0 {
		return time.Time{}
	}
	d := int64(t - ntEpochDelta) // wraps for times before 1970: the arithmetic stays exact
	if t < ntEpochDelta {
		d = -int64(ntEpochDelta - t)
	}
	return time.Unix(d/10000000, d%10000000*100).UTC()
}

// Stat implements fsys.FS. Addr, Mode and a directory's Size follow Sleuth
// Kit (fls -m): Addr names the unnamed $DATA attribute ("64-128-2") or a
// directory's $I30 $INDEX_ROOT ("5-144-6"), Mode is r-x for everyone
// plus read unless read-only and write unless hidden, and a directory's
// Size is its $INDEX_ROOT's. UID and GID are 0: NTFS keeps owners as
// SIDs in $Secure.
func (fs *FS) Stat(id fsys.ID) (fsys.Stat, error) {
	f, err := fs.load(id)
	if err != nil {
		return fsys.Stat{}, err
	}
	st := fsys.Stat{ID: id, Addr: strconv.FormatUint(uint64(id), 10), Type: f.typ(), Nlink: uint32(f.rec.links)}
	if si, ok := findAttr(f.attrs, attrStandardInfo, ""); ok && si.resident && len(si.value) >= siMinLen {
		v := si.value
		st.Crtime, st.Mtime = ntTime(ondisk.U64(v, siCreated)), ntTime(ondisk.U64(v, siModified))
		st.Ctime, st.Atime = ntTime(ondisk.U64(v, siChanged)), ntTime(ondisk.U64(v, siAccessed))
		dos := ondisk.U32(v, siFlags)
		st.Mode = 0o111
		if dos&dosReadOnly == 0 {
			st.Mode |= 0o444
		}
		if dos&dosHidden == 0 {
			st.Mode |= 0o222
		}
	}
	if f.rec.flags&recFlagDir != 0 {
		if ir, ok := findAttr(f.attrs, attrIndexRoot, "$I30"); ok {
			st.Addr = fmt.Sprintf("%d-%d-%d", id, attrIndexRoot, ir.id)
			st.Size = int64(len(ir.value))
		}
	}
	seen := map[string]bool{}
	for _, a := range f.attrs {
		if a.typ != attrData || seen[a.name] || (!a.resident && a.startVCN != 0) {
			continue
		}
		seen[a.name] = true
		if a.name != "" {
			st.Streams = append(st.Streams, a.name)
			continue
		}
		if f.rec.flags&recFlagDir == 0 {
			st.Addr = fmt.Sprintf("%d-%d-%d", id, attrData, a.id)
			st.Size = a.dataSize
			if a.resident {
				st.Size = int64(len(a.value))
			}
		}
	}
	if st.Type == fsys.TypeSymlink {
		target, err := f.target(id)
		if err != nil {
			return fsys.Stat{}, err
		}
		st.Size = int64(len(target))
	}
	return st, nil
}

// Open implements fsys.FS: the unnamed $DATA for stream "", else the
// $DATA attribute of that name.
func (fs *FS) Open(id fsys.ID, name string) (fsys.File, error) {
	f, err := fs.load(id)
	if err != nil {
		return nil, err
	}
	if name == "" && f.rec.flags&recFlagDir != 0 {
		return nil, fmt.Errorf("ntfs: MFT record %d: %w", id, fsys.ErrIsDir)
	}
	what := fmt.Sprintf("MFT record %d $DATA", id)
	if name != "" {
		what += " " + strconv.Quote(name)
	}
	pieces := dataPieces(f.attrs, attrData, name)
	if len(pieces) == 0 {
		return nil, fmt.Errorf("ntfs: %s: %w", what, fsys.ErrNotFound)
	}
	if name == "" {
		switch tag := f.reparseTag(); tag {
		case tagWOF, tagDedup:
			return nil, fmt.Errorf("ntfs: %s: data behind reparse tag 0x%08x (WOF or deduplication): %w", what, tag, fsys.ErrUnsupported)
		}
	}
	if len(pieces) > 1 && pieces[0].resident {
		return nil, corruptf("%s: %d resident attributes", what, len(pieces))
	}
	s, err := newStream(fs, what, pieces, false)
	if err != nil {
		return nil, err
	}
	s.addr = fmt.Sprintf("%d-%d-%d", id, attrData, pieces[0].id)
	for _, p := range pieces {
		if !p.resident && p.startVCN == 0 {
			s.addr = fmt.Sprintf("%d-%d-%d", id, attrData, p.id)
		}
	}
	return s, nil
}

// Readlink implements fsys.FS: a symbolic link's or junction's print
// name as stored (with Windows separators), or its substitute name when
// the print name is empty.
func (fs *FS) Readlink(id fsys.ID) (string, error) {
	f, err := fs.load(id)
	if err != nil {
		return "", err
	}
	return f.target(id)
}

func (f *file) target(id fsys.ID) (string, error) {
	a, ok := findAttr(f.attrs, attrReparse, "")
	tag := f.reparseTag()
	if !ok || (tag != tagSymlink && tag != tagMountPoint) {
		return "", fmt.Errorf("ntfs: MFT record %d: not a symbolic link or junction: %w", id, fsys.ErrUnsupported)
	}
	v := a.value
	dlen := int(ondisk.U16(v, 4))
	if 8+dlen > len(v) {
		return "", corruptf("MFT record %d: reparse data of %d bytes in a %d-byte attribute", id, dlen, len(v))
	}
	d := v[8 : 8+dlen]
	buf := 8 // a junction's path buffer follows four offsets and lengths
	if tag == tagSymlink {
		buf = 12 // a symbolic link's adds a flags field
	}
	name := func(off, n int) (string, error) {
		if buf+off+n > len(d) || n%2 != 0 || n > fsys.MaxSymlink {
			return "", corruptf("MFT record %d: reparse point name of %d bytes at %d in %d", id, n, off, len(d))
		}
		return utf16String(d[buf+off : buf+off+n]), nil
	}
	sub, err := name(int(ondisk.U16(d, 0)), int(ondisk.U16(d, 2)))
	if err != nil {
		return "", err
	}
	print, err := name(int(ondisk.U16(d, 4)), int(ondisk.U16(d, 6)))
	if err != nil {
		return "", err
	}
	if print != "" {
		return print, nil
	}
	return sub, nil
}
