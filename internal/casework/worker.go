package casework

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
)

// WorkerFormat names the worker summary's layout (internal/report/SCHEMA.md).
const WorkerFormat = "ebsimager-worker/1"

// WorkerSuffix ends the name of a worker summary. Each run of a worker
// writes one of its own next to the worker's evidence: the expanded
// --out with its trailing "/" dropped, the run's start time, and this
// (case/snap-….20261205T100000.000Z.summary.json beside case/snap-…/).
// It is not inside the evidence directory, which holds only what the
// evidence store writes; and no run rewrites another's summary, so every
// run leaves its record (and a write-once store can hold them all).
const WorkerSuffix = ".summary.json"

// summaryStamp is the run's start time in a summary's name: UTC, to the
// millisecond, sorting as it reads.
const summaryStamp = "20060102T150405.000Z"

// MaxWorkerSummaryBytes bounds how much of a worker summary is read back:
// an instance's few dozen volumes take a few KiB.
const MaxWorkerSummaryBytes = 1 << 20

// WorkerSummary is what one worker of an indexed job leaves next to its
// evidence: which target it took, where its evidence went, and how the
// acquisition went. `case summarize` gathers them.
type WorkerSummary struct {
	Format      string `json:"format"`
	ToolVersion string `json:"tool_version"`
	Host        string `json:"host"`
	// TargetsFile is --targets as given; Index is the worker's index and
	// IndexFrom where it came from (--index, JOB_COMPLETION_INDEX or
	// AWS_BATCH_JOB_ARRAY_INDEX); Target is the target at that index.
	TargetsFile string `json:"targets_file"`
	Index       int    `json:"index"`
	IndexFrom   string `json:"index_from"`
	Target      string `json:"target"`
	// Out is the expanded --out: the evidence directory of a snapshot
	// target, the case directory of an instance or a volume.
	Out      string    `json:"out"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Seconds  float64   `json:"seconds"`
	// Status is complete, incomplete or failed; ExitCode is the worker's
	// exit code, and Error its message when it is not 0.
	Status   string `json:"status"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	// Evidence has one entry per snapshot acquired: one for a snapshot
	// target, one per volume for an instance or a volume.
	Evidence []WorkerEvidence `json:"evidence"`
	// The totals of the entries: blocks listed, bytes fetched in this
	// run, and the requests made.
	Blocks    int64 `json:"blocks"`
	Bytes     int64 `json:"bytes"`
	ListCalls int64 `json:"list_calls"`
	GetCalls  int64 `json:"get_calls"`
	Retries   int64 `json:"retries"`
	// Throttles counts the requests AWS throttled (retried).
	Throttles int64 `json:"throttles"`
}

// WorkerEvidence is one evidence directory of a worker.
type WorkerEvidence struct {
	SnapshotID string `json:"snapshot_id"`
	// Directory is the evidence directory, relative to the directory that
	// holds the summary, in "/" form.
	Directory string `json:"directory"`
	Status    string `json:"status"`
	// ManifestSHA256 is the SHA-256 of its manifest.jsonl (complete
	// evidence only).
	ManifestSHA256 string  `json:"manifest_sha256,omitempty"`
	Blocks         int64   `json:"blocks"`
	Fetched        int64   `json:"fetched"`
	Bytes          int64   `json:"bytes"`
	Seconds        float64 `json:"seconds"`
	ListCalls      int64   `json:"list_calls"`
	GetCalls       int64   `json:"get_calls"`
	Retries        int64   `json:"retries"`
	Throttles      int64   `json:"throttles"`
	ExitCode       int     `json:"exit_code"`
}

// ThrottleKind is the retry kind (ebs.KindThrottle's name) counted as
// throttles.
const ThrottleKind = "throttle"

// SummaryPath is where the summary of the run started at started of a
// worker whose expanded --out is out goes.
func SummaryPath(out string, started time.Time) string {
	return strings.TrimRight(out, "/") + "." + started.UTC().Format(summaryStamp) + WorkerSuffix
}

// Finish fills in the totals, the status and the times of s from its
// evidence and the worker's exit code and error.
func (s *WorkerSummary) Finish(started, finished time.Time, code int, err error) {
	s.Format = WorkerFormat
	s.Started, s.Finished = started.UTC(), finished.UTC()
	s.Seconds = finished.Sub(started).Seconds()
	s.ExitCode, s.Error, s.Status = code, "", status(err)
	if err != nil {
		s.Error = err.Error()
	}
	s.Blocks, s.Bytes, s.ListCalls, s.GetCalls, s.Retries, s.Throttles = 0, 0, 0, 0, 0, 0
	for _, e := range s.Evidence {
		s.Blocks += e.Blocks
		s.Bytes += e.Bytes
		s.ListCalls += e.ListCalls
		s.GetCalls += e.GetCalls
		s.Retries += e.Retries
		s.Throttles += e.Throttles
	}
	if s.Evidence == nil {
		s.Evidence = []WorkerEvidence{}
	}
}

// Save writes s to path atomically (0600).
func (s *WorkerSummary) Save(path string) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		data, err := s.JSON()
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
}

// JSON is s as Save writes it (for a write-once object in a bucket).
func (s *WorkerSummary) JSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ReadWorkerSummary reads a worker summary from r (at most
// MaxWorkerSummaryBytes), refusing unknown fields and another format.
func ReadWorkerSummary(r io.Reader) (*WorkerSummary, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxWorkerSummaryBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxWorkerSummaryBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxWorkerSummaryBytes)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var s WorkerSummary
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("not a worker summary: %w", err)
	}
	if s.Format != WorkerFormat {
		return nil, fmt.Errorf("format %q, want %q", s.Format, WorkerFormat)
	}
	if len(s.Evidence) > MaxTargets {
		return nil, fmt.Errorf("%d evidence entries, more than %d", len(s.Evidence), MaxTargets)
	}
	return &s, nil
}
