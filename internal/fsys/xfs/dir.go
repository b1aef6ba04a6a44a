package xfs

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// Directories (version 2 format). A short-form directory lives in the
// inode's fork; the others keep their entries in data blocks in the
// first 32 GiB of the directory's address space (a single-block
// directory's one block has the "XDB3" magic, "XD2B" on v4, and ends
// with its hash index; the data blocks of leaf, node and B+tree
// directories have "XDD3", "XD2D" on v4; v5 blocks start with a header
// that records their CRC, address, UUID and owner). Leaf, node and free-index blocks lie above 32 GiB and
// only index the names, so listing a directory reads its data blocks.
const (
	dirBlockMagic = 0x58444233 // "XDB3": single-block directory
	dirDataMagic  = 0x58444433 // "XDD3": data block of a larger directory
	dirHdrSize    = 64         // struct xfs_dir3_data_hdr
	dirBlockV4    = 0x58443242 // "XD2B": v4 single-block directory
	dirDataV4     = 0x58443244 // "XD2D": v4 data block
	dirHdrV4      = 16         // struct xfs_dir2_data_hdr: magic, best free
	dirCRCOff     = 4
	dirLeafOffset = 1 << 35 // XFS_DIR2_LEAF_OFFSET: where the data space ends
	dirFreeTag    = 0xffff  // an unused region of a data block
	dirTailSize   = 8       // struct xfs_dir2_block_tail: count, stale
	dirLeafEnt    = 8       // struct xfs_dir2_leaf_entry: hash, address
)

// ftypes maps the file type a directory entry records (XFS_DIR3_FT_*).
var ftypes = [...]fsys.Type{
	1: fsys.TypeRegular,
	2: fsys.TypeDir,
	3: fsys.TypeCharDev,
	4: fsys.TypeBlockDev,
	5: fsys.TypeFIFO,
	6: fsys.TypeSocket,
	7: fsys.TypeSymlink,
}

func (f *FS) entryType(ft byte) fsys.Type {
	if !f.sb.ftype || int(ft) >= len(ftypes) {
		return fsys.TypeUnknown
	}
	return ftypes[ft]
}

// ReadDir returns a directory's entries in on-disk order, without "."
// and "..".
func (f *FS) ReadDir(id fsys.ID) ([]fsys.DirEntry, error) {
	in, err := f.readInode(uint64(id))
	if err != nil {
		return nil, err
	}
	if in.typ() != fsys.TypeDir {
		return nil, fmt.Errorf("xfs: inode %d: %w", id, fsys.ErrNotDir)
	}
	if in.format == fmtLocal {
		ents, err := f.shortDir(in)
		if err != nil {
			return nil, fmt.Errorf("xfs: inode %d: short-form directory: %w", id, err)
		}
		return ents, nil
	}
	if in.size > dirLeafOffset {
		// A directory's size is that of its data space, below the leaves.
		return nil, fmt.Errorf("xfs: inode %d: directory of %d bytes, beyond the %d of its data space: %w", id, in.size, int64(dirLeafOffset), fsys.ErrCorrupt)
	}
	b := newBudget()
	exts, err := f.extents(in, b)
	if err != nil {
		return nil, err
	}
	return f.blockDir(in, exts, b)
}

