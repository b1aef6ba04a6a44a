package raw

import (
	"os"

	"golang.org/x/sys/unix"
)

// startFileWriteback asks the kernel to start writing f's dirty pages
// (sync_file_range with SYNC_FILE_RANGE_WRITE: it does not wait for them,
// and makes nothing durable). A failure is ignored: Close's fsync reports
// whatever went wrong.
func startFileWriteback(f file) {
	if of, ok := f.(*os.File); ok {
		unix.SyncFileRange(int(of.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
}
