package casework

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The preservation record's files in the case directory (the preserve
// step's report.Preservation, saved by its Result.Save).
const (
	PreservationJSON = "preservation.json"
	PreservationText = "preservation.txt"
)

// Preserved is a snapshot the preservation step made or chose: the
// snapshot to acquire, and where it came from.
type Preserved struct {
	InstanceID, Device, VolumeID string
	SnapshotID                   string // the snapshot to acquire (a copy, when one was made in the Region)
}

// PlanVolumes orders a case's volumes: target by target, a snapshot as
// itself, an instance or a volume as the snapshots preserved of it (each
// preserved snapshot taken once, in the preservation's order). A
// preserved snapshot that matches no target comes last; one named twice
// is acquired once.
func PlanVolumes(targets []string, preserved []Preserved) []Volume {
	taken := make([]bool, len(preserved))
	seen := map[string]bool{}
	var vols []Volume
	add := func(v Volume) {
		if !seen[v.SnapshotID] {
			seen[v.SnapshotID] = true
			vols = append(vols, v)
		}
	}
	for _, t := range targets {
		k, _ := KindOf(t)
		if k == KindSnapshot {
			add(Volume{SnapshotID: t})
			continue
		}
		for i, p := range preserved {
			if !taken[i] && (k == KindInstance && p.InstanceID == t || k == KindVolume && p.VolumeID == t) {
				taken[i] = true
				add(Volume{InstanceID: p.InstanceID, Device: p.Device, VolumeID: p.VolumeID, SnapshotID: p.SnapshotID})
			}
		}
	}
	for i, p := range preserved {
		if !taken[i] {
			add(Volume{InstanceID: p.InstanceID, Device: p.Device, VolumeID: p.VolumeID, SnapshotID: p.SnapshotID})
		}
	}
	return vols
}

// preservationFile is what a case reads back of a preservation record:
// its targets, the snapshots it names, and how it ended.
type preservationFile struct {
	Targets   []string `json:"targets"`
	Outcome   string   `json:"outcome"`
	Error     string   `json:"error"`
	Snapshots []struct {
		InstanceID string `json:"instance_id"`
		Device     string `json:"device"`
		VolumeID   string `json:"volume_id"`
		SnapshotID string `json:"snapshot_id"`
		Acquire    string `json:"acquire"`
	} `json:"snapshots"`
}

// Recorded is what a preservation record says of its run.
type Recorded struct {
	Snapshots []Preserved
	// Stopped says why the run did not end "ok": it failed (the record's
	// error), or it was killed while it ran (the record saved after its
	// last request); empty when it ended ok.
	Stopped string
}

// ReadPreservation reads the preservation record in dir that an earlier
// run left without a case.json (it stopped between the two, or was
// killed while preserving): the snapshots it names, to acquire instead
// of making new ones. No record is (nil, nil); a record of other targets
// is a *ConflictError.
func ReadPreservation(dir string, targets []string) (*Recorded, error) {
	name := filepath.Join(dir, PreservationJSON)
	var rec preservationFile
	if ok, err := readJSON(name, &rec); !ok {
		return nil, err
	}
	return rec.recorded(name, dir, targets)
}

// recorded is what the record read from name, in the case directory or
// prefix dir, says for a run of targets.
func (rec *preservationFile) recorded(name, dir string, targets []string) (*Recorded, error) {
	if !sameSet(rec.Targets, targets) {
		return nil, &ConflictError{Dir: dir, Targets: rec.Targets}
	}
	out := &Recorded{}
	switch rec.Outcome {
	case "ok":
	case "running":
		out.Stopped = "the preservation step was stopped while it ran (its record was saved after its last request)"
	default:
		out.Stopped = fmt.Sprintf("the preservation step ended %q: %s", rec.Outcome, rec.Error)
	}
	for _, s := range rec.Snapshots {
		id := s.Acquire
		if id == "" {
			id = s.SnapshotID
		}
		if k, err := KindOf(id); err != nil || k != KindSnapshot {
			return nil, fmt.Errorf("reading %s: snapshot id %q", name, id)
		}
		out.Snapshots = append(out.Snapshots, Preserved{InstanceID: s.InstanceID, Device: s.Device, VolumeID: s.VolumeID, SnapshotID: id})
	}
	return out, nil
}

// SetAsidePreservation renames the preservation record in dir, one that
// names no snapshot (its run made none), to preservation.failed-N.json
// and .txt, N the first number free, so that a new preservation step
// can be recorded without losing the record of the calls that failed.
func SetAsidePreservation(dir string) (string, error) {
	for n := 1; n <= MaxTargets; n++ {
		name := fmt.Sprintf("preservation.failed-%d", n)
		if _, err := os.Lstat(filepath.Join(dir, name+".json")); err == nil {
			continue
		}
		for _, f := range []string{PreservationText, PreservationJSON} {
			from := filepath.Join(dir, f)
			to := filepath.Join(dir, name+strings.TrimPrefix(f, "preservation"))
			if err := os.Rename(from, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
		}
		return name + ".json", nil
	}
	return "", fmt.Errorf("%s holds %d failed preservation records", dir, MaxTargets)
}
