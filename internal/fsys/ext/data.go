package ext

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// Extent trees (fs/ext4/ext4_extents.h) and block maps.
const (
	extentMagic   = 0xF30A  // eh_magic
	extentEntry   = 12      // sizeof(struct ext4_extent_header), and of each entry
	maxDepth      = 5       // EXT4_MAX_EXTENT_DEPTH
	initMaxLen    = 32768   // EXT_INIT_MAX_LEN: a longer ee_len is an unwritten extent
	directBlocks  = 12      // EXT2_NDIR_BLOCKS
	maxExtentBlks = 1 << 32 // ext4 logical block numbers are 32 bits
)

// extent maps count blocks from the file's block logical to the volume's
// block physical; unwritten extents read as zeros.
type extent struct {
	logical, physical, count uint64
	unwritten                bool
}

// mapper collects one inode's extents within one call's work budget.
type mapper struct {
	f      *FS
	in     *inode
	limit  uint64 // logical blocks that hold the file's bytes
	out    []extent
	seen   map[uint64]bool // tree blocks visited
	nodes  int
	nextLB uint64 // the extents must come in logical order
	// all, for a scan, keeps every allocated block: unwritten extents
	// and blocks past the end of the file, with their physical blocks.
	// A scan also goes on past damage: a tree block or an extent it
	// cannot use is skipped, and counted in skipped with the first
	// reason in damage; only the budgets stop it (hard).
	all     bool
	tree    []uint64 // the tree blocks read, in order, when all
	damage  error
	skipped int
	hard    bool
}

// soft returns err, or for a scan records damage and returns nil so
// that the walk goes on.
func (m *mapper) soft(err error) error {
	if err == nil || !m.all || m.hard || !errors.Is(err, fsys.ErrCorrupt) {
		return err
	}
	if m.damage == nil {
		m.damage = err
	}
	m.skipped++
	return nil
}

func (f *FS) newMapper(in *inode, size uint64) *mapper {
	return &mapper{f: f, in: in, limit: (size + uint64(f.bs) - 1) / uint64(f.bs)}
}

// node reads the tree block blk once per call, within the budget.
func (m *mapper) node(blk uint64, what string) ([]byte, error) {
	f := m.f
	if m.seen[blk] {
		return nil, f.corrupt("inode %d: %s at block %d is reached twice (a cycle)", m.in.ino, what, blk)
	}
	if m.nodes >= maxCallNodes {
		m.hard = true
		return nil, f.corrupt("inode %d: more than %d tree blocks", m.in.ino, maxCallNodes)
	}
	if blk < f.firstData || !f.validBlocks(blk, 1) {
		return nil, f.corrupt("inode %d: %s at block %d is outside the file system", m.in.ino, what, blk)
	}
	if m.seen == nil {
		m.seen = map[uint64]bool{} // made on the first tree block: most inodes have none
	}
	m.seen[blk] = true
	m.nodes++
	if m.all {
		m.tree = append(m.tree, blk)
	}
	b, err := f.readBlock(blk)
	if err != nil {
		return nil, fmt.Errorf("inode %d: reading %s: %w", m.in.ino, what, err)
	}
	return b, nil
}

// add records count blocks at logical, in logical order.
func (m *mapper) add(logical, physical, count uint64, unwritten bool) error {
	f := m.f
	if logical < m.nextLB && !m.all {
		return f.corrupt("inode %d: extent at logical block %d overlaps or precedes the one before (ending at %d)", m.in.ino, logical, m.nextLB)
	}
	if (!unwritten || m.all) && (physical < f.firstData || !f.validBlocks(physical, count)) {
		return f.corrupt("inode %d: %d blocks at %d are outside the file system", m.in.ino, count, physical)
	}
	if m.all {
		unwritten = false // allocated all the same
	}
	m.nextLB = logical + count
	if logical >= m.limit {
		return nil // allocated past the end of the file (fallocate --keep-size)
	}
	count = min(count, m.limit-logical)
	if k := len(m.out) - 1; k >= 0 {
		p := &m.out[k]
		if p.logical+p.count == logical && p.unwritten == unwritten && (unwritten || p.physical+p.count == physical) {
			p.count += count
			return nil
		}
	}
	if len(m.out) >= fsys.MaxRuns {
		m.hard = true
		return f.corrupt("inode %d: more than %d extents", m.in.ino, fsys.MaxRuns)
	}
	m.out = append(m.out, extent{logical, physical, count, unwritten})
	return nil
}

// extentNode walks one node of an extent tree, whose depth must be want
// (-1 for the root in i_block).
func (m *mapper) extentNode(node []byte, want int) error {
	return m.soft(m.walkNode(node, want))
}