// shortDir parses a short-form directory: a header (count, i8count,
// parent) and entries (name length, offset, name, file type, inode
// number of 4 bytes, or 8 when i8count is not zero).
func (f *FS) shortDir(in *inode) ([]fsys.DirEntry, error) {
	if in.size < 6 || in.size > int64(len(in.fork)) {
		return nil, fmt.Errorf("size %d outside its fork of %d bytes: %w", in.size, len(in.fork), fsys.ErrCorrupt)
	}
	b := in.fork[:in.size]
	count := int(b[0])
	inoLen := 4
	if b[1] != 0 {
		inoLen = 8
	}
	p := 2 + inoLen
	ftLen := 0
	if f.sb.ftype {
		ftLen = 1
	}
	ents := make([]fsys.DirEntry, 0, count)
	for i := 0; i < count; i++ {
		if p+3 > len(b) {
			return nil, fmt.Errorf("entry %d beyond the directory's %d bytes: %w", i, len(b), fsys.ErrCorrupt)
		}
		nl := int(b[p])
		q := p + 3
		if nl == 0 || q+nl+ftLen+inoLen > len(b) {
			return nil, fmt.Errorf("entry %d: name of %d bytes beyond the directory's %d bytes: %w", i, nl, len(b), fsys.ErrCorrupt)
		}
		name := string(b[q : q+nl])
		q += nl
		t := fsys.TypeUnknown
		if ftLen != 0 {
			t = f.entryType(b[q])
		}
		q += ftLen
		var ino uint64
		if inoLen == 4 {
			ino = uint64(binary.BigEndian.Uint32(b[q:]))
		} else {
			ino = binary.BigEndian.Uint64(b[q:]) & (1<<56 - 1) // XFS_MAXINUMBER
		}
		p = q + inoLen
		if name == "." || name == ".." {
			continue
		}
		ents = append(ents, fsys.DirEntry{Name: name, ID: fsys.ID(ino), Type: t})
	}
	return ents, nil
}

// blockDir reads the entries of every data block of a directory whose
// blocks the extents map.
func (f *FS) blockDir(in *inode, exts []extent, b *budget) ([]fsys.DirEntry, error) {
	dbs := f.sb.dirBlkSize
	dbLog := f.sb.dirBlkLog
	leafFSB := uint64(dirLeafOffset) >> f.sb.blockLog // first fs block of the leaf space
	buf := make([]byte, dbs)
	var ents []fsys.DirEntry
	next := uint64(0) // the first fs block not yet read
	for _, e := range exts {
		if e.unwritten {
			return nil, fmt.Errorf("xfs: inode %d: directory: unwritten extent at block %d: %w", in.ino, e.off, fsys.ErrCorrupt)
		}
		for fb := max(e.off, next); fb < e.end() && fb < leafFSB; fb = next {
			db := fb >> dbLog
			next = (db + 1) << dbLog
			what := fmt.Sprintf("xfs: inode %d: directory block %d", in.ino, db)
			if err := b.spend(what, dbs); err != nil {
				return nil, err
			}
			pos, err := readDirBlock(f, exts, db<<dbLog, buf)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			ents, err = f.dirBlockEntries(in.ino, db, buf, pos, ents)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
		}
	}
	return ents, nil
}

// readDirBlock reads the directory block that starts at file block
// first into buf (it may span extents) and returns the disk address of
// its first byte.
func readDirBlock(f *FS, exts []extent, first uint64, buf []byte) (int64, error) {
	bs := f.sb.blockSize
	var pos int64 = -1
	for i := int64(0); i < int64(len(buf))/bs; i++ {
		fb := first + uint64(i)
		e, ok := findExtent(exts, fb)
		if !ok {
			return 0, fmt.Errorf("file block %d is not mapped: %w", fb, fsys.ErrCorrupt)
		}
		p := e.pos + int64(fb-e.off)*bs
		if err := f.readFull(buf[i*bs:(i+1)*bs], p); err != nil {
			return 0, err
		}
		if i == 0 {
			pos = p
		}
	}
	return pos, nil
}

