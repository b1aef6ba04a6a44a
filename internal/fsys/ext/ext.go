package ext

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// The ext2/3/4 on-disk layout, from the kernel's fs/ext4/ext4.h (offsets
// in bytes within the superblock and a group descriptor).
const (
	superOff     = 1024   // the superblock starts 1024 bytes into the volume
	superLen     = 1024   // and is 1024 bytes long
	magic        = 0xEF53 // s_magic
	rootIno      = 2      // EXT2_ROOT_INO
	oldInodeSize = 128    // EXT2_GOOD_OLD_INODE_SIZE: revision 0, and the fixed part of larger inodes
	maxLogBlock  = 6      // 64 KiB blocks, the largest ext4 allows (s_log_block_size 6)

	sInodesCount     = 0x00
	sBlocksCountLo   = 0x04
	sFirstDataBlock  = 0x14
	sLogBlockSize    = 0x18
	sBlocksPerGroup  = 0x20
	sInodesPerGroup  = 0x28
	sMagic           = 0x38
	sRevLevel        = 0x4C
	sFirstIno        = 0x54
	sInodeSize       = 0x58
	sFeatureCompat   = 0x5C
	sFeatureIncompat = 0x60
	sFeatureROCompat = 0x64
	sUUID            = 0x68
	sDescSize        = 0xFE
	sFirstMetaBg     = 0x104
	sBlocksCountHi   = 0x150
	sChecksumType    = 0x175
	sJournalInum     = 0xE0
	sReservedGDT     = 0xCE
	sBackupBgs       = 0x24C
	sUsrQuotaInum    = 0x240
	sGrpQuotaInum    = 0x244
	sPrjQuotaInum    = 0x26C
	sOrphanFileInum  = 0x280
	sChecksumSeed    = 0x270
	sChecksum        = 0x3FC

	compatSparseSuper2 = 0x200

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4 // needs journal recovery: a live snapshot; read as it is
	incompatJournalDev  = 0x8
	incompatMetaBg      = 0x10
	incompatExtents     = 0x40
	incompat64Bit       = 0x80
	incompatMMP         = 0x100
	incompatFlexBg      = 0x200
	incompatEAInode     = 0x400
	incompatDirData     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargeDir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000
	// incompatKnown is every incompatible feature this reader handles.
	// Compression, dirdata (Lustre) and a journal device are refused.
	incompatKnown = incompatFiletype | incompatRecover | incompatMetaBg | incompatExtents | incompat64Bit |
		incompatMMP | incompatFlexBg | incompatEAInode | incompatCsumSeed | incompatLargeDir |
		incompatInlineData | incompatEncrypt | incompatCasefold

	roSparseSuper  = 0x1
	roHugeFile     = 0x8
	roGDTCsum      = 0x10
	roMetadataCsum = 0x400

	// ext3's feature sets, as blkid tells ext3 from ext4 (libblkid ext.c).
	ext3Incompat  = incompatFiletype | incompatRecover | incompatMetaBg
	ext3ROCompat  = roSparseSuper | 0x2 | 0x4 // sparse_super, large_file, btree_dir
	compatJournal = 0x4

	descSizeOld = 32 // EXT2_MIN_DESC_SIZE
	descSize64  = 64 // EXT2_MIN_DESC_SIZE_64BIT

	bgBlockBitmapLo  = 0x00
	bgInodeBitmapLo  = 0x04
	bgInodeTableLo   = 0x08
	bgFlags          = 0x12
	bgItableUnusedLo = 0x1C
	bgBlockBitmapHi  = 0x20
	bgInodeBitmapHi  = 0x24
	bgInodeTableHi   = 0x28
	bgItableUnusedHi = 0x32
	bgChecksum       = 0x1E
	bgInodeUninit    = 0x1 // EXT4_BG_INODE_UNINIT

	descCacheMax = 4096 // descriptor blocks kept in memory
)

// Per-call bounds. A call (Stat, ReadDir, Open, Readlink) reads at most
// maxCallNodes tree blocks (extent nodes, indirect blocks) and visits
// none twice.
const maxCallNodes = 1 << 22

// Options changes how a volume is read.
type Options struct {
	// IgnoreChecksums reads metadata_csum structures whose checksums do
	// not match instead of failing the call (for a torn write on a
	// crash-consistent snapshot). The superblock's is always checked.
	IgnoreChecksums bool
}

