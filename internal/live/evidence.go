package live

import (
	"errors"
	"fmt"
	"os"

	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/store"
)

// EvidenceDir returns an Options.Evidence that stores every fetched block
// in the evidence directory dir, as `acquire --out dir` would: meta is
// what that acquisition writes to evidence.json (Region, Endpoint, tool
// version, case fields, recipients), with the snapshot id and sizes
// filled in from the listing, and o its form. The directory is locked
// while the Volume is open, so no acquisition writes to it at the same
// time; a later acquisition of it resumes and fetches only the blocks
// not stored yet.
func EvidenceDir(dir string, meta store.Meta, o store.Options) func(ebs.Info) (Evidence, error) {
	return func(info ebs.Info) (Evidence, error) {
		meta.SnapshotID, meta.VolumeSizeGiB, meta.BlockSize = info.SnapshotID, info.VolumeGiB, info.BlockSize
		_, statErr := os.Stat(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating evidence directory: %w", err)
		}
		lock, err := dirlock.ForDir(dir, "read live")
		if err != nil {
			return nil, err
		}
		st, err := store.Create(dir, meta, o)
		if err != nil {
			lock.Release()
			if statErr != nil {
				os.Remove(dir) // created here; removed only if empty
			}
			return nil, err
		}
		return &lockedStore{Store: st, lock: lock}, nil
	}
}

// lockedStore is a store that releases its directory lock on Close.
type lockedStore struct {
	*store.Store
	lock *dirlock.Lock
}

func (s *lockedStore) Close() error {
	return errors.Join(s.Store.Close(), s.lock.Release())
}