func findExtent(exts []extent, fb uint64) (extent, bool) {
	lo, hi := 0, len(exts)
	for lo < hi {
		m := (lo + hi) / 2
		if exts[m].end() <= fb {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(exts) && exts[lo].off <= fb && !exts[lo].unwritten {
		return exts[lo], true
	}
	return extent{}, false
}

// dirBlockEntries checks a directory data block read at pos and appends
// its entries to ents. An entry is its inode number, name length, name,
// file type and, at its end, a tag holding its own offset, padded to 8
// bytes; an unused region starts with the free tag and its length.
func (f *FS) dirBlockEntries(ino, db uint64, buf []byte, pos int64, ents []fsys.DirEntry) ([]fsys.DirEntry, error) {
	be := binary.BigEndian
	end := len(buf)
	blockMagic, dataMagic, hdr := uint32(dirBlockMagic), uint32(dirDataMagic), dirHdrSize
	if !f.sb.v5 {
		blockMagic, dataMagic, hdr = dirBlockV4, dirDataV4, dirHdrV4
	}
	switch m := be.Uint32(buf); m {
	case blockMagic:
		if db != 0 {
			return nil, fmt.Errorf("single-block directory magic in block %d: %w", db, fsys.ErrCorrupt)
		}
		count := int64(be.Uint32(buf[end-dirTailSize:]))
		if count > int64(end-dirTailSize-hdr)/dirLeafEnt {
			return nil, fmt.Errorf("%d hash entries do not fit in the block: %w", count, fsys.ErrCorrupt)
		}
		end -= dirTailSize + int(count)*dirLeafEnt
	case dataMagic:
	default:
		return nil, fmt.Errorf("bad magic %#x: %w", m, fsys.ErrCorrupt)
	}
	if f.sb.v5 {
		if err := f.checkDirHeader(ino, buf, pos); err != nil {
			return nil, err
		}
	}
	ftLen := 0
	if f.sb.ftype {
		ftLen = 1
	}
	for p := hdr; p < end; {
		if end-p < 8 {
			return nil, fmt.Errorf("%d stray bytes at offset %d: %w", end-p, p, fsys.ErrCorrupt)
		}
		if be.Uint16(buf[p:]) == dirFreeTag {
			l := int(be.Uint16(buf[p+2:]))
			if l < 8 || l%8 != 0 || l > end-p || int(be.Uint16(buf[p+l-2:])) != p {
				return nil, fmt.Errorf("unused region of %d bytes at offset %d: %w", l, p, fsys.ErrCorrupt)
			}
			p += l
			continue
		}
		if end-p < 16 { // the smallest entry: a one-byte name
			return nil, fmt.Errorf("%d stray bytes at offset %d: %w", end-p, p, fsys.ErrCorrupt)
		}
		nl := int(buf[p+8])
		size := (8 + 1 + nl + ftLen + 2 + 7) &^ 7
		if nl == 0 || size > end-p {
			return nil, fmt.Errorf("entry at offset %d: name of %d bytes: %w", p, nl, fsys.ErrCorrupt)
		}
		if tag := int(be.Uint16(buf[p+size-2:])); tag != p {
			return nil, fmt.Errorf("entry at offset %d: tag %d: %w", p, tag, fsys.ErrCorrupt)
		}
		name := buf[p+9 : p+9+nl]
		t := fsys.TypeUnknown
		if ftLen != 0 {
			t = f.entryType(buf[p+9+nl])
		}
		child := be.Uint64(buf[p:])
		p += size
		if string(name) == "." || string(name) == ".." {
			continue
		}
		if len(ents) >= fsys.MaxDirEntries {
			return nil, fmt.Errorf("more than %d entries: %w", fsys.MaxDirEntries, fsys.ErrCorrupt)
		}
		ents = append(ents, fsys.DirEntry{Name: string(name), ID: fsys.ID(child), Type: t})
	}
	return ents, nil
}

// checkDirHeader checks a v5 directory data block's CRC, the disk
// address it records, its UUID and its owner.
func (f *FS) checkDirHeader(ino uint64, buf []byte, pos int64) error {
	be := binary.BigEndian
	if !f.crcOK(buf, dirCRCOff) {
		return fmt.Errorf("CRC mismatch: %w", fsys.ErrCorrupt)
	}
	if got := be.Uint64(buf[8:]); got != uint64(pos)/512 {
		return fmt.Errorf("records disk address %d, read at %d: %w", got, pos/512, fsys.ErrCorrupt)
	}
	if !bytes.Equal(buf[24:40], f.sb.uuid[:]) {
		return fmt.Errorf("UUID of another file system: %w", fsys.ErrCorrupt)
	}
	if got := be.Uint64(buf[40:]); got != ino {
		return fmt.Errorf("owned by inode %d: %w", got, fsys.ErrCorrupt)
	}
	return nil
}
