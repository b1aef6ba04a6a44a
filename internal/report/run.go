package report

import "fmt"

// RunFormat names this version of the run record's schema.
const RunFormat = "ebsimager-run/1"

// Outcomes of a RunRecord.
const (
	OutcomeIncomplete  = "incomplete"  // blocks failed after every retry (exit 3)
	OutcomeInterrupted = "interrupted" // stopped by a signal (exit 130)
	// OutcomeFailed ("failed", as for a call): stopped by an error after
	// the evidence was opened.
)

// RunRecord is the record a run leaves as an object of its own
// (runs/<time>-<tag>-<command>.json) beside evidence in a bucket when it
// ends without completing the evidence's record: evidence in a bucket is
// written once, so its report.json is written by the run that completes
// it, and lists these objects (Acquisition.Runs). SCHEMA.md documents
// every field.
type RunRecord struct {
	Format  string `json:"format"`
	Command string `json:"command"`
	// Outcome is OutcomeIncomplete, OutcomeInterrupted or OutcomeFailed;
	// ExitStatus the process's exit status, Error what stopped it.
	Outcome    string `json:"outcome"`
	ExitStatus int    `json:"exit_status"`
	Error      string `json:"error"`
	// Record is the run's chain-of-custody record, as report.json would
	// hold it: its times, command line (redacted), host, what it fetched
	// and kept, and the blocks that failed, each named.
	Record *Report `json:"record"`
}

// RunObject names a run object and its SHA-256.
type RunObject struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// JSON returns the run object's content, the record's derived fields
// recomputed.
func (r *RunRecord) JSON() ([]byte, error) {
	r.Format = RunFormat
	switch {
	case r.Outcome != OutcomeIncomplete && r.Outcome != OutcomeInterrupted && r.Outcome != OutcomeFailed:
		return nil, fmt.Errorf("run record: outcome %q", r.Outcome)
	case r.Command == "" || r.Record == nil:
		return nil, fmt.Errorf("run record: no command or record")
	}
	r.Record.derive()
	if err := r.Record.check(); err != nil {
		return nil, fmt.Errorf("run record: %w", err)
	}
	return indented(r, "run record")
}
