package xfs

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// The extent B+tree (bmbt): its root in the inode's fork (struct
// xfs_bmdr_block: level, numrecs, keys, pointers), its other blocks with
// the v5 long-format header (struct xfs_btree_block, 72 bytes).
const (
	bmbtMagic    = 0x424d4133 // "BMA3"
	bmbtMagicV4  = 0x424d4150 // "BMAP": v4 blocks, without CRC, owner or address
	bmbtHdrSize  = 72
	bmbtHdrV4    = 24
	bmbtCRCOff   = 64
	bmdrHdrSize  = 4
	bmbtKeyPtr   = 16 // an 8-byte key (file offset) and an 8-byte block pointer
	maxBmbtLevel = 9  // XFS_BM_MAXLEVELS for 64-bit extent counts is 9
)

// extent maps count blocks from file block off to file-system block
// fsb; unwritten extents are allocated but read as zeros.
type extent struct {
	off, fsb, count uint64
	unwritten       bool
	pos             int64 // byte offset of fsb on the volume
}

func (e extent) end() uint64 { return e.off + e.count }

// decodeExtent unpacks a 128-bit extent record: 1 bit unwritten flag, 54
// bits file offset, 52 bits file-system block, 21 bits block count.
func decodeExtent(b []byte) extent {
	hi := binary.BigEndian.Uint64(b)
	lo := binary.BigEndian.Uint64(b[8:])
	return extent{
		unwritten: hi>>63 != 0,
		off:       (hi &^ (1 << 63)) >> 9,
		fsb:       (hi&0x1ff)<<43 | lo>>21,
		count:     lo & maxExtentCount,
	}
}

// mapper gathers a fork's extents in file order, checking each one.
type mapper struct {
	f    *FS
	ino  uint64
	exts []extent
	seen map[uint64]bool // bmbt blocks visited
	b    *budget
}

func (m *mapper) add(e extent) error {
	if e.count == 0 || e.end() > maxFileBlocks || e.end() > (1<<63-1)>>m.f.sb.blockLog {
		return fmt.Errorf("extent at block %d of %d blocks: %w", e.off, e.count, fsys.ErrCorrupt)
	}
	if n := len(m.exts); n > 0 && e.off < m.exts[n-1].end() {
		return fmt.Errorf("extent at block %d overlaps or precedes the one before (ends at %d): %w", e.off, m.exts[n-1].end(), fsys.ErrCorrupt)
	}
	if len(m.exts) >= fsys.MaxRuns {
		return fmt.Errorf("more than %d extents: %w", fsys.MaxRuns, fsys.ErrCorrupt)
	}
	pos, err := m.f.fsbPos(e.fsb, e.count)
	if err != nil {
		return fmt.Errorf("extent at block %d: %w", e.off, err)
	}
	e.pos = pos
	m.exts = append(m.exts, e)
	return nil
}

// extents returns the data fork's extents of an inode in extents or
// btree format, in file order.
func (f *FS) extents(in *inode, b *budget) ([]extent, error) {
	m := &mapper{f: f, ino: in.ino, b: b}
	switch in.format {
	case fmtExtents:
		if in.nextents > uint64(len(in.fork)/extRecSize) {
			return nil, fmt.Errorf("xfs: inode %d: %d extents do not fit in its fork: %w", in.ino, in.nextents, fsys.ErrCorrupt)
		}
		for i := uint64(0); i < in.nextents; i++ {
			if err := m.add(decodeExtent(in.fork[i*extRecSize:])); err != nil {
				return nil, fmt.Errorf("xfs: inode %d: extent list: %w", in.ino, err)
			}
		}
	case fmtBtree:
		if err := m.root(in.fork); err != nil {
			return nil, fmt.Errorf("xfs: inode %d: extent btree: %w", in.ino, err)
		}
		if uint64(len(m.exts)) != in.nextents {
			return nil, fmt.Errorf("xfs: inode %d: extent btree: %d extents, the inode counts %d: %w", in.ino, len(m.exts), in.nextents, fsys.ErrCorrupt)
		}
	default:
		return nil, fmt.Errorf("xfs: inode %d: data fork format %d where extents are expected: %w", in.ino, in.format, fsys.ErrCorrupt)
	}
	return m.exts, nil
}

