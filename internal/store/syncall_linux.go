package store

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// syncAllWorks reports whether syncfs(2) reports write-back errors:
// Linux returns them from syncfs only since 5.8, and before that a
// failed write would go unnoticed, so each file is fsynced instead.
func syncAllWorks() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 8)
}

// kernelAtLeast reports whether a release string such as
// "6.1.0-13-amd64" is at least major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// syncAll calls syncfs(2) on the file system that holds d. d was opened
// when the evidence was, so the call reports any write-back error on
// that file system since.
func syncAll(d *os.File) error {
	if d == nil {
		return errNoSyncAll
	}
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: d.Name(), Err: err}
	}
	return nil
}

// device returns the ID of the file system holding path.
func device(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Dev, nil
}