// FS is an ext2, ext3 or ext4 file system. It is safe for concurrent use
// when its io.ReaderAt is.
type FS struct {
	r    io.ReaderAt
	size int64
	opt  Options

	typ            string
	bs             int64
	blocks         uint64 // blocks the file system spans, at most the volume's
	firstData      uint64
	perGroup       uint64
	inodesPerGroup uint64
	inodes         uint64
	groups         uint64
	inodeSize      int
	descSize       int
	compat         uint32
	incompat       uint32
	roCompat       uint32
	firstMetaBg    uint64
	backupBgs      [2]uint32
	csum           bool   // metadata_csum
	seed           uint32 // the checksum seed
	uuid           [16]byte
	scan           *Layout // set by Scan, which opens leniently

	mu    sync.Mutex
	descs map[uint64][]byte // group descriptor blocks read, by index
}

var _ fsys.FS = (*FS)(nil)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the kernel's crc32c_le: CRC-32C without the pre- and
// post-inversion Go's crc32 applies, as ext4 chains it from a seed.
func crc32c(seed uint32, b []byte) uint32 { return ^crc32.Update(^seed, castagnoli, b) }

// Open reads the superblock of the ext file system on r, which holds size
// bytes, checking its checksums.
func Open(r io.ReaderAt, size int64) (*FS, error) { return OpenOptions(r, size, Options{}) }

// OpenOptions is Open with options.
func OpenOptions(r io.ReaderAt, size int64, opt Options) (*FS, error) { return open(r, size, opt, nil) }

// open reads the superblock; scan, when not nil, makes the file system a
// Scan's and receives its layout.
func open(r io.ReaderAt, size int64, opt Options, scan *Layout) (*FS, error) {
	f := &FS{r: r, size: size, opt: opt, typ: "ext", descs: map[uint64][]byte{}, scan: scan}
	sb, err := f.read(superOff, superLen)
	if err != nil {
		return nil, fmt.Errorf("reading the ext superblock: %w", err)
	}
	if err := f.superblock(sb); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FS) corrupt(format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", f.typ, fmt.Sprintf(format, args...), fsys.ErrCorrupt)
}

func (f *FS) unsupported(format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", f.typ, fmt.Sprintf(format, args...), fsys.ErrUnsupported)
}

func (f *FS) superblock(sb []byte) error {
	if ondisk.U16(sb, sMagic) != magic {
		return f.corrupt("superblock: no ext magic number")
	}
	f.compat, f.incompat, f.roCompat = ondisk.U32(sb, sFeatureCompat), ondisk.U32(sb, sFeatureIncompat), ondisk.U32(sb, sFeatureROCompat)
	switch {
	case f.incompat&^ext3Incompat != 0 || f.roCompat&^ext3ROCompat != 0:
		f.typ = "ext4"
	case f.compat&compatJournal != 0:
		f.typ = "ext3"
	default:
		f.typ = "ext2"
	}
	copy(f.uuid[:], sb[sUUID:sUUID+16])
	if f.roCompat&roMetadataCsum != 0 && f.scan == nil {
		if sb[sChecksumType] != 1 {
			return f.unsupported("superblock: checksum type %d (only crc32c is known)", sb[sChecksumType])
		}
		if got, want := crc32c(^uint32(0), sb[:sChecksum]), ondisk.U32(sb, sChecksum); got != want {
			return f.corrupt("superblock: checksum %08x, computed %08x", want, got)
		}
		f.csum = true
		f.seed = crc32c(^uint32(0), sb[sUUID:sUUID+16])
		if f.incompat&incompatCsumSeed != 0 {
			f.seed = ondisk.U32(sb, sChecksumSeed)
		}
	}
	if f.incompat&incompatJournalDev != 0 {
		return f.unsupported("an external journal device, which holds no files")
	}
	if bad := f.incompat &^ incompatKnown; bad != 0 && f.scan == nil {
		return f.unsupported("incompatible features %#x (compression or dirdata)", bad)
	}
	log := ondisk.U32(sb, sLogBlockSize)
	if log > maxLogBlock {
		return f.corrupt("superblock: block size 2^%d KiB", log)
	}
	f.bs = 1024 << log
	f.blocks = uint64(ondisk.U32(sb, sBlocksCountLo))
	if f.incompat&incompat64Bit != 0 {
		f.blocks |= uint64(ondisk.U32(sb, sBlocksCountHi)) << 32
	}
	if f.scan != nil {
		f.scan.Blocks = f.blocks
	}
	f.firstData = uint64(ondisk.U32(sb, sFirstDataBlock))
	f.perGroup = uint64(ondisk.U32(sb, sBlocksPerGroup))
	f.inodesPerGroup = uint64(ondisk.U32(sb, sInodesPerGroup))
	f.inodes = uint64(ondisk.U32(sb, sInodesCount))
	bits := uint64(8 * f.bs) // a group's bitmaps are one block each
	if f.perGroup < 8 || f.perGroup > bits || f.inodesPerGroup == 0 || f.inodesPerGroup > bits {
		return f.corrupt("superblock: %d blocks and %d inodes per group with %d-byte blocks", f.perGroup, f.inodesPerGroup, f.bs)
	}
	if f.firstData > 1 || f.blocks <= f.firstData {
		return f.corrupt("superblock: %d blocks, first data block %d", f.blocks, f.firstData)
	}
	// A file system larger than its volume (a truncated image) is read
	// as far as the volume goes: blocks past its end are refused.
	f.blocks = min(f.blocks, uint64(f.size/f.bs))
	if f.blocks <= f.firstData {
		return f.corrupt("superblock: the volume of %d bytes ends before the first data block", f.size)
	}
	f.groups = (f.blocks - f.firstData + f.perGroup - 1) / f.perGroup
	if maxInodes := f.groups * f.inodesPerGroup; f.inodes == 0 || f.inodes > maxInodes {
		f.inodes = maxInodes
	}
	f.inodes = min(f.inodes, 1<<32-1)
	f.inodeSize = oldInodeSize
	if ondisk.U32(sb, sRevLevel) >= 1 {
		f.inodeSize = int(ondisk.U16(sb, sInodeSize))
	}
	if f.inodeSize < oldInodeSize || int64(f.inodeSize) > f.bs || f.inodeSize&(f.inodeSize-1) != 0 {
		return f.corrupt("superblock: inode size %d", f.inodeSize)
	}
	f.descSize = descSizeOld
	if f.incompat&incompat64Bit != 0 {
		f.descSize = int(ondisk.U16(sb, sDescSize))
		if f.descSize < descSize64 || int64(f.descSize) > f.bs || f.descSize&(f.descSize-1) != 0 {
			return f.corrupt("superblock: group descriptor size %d", f.descSize)
		}
	}
	f.firstMetaBg = uint64(ondisk.U32(sb, sFirstMetaBg))
	f.backupBgs = [2]uint32{ondisk.U32(sb, sBackupBgs), ondisk.U32(sb, sBackupBgs+4)}
	if f.scan != nil {
		f.scanLayout(sb)
		return nil // a scan walks every inode: the root is one among them
	}
	// The root directory must be readable for the file system to be.
	if _, err := f.inode(rootIno); err != nil {
		return fmt.Errorf("reading the root directory: %w", err)
	}
	return nil
}

