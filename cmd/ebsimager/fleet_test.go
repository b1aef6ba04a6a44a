package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
)

// workerSummaries lists the summaries beside the evidence at out, one a
// run, oldest first.
func workerSummaries(t *testing.T, out string) []string {
	t.Helper()
	names, err := filepath.Glob(strings.TrimRight(out, "/") + ".*" + casework.WorkerSuffix)
	if err != nil || len(names) == 0 {
		t.Fatalf("no worker summary beside %s (%v)", out, err)
	}
	return names // Glob sorts, and the names sort by start time
}

// loadWorker reads the latest worker summary beside the evidence at out.
func loadWorker(t *testing.T, out string) casework.WorkerSummary {
	t.Helper()
	names := workerSummaries(t, out)
	var s casework.WorkerSummary
	dec := json.NewDecoder(strings.NewReader(readFile(t, names[len(names)-1])))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// writeJobTargets writes a targets file: the ids with comments and blank
// lines between them, which the index does not count.
func writeJobTargets(t *testing.T, dir string, ids ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# case IR-2026-15\n\n")
	for i, id := range ids {
		fmt.Fprintf(&b, "%s   # worker %d\n\n# --\n", id, i)
	}
	path := filepath.Join(dir, "targets.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The index contract of a worker: --index, else JOB_COMPLETION_INDEX,
// else AWS_BATCH_JOB_ARRAY_INDEX picks one id of the targets file
// (comments and blank lines not counted), --out is expanded, and a
// summary is written beside the evidence. An instance target is a case
// directory at {target}, its volumes in the summary.
func TestWorkerIndexContract(t *testing.T) {
	t.Parallel()
	root, err := sampledisk.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, endpoint := emulatortest.StartInstance(t, emulator.Options{TrackBlocks: true}, caseInstance, emulatortest.RawVolume("/dev/xvda", root))
	for _, s := range []string{specA, specB} {
		if err := srv.AddSynthetic(s); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	targets := writeJobTargets(t, dir, snapA, snapB, caseInstance)
	out := filepath.Join(dir, "ev", "{target}")
	run := func(env []string, args ...string) result {
		c := newCLI(t, endpoint)
		c.env = append([]string{casework.EnvJobCompletionIndex + "=", casework.EnvBatchArrayIndex + "="}, env...)
		return c.run(append([]string{"acquire", "--targets", targets, "--quiet"}, args...)...)
	}
	both := []string{casework.EnvJobCompletionIndex + "=0", casework.EnvBatchArrayIndex + "=2"}

	// --index wins over both variables.
	if r := run(both, "--out", out, "--index", "1"); r.code != 0 {
		t.Fatalf("--index 1: exit %d\n%s", r.code, r.stderr)
	}
	evB := filepath.Join(dir, "ev", snapB)
	s := loadWorker(t, evB)
	if s.Format != casework.WorkerFormat || s.Index != 1 || s.IndexFrom != "--index" || s.Target != snapB || s.Out != evB || s.TargetsFile != targets ||
		s.ExitCode != 0 || s.Status != casework.StatusComplete || s.Error != "" || s.ToolVersion != version || s.Host == "" || len(s.Evidence) != 1 {
		t.Fatalf("summary: %+v", s)
	}
	e := s.Evidence[0]
	if e.SnapshotID != snapB || e.Directory != snapB || e.Status != casework.StatusComplete || e.ManifestSHA256 != manifestSum(t, evB) ||
		e.Blocks != e.Fetched || e.GetCalls != e.Blocks || e.Bytes != e.Blocks*512<<10 || e.ListCalls < 1 || e.ExitCode != 0 ||
		s.Blocks != e.Blocks || s.Bytes != e.Bytes || s.GetCalls != e.GetCalls || s.ListCalls != e.ListCalls || s.Throttles != 0 ||
		int64(srv.Counters().Total("GetSnapshotBlock")) != e.GetCalls {
		t.Fatalf("summary evidence: %+v\n%s", s, srv.Counters())
	}
	newCLI(t, endpoint).ok("verify", evB)
	// A retry of the same index resumes: nothing fetched, the evidence
	// left as it is, and a summary of its own beside the first run's.
	first := workerSummaries(t, evB)
	firstData := readFile(t, first[0])
	gets := srv.Counters().Total("GetSnapshotBlock")
	if r := run(both, "--out", out, "--index", "1"); r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s", r.code, r.stderr)
	}
	again := loadWorker(t, evB)
	if again.Evidence[0].Fetched != 0 || again.Evidence[0].Blocks != e.Blocks || again.Evidence[0].ManifestSHA256 != e.ManifestSHA256 ||
		again.GetCalls != 0 || srv.Counters().Total("GetSnapshotBlock") != gets || !again.Started.After(s.Started) {
		t.Fatalf("rerun summary: %+v", again)
	}
	if names := workerSummaries(t, evB); len(first) != 1 || len(names) != 2 || names[0] != first[0] || readFile(t, names[0]) != firstData ||
		filepath.Base(names[1]) != snapB+"."+again.Started.UTC().Format("20060102T150405.000Z")+".summary.json" {
		t.Fatalf("summaries after a rerun: %q (first %q)", names, first)
	}
	if _, err := os.Stat(filepath.Join(dir, "ev", snapA)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("worker 1 touched target 0: %v", err)
	}

	// JOB_COMPLETION_INDEX wins over AWS_BATCH_JOB_ARRAY_INDEX.
	if r := run(both, "--out", filepath.Join(dir, "k8s-{index}-{target}")); r.code != 0 {
		t.Fatalf("JOB_COMPLETION_INDEX: exit %d\n%s", r.code, r.stderr)
	}
	if s := loadWorker(t, filepath.Join(dir, "k8s-0-"+snapA)); s.Index != 0 || s.IndexFrom != casework.EnvJobCompletionIndex || s.Target != snapA {
		t.Fatalf("summary: %+v", s)
	}
	// AWS_BATCH_JOB_ARRAY_INDEX alone: the instance, a case directory.
	srv.ResetCounters()
	if r := run([]string{casework.EnvBatchArrayIndex + "=2"}, "--out", out); r.code != 0 {
		t.Fatalf("AWS_BATCH_JOB_ARRAY_INDEX: exit %d\n%s", r.code, r.stderr)
	}
	caseDir := filepath.Join(dir, "ev", caseInstance)
	cs := loadCase(t, caseDir)
	s = loadWorker(t, caseDir)
	if s.Index != 2 || s.IndexFrom != casework.EnvBatchArrayIndex || s.Target != caseInstance || s.ExitCode != 0 || len(s.Evidence) != 1 || len(cs.Volumes) != 1 {
		t.Fatalf("summary: %+v", s)
	}
	v := cs.Volumes[0]
	if e := s.Evidence[0]; e.SnapshotID != v.SnapshotID || e.Directory != caseInstance+"/"+v.SnapshotID || e.ManifestSHA256 != manifestSum(t, filepath.Join(caseDir, v.SnapshotID)) ||
		e.Blocks != v.Blocks || e.GetCalls != v.GetCalls || s.Blocks != v.Blocks {
		t.Fatalf("instance evidence: %+v, case volume %+v", s.Evidence, v)
	}

	// The three workers' summaries make one complete case.
	r := newCLI(t, endpoint).run("case", "summarize", filepath.Join(dir, "ev"), "--targets", targets, "--json")
	var sum casework.CaseSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if r.code != 3 || sum.ExitCode != 3 || len(sum.Workers) != 2 || fmt.Sprint(sum.Missing) != "[0]" || len(sum.Problems) != 0 {
		t.Fatalf("case summarize: exit %d %+v", r.code, sum)
	}

	for _, tc := range []struct {
		env  []string
		args []string
		code int
		want string
	}{
		{nil, []string{"--out", out, "--index", "3"}, exitInvalid, "targets.txt: index 3 is beyond its 3 targets (indexes 0 to 2)"},
		{[]string{casework.EnvJobCompletionIndex + "=7"}, []string{"--out", out}, exitInvalid, "index 7 is beyond its 3 targets"},
		{[]string{casework.EnvJobCompletionIndex + "=x1"}, []string{"--out", out}, exitInvalid, `JOB_COMPLETION_INDEX="x1": not an index`},
		{nil, []string{"--out", out, "--index", "-1"}, exitInvalid, "--index -1: an index is 0 or more"},
		{nil, []string{"--out", filepath.Join(dir, "one"), "--index", "0"}, exitUsage, "needs {target}, {snapshot} or {index}"},
		{nil, []string{"--out", filepath.Join(dir, "{snapshot}"), "--index", "0"}, exitUsage, "i-0c0000000000000c1 is not one; use {target}"},
		{nil, []string{"--out", dir + "/../{target}", "--index", "0"}, exitUsage, `holds a ".." component`},
		{nil, []string{"--out", dir + "/{snap}", "--index", "0"}, exitUsage, "unknown placeholder {snap}"},
		{nil, []string{"--out", dir + "/{target}"}, exitUsage, "{…} placeholders apply to a worker of an indexed job"},
		{nil, []string{"--image", dir + "/x.raw", "--index", "0"}, exitUsage, "writes to --out"},
		{nil, []string{snapA, "--out", out, "--index", "0"}, exitUsage, "takes its target from --targets FILE only"},
	} {
		r := run(tc.env, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want %d, %q", tc.env, tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if r := newCLI(t, endpoint).run("acquire", snapA, "--out", dir+"/x", "--index", "0"); r.code != exitUsage || !strings.Contains(r.stderr, "--index picks one target of --targets FILE") {
		t.Errorf("--index without --targets: exit %d %q", r.code, r.stderr)
	}
}

// The fleet contract: one worker per target, all at once, each with its
// JOB_COMPLETION_INDEX and --max-rate = the account quota / parallelism,
// make complete, verified evidence of every target with the emulator's
// account quota set, and its account throttles stay near zero; case
// summarize gathers them, and finds a tampered manifest (exit 4).
func TestFleetWorkersShareTheQuota(t *testing.T) {
	t.Parallel()
	const (
		workers      = 4
		accountQuota = 400 // GetSnapshotBlock per second, the emulator's account bucket
		maxRate      = accountQuota / workers
	)
	srv, endpoint, ids := fleetSnapshots(t, workers, accountQuota, "0.2")
	dir := t.TempDir()
	targets := writeJobTargets(t, dir, ids...)
	caseDir := filepath.Join(dir, "case")
	c := newCLI(t, endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	elapsed := runWorkers(t, ctx, c, workers, []string{"acquire", "--targets", targets, "--out", caseDir + "/{snapshot}", "--max-rate", fmt.Sprint(maxRate), "--quiet"}, casework.EnvBatchArrayIndex+"=")
	cnt := srv.Counters()
	throttled := cnt.Count("GetSnapshotBlock", "RequestThrottledException/ACCOUNT_THROTTLED")
	var blocks, gets int64
	for i, id := range ids {
		ev := filepath.Join(caseDir, id)
		s := loadWorker(t, ev)
		if s.Index != i || s.Target != id || s.IndexFrom != casework.EnvJobCompletionIndex || s.ExitCode != 0 || len(s.Evidence) != 1 ||
			s.Evidence[0].ManifestSHA256 != manifestSum(t, ev) || s.Evidence[0].Blocks != s.Evidence[0].Fetched {
			t.Fatalf("worker %d: %+v", i, s)
		}
		c.ok("verify", ev)
		blocks, gets = blocks+s.Blocks, gets+s.GetCalls
	}
	if gets != cnt.Total("GetSnapshotBlock") {
		t.Fatalf("the summaries count %d GetSnapshotBlock, the emulator %d", gets, cnt.Total("GetSnapshotBlock"))
	}
	t.Logf("%d workers at --max-rate %d under an account quota of %d/s: %d blocks in %s (%.0f blocks/s), %d GetSnapshotBlock, %d ACCOUNT_THROTTLED",
		workers, maxRate, accountQuota, blocks, elapsed.Round(time.Millisecond), float64(blocks)/elapsed.Seconds(), gets, throttled)
	if throttled > blocks/100 {
		t.Fatalf("%d ACCOUNT_THROTTLED for %d blocks: more than 1%%\n%s", throttled, blocks, cnt)
	}

	r := c.ok("case", "summarize", caseDir, "--targets", targets)
	if !strings.HasPrefix(r.stdout, fmt.Sprintf("case %s: complete, %d workers, %d snapshots\n  targets    %d in %s, 0 missing\n  data       %d blocks, %d bytes fetched\n",
		caseDir, workers, workers, workers, targets, blocks, blocks*512<<10)) {
		t.Fatalf("case summarize:\n%s", r.stdout)
	}
	// A manifest rewritten after the worker summarized it: exit 4.
	m := filepath.Join(caseDir, ids[2], "manifest.jsonl")
	data := readFile(t, m)
	if err := os.WriteFile(m, []byte(strings.Replace(data, "0", "1", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = c.fails(exitMismatch, "1 problem:", "case", "summarize", caseDir, "--targets", targets)
	if !regexp.MustCompile(`problem    ` + ids[2] + `\.\d{8}T\d{6}\.\d{3}Z\.summary\.json: ` + ids[2] + `/manifest\.jsonl has SHA-256 [0-9a-f]{64}, the summary says [0-9a-f]{64}\n`).MatchString(r.stdout) {
		t.Fatalf("case summarize of a tampered manifest:\n%s", r.stdout)
	}
}

// A worker that fails still leaves its summary, with its exit code, and
// case summarize counts its index as not complete (exit 3).
func TestWorkerFailureSummarized(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	dir := t.TempDir()
	const gone = "snap-0e0000000000000e5" // not in the emulator
	targets := writeJobTargets(t, dir, snapA, gone)
	caseDir := filepath.Join(dir, "case")
	c := newCLI(t, endpoint)
	c.env = []string{casework.EnvBatchArrayIndex + "=1"}
	c.fails(exitNotFound, gone, "acquire", "--targets", targets, "--out", caseDir+"/{snapshot}", "--quiet")
	s := loadWorker(t, filepath.Join(caseDir, gone))
	if s.Index != 1 || s.Target != gone || s.ExitCode != exitNotFound || s.Status != casework.StatusFailed || !strings.Contains(s.Error, gone) ||
		len(s.Evidence) != 1 || s.Evidence[0].SnapshotID != gone || s.Evidence[0].Status != casework.StatusFailed || s.Evidence[0].ManifestSHA256 != "" ||
		s.Evidence[0].ExitCode != exitNotFound || s.IndexFrom != casework.EnvBatchArrayIndex {
		t.Fatalf("summary of a failed worker: %+v", s)
	}
	c.env = []string{casework.EnvBatchArrayIndex + "=0"}
	c.ok("acquire", "--targets", targets, "--out", caseDir+"/{snapshot}", "--quiet")
	r := c.run("case", "summarize", caseDir, "--targets", targets, "--json")
	var sum casework.CaseSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if r.code != exitIncomplete || sum.Status != casework.StatusIncomplete || len(sum.Workers) != 2 || len(sum.Missing) != 0 || len(sum.Problems) != 0 ||
		sum.Workers[0].Evidence[0].Outcome != casework.EvidenceMatch || sum.Workers[1].Evidence[0].Outcome != casework.EvidenceNotComplete || sum.Workers[1].ExitCode != exitNotFound {
		t.Fatalf("case summarize: exit %d\n%s", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, "0 missing indexes, 2 worker summaries: not every target has complete evidence") {
		t.Fatalf("stderr: %s", r.stderr)
	}
}

// fleetSnapshots starts an emulator whose account allows quota
// GetSnapshotBlock a second, serving n synthetic 1 GiB snapshots with
// the given fraction of blocks allocated, and returns their ids.
func fleetSnapshots(t *testing.T, n int, quota float64, fraction string) (*emulator.Server, string, []string) {
	t.Helper()
	srv, endpoint := startEmulator(t, emulator.Options{Latency: 2 * time.Millisecond, GetRatePerAccount: quota, ListRate: 50})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("snap-0f%015x", i+1)
		if err := srv.AddSynthetic(fmt.Sprintf("%s=1GiB,%s,%d", ids[i], fraction, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	return srv, endpoint, ids
}

// runWorkers runs n workers of args at once, worker i with
// JOB_COMPLETION_INDEX=i and env, waits for them all (any failure is
// fatal, with its output) and returns the time they took.
func runWorkers(t *testing.T, ctx context.Context, c *cli, n int, args []string, env ...string) time.Duration {
	t.Helper()
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	started := time.Now()
	for i := range cmds {
		cmds[i] = c.command(ctx, args...)
		cmds[i].Env = append(cmds[i].Env, fmt.Sprintf("%s=%d", casework.EnvJobCompletionIndex, i))
		cmds[i].Env = append(cmds[i].Env, env...)
		outs[i] = &bytes.Buffer{}
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("worker %d: %v\n%s", i, err, outs[i])
		}
	}
	return time.Since(started)
}
