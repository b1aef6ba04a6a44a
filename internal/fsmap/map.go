package fsmap

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
)

// Role says what an extent holds for its owner.
type Role uint8

const (
	// Data is a file's contents: its data blocks or clusters, and the
	// data an ext inode or an NTFS record holds inline or resident.
	Data Role = iota + 1
	// Metadata is everything else an owner has on disk: its inode or MFT
	// record, extent-tree and indirect blocks, directory entries, extended
	// attributes, and every byte of a file-system structure.
	Metadata
)

func (r Role) String() string {
	switch r {
	case Data:
		return "data"
	case Metadata:
		return "metadata"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Owner kinds.
const (
	KindFile      = "file"
	KindDir       = "dir"
	KindSymlink   = "symlink"
	KindSpecial   = "special"   // device, FIFO or socket
	KindStructure = "structure" // a file-system structure, not a user file
)

// Owner is a file, a directory or a named file-system structure.
type Owner struct {
	// Name is the absolute path of a file ("/etc/passwd"), or the name of
	// a structure ("ext4:inode table", "$MFT", "$Extend/$UsnJrnl"). A file
	// no directory names is "<inode N>" (ext) or "<orphan N>/name" (NTFS,
	// N being the missing parent record).
	Name string
	// ID is the inode number (ext) or MFT record number (NTFS); 0 for a
	// structure that has none.
	ID   uint64
	Kind string
	// Record is where a file's ext inode or NTFS base record lies (its
	// first piece when the record spans clusters); zero for structures.
	Record Range
}

// Extent is a byte range of the volume and what it holds for its owner.
type Extent struct {
	Off, Len int64 // bytes from the start of the volume
	Owner    int   // index into Map.Owners
	Role     Role
}

// End returns the offset just past the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// Map is what a file system says about who owns its bytes.
type Map struct {
	// Type is the file system: "ext2", "ext3", "ext4" or "ntfs".
	Type string
	// Size is how many bytes the file system says it spans.
	Size int64
	// Unit is its allocation unit: the ext block or NTFS cluster size.
	Unit int64
	// Warnings name structures that were damaged, truncated or out of
	// range and were skipped.
	Warnings []string

	owners  []Owner
	extents []Extent // by Off, then Owner, then Role
	reach   []int64  // reach[i] = the largest End of extents[:i+1]
	byName  map[string]int
}

// Owners returns every owner; the slice must not be modified.
func (m *Map) Owners() []Owner { return m.owners }

// Owner returns owner i.
func (m *Map) Owner(i int) Owner { return m.owners[i] }

// Find returns the owner with the given name.
func (m *Map) Find(name string) (int, bool) {
	i, ok := m.byName[name]
	return i, ok
}

// Extents returns how many extents the map holds.
func (m *Map) Extents() int { return len(m.extents) }

// ExtentsOf returns the extents of owner i in offset order.
func (m *Map) ExtentsOf(i int) []Extent {
	var out []Extent
	for _, e := range m.extents {
		if e.Owner == i {
			out = append(out, e)
		}
	}
	return out
}

// Lookup returns the extents that overlap [off, off+n), clipped to it, in
// offset order.
func (m *Map) Lookup(off, n int64) []Extent {
	end := off + n
	if n <= 0 || end < off {
		return nil
	}
	// reach ascends, so the first extent that can overlap is the first
	// whose reach passes off.
	i := sort.Search(len(m.reach), func(i int) bool { return m.reach[i] > off })
	var out []Extent
	for ; i < len(m.extents) && m.extents[i].Off < end; i++ {
		e := m.extents[i]
		if e.End() <= off {
			continue
		}
		lo, hi := max(e.Off, off), min(e.End(), end)
		out = append(out, Extent{Off: lo, Len: hi - lo, Owner: e.Owner, Role: e.Role})
	}
	return out
}

// ErrUnknown is returned by Build for a volume that holds neither an
// ext2/3/4 nor an NTFS file system.
var ErrUnknown = errors.New("no ext2/3/4 or NTFS file system")

// Range is a byte range of the volume.
type Range struct{ Off, Len int64 }

// End returns the offset just past the range.
func (r Range) End() int64 { return r.Off + r.Len }

// Options tune Build.
type Options struct {
	// Keep, when not nil, limits the map to these byte ranges: extents
	// are clipped to them, and a file with no byte in them is left out
	// and not named. The whole file system is still read to find every
	// file, but memory then grows with what Keep covers, not with the
	// volume: a diff keeps only the changed blocks.
	Keep []Range
}

// Build maps the ext2/3/4 or NTFS file system that starts at offset 0 of
// r, a volume of size bytes. Damaged structures become Warnings; errors
// are read errors of r, a file system too damaged to map at all, and
// ErrUnknown.
func Build(r io.ReaderAt, size int64, o Options) (*Map, error) {
	rd := newReader(r, size)
	head, err := rd.read(0, 2048)
	if err != nil {
		return nil, fmt.Errorf("reading the volume's first sectors: %w", err)
	}
	keep := normalize(o.Keep)
	switch {
	case isExt(head):
		return buildExt(rd, keep)
	case isNTFS(head):
		return buildNTFS(rd, keep)
	}
	return nil, ErrUnknown
}

// normalize sorts and merges ranges; nil stays nil (keep everything).
func normalize(rs []Range) []Range {
	if rs == nil {
		return nil
	}
	out := make([]Range, 0, len(rs))
	for _, r := range rs {
		if r.Len > 0 && r.Off >= 0 && r.End() > r.Off {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Range) int { return cmpInt64(a.Off, b.Off) })
	merged := out[:0]
	for _, r := range out {
		if k := len(merged); k > 0 && merged[k-1].End() >= r.Off {
			merged[k-1].Len = max(merged[k-1].End(), r.End()) - merged[k-1].Off
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// maxExtents bounds a map: 2^26 extents are 2 GiB of memory.
const maxExtents = 1 << 26

var errTooManyExtents = errors.New("more extents than the volume has room for: file system structures are implausible")

// builder accumulates owners and extents.
type builder struct {
	m       *Map
	keep    []Range
	limit   int
	ownerOf map[string]int // structures by name
	err     error
}

func newBuilder(typ string, size, unit int64, keep []Range) *builder {
	// A real file system has at most one extent per 512-byte sector and
	// record; size/16 leaves room for any of them and stops hostile
	// structures that name the same blocks over and over.
	limit := int(min(maxExtents, size/16+1<<16))
	return &builder{m: &Map{Type: typ, Size: size, Unit: unit}, keep: keep, limit: limit, ownerOf: map[string]int{}}
}

func (b *builder) warnf(format string, args ...any) {
	const maxWarnings = 100 // enough to diagnose; a hostile volume must not flood the report
	if len(b.m.Warnings) < maxWarnings {
		b.m.Warnings = append(b.m.Warnings, fmt.Sprintf(format, args...))
	} else if len(b.m.Warnings) == maxWarnings {
		b.m.Warnings = append(b.m.Warnings, "further warnings suppressed")
	}
}

// owner adds an owner and returns its index.
func (b *builder) owner(o Owner) int {
	b.m.owners = append(b.m.owners, o)
	return len(b.m.owners) - 1
}

// structure returns the owner index of the named structure, adding it
// on first use.
func (b *builder) structure(name string) int {
	if i, ok := b.ownerOf[name]; ok {
		return i
	}
	i := b.owner(Owner{Name: name, Kind: KindStructure})
	b.ownerOf[name] = i
	return i
}

// named returns an owner maker for the named structure.
func (b *builder) named(name string) func() int { return func() int { return b.structure(name) } }

// add records that the owner mk makes holds [off, off+n) in role. The
// range is clipped to the file system and to Keep; mk is called only if
// anything is left, so files outside Keep are never made.
func (b *builder) add(off, n int64, role Role, mk func() int) {
	if n <= 0 || off < 0 || off >= b.m.Size || b.err != nil {
		return
	}
	n = min(n, b.m.Size-off)
	if b.keep == nil {
		b.put(off, n, mk(), role)
		return
	}
	end := off + n
	i := sort.Search(len(b.keep), func(i int) bool { return b.keep[i].End() > off })
	for ; i < len(b.keep) && b.keep[i].Off < end; i++ {
		lo, hi := max(off, b.keep[i].Off), min(end, b.keep[i].End())
		b.put(lo, hi-lo, mk(), role)
	}
}

// put appends an extent, merging it with the last when it continues it.
func (b *builder) put(off, n int64, owner int, role Role) {
	if k := len(b.m.extents); k > 0 {
		last := &b.m.extents[k-1]
		if last.Owner == owner && last.Role == role && last.End() == off {
			last.Len += n
			return
		}
	}
	if len(b.m.extents) >= b.limit {
		b.err = errTooManyExtents
		return
	}
	b.m.extents = append(b.m.extents, Extent{Off: off, Len: n, Owner: owner, Role: role})
}

// finish sorts and merges the extents and indexes the owners by name.
func (b *builder) finish() (*Map, error) {
	if b.err != nil {
		return nil, b.err
	}
	m := b.m
	slices.SortFunc(m.extents, func(x, y Extent) int {
		switch {
		case x.Off != y.Off:
			return cmpInt64(x.Off, y.Off)
		case x.Owner != y.Owner:
			return x.Owner - y.Owner
		}
		return int(x.Role) - int(y.Role)
	})
	out := m.extents[:0]
	for _, e := range m.extents {
		if k := len(out); k > 0 {
			last := &out[k-1]
			if last.Owner == e.Owner && last.Role == e.Role && last.End() >= e.Off {
				last.Len = max(last.End(), e.End()) - last.Off
				continue
			}
		}
		out = append(out, e)
	}
	m.extents = slices.Clip(out)
	m.reach = make([]int64, len(m.extents))
	var reach int64
	for i, e := range m.extents {
		reach = max(reach, e.End())
		m.reach[i] = reach
	}
	m.byName = make(map[string]int, len(m.owners))
	for i, o := range m.owners {
		if _, dup := m.byName[o.Name]; !dup {
			m.byName[o.Name] = i
		}
	}
	return m, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
