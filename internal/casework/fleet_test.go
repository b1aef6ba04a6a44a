package casework

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	fsnapA = "snap-0a0000000000000a1"
	fsnapB = "snap-0b0000000000000b2"
	fsnapC = "snap-0c0000000000000c3"
	fvol   = "vol-0123456789abcdef0"
)

// The index comes from --index, else JOB_COMPLETION_INDEX, else
// AWS_BATCH_JOB_ARRAY_INDEX; an empty variable counts as unset.
func TestWorkerIndex(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		flag    int
		flagSet bool
		getenv  func(string) string
		want    int
		from    string
		ok      bool
	}{
		{0, false, env(), 0, "", false},
		{0, false, env(EnvJobCompletionIndex, ""), 0, "", false},
		{5, true, env(EnvJobCompletionIndex, "2", EnvBatchArrayIndex, "3"), 5, IndexFlag, true},
		{0, true, env(EnvJobCompletionIndex, "2"), 0, IndexFlag, true},
		{0, false, env(EnvJobCompletionIndex, "2", EnvBatchArrayIndex, "3"), 2, EnvJobCompletionIndex, true},
		{0, false, env(EnvJobCompletionIndex, "", EnvBatchArrayIndex, "3"), 3, EnvBatchArrayIndex, true},
		{0, false, env(EnvBatchArrayIndex, "007"), 7, EnvBatchArrayIndex, true},
	} {
		i, from, ok, err := WorkerIndex(tc.flag, tc.flagSet, tc.getenv)
		if err != nil || i != tc.want || from != tc.from || ok != tc.ok {
			t.Errorf("%+v: %d %q %v %v", tc, i, from, ok, err)
		}
	}
	for _, tc := range []struct {
		flag    int
		flagSet bool
		getenv  func(string) string
		want    string
	}{
		{-1, true, env(), "--index -1: an index is 0 or more"},
		{0, false, env(EnvJobCompletionIndex, "-1"), `JOB_COMPLETION_INDEX="-1": not an index: want decimal digits`},
		{0, false, env(EnvJobCompletionIndex, " 1"), `JOB_COMPLETION_INDEX=" 1": not an index`},
		{0, false, env(EnvBatchArrayIndex, "+1"), `AWS_BATCH_JOB_ARRAY_INDEX="+1": not an index`},
		{0, false, env(EnvBatchArrayIndex, "1e3"), `AWS_BATCH_JOB_ARRAY_INDEX="1e3": not an index`},
		{0, false, env(EnvBatchArrayIndex, "9999999999999"), `AWS_BATCH_JOB_ARRAY_INDEX="9999999999999": not an index (at most 999)`},
	} {
		_, _, _, err := WorkerIndex(tc.flag, tc.flagSet, tc.getenv)
		var te *TargetError
		if !errors.As(err, &te) || err.Error() != "invalid target \"\": "+tc.want && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc, err, tc.want)
		}
	}
}