func (m *mapper) walkNode(node []byte, want int) error {
	f := m.f
	if ondisk.U16(node, 0) != extentMagic {
		return f.corrupt("inode %d: extent header: bad magic", m.in.ino)
	}
	entries, max, depth := int(ondisk.U16(node, 2)), int(ondisk.U16(node, 4)), int(ondisk.U16(node, 6))
	if depth > maxDepth || (want >= 0 && depth != want) {
		return f.corrupt("inode %d: extent node of depth %d (want %d, at most %d)", m.in.ino, depth, want, maxDepth)
	}
	if room := len(node)/extentEntry - 1; entries > max || max > room {
		return f.corrupt("inode %d: extent node with %d of %d entries, room for %d", m.in.ino, entries, max, room)
	}
	if want >= 0 && f.csum && !f.opt.IgnoreChecksums {
		tail := extentEntry * (max + 1)
		if tail+4 > len(node) {
			return f.corrupt("inode %d: extent block without room for its checksum", m.in.ino)
		}
		if got, stored := crc32c(f.inodeSeed(m.in), node[:tail]), ondisk.U32(node, tail); got != stored {
			return f.corrupt("inode %d: extent block checksum %08x, computed %08x", m.in.ino, stored, got)
		}
	}
	for k := range entries {
		e := node[extentEntry*(k+1):]
		lb := uint64(ondisk.U32(e, 0))
		if depth == 0 {
			n := uint64(ondisk.U16(e, 4))
			unwritten := n > initMaxLen
			if unwritten {
				n -= initMaxLen
			}
			if n == 0 {
				if err := m.soft(f.corrupt("inode %d: extent of no blocks", m.in.ino)); err != nil {
					return err
				}
				continue
			}
			if err := m.soft(m.add(lb, uint64(ondisk.U16(e, 6))<<32|uint64(ondisk.U32(e, 8)), n, unwritten)); err != nil {
				return err
			}
			continue
		}
		if lb >= m.limit {
			break // the rest of the tree maps blocks past the end of the file
		}
		child, err := m.node(uint64(ondisk.U16(e, 8))<<32|uint64(ondisk.U32(e, 4)), "extent block")
		if err != nil {
			if err := m.soft(err); err != nil {
				return err
			}
			continue
		}
		if err := m.extentNode(child, depth-1); err != nil {
			return err
		}
	}
	return nil
}

// blockMap walks an ext2/3 block map: 12 direct pointers, then a single,
// a double and a triple indirect block.
func (m *mapper) blockMap(iblock []byte) error {
	per := uint64(m.f.bs / 4)
	logical := uint64(0)
	for k := range directBlocks {
		if err := m.pointer(uint64(ondisk.U32(iblock, 4*k)), 0, logical); err != nil {
			return err
		}
		logical++
	}
	span := uint64(1)
	for level := 1; level <= 3; level++ {
		span *= per
		if logical >= m.limit {
			return nil
		}
		if err := m.pointer(uint64(ondisk.U32(iblock, 4*(directBlocks+level-1))), level, logical); err != nil {
			return err
		}
		logical += span
	}
	return nil
}

// pointer follows block pointer p for the blocks from logical: a data
// block at level 0, else an indirect block of that level.
func (m *mapper) pointer(p uint64, level int, logical uint64) error {
	if p == 0 || logical >= m.limit {
		return nil // a hole
	}
	if level == 0 {
		return m.soft(m.add(logical, p, 1, false))
	}
	blk, err := m.node(p, "indirect block")
	if err != nil {
		return m.soft(err)
	}
	span := uint64(1)
	for range level - 1 {
		span *= uint64(m.f.bs / 4)
	}
	for k := 0; k+4 <= len(blk) && logical < m.limit; k += 4 {
		if err := m.pointer(uint64(ondisk.U32(blk, k)), level-1, logical); err != nil {
			return err
		}
		logical += span
	}
	return nil
}

// maxBlocks returns how many logical blocks the inode can address.
func (f *FS) maxBlocks(in *inode) uint64 {
	if in.flags&flagExtents != 0 {
		return maxExtentBlks
	}
	per := uint64(f.bs / 4)
	return directBlocks + per + per*per + per*per*per
}

// walk walks the inode's extent tree or block map from i_block.
func (m *mapper) walk() error {
	iblock := m.in.raw[iBlock : iBlock+iBlockLen]
	if m.in.flags&flagExtents != 0 {
		return m.extentNode(iblock, -1)
	}
	return m.blockMap(iblock)
}

// extents maps the blocks of an inode that keeps its data in blocks.
func (f *FS) extents(in *inode, size uint64) ([]extent, error) {
	if size > f.maxBlocks(in)*uint64(f.bs) {
		return nil, f.corrupt("inode %d: size %d is more than its %d-byte blocks can address", in.ino, size, f.bs)
	}
	m := f.newMapper(in, size)
	if err := m.walk(); err != nil {
		return nil, err
	}
	return m.out, nil
}

// file is an open data stream: bytes held in the inode, or runs.
type file struct {
	f      *FS
	size   int64
	inline []byte // resident bytes, when the inode holds them
	runs   []fsys.Run
	res    bool
}

