package xfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// Remote symbolic link blocks (struct xfs_dsymlink_hdr, 56 bytes, then
// the target's bytes).
const (
	symlinkMagic   = 0x58534c4d // "XSLM"
	symlinkHdrSize = 56
	symlinkCRCOff  = 12
	symlinkMaxLen  = 1024 // XFS_SYMLINK_MAXLEN
)

// file is an open regular file (or a symbolic link's or special file's
// data).
type file struct {
	f        *FS
	size     int64
	exts     []extent
	data     []byte // the bytes, when resident in the inode
	resident bool
	runs     []fsys.Run
}

func (fl *file) Size() int64      { return fl.size }
func (fl *file) Runs() []fsys.Run { return fl.runs }
func (fl *file) Resident() bool   { return fl.resident }
func (fl *file) blockSize() int64 { return fl.f.sb.blockSize }
func (fl *file) extentEnd(i int) int64 {
	return int64(fl.exts[i].end()) << fl.f.sb.blockLog
}

// ReadAt reads the file's bytes at off; holes and unwritten extents
// read as zeros.
func (fl *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("xfs: negative read offset")
	}
	if off >= fl.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > fl.size-off {
		n = int(fl.size - off)
	}
	if fl.data != nil {
		copy(p[:n], fl.data[off:])
	} else if err := fl.readMapped(p[:n], off); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (fl *file) readMapped(p []byte, off int64) error {
	clear(p)
	end := off + int64(len(p))
	bs := fl.blockSize()
	i := sort.Search(len(fl.exts), func(i int) bool { return fl.extentEnd(i) > off })
	for ; i < len(fl.exts); i++ {
		e := fl.exts[i]
		start := int64(e.off) * bs
		if start >= end {
			break
		}
		if e.unwritten {
			continue
		}
		lo, hi := max(start, off), min(fl.extentEnd(i), end)
		if err := fl.f.readFull(p[lo-off:hi-off], e.pos+(lo-start)); err != nil {
			return fmt.Errorf("xfs: reading file data: %w", err)
		}
	}
	return nil
}

// runsOf places the extents' bytes up to size on the volume: holes and
// unwritten extents are sparse runs, adjacent runs are merged.
func runsOf(exts []extent, size int64, blockLog uint) []fsys.Run {
	var runs []fsys.Run
	add := func(r fsys.Run) {
		if n := len(runs); n > 0 {
			last := &runs[n-1]
			if last.Logical+last.Length == r.Logical &&
				((last.Sparse() && r.Sparse()) || (!last.Sparse() && !r.Sparse() && last.Physical+last.Length == r.Physical)) {
				last.Length += r.Length
				return
			}
		}
		runs = append(runs, r)
	}
	var cur int64
	for _, e := range exts {
		start := int64(e.off) << blockLog
		if start >= size {
			break
		}
		if start > cur {
			add(fsys.Run{Logical: cur, Physical: -1, Length: start - cur})
		}
		l := min(int64(e.count)<<blockLog, size-start)
		phys := e.pos
		if e.unwritten {
			phys = -1
		}
		add(fsys.Run{Logical: start, Physical: phys, Length: l})
		cur = start + l
	}
	if cur < size {
		add(fsys.Run{Logical: cur, Physical: -1, Length: size - cur})
	}
	return runs
}

// Open opens a file's data. XFS keeps no named streams: any stream but
// "" is fsys.ErrNotFound. A symbolic link opens as its target's bytes.
func (f *FS) Open(id fsys.ID, stream string) (fsys.File, error) {
	if stream != "" {
		return nil, fmt.Errorf("xfs: inode %d: stream %q: XFS has no named streams: %w", id, stream, fsys.ErrNotFound)
	}
	in, err := f.readInode(uint64(id))
	if err != nil {
		return nil, err
	}
	switch in.typ() {
	case fsys.TypeDir:
		return nil, fmt.Errorf("xfs: inode %d: %w", id, fsys.ErrIsDir)
	case fsys.TypeSymlink:
		target, local, err := f.readlink(in)
		if err != nil {
			return nil, err
		}
		return &file{f: f, size: int64(len(target)), data: []byte(target), resident: local}, nil
	case fsys.TypeRegular:
	default:
		// Device nodes, FIFOs and sockets hold no data.
		return &file{f: f, data: []byte{}, resident: true}, nil
	}
	if in.flags&diflagRealtime != 0 {
		return nil, fmt.Errorf("xfs: inode %d: a realtime file (its data is on the realtime device): %w", id, fsys.ErrUnsupported)
	}
	if in.format == fmtLocal {
		if in.size > int64(len(in.fork)) {
			return nil, fmt.Errorf("xfs: inode %d: %d bytes do not fit in its fork: %w", id, in.size, fsys.ErrCorrupt)
		}
		return &file{f: f, size: in.size, data: in.fork[:in.size], resident: true}, nil
	}
	exts, err := f.extents(in, newBudget())
	if err != nil {
		return nil, err
	}
	return &file{f: f, size: in.size, exts: exts, runs: runsOf(exts, in.size, f.sb.blockLog)}, nil
}

