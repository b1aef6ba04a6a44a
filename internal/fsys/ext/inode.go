package ext

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// The inode (struct ext4_inode, fs/ext4/ext4.h).
const (
	iMode        = 0x00
	iUIDLo       = 0x02
	iSizeLo      = 0x04
	iAtime       = 0x08
	iCtime       = 0x0C
	iMtime       = 0x10
	iGIDLo       = 0x18
	iLinks       = 0x1A
	iBlocksLo    = 0x1C
	iFlags       = 0x20
	iBlock       = 0x28
	iBlockLen    = 60 // EXT4_N_BLOCKS * 4
	iGeneration  = 0x64
	iFileACLLo   = 0x68
	iSizeHi      = 0x6C
	iBlocksHi    = 0x74
	iFileACLHi   = 0x76
	iUIDHi       = 0x78
	iGIDHi       = 0x7A
	iChecksumLo  = 0x7C
	iExtraIsize  = 0x80
	iChecksumHi  = 0x82
	iCtimeExtra  = 0x84
	iMtimeExtra  = 0x88
	iAtimeExtra  = 0x8C
	iCrtime      = 0x90
	iCrtimeExtra = 0x94

	flagIndex      = 0x1000     // EXT4_INDEX_FL: a hash-tree directory
	flagHugeFile   = 0x40000    // EXT4_HUGE_FILE_FL: i_blocks counts file-system blocks
	flagExtents    = 0x80000    // EXT4_EXTENTS_FL
	flagEAInode    = 0x200000   // EXT4_EA_INODE_FL: the inode holds an xattr value
	flagInlineData = 0x10000000 // EXT4_INLINE_DATA_FL
	flagEncrypt    = 0x800      // EXT4_ENCRYPT_FL

	modeType     = 0xF000
	modeFIFO     = 0x1000
	modeCharDev  = 0x2000
	modeDir      = 0x4000
	modeBlockDev = 0x6000
	modeRegular  = 0x8000
	modeSymlink  = 0xA000
	modeSocket   = 0xC000
	modePerm     = 0o7777
)

// inode is one inode record, read and checked.
type inode struct {
	ino   uint32
	raw   []byte // the whole record, s_inode_size bytes
	mode  uint16
	flags uint32
	size  uint64
	extra int // i_extra_isize: bytes after the first 128 in use
}

// inode reads inode ino and checks its checksum.
func (f *FS) inode(ino uint64) (*inode, error) {
	if ino == 0 || ino > f.inodes {
		return nil, fmt.Errorf("%s: inode %d: the file system has %d: %w", f.typ, ino, f.inodes, fsys.ErrNotFound)
	}
	g, idx := (ino-1)/f.inodesPerGroup, (ino-1)%f.inodesPerGroup
	gd, err := f.group(g)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	if idx >= gd.usedInodes {
		return nil, fmt.Errorf("%s: inode %d: in the never-used part of group %d's inode table: %w", f.typ, ino, g, fsys.ErrNotFound)
	}
	tableBlocks := (f.inodesPerGroup*uint64(f.inodeSize) + uint64(f.bs) - 1) / uint64(f.bs)
	if !f.validBlocks(gd.inodeTable, tableBlocks) || gd.inodeTable < f.firstData {
		return nil, f.corrupt("group %d: inode table at block %d is outside the file system", g, gd.inodeTable)
	}
	raw, err := f.read(int64(gd.inodeTable)*f.bs+int64(idx)*int64(f.inodeSize), f.inodeSize)
	if err != nil {
		return nil, fmt.Errorf("reading inode %d: %w", ino, err)
	}
	return f.parseInode(ino, raw)
}