// Pick counts ids only: the comments and blank lines of the file are
// not lines of the job.
func TestPick(t *testing.T) {
	ids, err := ReadTargets("t.txt", strings.NewReader("# case 7\n\n"+fsnapA+"\n  # next\n"+fsnapB+" # web\n\n"+fvol+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{fsnapA, fsnapB, fvol} {
		if got, err := Pick("t.txt", ids, i); err != nil || got != want {
			t.Errorf("Pick %d: %q %v, want %q", i, got, err, want)
		}
	}
	for _, i := range []int{3, 1000} {
		_, err := Pick("t.txt", ids, i)
		var te *TargetError
		want := "t.txt: index " + strconv.Itoa(i) + " is beyond its 3 targets (indexes 0 to 2)"
		if !errors.As(err, &te) || err.Error() != want {
			t.Errorf("Pick %d: %v, want %q", i, err, want)
		}
	}
}

func TestTemplate(t *testing.T) {
	snaps := []string{fsnapA, fsnapB}
	mixed := []string{fsnapA, fvol}
	for _, tc := range []struct {
		tmpl    string
		targets []string
		target  string
		index   int
		want    string
	}{
		{"/ev/case-1/{snapshot}", snaps, fsnapB, 1, "/ev/case-1/" + fsnapB},
		{"ev/{target}/", mixed, fvol, 1, "ev/" + fvol + "/"},
		{"s3://bucket/case/{snapshot}/", snaps, fsnapA, 0, "s3://bucket/case/" + fsnapA + "/"},
		{"/ev/w{index}-{target}", mixed, fsnapA, 0, "/ev/w0-" + fsnapA},
		{"/ev/{index}/{index}", mixed, fvol, 12, "/ev/12/12"},
	} {
		if err := CheckTemplate(tc.tmpl, tc.targets); err != nil {
			t.Errorf("CheckTemplate(%q): %v", tc.tmpl, err)
			continue
		}
		snap := ""
		if strings.HasPrefix(tc.target, "snap-") {
			snap = tc.target
		}
		if got := Expand(tc.tmpl, tc.target, snap, tc.index); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	for _, tc := range []struct {
		tmpl    string
		targets []string
		want    string
	}{
		{"/ev/case", snaps, "needs {target}, {snapshot} or {index}"},
		{"/ev/{snap}", snaps, "unknown placeholder {snap}"},
		{"/ev/{Target}", snaps, "unknown placeholder {Target}"},
		{"/ev/{target", snaps, `a "{" without its "}"`},
		{"/ev/target}/{index}", snaps, `a "}" without its "{"`},
		{"/ev/{snapshot}", mixed, "vol-0123456789abcdef0 is not one; use {target}"},
		{"/ev/../{target}", snaps, `holds a ".." component`},
		{"{target}/..", snaps, `holds a ".." component`},
		{"./{target}", snaps, `holds a "." component`},
		{"/ev//{target}", snaps, "holds an empty component"},
		{"s3://bucket//{target}", snaps, "holds an empty component"},
		{"https://host/{target}", snaps, "https:// is not a place evidence can go"},
		{"/ev/{target}\\x", snaps, "holds a backslash"},
	} {
		err := CheckTemplate(tc.tmpl, tc.targets)
		var te *TemplateError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "--out \""+strings.ReplaceAll(tc.tmpl, `\`, `\\`)+"\": ") {
			t.Errorf("CheckTemplate(%q): %v, want %q", tc.tmpl, err, tc.want)
		}
	}
	if IsTemplate("/ev/case") || !IsTemplate("/ev/{target}") || !IsTemplate("/ev/}") {
		t.Error("IsTemplate")
	}
	at := time.Date(2026, 12, 5, 10, 0, 0, 120e6, time.FixedZone("CET", 3600))
	if SummaryPath("s3://b/case/"+fsnapA+"/", at) != "s3://b/case/"+fsnapA+".20261205T090000.120Z.summary.json" || SummaryPath("/e/x", at) != "/e/x.20261205T090000.120Z.summary.json" {
		t.Error("SummaryPath", SummaryPath("/e/x", at))
	}
}

// fakeWorker writes an evidence directory holding only a manifest, and
// its worker's summary, as a worker with this index would.
func fakeWorker(t *testing.T, dir string, index int, target, manifest string, code int) string {
	return fakeRun(t, dir, index, target, manifest, code, 0)
}

// fakeRun is fakeWorker's run started at seconds after 10:00.
func fakeRun(t *testing.T, dir string, index int, target, manifest string, code, seconds int) string {
	t.Helper()
	ev := filepath.Join(dir, target)
	if err := os.MkdirAll(ev, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ev, "manifest.jsonl"), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ev, "evidence.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(manifest))
	status := StatusComplete
	if code != 0 {
		status = StatusIncomplete
	}
	s := &WorkerSummary{ToolVersion: "test", Host: "h", TargetsFile: "t.txt", Index: index, IndexFrom: EnvJobCompletionIndex, Target: target, Out: ev,
		Evidence: []WorkerEvidence{{SnapshotID: target, Directory: target, Status: status, ManifestSHA256: hex.EncodeToString(sum[:]),
			Blocks: 10, Fetched: 10, Bytes: 10 << 19, Seconds: 1.5, ListCalls: 1, GetCalls: 12, Retries: 2, Throttles: 1, ExitCode: code}}}
	var err error
	if code != 0 {
		err = errors.New("boom")
	}
	started := time.Date(2026, 12, 5, 10, 0, seconds, 0, time.UTC)
	s.Finish(started, started.Add(2*time.Second), code, err)
	if err := s.Save(SummaryPath(ev, started)); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestWorkerSummarySaved(t *testing.T) {
	dir := t.TempDir()
	ev := fakeWorker(t, dir, 1, fsnapB, "m\n", 0)
	data, err := os.ReadFile(ev + ".20261205T100000.000Z.summary.json")
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "format": "ebsimager-worker/1",
  "tool_version": "test",
  "host": "h",
  "targets_file": "t.txt",
  "index": 1,
  "index_from": "JOB_COMPLETION_INDEX",
  "target": "snap-0b0000000000000b2",
  "out": "` + ev + `",
  "started": "2026-12-05T10:00:00Z",
  "finished": "2026-12-05T10:00:02Z",
  "seconds": 2,
  "status": "complete",
  "exit_code": 0,
  "evidence": [
    {
      "snapshot_id": "snap-0b0000000000000b2",
      "directory": "snap-0b0000000000000b2",
      "status": "complete",
      "manifest_sha256": "8b7e5bb6f5e1e8d9b0e55b2a5d8d4b3e0a4b0d6a0d7d96f2ffb2e15f9c8d5f0e",
      "blocks": 10,
      "fetched": 10,
      "bytes": 5242880,
      "seconds": 1.5,
      "list_calls": 1,
      "get_calls": 12,
      "retries": 2,
      "throttles": 1,
      "exit_code": 0
    }
  ],
  "blocks": 10,
  "bytes": 5242880,
  "list_calls": 1,
  "get_calls": 12,
  "retries": 2,
  "throttles": 1
}
`
	sum := sha256.Sum256([]byte("m\n"))
	want = strings.Replace(want, "8b7e5bb6f5e1e8d9b0e55b2a5d8d4b3e0a4b0d6a0d7d96f2ffb2e15f9c8d5f0e", hex.EncodeToString(sum[:]), 1)
	if string(data) != want {
		t.Fatalf("summary:\n%s\nwant:\n%s", data, want)
	}
	if fi, err := os.Stat(ev + ".20261205T100000.000Z.summary.json"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("summary mode: %v %v", fi.Mode(), err)
	}
	s, err := ReadWorkerSummary(strings.NewReader(string(data)))
	if err != nil || s.Target != fsnapB || s.Evidence[0].Blocks != 10 {
		t.Fatalf("ReadWorkerSummary: %+v %v", s, err)
	}
	for in, want := range map[string]string{
		strings.Replace(string(data), `"host"`, `"hostname"`, 1):                     "unknown field",
		strings.Replace(string(data), "ebsimager-worker/1", "ebsimager-worker/2", 1): `format "ebsimager-worker/2"`,
		strings.Repeat(" ", MaxWorkerSummaryBytes+1):                                 "larger than 1048576 bytes",
	} {
		if _, err := ReadWorkerSummary(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadWorkerSummary: %v, want %q", err, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	dir := t.TempDir()
	fakeWorker(t, dir, 0, fsnapA, "a\n", 0)
	fakeWorker(t, dir, 1, fsnapB, "b\n", 0)
	targets := []string{fsnapA, fsnapB}
	s, err := Summarize(dir, "t.txt", targets)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != StatusComplete || s.ExitCode != 0 || len(s.Workers) != 2 || len(s.Missing) != 0 || len(s.Problems) != 0 ||
		s.Snapshots != 2 || s.Blocks != 20 || s.Bytes != 10<<20 || s.GetCalls != 24 || s.ListCalls != 2 || s.Retries != 4 || s.Throttles != 2 ||
		s.WorkerSeconds != 4 || s.LongestSeconds != 2 {
		t.Fatalf("Summarize: %+v", s)
	}
	for i, id := range targets {
		w := s.Workers[i]
		if w.Index != i || w.Target != id || w.Summary != id+".20261205T100000.000Z.summary.json" || w.Runs != 1 || len(w.Evidence) != 1 || w.Evidence[0].Outcome != EvidenceMatch || w.Evidence[0].Directory != id {
			t.Fatalf("worker %d: %+v", i, w)
		}
	}
	var text strings.Builder
	s.WriteText(&text)
	if !strings.Contains(text.String(), "case "+dir+": complete, 2 workers, 2 snapshots\n  targets    2 in t.txt, 0 missing\n") ||
		!strings.Contains(text.String(), "  [1] "+fsnapB+"  complete (exit 0)  1 run  "+fsnapB+".20261205T100000.000Z.summary.json\n        "+fsnapB+"  "+fsnapB+"  match\n") {
		t.Fatalf("text:\n%s", text.String())
	}

	// A third target never ran, and one worker stopped incomplete: 3.
	s, _ = Summarize(dir, "t.txt", append(targets, fsnapC))
	if s.Status != StatusIncomplete || s.ExitCode != 3 || !reflect.DeepEqual(s.Missing, []int{2}) || len(s.Problems) != 0 {
		t.Fatalf("missing: %+v", s)
	}
	dir2 := t.TempDir()
	fakeWorker(t, dir2, 0, fsnapA, "a\n", 3)
	if s, _ = Summarize(dir2, "", nil); s.ExitCode != 3 || s.Workers[0].Evidence[0].Outcome != EvidenceNotComplete {
		t.Fatalf("incomplete worker: %+v", s)
	}

	// The manifest changed after the summary was written: 4.
	if err := os.WriteFile(filepath.Join(dir, fsnapB, "manifest.jsonl"), []byte("B\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ = Summarize(dir, "t.txt", targets)
	if s.Status != StatusMismatch || s.ExitCode != 4 || s.Workers[1].Evidence[0].Outcome != EvidenceDiffers || len(s.Problems) != 1 ||
		!strings.Contains(s.Problems[0], fsnapB+".20261205T100000.000Z.summary.json: "+fsnapB+"/manifest.jsonl has SHA-256 ") {
		t.Fatalf("tampered: %+v", s)
	}
	// The targets file lists another target at an index: 4.
	os.WriteFile(filepath.Join(dir, fsnapB, "manifest.jsonl"), []byte("b\n"), 0o600)
	s, _ = Summarize(dir, "t.txt", []string{fsnapA, fsnapC})
	if s.ExitCode != 4 || len(s.Problems) != 1 || s.Problems[0] != fsnapB+".20261205T100000.000Z.summary.json: index 1 is "+fsnapB+", but t.txt lists "+fsnapC+" there" {
		t.Fatalf("other target: %+v", s)
	}
	// A manifest gone: 4.
	os.Remove(filepath.Join(dir, fsnapA, "manifest.jsonl"))
	if s, _ = Summarize(dir, "t.txt", targets); s.ExitCode != 4 || s.Workers[0].Evidence[0].Outcome != EvidenceMissing {
		t.Fatalf("no manifest: %+v", s)
	}
}

// Nothing outside the case directory is read: an evidence directory
// that is a symlink out of it counts as missing, and a summary that is a
// symlink is refused. The summary's directory must be inside the case.
func TestSummarizeStaysInside(t *testing.T) {
	outside := t.TempDir()
	ev := fakeWorker(t, outside, 0, fsnapA, "a\n", 0)
	dir := t.TempDir()
	if err := os.Symlink(ev, filepath.Join(dir, fsnapA)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(ev + ".20261205T100000.000Z.summary.json")
	os.WriteFile(filepath.Join(dir, fsnapA+".summary.json"), data, 0o600)
	os.Symlink(ev+".20261205T100000.000Z.summary.json", filepath.Join(dir, "x.summary.json"))
	s, err := Summarize(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.ExitCode != 4 || len(s.Workers) != 1 || s.Workers[0].Evidence[0].Outcome != EvidenceMissing || len(s.Problems) != 2 ||
		!strings.Contains(s.Problems[1], "path escapes from parent") || s.Problems[0] != "x.summary.json: not a regular file (a symlink or a device is not read)" {
		t.Fatalf("Summarize: %+v", s)
	}
	var ws WorkerSummary
	json.Unmarshal(data, &ws)
	ws.Evidence[0].Directory = "../" + fsnapA
	dir3 := t.TempDir()
	ws.Save(filepath.Join(dir3, "w.summary.json"))
	if s, _ := Summarize(dir3, "", nil); s.ExitCode != 4 || !strings.Contains(s.Problems[0], `evidence directory "../`+fsnapA+`" is not a path inside the case directory`) {
		t.Fatalf("escaping directory: %+v", s)
	}
	// One index, two targets.
	dir4 := t.TempDir()
	fakeWorker(t, dir4, 0, fsnapA, "a\n", 0)
	fakeRun(t, dir4, 0, fsnapB, "b\n", 0, 5)
	if s, _ := Summarize(dir4, "", nil); s.ExitCode != 4 || len(s.Problems) != 1 || s.Problems[0] != "index 0: "+fsnapA+".20261205T100000.000Z.summary.json is of "+fsnapA+" at "+
		filepath.Join(dir4, fsnapA)+", but "+fsnapB+".20261205T100005.000Z.summary.json of "+fsnapB+" at "+filepath.Join(dir4, fsnapB) {
		t.Fatalf("one index, two targets: %+v", s)
	}
}

// Every run of a worker leaves its summary; the latest decides, the
// requests of all count.
func TestSummarizeRuns(t *testing.T) {
	dir := t.TempDir()
	fakeRun(t, dir, 0, fsnapA, "a\n", 3, 0) // incomplete
	fakeRun(t, dir, 0, fsnapA, "a\n", 0, 60)
	s, err := Summarize(dir, "t.txt", []string{fsnapA})
	if err != nil {
		t.Fatal(err)
	}
	if s.ExitCode != 0 || len(s.Workers) != 1 || len(s.Problems) != 0 || s.Snapshots != 1 || s.Blocks != 10 || s.GetCalls != 24 || s.Bytes != 10<<20 || s.WorkerSeconds != 4 {
		t.Fatalf("two runs: %+v", s)
	}
	if w := s.Workers[0]; w.Runs != 2 || w.Summary != fsnapA+".20261205T100100.000Z.summary.json" || w.Status != StatusComplete || w.Evidence[0].Outcome != EvidenceMatch {
		t.Fatalf("two runs: %+v", w)
	}
	// The latest run decides: a failed rerun leaves the index not complete.
	fakeRun(t, dir, 0, fsnapA, "a\n", 3, 120)
	if s, _ = Summarize(dir, "", nil); s.ExitCode != 3 || s.Workers[0].Runs != 3 || s.Workers[0].Evidence[0].Outcome != EvidenceNotComplete {
		t.Fatalf("failed rerun: %+v", s)
	}
}
