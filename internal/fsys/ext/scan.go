package ext

import (
	"errors"
	"fmt"
	"io"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// A scan walks every structure of the file system rather than files by
// path: internal/fsmap maps which bytes belong to which file or structure
// with it. A scan is lenient where a reader must be strict: it checks no
// checksums, opens file systems with features the reader refuses (their
// blocks can still be mapped), and needs no readable root directory; it
// still bounds every number it reads.

// Layout is the geometry a scan reads from the superblock.
type Layout struct {
	// Type is "ext2", "ext3" or "ext4".
	Type      string
	BlockSize int64
	// Blocks is the superblock's block count, which may pass the end of
	// the volume; a scan reads no block past the volume's end.
	Blocks         uint64
	FirstDataBlock uint64
	// Groups counts the block groups that start within the volume.
	Groups         uint64
	InodesPerGroup uint64
	Inodes         uint64
	InodeSize      int64
	// FirstInode is the first inode that is not reserved.
	FirstInode uint32
	// Filetype says directory entries carry a file type (and one-byte
	// name lengths).
	Filetype bool
	// Special names the reserved inodes, and those the superblock gives
	// a role: "journal", "user quota", "group quota", "project quota",
	// "orphan file".
	Special map[uint32]string
}

// Scan opens the ext file system on r, which holds size bytes, for a
// scan.
func Scan(r io.ReaderAt, size int64) (*FS, error) {
	return open(r, size, Options{IgnoreChecksums: true}, &Layout{})
}

// scanLayout fills the scan's layout from the superblock sb, once the
// reader has checked its geometry.
func (f *FS) scanLayout(sb []byte) {
	const oldFirstIno = 11 // EXT2_GOOD_OLD_FIRST_INO, revision 0
	l := f.scan
	l.Type, l.BlockSize, l.FirstDataBlock, l.Groups = f.typ, f.bs, f.firstData, f.groups
	l.InodesPerGroup, l.Inodes, l.InodeSize = f.inodesPerGroup, f.inodes, int64(f.inodeSize)
	l.Filetype = f.incompat&incompatFiletype != 0
	l.FirstInode = oldFirstIno
	if ondisk.U32(sb, sRevLevel) >= 1 {
		if n := ondisk.U32(sb, sFirstIno); n > rootIno {
			l.FirstInode = n
		}
	}
	l.Special = map[uint32]string{
		1: "bad blocks inode", 3: "user quota", 4: "group quota", 5: "boot loader inode",
		6: "undelete directory", 7: "reserved GDT blocks", 8: "journal", 9: "exclude bitmap", 10: "replica inode",
	}
	for _, s := range []struct {
		off  int
		name string
	}{{sJournalInum, "journal"}, {sUsrQuotaInum, "user quota"}, {sGrpQuotaInum, "group quota"},
		{sPrjQuotaInum, "project quota"}, {sOrphanFileInum, "orphan file"}} {
		if ino := ondisk.U32(sb, s.off); ino != 0 && ino != rootIno {
			l.Special[ino] = s.name
		}
	}
}

// Layout returns the geometry of a file system opened by Scan.
func (f *FS) Layout() Layout {
	if f.scan == nil {
		return Layout{}
	}
	return *f.scan
}

// Structure is where a fixed structure of the file system lies, in bytes
// of the volume.
type Structure struct {
	// Name is "superblock", "group descriptors", "block bitmap" or
	// "inode bitmap".
	Name     string
	Off, Len int64
}

// Structures returns what group g holds of the file system's fixed
// structures: the superblock or its backup with the group descriptor
// blocks after it, meta_bg's descriptor copies, and (from g's
// descriptor) its bitmaps. Structures outside the file system are left
// out; the error is the descriptor's.
func (f *FS) Structures(g uint64) ([]Structure, error) {
	var out []Structure
	add := func(name string, blk, n uint64) {
		if blk >= f.firstData && f.validBlocks(blk, n) {
			out = append(out, Structure{name, int64(blk) * f.bs, int64(n) * f.bs})
		}
	}
	dpb := uint64(f.bs) / uint64(f.descSize)
	gdtBlocks := (f.groups + dpb - 1) / dpb
	metaBg := f.incompat&incompatMetaBg != 0
	if metaBg {
		gdtBlocks = min(gdtBlocks, f.firstMetaBg)
	}
	if f.hasSuper(g) {
		first := f.groupFirst(g)
		if g == 0 {
			out = append(out, Structure{"superblock", superOff, superLen})
		} else {
			add("superblock", first, 1)
		}
		add("group descriptors", first+1, gdtBlocks)
	}
	// meta_bg keeps each meta group's descriptor block in the group's
	// first, second and last groups.
	if r := g % dpb; metaBg && g/dpb >= f.firstMetaBg && (r == 0 || r == 1 || r == dpb-1) {
		loc := f.groupFirst(g)
		if f.hasSuper(g) {
			loc++
		}
		add("group descriptors", loc, 1)
	}
	gd, err := f.group(g)
	if err != nil {
		return out, err
	}
	add("block bitmap", gd.blockBitmap, 1)
	add("inode bitmap", gd.inodeBitmap, 1)
	return out, nil
}

// Table is where group g's inode table lies.
type Table struct {
	Off int64 // in bytes of the volume
	// Records is how many inode records it holds, Used how many from
	// its start may be in use: the rest were never initialised
	// (uninit_bg) or are past the file system's last inode.
	Records, Used uint64
}

// Table returns where group g's inode table lies.
func (f *FS) Table(g uint64) (Table, error) {
	gd, err := f.group(g)
	if err != nil {
		return Table{}, err
	}
	tableBlocks := (f.inodesPerGroup*uint64(f.inodeSize) + uint64(f.bs) - 1) / uint64(f.bs)
	if !f.validBlocks(gd.inodeTable, tableBlocks) || gd.inodeTable < f.firstData {
		return Table{}, f.corrupt("group %d: inode table at block %d is outside the file system", g, gd.inodeTable)
	}
	t := Table{Off: int64(gd.inodeTable) * f.bs, Records: f.inodesPerGroup, Used: gd.usedInodes}
	if first := g * f.inodesPerGroup; first+t.Used > f.inodes {
		t.Used = f.inodes - min(first, f.inodes)
	}
	return t, nil
}

// Inode is an inode record a scan met.
type Inode struct {
	Ino      uint32
	Off, Len int64 // where the record lies, in bytes of the volume
	// InUse says the inode is set in its group's inode bitmap and has
	// a mode, or is reserved and holds blocks without one (bad blocks,
	// quota).
	InUse bool
	Type  fsys.Type
	in    *inode
}

// Inodes calls fn for each record of group g's inode table that may be
// in use (the first t.Used of Table), in order. It stops at fn's first
// error, or at the first structure it cannot read, returning its error.
func (f *FS) Inodes(g uint64, t Table, fn func(*Inode) error) error {
	if f.scan == nil {
		return fmt.Errorf("%s: inodes walked without Scan: %w", f.typ, fsys.ErrUnsupported)
	}
	if t.Used == 0 {
		return nil
	}
	gd, err := f.group(g)
	if err != nil {
		return err
	}
	bitmap, err := f.readBlock(gd.inodeBitmap)
	if err == nil && gd.inodeBitmap < f.firstData {
		err = f.corrupt("block %d is outside the file system", gd.inodeBitmap)
	}
	if err != nil {
		return fmt.Errorf("group %d: inode bitmap at block %d: %w", g, gd.inodeBitmap, err)
	}
	const chunk = 1 << 20 // read inode tables a MiB at a time
	isz := int64(f.inodeSize)
	per := uint64(max(chunk/isz, 1))
	for j := uint64(0); j < t.Used; j += per {
		n := min(per, t.Used-j)
		buf, err := f.read(t.Off+int64(j)*isz, int(int64(n)*isz))
		if err != nil {
			return fmt.Errorf("group %d: inode table: %w", g, err)
		}
		for k := uint64(0); k < n; k++ {
			idx := j + k
			ino := g*f.inodesPerGroup + idx + 1
			raw := buf[int64(k)*isz : int64(k+1)*isz]
			rec := &Inode{Ino: uint32(ino), Off: t.Off + int64(idx)*isz, Len: isz}
			if bitmap[idx/8]&(1<<(idx%8)) != 0 {
				if rec.in, err = f.parseInode(ino, raw); err != nil {
					return err
				}
				rec.Type = fileType(rec.in.mode)
				rec.InUse = rec.in.mode != 0 || (rec.Ino < f.scan.FirstInode && ondisk.U32(raw, iBlocksLo) != 0)
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// Blocks is where an inode in use keeps its bytes, besides its record.
type Blocks struct {
	// InlineOff, when not 0, is where i_block lies in the record: the
	// inode keeps its data there (inline data or a fast symbolic link)
	// in InlineLen bytes, and Data and Tree are empty.
	InlineOff, InlineLen int64
	// InlineData is an inline-data inode's bytes: i_block's, then its
	// system.data attribute's.
	InlineData []byte
	// ACL is the extended attribute block, or 0.
	ACL uint64
	// Tree are the extent-tree or indirect blocks, in the order read.
	Tree []uint64
	// Data are the runs of allocated blocks, as [first block, count]:
	// unwritten extents and blocks past the end of the file included.
	Data [][2]uint64
}

// Blocks walks the block tree of an inode in use. It skips damaged tree
// blocks and extents and goes on, and returns what it found with an error
// naming the first damage; it stops only at a read error or when the
// inode holds more tree blocks or extents than a file may.
func (f *FS) Blocks(rec *Inode) (Blocks, error) {
	var b Blocks
	if rec.in == nil || !rec.InUse {
		return b, fmt.Errorf("%s: inode %d is not in use: %w", f.typ, rec.Ino, fsys.ErrNotFound)
	}
	in := rec.in
	var errs []error
	if acl := in.fileACL(); acl != 0 {
		if acl < f.firstData || !f.validBlocks(acl, 1) {
			errs = append(errs, f.corrupt("inode %d: extended attribute block %d is outside the file system", in.ino, acl))
		} else {
			b.ACL = acl
		}
	}
	if in.flags&flagInlineData != 0 || f.fastSymlink(in) {
		b.InlineOff, b.InlineLen = rec.Off+iBlock, iBlockLen
		if in.flags&flagInlineData != 0 {
			var err error
			b.InlineData, err = f.inlineData(in)
			errs = append(errs, err)
		}
		return b, errors.Join(errs...)
	}
	m := f.newMapper(in, 0)
	m.limit, m.all = ^uint64(0), true // every allocated block counts
	err := m.walk()
	b.Tree = m.tree
	for _, e := range m.out {
		b.Data = append(b.Data, [2]uint64{e.physical, e.count})
	}
	if m.skipped > 1 {
		errs = append(errs, fmt.Errorf("%w (and %d more damaged tree blocks or extents skipped)", m.damage, m.skipped-1))
	} else if m.skipped == 1 {
		errs = append(errs, m.damage)
	}
	return b, errors.Join(append(errs, err)...)
}

// Entries parses buf, a block of linear directory entries (or a part of
// an inline directory) of a file system with blockSize-byte blocks,
// calling fn for every entry in order, unused ones (inode 0), "." and
// ".." included. filetype is Layout's. It stops at the first malformed
// entry, with an error naming its offset.
func Entries(buf []byte, blockSize int64, filetype bool, fn func(ino uint32, name []byte)) error {
	err := walkEntries(buf, blockSize, filetype, func(_ int, ino uint32, name []byte, _ byte) error {
		fn(ino, name)
		return nil
	})
	var de *direntError
	if errors.As(err, &de) {
		return fmt.Errorf("%s: %w", de, fsys.ErrCorrupt)
	}
	return err
}

// direntError is a malformed directory entry.
type direntError struct {
	off, recLen, nameLen int
	short                bool // the header itself runs past the block
}

func (e *direntError) Error() string {
	if e.short {
		return fmt.Sprintf("entry at byte %d runs past the block", e.off)
	}
	return fmt.Sprintf("entry at byte %d: rec_len %d, name_len %d", e.off, e.recLen, e.nameLen)
}

// walkEntries checks the framing of each directory entry in buf and
// calls fn with its offset, inode, name and file_type byte.
func walkEntries(buf []byte, bs int64, filetype bool, fn func(off int, ino uint32, name []byte, ft byte) error) error {
	for off := 0; off < len(buf); {
		if off+direntHeader > len(buf) {
			return &direntError{off: off, short: true}
		}
		child := ondisk.U32(buf, off)
		recLen := recLenFromDisk(bs, ondisk.U16(buf, off+4))
		nameLen := int(buf[off+6])
		if !filetype {
			nameLen = int(ondisk.U16(buf, off+6))
		}
		if recLen < direntMin || recLen%4 != 0 || recLen > len(buf)-off || direntHeader+nameLen > recLen {
			return &direntError{off: off, recLen: recLen, nameLen: nameLen}
		}
		if err := fn(off, child, buf[off+direntHeader:off+direntHeader+nameLen], buf[off+7]); err != nil {
			return err
		}
		off += recLen
	}
	return nil
}
