package casework

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// SummaryFormat names the case report's layout (internal/report/SCHEMA.md).
const SummaryFormat = "ebsimager-case-summary/1"

// Bounds on the walk of a case directory, which may come from anywhere:
// worker summaries are found at most MaxSummaryDepth directories down,
// no directory holding evidence (evidence.json) or a case (case.json) is
// entered, and the walk stops after MaxSummaryEntries entries.
const (
	MaxSummaryDepth   = 4
	MaxSummaryEntries = 100000
)

// Outcomes of an evidence directory checked against its summary.
const (
	EvidenceMatch       = "match"        // its manifest's SHA-256 is the summary's
	EvidenceDiffers     = "differs"      // it is not
	EvidenceMissing     = "missing"      // the summary says complete, the manifest is not there
	EvidenceNotComplete = "not-complete" // the worker did not complete it: nothing to check
)

// CaseSummary is `case summarize`: the worker summaries of a case
// directory, each index's latest run's evidence checked against it.
type CaseSummary struct {
	Format      string `json:"format"`
	Directory   string `json:"directory"`
	TargetsFile string `json:"targets_file,omitempty"`
	Targets     int    `json:"targets,omitempty"` // ids in TargetsFile
	// Status is complete, incomplete (an index is missing or a worker
	// did not complete) or mismatch (a summary disagrees with its
	// evidence, its targets file, or another summary); ExitCode is 0, 3
	// or 4.
	Status   string         `json:"status"`
	ExitCode int            `json:"exit_code"`
	Workers  []WorkerReport `json:"workers"`
	// Missing lists the indexes of TargetsFile no summary reports.
	Missing  []int    `json:"missing_indexes"`
	Problems []string `json:"problems"`
	// Snapshots and Blocks count the evidence of each index's latest
	// run; the bytes fetched, requests and times are of every run.
	Snapshots int64 `json:"snapshots"`
	Blocks    int64 `json:"blocks"`
	Bytes     int64 `json:"bytes"`
	ListCalls int64 `json:"list_calls"`
	GetCalls  int64 `json:"get_calls"`
	Retries   int64 `json:"retries"`
	Throttles int64 `json:"throttles"`
	// WorkerSeconds sums the workers' times; LongestSeconds is the
	// slowest worker's.
	WorkerSeconds  float64 `json:"worker_seconds"`
	LongestSeconds float64 `json:"longest_seconds"`
}

// WorkerReport is one worker summary and the check of its evidence.
type WorkerReport struct {
	// Summary is the latest run's summary, relative to the case
	// directory; Runs counts the summaries of this index (one a run).
	Summary  string          `json:"summary"`
	Runs     int             `json:"runs"`
	Index    int             `json:"index"`
	Target   string          `json:"target"`
	Status   string          `json:"status"`
	ExitCode int             `json:"exit_code"`
	Host     string          `json:"host"`
	Seconds  float64         `json:"seconds"`
	Evidence []EvidenceCheck `json:"evidence"`
}

// EvidenceCheck is one evidence directory checked against its summary.
type EvidenceCheck struct {
	SnapshotID string `json:"snapshot_id"`
	Directory  string `json:"directory"` // relative to the case directory
	Outcome    string `json:"outcome"`
	Summary    string `json:"summary_manifest_sha256,omitempty"`
	Found      string `json:"manifest_sha256,omitempty"`
	Blocks     int64  `json:"blocks"`
}

// Case summary statuses beyond StatusComplete and StatusIncomplete.
const StatusMismatch = "mismatch"

// ErrWorkersMissing is a case summary with a missing index or a worker
// that did not complete (exit 3: run those workers again).
var ErrWorkersMissing = errors.New("not every target has complete evidence")

// Source is where a case is read from: a directory (Summarize) or the
// prefix of a bucket (SummarizeBucket). Names are "/"-separated and
// relative to the case.
type Source interface {
	// Summaries lists the worker summaries, within the bounds above.
	Summaries() ([]string, error)
	// ReadSummary reads the summary name (at most MaxWorkerSummaryBytes,
	// unknown fields refused).
	ReadSummary(name string) (*WorkerSummary, error)
	// ManifestSHA256 is the hex SHA-256 of the contents of
	// dir/manifest.jsonl; an error wrapping fs.ErrNotExist when it is not
	// there.
	ManifestSHA256(dir string) (string, error)
}

// Summarize gathers the worker summaries under dir into a case summary,
// checking each evidence directory's manifest against its summary, and
// each summary against targets (the ids of targetsFile; none: nothing
// is missing). Everything is read through an os.Root of dir: no symlink
// leads out of it, and a summary that is a symlink is refused.
func Summarize(dir, targetsFile string, targets []string) (*CaseSummary, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the case directory: %w", err)
	}
	defer root.Close()
	return SummarizeFrom(dirSource{root}, dir, targetsFile, targets)
}

