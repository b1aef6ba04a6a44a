package xfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// The inode core (struct xfs_dinode): 176 bytes in v3 inodes, 100 in v1
// and v2 (v4 file systems); then the data fork.
const (
	inodeMagic      = 0x494e // "IN"
	inodeCoreSize   = 176    // v3 inodes (v5 file systems)
	inodeCoreSizeV2 = 100    // v1 and v2 inodes (v4 file systems)
	inodeCRCOff     = 100

	// di_format: how a fork holds its data.
	fmtDev     = 0 // device number (special files)
	fmtLocal   = 1 // data inside the fork (short-form directory, symlink)
	fmtExtents = 2 // a list of extent records
	fmtBtree   = 3 // the root of an extent B+tree

	diflagRealtime = 0x1       // di_flags: data on the realtime device
	diflag2Bigtime = 1 << 3    // di_flags2: 64-bit nanosecond timestamps
	diflag2Nrext64 = 1 << 4    // di_flags2: di_big_nextents counts the data fork
	bigtimeEpoch   = 1 << 31   // bigtime counts from -2^31 s (1901-12-13T20:45:52Z)
	extRecSize     = 16        // one packed extent record
	maxExtentCount = 1<<21 - 1 // blocks of one extent record (21 bits)
	maxFileBlocks  = 1 << 54   // file offsets in blocks (54 bits)

	// S_IFMT types in di_mode.
	sIFMT   = 0o170000
	sIFIFO  = 0o010000
	sIFCHR  = 0o020000
	sIFDIR  = 0o040000
	sIFBLK  = 0o060000
	sIFREG  = 0o100000
	sIFLNK  = 0o120000
	sIFSOCK = 0o140000
)

// inode is what the reader uses of an on-disk inode.
type inode struct {
	ino      uint64
	mode     uint16
	format   uint8
	uid, gid uint32
	nlink    uint32
	size     int64
	flags    uint16
	nextents uint64 // data fork extent records
	atime    time.Time
	mtime    time.Time
	ctime    time.Time
	crtime   time.Time
	fork     []byte // the data fork's bytes
}

func (in *inode) typ() fsys.Type {
	switch uint32(in.mode) & sIFMT {
	case sIFREG:
		return fsys.TypeRegular
	case sIFDIR:
		return fsys.TypeDir
	case sIFLNK:
		return fsys.TypeSymlink
	case sIFCHR:
		return fsys.TypeCharDev
	case sIFBLK:
		return fsys.TypeBlockDev
	case sIFIFO:
		return fsys.TypeFIFO
	case sIFSOCK:
		return fsys.TypeSocket
	}
	return fsys.TypeUnknown
}

// inodePos returns the byte offset of inode ino: its AG number is above
// agBlkLog+inoPBLog bits, then the block within the AG, then its slot in
// the block.
func (f *FS) inodePos(ino uint64) (int64, error) {
	shift := f.sb.agBlkLog + f.sb.inoPBLog
	agno := ino >> shift
	agino := ino & (1<<shift - 1)
	agbno := agino >> f.sb.inoPBLog
	slot := agino & (1<<f.sb.inoPBLog - 1)
	if agno >= f.sb.agCount || agbno >= f.sb.agBlocks || agno*f.sb.agBlocks+agbno >= f.sb.dblocks {
		return 0, fmt.Errorf("inode %d: AG %d block %d outside the file system: %w", ino, agno, agbno, fsys.ErrCorrupt)
	}
	return int64(agno*f.sb.agBlocks+agbno)<<f.sb.blockLog + int64(slot)*f.sb.inodeSize, nil
}

// readInode reads and checks inode ino.
func (f *FS) readInode(ino uint64) (*inode, error) {
	pos, err := f.inodePos(ino)
	if err != nil {
		return nil, fmt.Errorf("xfs: %w", err)
	}
	buf := make([]byte, f.sb.inodeSize)
	if err := f.readFull(buf, pos); err != nil {
		return nil, fmt.Errorf("xfs: inode %d: %w", ino, err)
	}
	in, err := f.parseInode(ino, buf)
	if err != nil {
		return nil, fmt.Errorf("xfs: inode %d: %w", ino, err)
	}
	return in, nil
}

