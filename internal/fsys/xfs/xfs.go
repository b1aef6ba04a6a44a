package xfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// On-disk constants, from "XFS Algorithms & Data Structures" (the
// superblock, inode, B+tree and directory chapters) and the kernel's
// fs/xfs/libxfs/xfs_format.h.
const (
	sbMagic    = 0x58465342 // "XFSB"
	sbVersion5 = 5          // sb_versionnum & 0xf: CRC-enabled (v5) file system
	sbVersion4 = 4          // the version before, with feature bits in sb_versionnum
	sbDirV2Bit = 0x2000     // sb_versionnum: version 2 directories (every v4 since 2002)
	sbMoreBits = 0x8000     // sb_versionnum: sb_features2 holds more features
	f2Ftype    = 0x200      // sb_features2: directory entries carry the file type (v4)

	// sb_features_incompat bits a reader of the data must understand.
	incompatFtype     = 1 << 0 // directory entries carry the file type
	incompatSpinodes  = 1 << 1 // sparse inode chunks: only the allocator cares
	incompatMetaUUID  = 1 << 2 // metadata blocks carry sb_meta_uuid
	incompatBigtime   = 1 << 3 // 64-bit nanosecond timestamps (per inode flag)
	incompatNeedsRep  = 1 << 4 // xfs_repair was interrupted: readable as is
	incompatNrext64   = 1 << 5 // 64-bit data fork extent counts (per inode flag)
	incompatExchRange = 1 << 6 // file content exchange: a log feature
	incompatParent    = 1 << 7 // parent pointers: extended attributes only
	incompatKnown     = incompatFtype | incompatSpinodes | incompatMetaUUID | incompatBigtime |
		incompatNeedsRep | incompatNrext64 | incompatExchRange | incompatParent

	sbCRCOff = 224 // offset of sb_crc in the superblock

	// Bounds on the geometry, from xfs_sb.c's superblock verifier.
	minBlockLog = 9  // 512-byte blocks
	maxBlockLog = 16 // 64 KiB blocks
	minInodeLog = 8  // 256-byte inodes (v5 needs 512)
	maxInodeLog = 11 // 2 KiB inodes
	maxDirLog   = 16 // directory blocks are at most 64 KiB
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcOK checks the CRC32C XFS keeps in metadata: computed over buf with
// the four bytes at off taken as zero, stored little-endian.
func crcOK(buf []byte, off int) bool {
	c := crc32.Update(0, castagnoli, buf[:off])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	c = crc32.Update(c, castagnoli, buf[off+4:])
	return c == binary.LittleEndian.Uint32(buf[off:])
}

// FS is an XFS v5 file system opened read-only.
type FS struct {
	r    io.ReaderAt
	size int64
	sb   superblock
	// noCRC skips the CRC checks, so that the fuzz test reaches the
	// parsers behind them; nothing else sets it.
	noCRC bool
}

func (f *FS) crcOK(buf []byte, off int) bool { return f.noCRC || crcOK(buf, off) }

// superblock holds the geometry the reader needs, checked at Open.
type superblock struct {
	blockSize  int64
	blockLog   uint
	dblocks    uint64 // data blocks of the file system
	agBlocks   uint64 // blocks per allocation group (the last may be short)
	agCount    uint64
	agBlkLog   uint // bits of an agbno in an FSB and an inode number
	inodeSize  int64
	inoPBLog   uint // bits of the inode's slot in its block
	rootIno    uint64
	dirBlkSize int64 // directory block size in bytes
	dirBlkLog  uint  // log2 of fs blocks per directory block
	ftype      bool
	uuid       [16]byte // the UUID metadata blocks carry
	v5         bool     // CRC-enabled: metadata blocks have self-describing headers
	coreSize   int64    // inode core: 176 bytes (v3 inodes), 100 (v1 and v2)
}

// Open reads the primary superblock of the XFS file system held in r
// (size bytes) and checks its geometry. Version 5 (CRC-enabled) and
// version 4 file systems are read; v4 metadata has no checksums, owners
// or addresses to check, only magics and bounds.
func Open(r io.ReaderAt, size int64) (*FS, error) { return open(r, size, false) }

func open(r io.ReaderAt, size int64, noCRC bool) (*FS, error) {
	f := &FS{r: r, size: size, noCRC: noCRC}
	buf := make([]byte, 512)
	if err := f.readFull(buf, 0); err != nil {
		return nil, fmt.Errorf("xfs: superblock: %w", err)
	}
	be := binary.BigEndian
	if be.Uint32(buf) != sbMagic {
		return nil, corrupt("superblock: bad magic %#x", be.Uint32(buf))
	}
	versionnum := be.Uint16(buf[100:])
	var sb superblock
	switch versionnum & 0xf {
	case sbVersion5:
		sb.v5 = true
		sb.coreSize = inodeCoreSize
	case sbVersion4:
		if versionnum&sbDirV2Bit == 0 {
			return nil, fmt.Errorf("xfs: superblock: version 4 with version 1 directories: %w", fsys.ErrUnsupported)
		}
		sb.coreSize = inodeCoreSizeV2
		sb.ftype = versionnum&sbMoreBits != 0 && be.Uint32(buf[200:])&f2Ftype != 0
	default:
		return nil, fmt.Errorf("xfs: superblock version %d: versions 4 and 5 are read: %w", versionnum&0xf, fsys.ErrUnsupported)
	}
	sb.blockLog = uint(buf[120])
	if sb.blockLog < minBlockLog || sb.blockLog > maxBlockLog || be.Uint32(buf[4:]) != 1<<sb.blockLog {
		return nil, corrupt("superblock: block size %d (log %d)", be.Uint32(buf[4:]), sb.blockLog)
	}
	sb.blockSize = 1 << sb.blockLog
	sectSize := int(be.Uint16(buf[102:]))
	if sectSize < 512 || sectSize > int(sb.blockSize) || sectSize&(sectSize-1) != 0 {
		return nil, corrupt("superblock: sector size %d", sectSize)
	}
	if sectSize > len(buf) {
		buf = make([]byte, sectSize)
		if err := f.readFull(buf, 0); err != nil {
			return nil, fmt.Errorf("xfs: superblock: %w", err)
		}
	}
	if sb.v5 && !noCRC && !crcOK(buf[:sectSize], sbCRCOff) {
		return nil, corrupt("superblock: CRC mismatch")
	}
	inodeLog := uint(buf[122])
	if inodeLog < minInodeLog || inodeLog > maxInodeLog || inodeLog > sb.blockLog ||
		int64(be.Uint16(buf[104:])) != 1<<inodeLog {
		return nil, corrupt("superblock: inode size %d (log %d)", be.Uint16(buf[104:]), inodeLog)
	}
	sb.inodeSize = 1 << inodeLog
	if sb.inodeSize < sb.coreSize+16 {
		return nil, corrupt("superblock: inode size %d is too small for its inode version", sb.inodeSize)
	}
	sb.inoPBLog = uint(buf[123])
	if sb.inoPBLog != sb.blockLog-inodeLog || int64(be.Uint16(buf[106:])) != 1<<sb.inoPBLog {
		return nil, corrupt("superblock: %d inodes per block (log %d)", be.Uint16(buf[106:]), sb.inoPBLog)
	}
	sb.agBlocks = uint64(be.Uint32(buf[84:]))
	sb.agCount = uint64(be.Uint32(buf[88:]))
	sb.agBlkLog = uint(buf[124])
	if sb.agBlocks < 64 || sb.agCount == 0 || sb.agBlkLog != uint(bits.Len64(sb.agBlocks-1)) {
		return nil, corrupt("superblock: %d allocation groups of %d blocks (log %d)", sb.agCount, sb.agBlocks, sb.agBlkLog)
	}
	sb.dblocks = be.Uint64(buf[8:])
	if sb.dblocks == 0 || sb.dblocks > sb.agCount*sb.agBlocks || sb.dblocks <= (sb.agCount-1)*sb.agBlocks {
		return nil, corrupt("superblock: %d data blocks in %d groups of %d", sb.dblocks, sb.agCount, sb.agBlocks)
	}
	if size < 0 || sb.dblocks > uint64(size)>>sb.blockLog {
		return nil, corrupt("superblock: the file system has %d blocks of %d bytes, the volume only %d bytes", sb.dblocks, sb.blockSize, size)
	}
	dirLog := uint(buf[192])
	if sb.blockLog+dirLog > maxDirLog {
		return nil, corrupt("superblock: directory block log %d", dirLog)
	}
	sb.dirBlkLog = dirLog
	sb.dirBlkSize = sb.blockSize << dirLog
	if sb.v5 {
		incompat := be.Uint32(buf[216:])
		if incompat&^incompatKnown != 0 {
			return nil, fmt.Errorf("xfs: superblock: incompatible features %#x: %w", incompat&^incompatKnown, fsys.ErrUnsupported)
		}
		sb.ftype = incompat&incompatFtype != 0
		if incompat&incompatMetaUUID != 0 {
			copy(sb.uuid[:], buf[248:264])
		} else {
			copy(sb.uuid[:], buf[32:48])
		}
	}
	f.sb = sb
	root := be.Uint64(buf[56:])
	if _, err := f.inodePos(root); err != nil {
		return nil, fmt.Errorf("xfs: superblock: root inode: %w", err)
	}
	f.sb.rootIno = root
	return f, nil
}

// Type returns "xfs", as blkid names it.
func (f *FS) Type() string { return "xfs" }

// Root returns the root directory's inode number.
func (f *FS) Root() fsys.ID { return fsys.ID(f.sb.rootIno) }

func corrupt(format string, args ...any) error {
	return fmt.Errorf("xfs: %s: %w", fmt.Sprintf(format, args...), fsys.ErrCorrupt)
}

// fsbPos converts a file-system block number (AG number in the high
// bits, block within the AG in the low agBlkLog bits) of an extent of
// count blocks to the byte offset of its first block on the volume,
// checking that every block lies inside its AG and the file system.
func (f *FS) fsbPos(fsb, count uint64) (int64, error) {
	agno := fsb >> f.sb.agBlkLog
	agbno := fsb & (1<<f.sb.agBlkLog - 1)
	if agno >= f.sb.agCount || count == 0 || agbno+count > f.sb.agBlocks {
		return 0, fmt.Errorf("block %d (AG %d block %d) +%d outside the allocation groups: %w", fsb, agno, agbno, count, fsys.ErrCorrupt)
	}
	lin := agno*f.sb.agBlocks + agbno
	if lin+count > f.sb.dblocks {
		return 0, fmt.Errorf("block %d +%d beyond the file system's %d blocks: %w", fsb, count, f.sb.dblocks, fsys.ErrCorrupt)
	}
	return int64(lin) << f.sb.blockLog, nil
}

// readFull reads len(p) bytes at off, an offset already checked to lie in
// the file system.
func (f *FS) readFull(p []byte, off int64) error {
	n, err := f.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("reading %d bytes at %d: %w", len(p), off, err)
}

// budget bounds the metadata bytes one call may read, so that a hostile
// file system cannot make a call run for ever.
type budget struct{ left int64 }

// maxCallBytes is the most metadata one call reads: a directory of
// fsys.MaxDirEntries 255-byte names fills about 1.1 GiB, one of short
// names about 100 MiB; the B+tree of fsys.MaxRuns extents 64 MiB.
const maxCallBytes = 1280 << 20

func newBudget() *budget { return &budget{left: maxCallBytes} }

// spend takes n bytes from the budget, or fails naming what was read.
func (b *budget) spend(what string, n int64) error {
	if b.left < n {
		return fmt.Errorf("%s: more than %d MiB of metadata in one call: %w", what, maxCallBytes>>20, fsys.ErrCorrupt)
	}
	b.left -= n
	return nil
}
