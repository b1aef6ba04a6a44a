package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
)

// fileSystem is what Put and its group commit do to the disk, behind a
// seam so that a test can keep, beside the real files, what a crash
// would leave of them: only what was synced.
type fileSystem interface {
	// Create creates path (0600), which must not exist.
	Create(path string) (file, error)
	// Append opens path for appending, creating it (0600).
	Append(path string) (file, error)
	// Mkdir creates the directory path (0700).
	Mkdir(path string) error
	Rename(from, to string) error
	Remove(path string) error
	// SyncDir makes the entries of directory path durable.
	SyncDir(path string) error
	// SyncAll makes everything written on the file system that holds the
	// evidence durable, contents and names, and reports any write-back
	// error since the evidence was opened; errNoSyncAll when it cannot.
	SyncAll() error
	Close() error
}

// file is a file open for writing.
type file interface {
	io.Writer
	Sync() error
	Close() error
}

// errNoSyncAll says that SyncAll is unavailable: each file is then
// synced by its writer.
var errNoSyncAll = errors.New("syncing the whole file system is not available here")

// osFS is the real file system. all, when it is open, is a descriptor
// of the evidence directory for syncfs(2).
type osFS struct{ all *os.File }

func newOSFS(dir string) *osFS {
	fs := &osFS{}
	if syncAllWorks() {
		if d, err := os.Open(dir); err == nil {
			fs.all = d
		}
	}
	return fs
}

func (*osFS) Create(path string) (file, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

func (*osFS) Append(path string) (file, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}

func (*osFS) Mkdir(path string) error      { return os.Mkdir(path, 0o700) }
func (*osFS) Rename(from, to string) error { return os.Rename(from, to) }
func (*osFS) Remove(path string) error     { return os.Remove(path) }
func (*osFS) SyncDir(path string) error    { return atomicfile.SyncDir(path) }
func (fs *osFS) SyncAll() error            { return syncAll(fs.all) }
func (fs *osFS) Close() error {
	if fs.all == nil {
		return nil
	}
	err := fs.all.Close()
	fs.all = nil
	return err
}

// mkdirAll creates dir and its missing parents through fs, and makes
// each new directory's name durable in its parent.
func mkdirAll(fs fileSystem, dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(fs, parent); err != nil {
			return err
		}
	}
	if err := fs.Mkdir(dir); err != nil {
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return nil // made meanwhile by another Put
		}
		return err
	}
	return fs.SyncDir(parent)
}