func (f *FS) parseInode(ino uint64, b []byte) (*inode, error) {
	be := binary.BigEndian
	if m := be.Uint16(b); m != inodeMagic {
		return nil, fmt.Errorf("bad magic %#x: %w", m, fsys.ErrCorrupt)
	}
	version := b[4]
	if f.sb.v5 {
		if version != 3 {
			return nil, fmt.Errorf("inode version %d in a v5 file system: %w", version, fsys.ErrCorrupt)
		}
		if !f.crcOK(b, inodeCRCOff) {
			return nil, fmt.Errorf("CRC mismatch: %w", fsys.ErrCorrupt)
		}
		if got := be.Uint64(b[152:]); got != ino {
			return nil, fmt.Errorf("the inode says it is inode %d: %w", got, fsys.ErrCorrupt)
		}
		if !bytes.Equal(b[160:176], f.sb.uuid[:]) {
			return nil, fmt.Errorf("UUID of another file system: %w", fsys.ErrCorrupt)
		}
	} else if version != 1 && version != 2 {
		return nil, fmt.Errorf("inode version %d in a v4 file system: %w", version, fsys.ErrCorrupt)
	}
	in := &inode{
		ino:    ino,
		mode:   be.Uint16(b[2:]),
		format: b[5],
		uid:    be.Uint32(b[8:]),
		gid:    be.Uint32(b[12:]),
		nlink:  be.Uint32(b[16:]),
		flags:  be.Uint16(b[90:]),
	}
	if in.mode == 0 {
		return nil, fmt.Errorf("free inode: %w", fsys.ErrNotFound)
	}
	size := be.Uint64(b[56:])
	if size > 1<<63-1 {
		return nil, fmt.Errorf("size %d: %w", size, fsys.ErrCorrupt)
	}
	in.size = int64(size)
	var flags2 uint64
	if f.sb.v5 {
		flags2 = be.Uint64(b[120:])
	}
	if flags2&diflag2Nrext64 != 0 {
		in.nextents = be.Uint64(b[24:])
	} else {
		in.nextents = uint64(be.Uint32(b[76:]))
	}
	if version == 1 {
		in.nlink = uint32(be.Uint16(b[6:])) // di_onlink
	}
	big := flags2&diflag2Bigtime != 0
	in.atime = timestamp(b[32:], big)
	in.mtime = timestamp(b[40:], big)
	in.ctime = timestamp(b[48:], big)
	if f.sb.v5 {
		in.crtime = timestamp(b[144:], big)
	}
	core := f.sb.coreSize
	forkSize := int64(len(b)) - core
	if off := int64(b[82]) * 8; off != 0 {
		if off >= forkSize {
			return nil, fmt.Errorf("attribute fork offset %d beyond the inode: %w", off, fsys.ErrCorrupt)
		}
		forkSize = off
	}
	in.fork = b[core : core+forkSize]
	return in, nil
}

// timestamp decodes an inode time: with bigtime, nanoseconds since
// -2^31 s; otherwise signed seconds and nanoseconds since the Unix epoch.
func timestamp(b []byte, big bool) time.Time {
	v := binary.BigEndian.Uint64(b)
	if big {
		sec := int64(v/1e9) - bigtimeEpoch
		return time.Unix(sec, int64(v%1e9)).UTC()
	}
	nsec := int64(binary.BigEndian.Uint32(b[4:]))
	if nsec >= 1e9 {
		nsec = 0
	}
	return time.Unix(int64(int32(binary.BigEndian.Uint32(b))), nsec).UTC()
}

// Stat returns what inode id says of its file.
func (f *FS) Stat(id fsys.ID) (fsys.Stat, error) {
	in, err := f.readInode(uint64(id))
	if err != nil {
		return fsys.Stat{}, err
	}
	return fsys.Stat{
		ID:     id,
		Addr:   strconv.FormatUint(uint64(id), 10),
		Type:   in.typ(),
		Mode:   uint32(in.mode) & 0o7777,
		UID:    in.uid,
		GID:    in.gid,
		Nlink:  in.nlink,
		Size:   in.size,
		Atime:  in.atime,
		Mtime:  in.mtime,
		Ctime:  in.ctime,
		Crtime: in.crtime,
	}, nil
}
