package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

var testTool = Tool{Version: "v9.9.9", CommandLine: []string{"ebsimager", "acquire", "--passphrase-file", "p"}}

// manifestOf is a manifest of a 1 GiB volume holding the blocks given.
func manifestOf(t *testing.T, indexes ...int64) *manifest.Reader {
	t.Helper()
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{SnapshotID: testSnap, Region: "us-east-1", VolumeSizeGiB: 1,
		VolumeSizeBytes: 1 << 30, BlockSize: 524288, ToolVersion: "test", StartedAt: t0, FinishedAt: t0.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range indexes {
		if err := w.Add(manifest.Entry{Index: i, SHA256: strings.Repeat("ab", 32), Length: 524288, Name: "x", Size: 524288,
			StoredSHA256: strings.Repeat("ab", 32), Codec: "none", Encryption: "none"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := manifest.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func acquired() Acquired {
	return Acquired{SnapshotID: testSnap, VolumeGiB: 1, BlockSize: 524288, Started: t0, Finished: t0.Add(4 * time.Second),
		Listed: 3, Fetched: 2, FetchedBytes: 2 * 524288, Resumed: 1,
		Requests: Requests{ListCalls: 1, GetCalls: 5, RetriesByKind: map[string]int64{"throttle": 3}}}
}

func TestNewAcquisition(t *testing.T) {
	aws := AWS{Region: "us-east-1", Endpoint: "http://127.0.0.1:1"}
	r := NewAcquisition(testTool, KindEvidenceDirectory, "ev", map[string]string{"case_number": "C-1"}, acquired(), aws)
	a := r.Acquisition
	if r.Evidence.SnapshotID != testSnap || r.Evidence.VolumeSizeGiB != 1 || r.Evidence.Kind != KindEvidenceDirectory || r.Evidence.Location != "ev" {
		t.Fatalf("evidence %+v", r.Evidence)
	}
	if r.Case.CaseNumber != "C-1" || a.AWS.Endpoint != aws.Endpoint {
		t.Fatalf("case %+v, aws %+v", r.Case, a.AWS)
	}
	if a.Blocks != 3 || a.Bytes != 3*524288 || a.FetchedBlocks != 2 || a.FetchedBytes != 2*524288 || a.ResumedBlocks != 1 {
		t.Fatalf("figures %+v", a)
	}
	if a.Requests.ListCalls != 1 || a.Requests.GetCalls != 5 || a.Requests.RetriesByKind["throttle"] != 3 || a.Requests.ErrorsByKind == nil {
		t.Fatalf("requests %+v", a.Requests)
	}
	if a.ToolVersion != "v9.9.9" || !a.StartedAt.Equal(t0) || !a.FinishedAt.Equal(t0.Add(4*time.Second)) ||
		strings.Join(a.CommandLine, " ") != "ebsimager acquire --passphrase-file p" {
		t.Fatalf("run %+v", a.Run)
	}
}

// CompleteEvidence takes the manifest's totals and block map, records a
// layout or why there is none, keeps the steps of an earlier record of
// the directory, and saves.
func TestCompleteEvidence(t *testing.T) {
	dir := t.TempDir()
	r := NewAcquisition(testTool, KindEvidenceDirectory, dir, nil, acquired(), AWS{})
	err := r.CompleteEvidence(dir, EvidenceFacts{Blocks: 3, Bytes: 3 * 524288, ManifestSHA256: strings.Repeat("cd", 32),
		Manifest: manifestOf(t, 0, 7, 2047),
		Changed:  func(m *BlockMap) error { m.ChangedBase = "snap-0b"; return m.AddChanged(7) },
		Layout:   func() (*inspect.Layout, error) { return nil, errors.New("no partition table") }})
	if err != nil {
		t.Fatal(err)
	}
	if err := AppendTo(dir, NewStep(testTool, StepExport, t0, errors.New("disk full"))); err != nil {
		t.Fatal(err)
	}
	// Acquiring again renews the acquisition and keeps the step.
	r = NewAcquisition(testTool, KindEvidenceDirectory, dir, nil, acquired(), AWS{})
	err = r.CompleteEvidence(dir, EvidenceFacts{Blocks: 3, Bytes: 3 * 524288, ManifestSHA256: strings.Repeat("ef", 32),
		Manifest: manifestOf(t, 0, 7, 2047),
		Layout:   func() (*inspect.Layout, error) { return &inspect.Layout{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := got.Acquisition
	if a.ManifestSHA256 != strings.Repeat("ef", 32) || got.BlockMap.AllocatedBlocks != 3 || got.BlockMap.ChangedBlocks != 0 ||
		got.Layout == nil || got.LayoutError != "" {
		t.Fatalf("renewed record: %+v, map %+v, layout %v %q", a, got.BlockMap, got.Layout, got.LayoutError)
	}
	if len(got.Steps) != 1 || got.Steps[0].Kind != StepExport || got.Steps[0].Outcome != "failed" || got.Steps[0].Error != "disk full" {
		t.Fatalf("steps %+v", got.Steps)
	}
	alloc, _ := json.Marshal(got.BlockMap.Allocated)
	if string(alloc) != `"1 0*6 1 0*2039 1"` {
		t.Fatalf("block map %s", alloc)
	}

	// A manifest the map does not take is an error, and nothing is saved.
	other := t.TempDir()
	r = NewAcquisition(testTool, KindEvidenceDirectory, other, nil, acquired(), AWS{})
	r.Evidence.VolumeSizeGiB = 0
	if err := r.CompleteEvidence(other, EvidenceFacts{Manifest: manifestOf(t, 5)}); err == nil || !strings.HasPrefix(err.Error(), "mapping blocks: ") {
		t.Fatalf("a manifest beyond the map: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "report.json")); !os.IsNotExist(err) {
		t.Fatalf("a record was saved: %v", err)
	}
	// The first record's layout error was recorded.
	r = NewAcquisition(testTool, KindEvidenceDirectory, other, nil, acquired(), AWS{})
	if err := r.CompleteEvidence(other, EvidenceFacts{Manifest: manifestOf(t, 1), Layout: func() (*inspect.Layout, error) { return nil, errors.New("no partition table") }}); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(other); err != nil || got.LayoutError != "no partition table" || got.Layout != nil {
		t.Fatalf("layout error: %v, %+v", err, got)
	}
}

func TestAppendToWithoutRecord(t *testing.T) {
	dir := t.TempDir()
	s := NewStep(testTool, StepVerify, t0, nil)
	if s.Outcome != "ok" || s.Error != "" || s.FinishedAt.Before(s.StartedAt) || s.ToolVersion != "v9.9.9" {
		t.Fatalf("step %+v", s)
	}
	if err := AppendTo(dir, s); err != nil {
		t.Fatalf("a directory without a record: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.json")); !os.IsNotExist(err) {
		t.Fatalf("a record appeared: %v", err)
	}
}
