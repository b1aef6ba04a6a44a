package report

import (
	"errors"
	"io/fs"
)

// StepReadLive is a snapshot read live (inspect or block with
// --save-blocks) whose fetched blocks were stored in the evidence
// directory, before any acquisition completed it.
const StepReadLive = "read-live"

// ReadLive is what a live read stored in the evidence directory.
type ReadLive struct {
	SnapshotID string `json:"snapshot_id"`
	// StoredBlocks were fetched, verified and stored by this read; the
	// rest of what it read was in the directory already, or a hole.
	StoredBlocks int64    `json:"stored_blocks"`
	Requests     Requests `json:"requests"`
}

// AppendOrNew adds step to the record of the evidence directory dir, or
// starts that record with it: a live read stores blocks before any
// acquisition made the directory complete, so there may be no record
// yet. A later acquisition's record keeps the step (CompleteEvidence).
func AppendOrNew(dir, snapshotID string, volumeSizeGiB int64, blockSize int, step Step) error {
	r, err := Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		r, err = New(snapshotID, volumeSizeGiB, blockSize, KindEvidenceDirectory, dir), nil
	}
	if err != nil {
		return err
	}
	if err := r.AppendStep(step); err != nil {
		return err
	}
	return r.Save(dir)
}

// StepsHeading names the record's steps as they are: "Steps after the
// acquisition", unless a step began before it (a read-live step that
// stored blocks the acquisition then resumed from), or there is no
// acquisition to be after.
func (r *Report) StepsHeading() string {
	if r.Acquisition == nil {
		return "Steps"
	}
	for _, s := range r.Steps {
		if s.Run.StartedAt.Before(r.Acquisition.StartedAt) {
			return "Steps before and after the acquisition"
		}
	}
	return "Steps after the acquisition"
}
