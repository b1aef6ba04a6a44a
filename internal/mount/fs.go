package mount

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Modes of the mount's inodes: nothing is writable, not even by root.
const (
	dirMode  = syscall.S_IFDIR | 0o555
	fileMode = syscall.S_IFREG | 0o444
)

// blockSize is the I/O size st_blksize advises (cp, dd, read loops take
// it): one EBS block, 512 KiB, so a reader's requests fall on the blocks
// the volume fetches and verifies.
const blockSize = 512 << 10

// openWrite are the open flags that would change a file.
const openWrite = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND | syscall.O_CREAT

// tree is what every node shares: the volume, the fixed times and owner,
// and where failed reads are reported.
type tree struct {
	r        io.ReaderAt
	mtime    time.Time
	uid, gid uint32
	files    []File
	readErr  func(error)
}

// attr fills a with the attributes common to every inode.
func (t *tree) attr(a *fuse.Attr, ino uint64, mode uint32, size int64) {
	a.Ino = ino
	a.Mode = mode
	a.Size = uint64(size)
	a.Blocks = uint64((size + 511) / 512) // st_blocks counts 512-byte units
	a.Blksize = blockSize
	a.Nlink = 1
	if mode&syscall.S_IFDIR != 0 {
		a.Nlink = 2
	}
	a.Owner = fuse.Owner{Uid: t.uid, Gid: t.gid}
	a.SetTimes(&t.mtime, &t.mtime, &t.mtime)
}

// root is the mount's one directory.
type root struct {
	fs.Inode
	t *tree
}

var (
	_ fs.NodeOnAdder   = (*root)(nil)
	_ fs.NodeGetattrer = (*root)(nil)
	_ fs.NodeSetattrer = (*root)(nil)
	_ fs.NodeStatfser  = (*root)(nil)
)

// OnAdd adds the files, inode numbers 2, 3, … in order (the root is 1).
func (d *root) OnAdd(ctx context.Context) {
	for i, f := range d.t.files {
		n := &file{t: d.t, f: f, ino: uint64(i) + 2}
		d.AddChild(f.Name, d.NewPersistentInode(ctx, n, fs.StableAttr{Mode: fileMode, Ino: n.ino}), false)
	}
}

func (d *root) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.t.attr(&out.Attr, 1, dirMode, 0)
	return 0
}

func (d *root) Setattr(context.Context, fs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

// Statfs says the file system is full and read-only: its size is the
// volume's, nothing is free.
func (d *root) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = blockSize
	out.Frsize = blockSize
	if len(d.t.files) > 0 {
		out.Blocks = uint64((d.t.files[0].Len + blockSize - 1) / blockSize)
	}
	out.Files = uint64(len(d.t.files)) + 1
	out.NameLen = 255
	return 0
}

// file is disk.raw or a partition.
type file struct {
	fs.Inode
	t   *tree
	f   File
	ino uint64
}

var (
	_ fs.NodeOpener    = (*file)(nil)
	_ fs.NodeReader    = (*file)(nil)
	_ fs.NodeGetattrer = (*file)(nil)
	_ fs.NodeSetattrer = (*file)(nil)
)

// Open refuses writing, and lets the kernel keep the pages it has cached
// from one open to the next: the bytes never change.
func (n *file) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&openWrite != 0 {
		return nil, 0, syscall.EROFS
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// Read reads dest at off from the volume. A read the volume cannot serve
// whole is EIO: a short read would tell the kernel the file ends there.
func (n *file) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if off >= n.f.Len {
		return fuse.ReadResultData(nil), 0
	}
	want := int(min(int64(len(dest)), n.f.Len-off))
	got, err := n.t.r.ReadAt(dest[:want], n.f.Off+off)
	if got == want {
		return fuse.ReadResultData(dest[:want]), 0
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF // the volume is shorter than it said
	}
	if n.t.readErr != nil {
		n.t.readErr(fmt.Errorf("reading %s at offset %d (%d bytes): %w", n.f.Name, off, want, err))
	}
	return nil, syscall.EIO
}

func (n *file) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.t.attr(&out.Attr, n.ino, fileMode, n.f.Len)
	return 0
}

func (n *file) Setattr(context.Context, fs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
