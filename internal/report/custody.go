package report

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// Tool names what makes a record: the program's version and its command
// line, program name first (NewRun redacts it).
type Tool struct {
	Version     string
	CommandLine []string
}

// Acquired is what a finished acquisition run hands its record.
type Acquired struct {
	SnapshotID        string
	VolumeGiB         int64
	BlockSize         int
	Started, Finished time.Time
	// Listed blocks the snapshot lists; Fetched (FetchedBytes) were
	// fetched by this run, Resumed kept from earlier runs.
	Listed, Fetched, FetchedBytes, Resumed int64
	Requests                               Requests
}

// NewAcquisition starts the record of evidence of kind at location made
// by acquisition a, run by t, with the case fields given and the answers
// of the AWS context calls. Its totals are the listing's until
// CompleteEvidence sets the manifest's.
func NewAcquisition(t Tool, kind, location string, caseFields map[string]string, a Acquired, aws AWS) *Report {
	r := New(a.SnapshotID, a.VolumeGiB, a.BlockSize, kind, location)
	r.Case = CaseFromFields(caseFields)
	run := NewRun(t.Version, t.CommandLine, a.Started)
	run.FinishedAt = a.Finished
	req := a.Requests
	if req.RetriesByKind == nil {
		req.RetriesByKind = map[string]int64{}
	}
	if req.ErrorsByKind == nil {
		req.ErrorsByKind = map[string]int64{}
	}
	r.Acquisition = &Acquisition{
		Run: run, AWS: aws,
		Blocks: a.Listed, Bytes: a.Listed * int64(a.BlockSize),
		FetchedBlocks: a.Fetched, FetchedBytes: a.FetchedBytes, ResumedBlocks: a.Resumed,
		Requests: req,
	}
	return r
}

// EvidenceFacts are what an evidence directory says of itself once its
// manifest is written, for CompleteEvidence.
type EvidenceFacts struct {
	// Blocks, Bytes and ManifestSHA256 are the manifest's totals and the
	// SHA-256 of its file.
	Blocks, Bytes  int64
	ManifestSHA256 string
	// Manifest reads the manifest, for the block map; it is read to the
	// end.
	Manifest *manifest.Reader
	// Changed, if set, marks more on the block map (an incremental
	// acquisition's reused and changed blocks).
	Changed func(*BlockMap) error
	// Layout reads the partitions and file systems from the evidence;
	// its error is recorded, not returned.
	Layout func() (*inspect.Layout, error)
}

// CompleteEvidence completes r, the record of the evidence directory dir,
// and saves it there: the manifest's totals, the block map, the layout,
// and the steps that an earlier record of dir holds (running acquire
// again on complete evidence renews the record of the acquisition, and
// what was done to the evidence since stays recorded).
func (r *Report) CompleteEvidence(dir string, f EvidenceFacts) error {
	if r.Acquisition == nil {
		return errors.New("completing the record: no acquisition")
	}
	r.Acquisition.Blocks, r.Acquisition.Bytes = f.Blocks, f.Bytes
	r.Acquisition.ManifestSHA256 = f.ManifestSHA256
	r.BlockMap = NewBlockMap(block.Slots(r.Evidence.VolumeSizeGiB))
	err := r.BlockMap.AddManifest(f.Manifest)
	if err == nil && f.Changed != nil {
		err = f.Changed(r.BlockMap)
	}
	if err != nil {
		return fmt.Errorf("mapping blocks: %w", err)
	}
	if f.Layout != nil {
		layout, err := f.Layout()
		if err != nil {
			r.LayoutError = err.Error()
		} else {
			r.Layout = layout
		}
	}
	if old, err := Load(dir); err == nil {
		for _, s := range old.Steps {
			if err := r.AppendStep(s); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return r.Save(dir)
}

// NewStep records a step of kind run by t from started until now; a
// non-nil err makes it a failed step that says why.
func NewStep(t Tool, kind string, started time.Time, err error) Step {
	s := Step{Kind: kind, Run: NewRun(t.Version, t.CommandLine, started), Outcome: "ok"}
	s.Run.FinishedAt = time.Now()
	if err != nil {
		s.Outcome, s.Error = "failed", err.Error()
	}
	return s
}

// AppendTo adds step to the record of the evidence directory dir, if it
// has one; evidence acquired before records existed has none to extend.
func AppendTo(dir string, step Step) error {
	r, err := Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.AppendStep(step); err != nil {
		return err
	}
	return r.Save(dir)
}
