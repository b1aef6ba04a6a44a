// Package dirlock gives one ebsimager process at a time the right to
// write an output: an evidence directory, or an image and the hash files
// beside it. The lock is an flock(2) on a small file that names its
// holder, so a second process can say who holds it, and a lock whose
// holder died (kill -9, power loss) is free again at once: the kernel
// drops an flock with the last descriptor of the process that took it.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Name is the lock file kept inside an evidence directory while a
// process writes to it.
const Name = ".ebsimager.lock"

// maxHolderLen bounds what is read back from a lock file someone else
// wrote: a PID and a command name, never more.
const maxHolderLen = 256

// HeldError says that another live process holds the lock.
type HeldError struct {
	Path string
	PID  int    // 0 when the holder did not (yet) write its PID
	What string // what the holder is doing, as it said, e.g. "acquire"
}

func (e *HeldError) Error() string {
	who := "another ebsimager process"
	if e.PID > 0 {
		who = fmt.Sprintf("another ebsimager process (PID %d", e.PID)
		if e.What != "" {
			who += ", " + e.What
		}
		who += ")"
	}
	return fmt.Sprintf("%s holds %s; wait for it to finish", who, e.Path)
}

// Lock is a held lock.
type Lock struct {
	f    *os.File
	path string
}

// ForDir locks the evidence directory dir, through dir/.ebsimager.lock.
func ForDir(dir, what string) (*Lock, error) {
	return Acquire(filepath.Join(dir, Name), what)
}

// ForFile locks an output file path (an image and its hash files),
// through path.lock beside it.
func ForFile(path, what string) (*Lock, error) {
	return Acquire(path+".lock", what)
}

// Acquire takes the lock file path, creating it (0600), without waiting:
// a lock held by a live process is a *HeldError. A stale file left by a
// dead process is taken over. what says what this process is doing.
func Acquire(path, what string) (*Lock, error) {
	for attempt := 0; attempt < 8; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			pid, holder := readHolder(f)
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &HeldError{Path: guarded(path), PID: pid, What: holder}
			}
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		// The holder before us may have removed the file between our open
		// and our flock: then we hold a lock on a name nobody sees. Retry
		// until the locked file is the one under the name.
		if same(f, path) {
			if err := writeHolder(f, what); err != nil {
				f.Close()
				return nil, fmt.Errorf("locking %s: %w", path, err)
			}
			return &Lock{f: f, path: path}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("locking %s: the lock file keeps changing under us", path)
}

// Release removes the lock file and drops the lock. Removing first, while
// still holding it, is what lets Acquire detect a file that was removed.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// guarded names what the lock file path guards: the directory of a
// directory lock, the output of a file lock (path without ".lock").
func guarded(path string) string {
	if filepath.Base(path) == Name {
		return filepath.Dir(path)
	}
	return strings.TrimSuffix(path, ".lock")
}

func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

func writeHolder(f *os.File, what string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), what)), 0)
	return err
}

func readHolder(f *os.File) (int, string) {
	buf := make([]byte, maxHolderLen)
	n, _ := f.ReadAt(buf, 0)
	fields := strings.Fields(string(buf[:n]))
	if len(fields) == 0 {
		return 0, ""
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 0 {
		return 0, ""
	}
	what := ""
	if len(fields) > 1 {
		what = fields[1]
	}
	return pid, what
}