// SummarizeFrom gathers the worker summaries of src, named where for
// messages, as Summarize does.
func SummarizeFrom(src Source, where, targetsFile string, targets []string) (*CaseSummary, error) {
	s := &CaseSummary{Format: SummaryFormat, Directory: where, TargetsFile: targetsFile, Targets: len(targets), Missing: []int{}, Problems: []string{}, Workers: []WorkerReport{}}
	names, err := src.Summaries()
	if err != nil {
		return nil, err
	}
	runs := map[int][]run{}
	for _, name := range names {
		ws, err := src.ReadSummary(name)
		if err != nil {
			s.Problems = append(s.Problems, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		runs[ws.Index] = append(runs[ws.Index], run{name, ws})
	}
	for _, rs := range runs {
		s.add(src, rs)
	}
	sort.SliceStable(s.Workers, func(i, j int) bool { return s.Workers[i].Index < s.Workers[j].Index })
	s.checkIndexes(targets)
	s.conclude()
	return s, nil
}

// dirSource is a case directory, read through an os.Root.
type dirSource struct{ root *os.Root }

func (d dirSource) Summaries() ([]string, error) { return findSummaries(d.root) }

func (d dirSource) ManifestSHA256(dir string) (string, error) {
	return fileSHA256(d.root, path.Join(dir, "manifest.jsonl"))
}

// ReadSummary reads the summary name, a regular file.
func (d dirSource) ReadSummary(name string) (*WorkerSummary, error) {
	fi, err := d.root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file (a symlink or a device is not read)")
	}
	f, err := d.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadWorkerSummary(f)
}

// run is one worker summary read: one run of a worker.
type run struct {
	name string
	ws   *WorkerSummary
}

// findSummaries walks root for worker summaries (regular files only),
// within the bounds above.
func findSummaries(root *os.Root) ([]string, error) {
	var names []string
	entries := 0
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if entries++; entries > MaxSummaryEntries {
			return fmt.Errorf("the case directory holds more than %d entries within %d levels", MaxSummaryEntries, MaxSummaryDepth)
		}
		if d.IsDir() {
			if p != "." && (strings.Count(p, "/")+1 > MaxSummaryDepth || holds(root, p, "evidence.json") || holds(root, p, JSONName)) {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, WorkerSuffix) {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walking the case directory: %w", err)
	}
	return names, nil
}

func holds(root *os.Root, dir, name string) bool {
	_, err := root.Lstat(path.Join(dir, name))
	return err == nil
}

// add reports the runs of one index: the latest run's evidence is
// checked (an earlier run's is what the latest resumed); the requests,
// bytes and times of every run count. Runs of one index that name
// another target or another place are a problem.
func (s *CaseSummary) add(src Source, runs []run) {
	sort.Slice(runs, func(i, j int) bool {
		a, b := runs[i].ws, runs[j].ws
		return a.Started.Before(b.Started) || (a.Started.Equal(b.Started) && runs[i].name < runs[j].name)
	})
	last := runs[len(runs)-1]
	ws := last.ws
	for _, r := range runs {
		if r.ws.Target != ws.Target || r.ws.Out != ws.Out {
			s.Problems = append(s.Problems, fmt.Sprintf("index %d: %s is of %s at %s, but %s of %s at %s", ws.Index, r.name, r.ws.Target, r.ws.Out, last.name, ws.Target, ws.Out))
		}
		s.Bytes, s.ListCalls, s.GetCalls = s.Bytes+r.ws.Bytes, s.ListCalls+r.ws.ListCalls, s.GetCalls+r.ws.GetCalls
		s.Retries, s.Throttles, s.WorkerSeconds = s.Retries+r.ws.Retries, s.Throttles+r.ws.Throttles, s.WorkerSeconds+r.ws.Seconds
		s.LongestSeconds = max(s.LongestSeconds, r.ws.Seconds)
	}
	w := WorkerReport{Summary: last.name, Runs: len(runs), Index: ws.Index, Target: ws.Target, Status: ws.Status, ExitCode: ws.ExitCode, Host: ws.Host, Seconds: ws.Seconds, Evidence: []EvidenceCheck{}}
	for _, e := range ws.Evidence {
		w.Evidence = append(w.Evidence, s.check(src, last.name, ws, e))
		s.Snapshots++
		s.Blocks += e.Blocks
	}
	s.Workers = append(s.Workers, w)
}

// check compares the manifest of evidence e of the summary name with
// the SHA-256 the summary gives it.
func (s *CaseSummary) check(src Source, name string, ws *WorkerSummary, e WorkerEvidence) EvidenceCheck {
	dir := path.Join(path.Dir(name), e.Directory)
	c := EvidenceCheck{SnapshotID: e.SnapshotID, Directory: dir, Summary: e.ManifestSHA256, Blocks: e.Blocks}
	if !fs.ValidPath(e.Directory) || e.Directory == "." {
		c.Outcome = EvidenceDiffers
		s.Problems = append(s.Problems, fmt.Sprintf("%s: evidence directory %q is not a path inside the case directory", name, e.Directory))
		return c
	}
	if e.Status != StatusComplete || ws.ExitCode != 0 {
		c.Outcome = EvidenceNotComplete
		return c
	}
	found, err := src.ManifestSHA256(dir)
	c.Found = found
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.Outcome = EvidenceMissing
		s.Problems = append(s.Problems, fmt.Sprintf("%s: %s says complete, but %s/manifest.jsonl is not there", name, e.SnapshotID, dir))
	case err != nil:
		c.Outcome = EvidenceMissing
		s.Problems = append(s.Problems, fmt.Sprintf("%s: reading %s/manifest.jsonl: %v", name, dir, err))
	case found != e.ManifestSHA256:
		c.Outcome = EvidenceDiffers
		s.Problems = append(s.Problems, fmt.Sprintf("%s: %s/manifest.jsonl has SHA-256 %s, the summary says %s", name, dir, found, e.ManifestSHA256))
	default:
		c.Outcome = EvidenceMatch
	}
	return c
}

func fileSHA256(root *os.Root, name string) (string, error) {
	f, err := root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkIndexes compares the workers with targets: an index beyond them,
// or a target other than the one listed at its index, is a problem; an
// index no summary reports is missing.
func (s *CaseSummary) checkIndexes(targets []string) {
	seen := map[int]bool{}
	for _, w := range s.Workers {
		seen[w.Index] = true
		switch {
		case targets == nil:
		case w.Index < 0 || w.Index >= len(targets):
			s.Problems = append(s.Problems, fmt.Sprintf("%s: index %d is beyond the %d targets of %s", w.Summary, w.Index, len(targets), s.TargetsFile))
		case targets[w.Index] != w.Target:
			s.Problems = append(s.Problems, fmt.Sprintf("%s: index %d is %s, but %s lists %s there", w.Summary, w.Index, w.Target, s.TargetsFile, targets[w.Index]))
		}
	}
	for i := range targets {
		if _, ok := seen[i]; !ok {
			s.Missing = append(s.Missing, i)
		}
	}
}

// conclude sets the status and the exit code: 4 on any problem, else 3
// when an index is missing or a worker did not complete, else 0.
func (s *CaseSummary) conclude() {
	s.Status, s.ExitCode = StatusComplete, 0
	incomplete := len(s.Missing) > 0
	for _, w := range s.Workers {
		incomplete = incomplete || w.ExitCode != 0 || w.Status != StatusComplete
	}
	switch {
	case len(s.Problems) > 0:
		s.Status, s.ExitCode = StatusMismatch, 4
	case incomplete:
		s.Status, s.ExitCode = StatusIncomplete, 3
	}
}

// WriteText writes s for a reader.
func (s *CaseSummary) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "case %s: %s, %d workers, %d snapshots\n", s.Directory, s.Status, len(s.Workers), s.Snapshots)
	if s.TargetsFile != "" {
		fmt.Fprintf(w, "  targets    %d in %s, %d missing\n", s.Targets, s.TargetsFile, len(s.Missing))
	}
	fmt.Fprintf(w, "  data       %d blocks, %d bytes fetched\n", s.Blocks, s.Bytes)
	fmt.Fprintf(w, "  requests   %d List, %d Get, %d retries (%d throttled)\n", s.ListCalls, s.GetCalls, s.Retries, s.Throttles)
	fmt.Fprintf(w, "  time       %.1f s of workers, the longest %.1f s\n", s.WorkerSeconds, s.LongestSeconds)
	for _, wk := range s.Workers {
		fmt.Fprintf(w, "  [%d] %s  %s (exit %d)  %s  %s\n", wk.Index, wk.Target, wk.Status, wk.ExitCode, plural(int64(wk.Runs), "run"), wk.Summary)
		for _, e := range wk.Evidence {
			fmt.Fprintf(w, "        %s  %s  %s\n", e.SnapshotID, e.Directory, e.Outcome)
		}
	}
	if len(s.Missing) > 0 {
		fmt.Fprintf(w, "  missing    indexes %s\n", joinInts(s.Missing))
	}
	for _, p := range s.Problems {
		fmt.Fprintf(w, "  problem    %s\n", p)
	}
	return nil
}

func joinInts(v []int) string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = fmt.Sprint(n)
	}
	return strings.Join(parts, " ")
}