// Type returns "ext2", "ext3" or "ext4", as blkid names the volume.
func (f *FS) Type() string { return f.typ }

// Root returns inode 2.
func (f *FS) Root() fsys.ID { return rootIno }

// BlockSize returns the file system's block size in bytes.
func (f *FS) BlockSize() int64 { return f.bs }

// read returns n bytes at off, which must lie within the volume.
func (f *FS) read(off int64, n int) ([]byte, error) {
	if n < 0 || off < 0 || off > f.size || int64(n) > f.size-off {
		return nil, fmt.Errorf("%s: %d bytes at %d: beyond the end of the volume (%d bytes): %w", f.typ, n, off, f.size, fsys.ErrCorrupt)
	}
	buf := make([]byte, n)
	if m, err := f.r.ReadAt(buf, off); m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %d bytes at %d: %w", n, off, err)
	}
	return buf, nil
}

// validBlocks reports whether n blocks from blk lie within the file
// system.
func (f *FS) validBlocks(blk, n uint64) bool {
	return n > 0 && blk < f.blocks && n <= f.blocks-blk
}

// readBlock reads block blk.
func (f *FS) readBlock(blk uint64) ([]byte, error) {
	if !f.validBlocks(blk, 1) {
		return nil, f.corrupt("block %d is outside the file system (%d blocks)", blk, f.blocks)
	}
	return f.read(int64(blk)*f.bs, int(f.bs))
}

// groupFirst returns the first block of group g.
func (f *FS) groupFirst(g uint64) uint64 { return f.firstData + g*f.perGroup }

// hasSuper reports whether group g holds a superblock backup.
func (f *FS) hasSuper(g uint64) bool {
	switch {
	case g == 0:
		return true
	case f.compat&compatSparseSuper2 != 0:
		return g == uint64(f.backupBgs[0]) || g == uint64(f.backupBgs[1])
	case f.roCompat&roSparseSuper == 0, g == 1:
		return true
	}
	for _, base := range []uint64{3, 5, 7} { // sparse_super: powers of 3, 5 and 7
		n := base
		for n < g {
			n *= base
		}
		if n == g {
			return true
		}
	}
	return false
}

