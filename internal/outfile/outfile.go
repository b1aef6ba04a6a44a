// Package outfile decides whether a command may create or replace an
// output file. An output replaces only a regular file (never a device,
// socket, FIFO or directory, nor a symbolic link to one), never one of the
// files the command reads, and is never written inside an evidence
// directory the command reads, whatever path leads there: symbolic links,
// hard links and bind mounts are seen through by comparing device and
// inode numbers.
package outfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ebsimager/ebsimager/internal/dirlock"
)

// ConflictError refuses an output path. It matches fs.ErrExist, the
// output-conflict error.
type ConflictError struct {
	Path string
	Why  string
	// Exists is set when the only objection is that Path exists: replacing
	// it is allowed with force.
	Exists bool
}

func (e *ConflictError) Error() string { return e.Path + ": " + e.Why }

// Is makes a ConflictError an fs.ErrExist.
func (e *ConflictError) Is(target error) bool { return target == fs.ErrExist }

// Replaceable returns a *ConflictError if path exists and is not a
// regular file, or a symbolic link to one, which is all an output may
// replace. A dangling symbolic link is replaceable: the link is replaced,
// not what it named. Anything else that prevents the check is returned
// as is.
func Replaceable(path string) error {
	li, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if li.Mode().IsRegular() {
		return nil
	}
	if li.Mode()&fs.ModeSymlink == 0 {
		return &ConflictError{Path: path, Why: fmt.Sprintf("is %s, not a regular file; only a regular file is ever replaced, even with --force", kind(li.Mode()))}
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &ConflictError{Path: path, Why: fmt.Sprintf("is a symbolic link to %s, not a regular file; only a regular file is ever replaced, even with --force", kind(fi.Mode()))}
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file (mode " + m.String() + ")"
}

// fileID names a file whatever path reaches it.
type fileID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true // Dev and Ino differ in width between platforms
}

// Inputs are what a command reads. The zero value reads nothing.
type Inputs struct {
	dirs  map[fileID]string // directories nothing may be written inside
	files map[fileID]string // files no output may be; filled lazily from dirs
	// walked records that every file under dirs is in files.
	walked bool
}

// AddDir adds a directory the command reads, such as an evidence
// directory: no output may lie anywhere under it or be any file in it.
func (in *Inputs) AddDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	id, ok := idOf(fi)
	if !ok {
		return fmt.Errorf("%s: no device and inode numbers on this platform", dir)
	}
	if in.dirs == nil {
		in.dirs = map[fileID]string{}
	}
	in.dirs[id] = dir
	in.walked = false
	return nil
}

// AddFile adds a file the command reads: no output may be that file.
func (in *Inputs) AddFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	id, ok := idOf(fi)
	if !ok {
		return fmt.Errorf("%s: no device and inode numbers on this platform", path)
	}
	if in.files == nil {
		in.files = map[fileID]string{}
	}
	in.files[id] = path
	return nil
}

// Check refuses path as an output (with a *ConflictError naming it and
// saying why) if it lies inside an input directory, if it is an input
// file, if it exists and is not a regular file, or if it exists and force
// is not set. A missing parent directory is not an error here: creating
// the file will report it.
func (in *Inputs) Check(path string, force bool) error {
	if dir, ok, err := in.inside(path); err != nil {
		return err
	} else if ok {
		return &ConflictError{Path: path, Why: fmt.Sprintf("is inside %s, which this command reads; write the output elsewhere", dir)}
	}
	if err := Replaceable(path); err != nil {
		return err
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if src, ok, err := in.isInput(path); err != nil {
		return err
	} else if ok {
		return &ConflictError{Path: path, Why: fmt.Sprintf("is the same file as %s, which this command reads", src)}
	}
	if !force {
		return &ConflictError{Path: path, Why: "already exists", Exists: true}
	}
	return nil
}

// inside reports the input directory that path's directory is, or lies
// under, following symbolic links and comparing inode numbers.
func (in *Inputs) inside(path string) (string, bool, error) {
	if len(in.dirs) == 0 {
		return "", false, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", false, err
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	// parent holds no symbolic link now, so its lexical parents are its
	// real ones.
	for p := parent; ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil {
			if id, ok := idOf(fi); ok {
				if dir, ok := in.dirs[id]; ok {
					return dir, true, nil
				}
			}
		}
		if p == filepath.Dir(p) {
			return "", false, nil
		}
	}
}

// isInput reports the input that path (followed if a link) is.
func (in *Inputs) isInput(path string) (string, bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil // a dangling link
	}
	if err != nil {
		return "", false, err
	}
	id, ok := idOf(fi)
	if !ok {
		return "", false, nil
	}
	if err := in.walk(); err != nil {
		return "", false, err
	}
	src, ok := in.files[id]
	return src, ok, nil
}

// walk records every file under the input directories, so that a hard
// link to one of them elsewhere is recognised.
func (in *Inputs) walk() error {
	if in.walked {
		return nil
	}
	if in.files == nil {
		in.files = map[fileID]string{}
	}
	for _, dir := range in.dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Stat(p) // through links: a link's target is read too
			if err != nil {
				return nil // a dangling link reads nothing
			}
			if id, ok := idOf(fi); ok && !fi.IsDir() {
				in.files[id] = p
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing %s: %w", dir, err)
		}
	}
	in.walked = true
	return nil
}

// Claim makes an output this process's to write. It takes the output's
// lock (lockPath, through dirlock; a *dirlock.HeldError if another live
// process holds it), then runs cleanup, which removes what a killed
// writer of the same output left and is safe only under the lock, then
// checks (see Check) every name that names returns: the files the output
// will create, replace or remove. It returns the lock, which the caller
// releases when the output is finished or abandoned, and what cleanup
// removed.
func (in *Inputs) Claim(lockPath, what string, force bool, names func() ([]string, error), cleanup func() ([]string, error)) (*dirlock.Lock, []string, error) {
	// The lock file is ours to create or take over, never an input nor
	// anything but a regular file.
	if err := in.Check(lockPath, true); err != nil {
		return nil, nil, err
	}
	lock, err := dirlock.Acquire(lockPath, what)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*dirlock.Lock, []string, error) {
		lock.Release()
		return nil, nil, err
	}
	var removed []string
	if cleanup != nil {
		if removed, err = cleanup(); err != nil {
			return fail(err)
		}
	}
	list, err := names()
	if err != nil {
		return fail(err)
	}
	for _, name := range list {
		if err := in.Check(name, force); err != nil {
			return fail(err)
		}
	}
	return lock, removed, nil
}