// parseInode decodes the record raw of inode ino and checks it.
func (f *FS) parseInode(ino uint64, raw []byte) (*inode, error) {
	in := &inode{
		ino:   uint32(ino),
		raw:   raw,
		mode:  ondisk.U16(raw, iMode),
		flags: ondisk.U32(raw, iFlags),
		size:  uint64(ondisk.U32(raw, iSizeLo)),
	}
	// i_size_high counts for regular files, and for directories with
	// largedir; elsewhere it once was i_dir_acl (ext4_isize).
	if in.mode&modeType == modeRegular || f.incompat&incompatLargeDir != 0 {
		in.size |= uint64(ondisk.U32(raw, iSizeHi)) << 32
	}
	if f.inodeSize > oldInodeSize {
		in.extra = int(ondisk.U16(raw, iExtraIsize))
		if (in.extra%4 != 0 || oldInodeSize+in.extra > f.inodeSize) && f.scan != nil {
			in.extra = 0 // a scan maps the record all the same
		} else if in.extra%4 != 0 || oldInodeSize+in.extra > f.inodeSize {
			return nil, f.corrupt("inode %d: extra size %d with %d-byte inodes", ino, in.extra, f.inodeSize)
		}
	}
	if f.csum && !f.opt.IgnoreChecksums && !zero(raw) {
		if got, want := f.inodeChecksum(in); got != want {
			return nil, f.corrupt("inode %d: checksum %08x, computed %08x", ino, want, got)
		}
	}
	return in, nil
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// hasField reports whether the inode's extra space covers the field of n
// bytes at off (an offset past the first 128 bytes).
func (in *inode) hasField(off, n int) bool { return off+n <= oldInodeSize+in.extra }

// seed is the inode's checksum seed: the file system's, then the inode
// number and generation (ext4_inode_csum_seed).
func (f *FS) inodeSeed(in *inode) uint32 {
	var b [4]byte
	putU32(b[:], in.ino)
	s := crc32c(f.seed, b[:])
	return crc32c(s, in.raw[iGeneration:iGeneration+4])
}

// inodeChecksum returns the checksum stored in the inode and the one
// computed over it (ext4_inode_csum): 32 bits when the extra space holds
// i_checksum_hi, else 16.
func (f *FS) inodeChecksum(in *inode) (got, want uint32) {
	hi := in.hasField(iChecksumHi, 2)
	rec := append([]byte(nil), in.raw...)
	want = uint32(ondisk.U16(rec, iChecksumLo))
	rec[iChecksumLo], rec[iChecksumLo+1] = 0, 0
	if hi {
		want |= uint32(ondisk.U16(rec, iChecksumHi)) << 16
		rec[iChecksumHi], rec[iChecksumHi+1] = 0, 0
	}
	got = crc32c(f.inodeSeed(in), rec)
	if !hi {
		got &= 0xFFFF
	}
	return got, want
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func fileType(mode uint16) fsys.Type {
	switch mode & modeType {
	case modeRegular:
		return fsys.TypeRegular
	case modeDir:
		return fsys.TypeDir
	case modeSymlink:
		return fsys.TypeSymlink
	case modeCharDev:
		return fsys.TypeCharDev
	case modeBlockDev:
		return fsys.TypeBlockDev
	case modeFIFO:
		return fsys.TypeFIFO
	case modeSocket:
		return fsys.TypeSocket
	}
	return fsys.TypeUnknown
}

// Stat returns what inode id says of its file. Addr is the inode number,
// as Sleuth Kit prints it.
func (f *FS) Stat(id fsys.ID) (fsys.Stat, error) {
	in, err := f.inode(uint64(id))
	if err != nil {
		return fsys.Stat{}, err
	}
	r := in.raw
	st := fsys.Stat{
		ID:    id,
		Addr:  strconv.FormatUint(uint64(id), 10),
		Type:  fileType(in.mode),
		Mode:  uint32(in.mode) & modePerm,
		UID:   uint32(ondisk.U16(r, iUIDLo)) | uint32(ondisk.U16(r, iUIDHi))<<16,
		GID:   uint32(ondisk.U16(r, iGIDLo)) | uint32(ondisk.U16(r, iGIDHi))<<16,
		Nlink: uint32(ondisk.U16(r, iLinks)),
		Atime: in.time(iAtime, iAtimeExtra),
		Mtime: in.time(iMtime, iMtimeExtra),
		Ctime: in.time(iCtime, iCtimeExtra),
	}
	if in.hasField(iCrtime, 4) {
		st.Crtime = in.time(iCrtime, iCrtimeExtra)
	}
	if in.size > 1<<63-1 {
		return fsys.Stat{}, f.corrupt("inode %d: size %d", in.ino, in.size)
	}
	st.Size = int64(in.size)
	return st, nil
}

// time decodes a timestamp as the kernel does: signed 32-bit seconds,
// and when the extra space holds it, a word of two epoch bits (adding
// multiples of 2^32 seconds) and 30 bits of nanoseconds. Sleuth Kit
// reads the seconds unsigned and ignores the epoch bits: the two agree
// from 1970 to 2106 when the epoch bits are written (as the kernel
// writes them), and differ for times before 1970, and for times after
// 2038 in inodes with no room for the epoch bits (128-byte inodes),
// which the kernel itself reads as before 1970.
func (in *inode) time(secOff, extraOff int) time.Time {
	sec := int64(int32(ondisk.U32(in.raw, secOff)))
	var nsec int64
	if in.hasField(extraOff, 4) {
		x := ondisk.U32(in.raw, extraOff)
		sec += int64(x&3) << 32
		nsec = int64(x >> 2)
	}
	return time.Unix(sec, nsec).UTC()
}

// dataBlocks returns the blocks the inode holds besides its extended
// attribute block, from i_blocks.
func (f *FS) dataBlocks(in *inode) uint64 {
	n := uint64(ondisk.U32(in.raw, iBlocksLo))
	if f.roCompat&roHugeFile != 0 {
		n |= uint64(ondisk.U16(in.raw, iBlocksHi)) << 32
	}
	if f.roCompat&roHugeFile == 0 || in.flags&flagHugeFile == 0 {
		n /= uint64(f.bs / 512) // 512-byte sectors, unless HUGE_FILE_FL says blocks
	}
	if in.fileACL() != 0 && n > 0 {
		n-- // the extended attribute block
	}
	return n
}

func (in *inode) fileACL() uint64 {
	return uint64(ondisk.U32(in.raw, iFileACLLo)) | uint64(ondisk.U16(in.raw, iFileACLHi))<<32
}

// fastSymlink reports whether a symbolic link keeps its target in
// i_block: it has no data blocks and a target shorter than i_block.
func (f *FS) fastSymlink(in *inode) bool {
	return in.mode&modeType == modeSymlink && in.flags&flagInlineData == 0 &&
		in.size < iBlockLen && f.dataBlocks(in) == 0
}