// descBlock returns the block holding group descriptor block i, as
// ext2fs_descriptor_block_loc2 finds the primary copy: after the
// superblock, or with meta_bg in the first group of its meta group.
func (f *FS) descBlock(i uint64) uint64 {
	if f.incompat&incompatMetaBg == 0 || i < f.firstMetaBg {
		return f.firstData + 1 + i
	}
	g := i * (uint64(f.bs) / uint64(f.descSize))
	loc := f.groupFirst(g)
	if f.hasSuper(g) {
		loc++
	}
	return loc
}

// group is what a group descriptor says that this reader needs.
type group struct {
	blockBitmap uint64
	inodeBitmap uint64
	inodeTable  uint64
	usedInodes  uint64 // inodes from the start of the table that may be in use
}

// group reads group g's descriptor.
func (f *FS) group(g uint64) (group, error) {
	if g >= f.groups {
		return group{}, f.corrupt("group %d: the file system has %d", g, f.groups)
	}
	dpb := uint64(f.bs) / uint64(f.descSize)
	i := g / dpb
	f.mu.Lock()
	blk, ok := f.descs[i]
	f.mu.Unlock()
	if !ok {
		var err error
		if blk, err = f.readBlock(f.descBlock(i)); err != nil {
			return group{}, fmt.Errorf("reading group descriptor block %d: %w", i, err)
		}
		f.mu.Lock()
		if len(f.descs) >= descCacheMax {
			clear(f.descs)
		}
		f.descs[i] = blk
		f.mu.Unlock()
	}
	d := blk[(g%dpb)*uint64(f.descSize):][:f.descSize]
	if err := f.checkGroup(g, d); err != nil {
		return group{}, err
	}
	gd := group{
		blockBitmap: uint64(ondisk.U32(d, bgBlockBitmapLo)),
		inodeBitmap: uint64(ondisk.U32(d, bgInodeBitmapLo)),
		inodeTable:  uint64(ondisk.U32(d, bgInodeTableLo)),
		usedInodes:  f.inodesPerGroup,
	}
	unused := uint64(ondisk.U16(d, bgItableUnusedLo))
	if f.descSize >= descSize64 {
		gd.blockBitmap |= uint64(ondisk.U32(d, bgBlockBitmapHi)) << 32
		gd.inodeBitmap |= uint64(ondisk.U32(d, bgInodeBitmapHi)) << 32
		gd.inodeTable |= uint64(ondisk.U32(d, bgInodeTableHi)) << 32
		unused |= uint64(ondisk.U16(d, bgItableUnusedHi)) << 16
	}
	// With uninit_bg or metadata_csum, the end of an inode table (or all
	// of it) may never have been written: its inodes are unused.
	if f.roCompat&(roGDTCsum|roMetadataCsum) != 0 {
		if ondisk.U16(d, bgFlags)&bgInodeUninit != 0 {
			gd.usedInodes = 0
		} else {
			gd.usedInodes -= min(unused, gd.usedInodes)
		}
	}
	return gd, nil
}

// checkGroup checks group g's descriptor d against its bg_checksum
// (ext4_group_desc_csum): with metadata_csum the low 16 bits of a crc32c
// of the group number and the descriptor with a zero checksum; with
// uninit_bg (gdt_csum) a crc16 of the UUID, the group number and the
// descriptor without its checksum.
func (f *FS) checkGroup(g uint64, d []byte) error {
	if f.opt.IgnoreChecksums || f.roCompat&(roMetadataCsum|roGDTCsum) == 0 {
		return nil
	}
	var num [4]byte
	putU32(num[:], uint32(g))
	stored := ondisk.U16(d, bgChecksum)
	var got uint16
	if f.csum {
		c := crc32c(f.seed, num[:])
		c = crc32c(c, d[:bgChecksum])
		c = crc32c(c, []byte{0, 0}) // the checksum, as zeros
		c = crc32c(c, d[bgChecksum+2:])
		got = uint16(c)
	} else {
		c := crc16(0xFFFF, f.uuid[:])
		c = crc16(c, num[:])
		c = crc16(c, d[:bgChecksum])
		c = crc16(c, d[bgChecksum+2:])
		got = c
	}
	if got != stored {
		return f.corrupt("group descriptor %d: checksum %04x, computed %04x", g, stored, got)
	}
	return nil
}

// crc16 is the CRC-16 (polynomial 0x8005, reflected) e2fsprogs'
// ext2fs_crc16 computes, without inversions.
func crc16(crc uint16, b []byte) uint16 {
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
