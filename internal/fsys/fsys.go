// Package fsys is the common shape of the read-only file-system readers
// (ext, XFS, NTFS, FAT and exFAT, in the packages below it) and what is
// built once on top of them: path lookup, bounded walks and bodyfiles.
//
// A reader parses what is on disk and nothing else: no journal replay,
// no repair. Every number it takes from disk is bounded before it is used
// to allocate or to loop, every structure it follows is checked for
// cycles, and a damaged structure gives an error that names it and wraps
// ErrCorrupt, never a hang or a panic.
package fsys

import (
	"errors"
	"io"
	"time"
)

// ID identifies a file within its file system: the inode number (ext,
// XFS), the MFT record number (NTFS), or for FAT and exFAT the address
// Sleuth Kit gives the directory entry.
type ID uint64

// Type is a file's type.
type Type uint8

const (
	TypeUnknown Type = iota
	TypeRegular
	TypeDir
	TypeSymlink
	TypeCharDev
	TypeBlockDev
	TypeFIFO
	TypeSocket
)

// String returns the type as one word ("file", "dir", "symlink", ...).
func (t Type) String() string {
	switch t {
	case TypeRegular:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeCharDev:
		return "chardev"
	case TypeBlockDev:
		return "blockdev"
	case TypeFIFO:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return "unknown"
}

// DirEntry is one name in a directory. "." and ".." are never returned.
type DirEntry struct {
	Name string // as stored, decoded to UTF-8 (invalid bytes kept as they are)
	ID   ID
	Type Type // TypeUnknown when the directory does not record it: Stat tells
}

// Stat is what a file's inode or record says of it. A time the file
// system does not keep is the zero time.
type Stat struct {
	ID ID
	// Addr is the file's address as Sleuth Kit prints it in fls and
	// bodyfiles: "12" for an inode, "35-128-1" for an NTFS record's
	// $DATA attribute.
	Addr  string
	Type  Type
	Mode  uint32 // permission bits with setuid, setgid and sticky (07777)
	UID   uint32
	GID   uint32
	Nlink uint32
	Size  int64 // of the default data stream; a symlink's target length
	Atime time.Time
	Mtime time.Time
	Ctime time.Time // inode or record change time
	// Crtime is the creation (birth) time: ext4 crtime, XFS v5 crtime,
	// NTFS $STANDARD_INFORMATION creation, FAT creation.
	Crtime time.Time
	// Streams names the named data streams (NTFS alternate data
	// streams), without the default one.
	Streams []string
}

// Run places bytes of a file on the volume the file system was opened
// on: Length bytes from the file's offset Logical lie at the volume's
// offset Physical. A sparse run (a hole, read as zeros) has Physical -1.
// Runs list stored bytes only: data held inside an inode or an MFT
// record (inline, resident) has no run, and Resident reports it.
type Run struct {
	Logical, Physical, Length int64
}

// Sparse reports whether the run is a hole.
func (r Run) Sparse() bool { return r.Physical < 0 }

// File is an open data stream of a file.
type File interface {
	// ReadAt reads the stream's bytes as io.ReaderAt does: holes read as
	// zeros, and a read that reaches Size returns io.EOF with the bytes
	// before it. Compressed streams (NTFS LZNT1) read decompressed.
	io.ReaderAt
	Size() int64
	// Runs returns where the stream's bytes lie on the volume, in
	// logical order. For a compressed stream they are the compressed
	// clusters the stream is read from.
	Runs() []Run
	// Resident reports that the bytes are held in the inode or record
	// itself, so reading them reads no other block.
	Resident() bool
}

// FS is a read-only file system. Its methods, and the Files it opens,
// are safe for concurrent use: triage walks and reads ahead in parallel.
type FS interface {
	// Type names the file system as blkid does: "ext2", "ext3", "ext4",
	// "xfs", "ntfs", "vfat" (FAT12/16/32) or "exfat".
	Type() string
	// Root returns the root directory's ID.
	Root() ID
	Stat(id ID) (Stat, error)
	// ReadDir returns a directory's entries in on-disk order, without
	// "." and "..". It returns ErrNotDir for a file that is not one.
	ReadDir(id ID) ([]DirEntry, error)
	// Open opens the file's default data stream (stream ""), or a named
	// stream. ErrNotFound when the stream does not exist; ErrIsDir for a
	// directory's default stream.
	Open(id ID, stream string) (File, error)
	// Readlink returns a symbolic link's target as stored.
	Readlink(id ID) (string, error)
}

// Errors a reader wraps, so callers and exit codes can tell them apart.
var (
	ErrNotFound = errors.New("no such file or directory")
	ErrNotDir   = errors.New("not a directory")
	ErrIsDir    = errors.New("is a directory")
	// ErrCorrupt wraps every error about on-disk structures that fail a
	// check (a magic number, a checksum, a bound, a cycle). The message
	// names the structure: "ext4: inode 12: extent header: bad magic".
	ErrCorrupt = errors.New("corrupt file-system structure")
	// ErrUnsupported is for a structure the reader knows it cannot read
	// (an encrypted ext4 directory, an XFS realtime file).
	ErrUnsupported = errors.New("not supported")
	// ErrEncrypted is for a partition that holds an encrypted volume
	// (LUKS, BitLocker): it is identified and reported, never guessed at.
	ErrEncrypted = errors.New("encrypted volume: its files cannot be read")
)

// Limits every reader keeps, so that hostile sizes cannot exhaust memory
// or time.
const (
	// MaxDirEntries bounds the entries one directory may return.
	MaxDirEntries = 1 << 22
	// MaxSymlink bounds a symbolic link target's length.
	MaxSymlink = 64 << 10
	// MaxRuns bounds the runs (extents) of one stream.
	MaxRuns = 1 << 22
)
