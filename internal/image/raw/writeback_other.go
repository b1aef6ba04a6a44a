//go:build !linux

package raw

// startFileWriteback does nothing where sync_file_range does not exist:
// Close's fsync writes everything.
func startFileWriteback(file) {}
