package emulator

import (
	"slices"
	"strings"
	"time"
)

// Snapshot states and storage tiers, as EC2 names them.
const (
	statePending   = "pending"
	stateCompleted = "completed"
	stateError     = "error"

	tierStandard = "standard"
	tierArchive  = "archive"
)

// Values of snapshot.public: the metadata decides until
// ModifySnapshotAttribute adds or removes the group "all".
const (
	publicFromMeta int32 = iota
	publicYes
	publicNo
)

// ec2Made is what a snapshot made through EC2 (CreateSnapshot,
// CreateSnapshots, CopySnapshot) was made from. It never changes.
type ec2Made struct {
	volumeID    string
	description string
	encrypted   bool
	kmsKey      string
	region      string // the region of the request's SigV4 scope
	source      string // CopySnapshot: the source snapshot
	srcRegion   string // CopySnapshot: SourceRegion
	tier        string // "" or tierArchive, drawn by --archive-fraction
	kmsDenied   bool   // drawn by --kms-deny-fraction
}

// status returns a snapshot's state and progress in percent. A snapshot
// made through EC2 completes at its readyAt; until then its progress is
// the share of the delay gone by, below 100.
func (s *Server) status(snap *snapshot) (string, int) {
	if st := s.o.SnapshotMeta[snap.id].State; st != "" {
		if st == stateCompleted {
			return st, 100
		}
		return st, 0
	}
	if snap.completed.Load() {
		return stateCompleted, 100
	}
	if snap.made != nil {
		now := s.now()
		if !now.Before(snap.readyAt) {
			snap.completed.Store(true)
			return stateCompleted, 100
		}
		total := snap.readyAt.Sub(snap.started)
		gone := max(0, now.Sub(snap.started))
		return statePending, min(99, int(gone*100/max(total, time.Nanosecond)))
	}
	return statePending, 0
}

// isPublic reports whether the snapshot's createVolumePermission holds
// the group "all".
func (s *Server) isPublic(snap *snapshot) bool {
	switch snap.public.Load() {
	case publicYes:
		return true
	case publicNo:
		return false
	}
	return s.o.SnapshotMeta[snap.id].Public
}

// tier returns the snapshot's storage tier.
func (s *Server) tier(snap *snapshot) string {
	if t := s.o.SnapshotMeta[snap.id].StorageTier; t != "" {
		return t
	}
	if snap.made != nil && snap.made.tier != "" {
		return snap.made.tier
	}
	return tierStandard
}

// unreadable returns why the EBS direct APIs refuse a snapshot that
// exists and that the caller may access, or nil. The EBS user guide's FAQ
// says only completed snapshots can be read and that public snapshots and
// local snapshots on Outposts are not supported; an archived snapshot must
// be restored first. It names no error for them: each is a
// ValidationException with reason INVALID_SNAPSHOT_ID, the model's error
// for a request that names a snapshot it cannot serve (a not-found error
// would claim the snapshot does not exist).
func (s *Server) unreadable(snap *snapshot) *apiError {
	id := snap.id
	switch st, _ := s.status(snap); st {
	case stateCompleted:
	case stateError:
		return validation(reasonInvalidSnapshotID, "The snapshot '"+id+"' is in the error state; only completed snapshots can be read.")
	default:
		return validation(reasonInvalidSnapshotID, "The snapshot '"+id+"' is not completed; only completed snapshots can be read.")
	}
	if s.tier(snap) == tierArchive {
		return validation(reasonInvalidSnapshotID, "The snapshot '"+id+"' is archived; restore it to the standard tier before reading it.")
	}
	if s.isPublic(snap) {
		return validation(reasonInvalidSnapshotID, "The snapshot '"+id+"' is public; public snapshots are not supported.")
	}
	if s.o.SnapshotMeta[id].OutpostARN != "" {
		return validation(reasonInvalidSnapshotID, "The snapshot '"+id+"' is a local snapshot on an Outpost; those are not supported.")
	}
	return nil
}

// SnapshotRegion returns the region a snapshot made through EC2 was made
// in (its request's SigV4 scope), "" for others.
func (s *Server) SnapshotRegion(id string) string {
	if snap := s.reg.get(id); snap != nil && snap.made != nil {
		return snap.made.region
	}
	return ""
}

// sorted returns every snapshot, in id order.
func (r *registry) sorted() []*snapshot {
	r.mu.RLock()
	snaps := make([]*snapshot, 0, len(r.snaps))
	for _, snap := range r.snaps {
		snaps = append(snaps, snap)
	}
	r.mu.RUnlock()
	slices.SortFunc(snaps, func(a, b *snapshot) int { return strings.Compare(a.id, b.id) })
	return snaps
}
