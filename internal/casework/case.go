package casework

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
)

// Format names the case record's layout (internal/report/SCHEMA.md).
const Format = "ebsimager-case/1"

// The case files, in the case directory beside one evidence directory per
// snapshot.
const (
	JSONName = "case.json"
	TextName = "case.txt"
)

// maxCaseBytes bounds how much of a case.json is read back: a thousand
// volumes take well under 2 MiB.
const maxCaseBytes = 16 << 20

// A volume's or a case's status.
const (
	StatusPending    = "pending"    // not acquired yet (a case.json written before acquiring)
	StatusComplete   = "complete"   // the evidence directory holds complete, verified evidence
	StatusIncomplete = "incomplete" // some blocks failed after every retry; a rerun resumes
	StatusFailed     = "failed"     // stopped by an error before completing; a rerun starts it again
)

// Case is the record of one case: the targets named, the snapshots they
// came to, and how the acquisition of each went (case.json).
type Case struct {
	Format      string   `json:"format"`
	ToolVersion string   `json:"tool_version"`
	Targets     []string `json:"targets"`
	// Preservation names the preservation record in the case directory
	// (preservation.json) when a preservation step made or chose the
	// snapshots; empty when every target was a snapshot.
	Preservation string `json:"preservation,omitempty"`
	// PreservationError is why the preservation step stopped part way:
	// the case holds the snapshots it had made, which a rerun acquires
	// without preserving again.
	PreservationError string `json:"preservation_error,omitempty"`
	// AccountRate is the GetSnapshotBlock requests per second every
	// volume shared (0: no account limit).
	AccountRate float64 `json:"account_rate"`
	// Created is when the case was first planned; Started and Finished
	// are of the latest run, Runs counts the runs.
	Created  time.Time `json:"created"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Runs     int       `json:"runs"`
	// Status is complete when every volume is; else incomplete when any
	// volume is incomplete; else failed (pending before the first run
	// ends). ExitCode is the command's exit code: 0; 3 when any volume
	// is incomplete; else the code of the first failed volume's error.
	Status   string   `json:"status"`
	ExitCode int      `json:"exit_code"`
	Volumes  []Volume `json:"volumes"`
}

// Volume is one snapshot of the case and how its acquisition went.
type Volume struct {
	InstanceID string `json:"instance_id,omitempty"`
	Device     string `json:"device,omitempty"`
	VolumeID   string `json:"volume_id,omitempty"`
	SnapshotID string `json:"snapshot_id"`
	// Directory is the evidence directory, relative to the case
	// directory: the snapshot id.
	Directory string `json:"directory"`
	Result
}

// Result is how one volume's acquisition went in the latest run.
type Result struct {
	Status string `json:"status"`
	// Started and Finished bound this volume's acquisition in the run.
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// ManifestSHA256 is the SHA-256 of the evidence directory's
	// manifest.jsonl (complete evidence only).
	ManifestSHA256 string  `json:"manifest_sha256,omitempty"`
	Blocks         int64   `json:"blocks"`  // listed
	Fetched        int64   `json:"fetched"` // fetched and stored in this run
	Kept           int64   `json:"kept"`    // kept from an earlier run
	FailedBlocks   int64   `json:"failed_blocks"`
	Bytes          int64   `json:"bytes"` // stored in this run
	Seconds        float64 `json:"seconds"`
	ListCalls      int64   `json:"list_calls"`
	GetCalls       int64   `json:"get_calls"`
	Retries        int64   `json:"retries"`
	// AccountTurns is the GetSnapshotBlock attempts the account limiter
	// gave this volume in the run.
	AccountTurns int64 `json:"account_turns"`
	// RetriesByKind splits Retries (throttle, server-error, …).
	RetriesByKind map[string]int64 `json:"retries_by_kind,omitempty"`
	Error         string           `json:"error,omitempty"`
	ExitCode      int              `json:"exit_code"`
}

// New plans a case of targets whose snapshots are vols (Directory is
// filled in), nothing acquired yet.
func New(targets []string, vols []Volume, toolVersion string, now time.Time) *Case {
	c := &Case{
		Format: Format, ToolVersion: toolVersion, Targets: slices.Clone(targets),
		Created: now, Started: now, Status: StatusPending,
	}
	for _, v := range vols {
		v.Directory = v.SnapshotID
		v.Result = Result{Status: StatusPending}
		c.Volumes = append(c.Volumes, v)
	}
	return c
}

// SnapshotVolumes is the plan of a case whose targets are all snapshots.
func SnapshotVolumes(ids []string) []Volume {
	vols := make([]Volume, len(ids))
	for i, id := range ids {
		vols[i] = Volume{SnapshotID: id}
	}
	return vols
}

// ConflictError is a case directory that holds the case of other targets.
type ConflictError struct {
	Dir     string
	Targets []string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s holds the case of %v: give the same targets to resume it, or another directory", e.Dir, e.Targets)
}

// Unwrap makes a conflict an fs.ErrExist: the output exists.
func (e *ConflictError) Unwrap() error { return fs.ErrExist }

// Load reads the case in dir, if there is one, for a run with targets: a
// rerun of the same targets (in any order) resumes it, its snapshots
// kept; other targets are a *ConflictError. No case is (nil, nil).
func Load(dir string, targets []string) (*Case, error) {
	name := filepath.Join(dir, JSONName)
	var c Case
	if ok, err := readJSON(name, &c); !ok {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if !sameSet(c.Targets, targets) {
		return nil, &ConflictError{Dir: dir, Targets: c.Targets}
	}
	return &c, nil
}

// readJSON decodes the JSON file name into v, reading at most
// maxCaseBytes of it. A file that does not exist is (false, nil).
func readJSON(name string, v any) (bool, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCaseBytes+1))
	if err == nil && len(data) > maxCaseBytes {
		err = fmt.Errorf("larger than %d bytes", maxCaseBytes)
	}
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", name, err)
	}
	return true, nil
}

// check refuses a case record that cannot be this tool's: every name in
// it becomes a path under the case directory.
func (c *Case) check() error {
	if c.Format != Format {
		return fmt.Errorf("format %q, want %q", c.Format, Format)
	}
	if err := CheckTargets(c.Targets); err != nil {
		return err
	}
	if len(c.Volumes) == 0 || len(c.Volumes) > MaxTargets*32 {
		return fmt.Errorf("%d volumes", len(c.Volumes))
	}
	seen := map[string]bool{}
	for _, v := range c.Volumes {
		if k, err := KindOf(v.SnapshotID); err != nil || k != KindSnapshot {
			return fmt.Errorf("volume with snapshot id %q", v.SnapshotID)
		}
		if v.Directory != v.SnapshotID || seen[v.SnapshotID] {
			return fmt.Errorf("volume %s: directory %q", v.SnapshotID, v.Directory)
		}
		seen[v.SnapshotID] = true
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Save writes case.json and case.txt into dir, each atomically.
func (c *Case) Save(dir string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, JSONName), append(data, '\n')); err != nil {
		return fmt.Errorf("writing %s: %w", JSONName, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, TextName), c.WriteText); err != nil {
		return fmt.Errorf("writing %s: %w", TextName, err)
	}
	return nil
}