// root walks the B+tree from its root in the inode's fork.
func (m *mapper) root(fork []byte) error {
	if len(fork) < bmdrHdrSize+bmbtKeyPtr {
		return fmt.Errorf("root of %d bytes: %w", len(fork), fsys.ErrCorrupt)
	}
	level := int(binary.BigEndian.Uint16(fork))
	n := int(binary.BigEndian.Uint16(fork[2:]))
	maxrecs := (len(fork) - bmdrHdrSize) / bmbtKeyPtr
	if level < 1 || level > maxBmbtLevel || n < 1 || n > maxrecs {
		return fmt.Errorf("root: level %d with %d records (at most %d): %w", level, n, maxrecs, fsys.ErrCorrupt)
	}
	ptrs := fork[bmdrHdrSize+maxrecs*8:]
	for i := 0; i < n; i++ {
		if err := m.node(binary.BigEndian.Uint64(ptrs[i*8:]), level-1); err != nil {
			return err
		}
	}
	return nil
}

// node reads the B+tree block fsb, which must be at level, and gathers
// the extents below it.
func (m *mapper) node(fsb uint64, level int) error {
	if m.seen == nil {
		m.seen = map[uint64]bool{}
	}
	if m.seen[fsb] {
		return fmt.Errorf("block %d is met twice (a cycle): %w", fsb, fsys.ErrCorrupt)
	}
	m.seen[fsb] = true
	if err := m.b.spend("extent btree", m.f.sb.blockSize); err != nil {
		return err
	}
	pos, err := m.f.fsbPos(fsb, 1)
	if err != nil {
		return fmt.Errorf("pointer: %w", err)
	}
	bs := int(m.f.sb.blockSize)
	buf := make([]byte, bs)
	if err := m.f.readFull(buf, pos); err != nil {
		return fmt.Errorf("block %d: %w", fsb, err)
	}
	if err := m.f.checkBtreeBlock(buf, pos, m.ino); err != nil {
		return fmt.Errorf("block %d: %w", fsb, err)
	}
	be := binary.BigEndian
	gotLevel := int(be.Uint16(buf[4:]))
	n := int(be.Uint16(buf[6:]))
	hdr := m.f.bmbtHdr()
	maxrecs := (bs - hdr) / bmbtKeyPtr
	if gotLevel != level || n < 1 || n > maxrecs {
		return fmt.Errorf("block %d: level %d (want %d) with %d records (at most %d): %w", fsb, gotLevel, level, n, maxrecs, fsys.ErrCorrupt)
	}
	if level == 0 {
		for i := 0; i < n; i++ {
			if err := m.add(decodeExtent(buf[hdr+i*extRecSize:])); err != nil {
				return fmt.Errorf("block %d: %w", fsb, err)
			}
		}
		return nil
	}
	ptrs := buf[hdr+maxrecs*8:]
	for i := 0; i < n; i++ {
		if err := m.node(be.Uint64(ptrs[i*8:]), level-1); err != nil {
			return err
		}
	}
	return nil
}

// bmbtHdr is the size of a B+tree block's header.
func (f *FS) bmbtHdr() int {
	if f.sb.v5 {
		return bmbtHdrSize
	}
	return bmbtHdrV4
}

// checkBtreeBlock checks a long-format B+tree block read at pos: its
// magic and, on v5, its CRC, UUID, owner and the disk address it records.
func (f *FS) checkBtreeBlock(buf []byte, pos int64, owner uint64) error {
	be := binary.BigEndian
	if !f.sb.v5 {
		if m := be.Uint32(buf); m != bmbtMagicV4 {
			return fmt.Errorf("bad magic %#x: %w", m, fsys.ErrCorrupt)
		}
		return nil
	}
	if m := be.Uint32(buf); m != bmbtMagic {
		return fmt.Errorf("bad magic %#x: %w", m, fsys.ErrCorrupt)
	}
	if !f.crcOK(buf, bmbtCRCOff) {
		return fmt.Errorf("CRC mismatch: %w", fsys.ErrCorrupt)
	}
	if !bytes.Equal(buf[40:56], f.sb.uuid[:]) {
		return fmt.Errorf("UUID of another file system: %w", fsys.ErrCorrupt)
	}
	if got := be.Uint64(buf[56:]); got != owner {
		return fmt.Errorf("owned by inode %d: %w", got, fsys.ErrCorrupt)
	}
	if got := be.Uint64(buf[24:]); got != uint64(pos)/512 {
		return fmt.Errorf("records disk address %d, read at %d: %w", got, pos/512, fsys.ErrCorrupt)
	}
	return nil
}