var _ fsys.File = (*file)(nil)

func (fl *file) Size() int64      { return fl.size }
func (fl *file) Resident() bool   { return fl.res }
func (fl *file) Runs() []fsys.Run { return append([]fsys.Run(nil), fl.runs...) }

// ReadAt reads as io.ReaderAt does; holes and unwritten extents read as
// zeros.
func (fl *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading at offset %d: negative offset", off)
	}
	if off >= fl.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > fl.size-off {
		p = p[:fl.size-off]
	}
	if fl.res {
		n := copy(p, fl.inline[off:])
		if n < want {
			return n, io.EOF
		}
		return n, nil
	}
	i := sort.Search(len(fl.runs), func(i int) bool { return fl.runs[i].Logical+fl.runs[i].Length > off })
	n := 0
	for n < len(p) && i < len(fl.runs) {
		r := fl.runs[i]
		at := off + int64(n) - r.Logical
		chunk := p[n : n+int(min(r.Length-at, int64(len(p)-n)))]
		if r.Sparse() {
			clear(chunk)
		} else if m, err := fl.f.r.ReadAt(chunk, r.Physical+at); m < len(chunk) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n + m, fmt.Errorf("reading %d bytes at volume offset %d: %w", len(chunk), r.Physical+at, err)
		}
		n += len(chunk)
		i++
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// runs turns extents into byte runs that cover size bytes, holes and
// unwritten extents with Physical -1.
func (f *FS) runs(in *inode, ext []extent, size int64) ([]fsys.Run, error) {
	var out []fsys.Run
	add := func(logical, physical, length int64) error {
		if length <= 0 {
			return nil
		}
		if k := len(out) - 1; k >= 0 {
			p := &out[k]
			if (p.Physical < 0 && physical < 0) || (p.Physical >= 0 && physical >= 0 && p.Physical+p.Length == physical) {
				p.Length += length
				return nil
			}
		}
		if len(out) >= fsys.MaxRuns {
			return f.corrupt("inode %d: more than %d runs", in.ino, fsys.MaxRuns)
		}
		out = append(out, fsys.Run{Logical: logical, Physical: physical, Length: length})
		return nil
	}
	pos := int64(0)
	for _, e := range ext {
		lo := int64(e.logical) * f.bs
		if err := add(pos, -1, lo-pos); err != nil {
			return nil, err
		}
		length := min(int64(e.count)*f.bs, size-lo)
		phys := int64(-1)
		if !e.unwritten {
			phys = int64(e.physical) * f.bs
		}
		if err := add(lo, phys, length); err != nil {
			return nil, err
		}
		pos = lo + length
	}
	if err := add(pos, -1, size-pos); err != nil {
		return nil, err
	}
	return out, nil
}

// Open opens a file's data: a regular file's bytes, a symbolic link's
// target, nothing for a device, FIFO or socket. ext keeps no named
// streams; a directory is ErrIsDir.
func (f *FS) Open(id fsys.ID, stream string) (fsys.File, error) {
	in, err := f.inode(uint64(id))
	if err != nil {
		return nil, err
	}
	if stream != "" {
		return nil, fmt.Errorf("%s: inode %d: stream %q: ext keeps no named streams: %w", f.typ, id, stream, fsys.ErrNotFound)
	}
	if in.mode&modeType == modeDir {
		return nil, fmt.Errorf("%s: inode %d: %w", f.typ, id, fsys.ErrIsDir)
	}
	return f.open(in)
}

// open opens an inode's data, whatever its type.
func (f *FS) open(in *inode) (*file, error) {
	if in.flags&flagEncrypt != 0 {
		return nil, f.unsupported("inode %d: encrypted (fscrypt)", in.ino)
	}
	if in.size > 1<<63-1 {
		return nil, f.corrupt("inode %d: size %d", in.ino, in.size)
	}
	size := int64(in.size)
	switch t := in.mode & modeType; {
	case t != modeRegular && t != modeDir && t != modeSymlink:
		if size != 0 {
			return nil, f.corrupt("inode %d: a device, FIFO or socket of %d bytes", in.ino, size)
		}
		return &file{f: f, res: true}, nil
	case in.flags&flagInlineData != 0:
		data, err := f.inlineData(in)
		if err != nil {
			return nil, err
		}
		if int64(len(data)) < size {
			return nil, f.corrupt("inode %d: size %d, but %d bytes of inline data", in.ino, size, len(data))
		}
		return &file{f: f, size: size, inline: data[:size], res: true}, nil
	case f.fastSymlink(in):
		return &file{f: f, size: size, inline: in.raw[iBlock : iBlock+size], res: true}, nil
	}
	ext, err := f.extents(in, in.size)
	if err != nil {
		return nil, err
	}
	runs, err := f.runs(in, ext, size)
	if err != nil {
		return nil, err
	}
	return &file{f: f, size: size, runs: runs}, nil
}