// Readlink returns a symbolic link's target.
func (f *FS) Readlink(id fsys.ID) (string, error) {
	in, err := f.readInode(uint64(id))
	if err != nil {
		return "", err
	}
	if in.typ() != fsys.TypeSymlink {
		return "", fmt.Errorf("xfs: inode %d is a %s, not a symbolic link", id, in.typ())
	}
	target, _, err := f.readlink(in)
	return target, err
}

// readlink reads a link's target, from the inode (local) or from
// blocks that each start with a header (remote); local reports which.
func (f *FS) readlink(in *inode) (target string, local bool, err error) {
	if in.size <= 0 || in.size > symlinkMaxLen {
		return "", false, fmt.Errorf("xfs: inode %d: symbolic link of %d bytes: %w", in.ino, in.size, fsys.ErrCorrupt)
	}
	if in.format == fmtLocal {
		if in.size > int64(len(in.fork)) {
			return "", false, fmt.Errorf("xfs: inode %d: symbolic link of %d bytes does not fit in its fork: %w", in.ino, in.size, fsys.ErrCorrupt)
		}
		return string(in.fork[:in.size]), true, nil
	}
	exts, err := f.extents(in, newBudget())
	if err != nil {
		return "", false, err
	}
	if !f.sb.v5 {
		// v4 remote links are the target's bytes, without headers.
		fl := &file{f: f, size: in.size, exts: exts}
		out := make([]byte, in.size)
		if err := fl.readMapped(out, 0); err != nil {
			return "", false, err
		}
		return string(out), false, nil
	}
	bs := f.sb.blockSize
	out := make([]byte, 0, in.size)
	buf := make([]byte, bs)
	be := binary.BigEndian
	for _, e := range exts {
		if e.unwritten {
			return "", false, fmt.Errorf("xfs: inode %d: symbolic link: unwritten extent: %w", in.ino, fsys.ErrCorrupt)
		}
		for i := uint64(0); i < e.count && int64(len(out)) < in.size; i++ {
			pos := e.pos + int64(i)*bs
			if err := f.readFull(buf, pos); err != nil {
				return "", false, fmt.Errorf("xfs: inode %d: symbolic link block: %w", in.ino, err)
			}
			what := fmt.Sprintf("xfs: inode %d: symbolic link block %d", in.ino, e.off+i)
			switch {
			case be.Uint32(buf) != symlinkMagic:
				return "", false, fmt.Errorf("%s: bad magic %#x: %w", what, be.Uint32(buf), fsys.ErrCorrupt)
			case !f.crcOK(buf, symlinkCRCOff):
				return "", false, fmt.Errorf("%s: CRC mismatch: %w", what, fsys.ErrCorrupt)
			case !bytes.Equal(buf[16:32], f.sb.uuid[:]):
				return "", false, fmt.Errorf("%s: UUID of another file system: %w", what, fsys.ErrCorrupt)
			case be.Uint64(buf[32:]) != in.ino:
				return "", false, fmt.Errorf("%s: owned by inode %d: %w", what, be.Uint64(buf[32:]), fsys.ErrCorrupt)
			case be.Uint64(buf[40:]) != uint64(pos)/512:
				return "", false, fmt.Errorf("%s: records disk address %d, read at %d: %w", what, be.Uint64(buf[40:]), pos/512, fsys.ErrCorrupt)
			}
			off, n := int64(be.Uint32(buf[4:])), int64(be.Uint32(buf[8:]))
			if off != int64(len(out)) || n == 0 || n > bs-symlinkHdrSize || off+n > in.size {
				return "", false, fmt.Errorf("%s: %d bytes at %d of a %d-byte target: %w", what, n, off, in.size, fsys.ErrCorrupt)
			}
			out = append(out, buf[symlinkHdrSize:symlinkHdrSize+n]...)
		}
	}
	if int64(len(out)) != in.size {
		return "", false, fmt.Errorf("xfs: inode %d: symbolic link: %d of %d bytes in its blocks: %w", in.ino, len(out), in.size, fsys.ErrCorrupt)
	}
	return string(out), false, nil
}
