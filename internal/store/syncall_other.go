//go:build !linux

package store

import "os"

// syncAllWorks is false: only Linux has syncfs(2); each file is fsynced
// instead.
func syncAllWorks() bool { return false }

func syncAll(*os.File) error { return errNoSyncAll }

// device is not needed where syncAll never works.
func device(string) (uint64, error) { return 0, nil }
