package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
)

// s3WorkerSummary reads the one worker summary beside the evidence of id
// under the case prefix u, returning it and its key.
func s3WorkerSummary(t *testing.T, c *s3store.Client, u s3store.URL, id string) (casework.WorkerSummary, string) {
	t.Helper()
	keys, err := c.List(context.Background(), u.Bucket, u.Key(id+"."), 10)
	if err != nil || len(keys) != 1 || !strings.HasSuffix(keys[0].Key, casework.WorkerSuffix) {
		t.Fatalf("the summaries beside %s: %+v, %v", id, keys, err)
	}
	body, err := c.Get(context.Background(), u.Bucket, keys[0].Key, casework.MaxWorkerSummaryBytes)
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Head(context.Background(), u.Bucket, keys[0].Key)
	if err != nil || !o.HasSHA256 || o.SHA256 != sha256.Sum256(body) {
		t.Fatalf("the summary %s is not kept with its SHA-256: %+v, %v", keys[0].Key, o, err)
	}
	var s casework.WorkerSummary
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s, keys[0].Key
}

// s3Put replaces key in bucket behind the evidence's back.
func s3Put(t *testing.T, api *s3.Client, bucket, key string, body []byte) {
	t.Helper()
	if _, err := api.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// The fleet contract on S3: one worker per target, all at once, each
// with its JOB_COMPLETION_INDEX, --out s3://…/{target}/ and --max-rate
// = the account quota / parallelism, make complete evidence of every
// target in the bucket that verify passes, each with its summary beside
// it, written once with its SHA-256; the account throttles stay near
// zero; case summarize s3://… gathers them (exit 0) and finds a
// tampered manifest or summary (exit 4). A worker of an instance writes
// its case under its prefix, and case summarize gathers it too.
func TestFleetWorkersToS3(t *testing.T) {
	t.Parallel()
	const (
		workers      = 4
		accountQuota = 400 // GetSnapshotBlock per second, the emulator's account bucket
		maxRate      = accountQuota / workers
	)
	srv, endpoint, ids := fleetSnapshots(t, workers, accountQuota, "0.125")
	dir := t.TempDir()
	targets := writeJobTargets(t, dir, ids...)
	c := newCLI(t, endpoint)
	s3c, api := s3Env(t, c)
	caseURL, _ := s3store.ParseURL("s3://plain/case/")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	elapsed := runWorkers(t, ctx, c, workers, []string{"acquire", "--targets", targets, "--out", caseURL.String() + "{target}/", "--max-rate", fmt.Sprint(maxRate), "--quiet"})
	cnt := srv.Counters()
	throttled := cnt.Count("GetSnapshotBlock", "RequestThrottledException/ACCOUNT_THROTTLED")
	var blocks, gets int64
	summaries := make([]string, workers)
	for i, id := range ids {
		ev, _ := s3store.ParseURL(caseURL.String() + id + "/")
		s, key := s3WorkerSummary(t, s3c, caseURL, id)
		summaries[i] = key
		manifest, err := s3c.Get(ctx, ev.Bucket, ev.Key(store.ManifestName), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(manifest)
		if s.Index != i || s.Target != id || s.IndexFrom != casework.EnvJobCompletionIndex || s.ExitCode != 0 || s.Out != ev.String() || len(s.Evidence) != 1 ||
			s.Evidence[0].Directory != id || s.Evidence[0].ManifestSHA256 != hex.EncodeToString(sum[:]) || s.Evidence[0].Blocks != s.Evidence[0].Fetched || s.Blocks != s.Evidence[0].Blocks || s.Blocks == 0 {
			t.Fatalf("worker %d: %+v", i, s)
		}
		c.ok("verify", ev.String(), "--quiet")
		blocks, gets = blocks+s.Blocks, gets+s.GetCalls
	}
	if gets != cnt.Total("GetSnapshotBlock") {
		t.Fatalf("the summaries count %d GetSnapshotBlock, the emulator %d", gets, cnt.Total("GetSnapshotBlock"))
	}
	t.Logf("%d workers to S3 at --max-rate %d under an account quota of %d/s: %d blocks in %s (%.0f blocks/s), %d GetSnapshotBlock, %d ACCOUNT_THROTTLED",
		workers, maxRate, accountQuota, blocks, elapsed.Round(time.Millisecond), float64(blocks)/elapsed.Seconds(), gets, throttled)
	if throttled > blocks/100 {
		t.Fatalf("%d ACCOUNT_THROTTLED for %d blocks: more than 1%%\n%s", throttled, blocks, cnt)
	}

	r := c.ok("case", "summarize", caseURL.String(), "--targets", targets)
	if !strings.HasPrefix(r.stdout, fmt.Sprintf("case %s: complete, %d workers, %d snapshots\n  targets    %d in %s, 0 missing\n  data       %d blocks, %d bytes fetched\n",
		caseURL, workers, workers, workers, targets, blocks, blocks*512<<10)) {
		t.Fatalf("case summarize:\n%s", r.stdout)
	}
	for i, id := range ids {
		if want := fmt.Sprintf("  [%d] %s  complete (exit 0)  1 run  %s\n        %s  %s  match\n", i, id, strings.TrimPrefix(summaries[i], caseURL.Prefix), id, id); !strings.Contains(r.stdout, want) {
			t.Fatalf("case summarize: no %q in\n%s", want, r.stdout)
		}
	}

	// A manifest replaced after the worker summarized it: exit 4.
	m := caseURL.Key(ids[2] + "/" + store.ManifestName)
	orig, err := s3c.Get(ctx, caseURL.Bucket, m, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	s3Put(t, api, caseURL.Bucket, m, bytes.Replace(orig, []byte("0"), []byte("1"), 1))
	r = c.fails(exitMismatch, "1 problem:", "case", "summarize", caseURL.String(), "--targets", targets)
	if !regexp.MustCompile(`problem    ` + ids[2] + `\.\d{8}T\d{6}\.\d{3}Z\.summary\.json: ` + ids[2] + `/manifest\.jsonl has SHA-256 [0-9a-f]{64}, the summary says [0-9a-f]{64}\n`).MatchString(r.stdout) {
		t.Fatalf("case summarize of a tampered manifest:\n%s", r.stdout)
	}
	s3Put(t, api, caseURL.Bucket, m, orig)
	c.ok("case", "summarize", caseURL.String(), "--targets", targets)

	// A summary with a field it never had: refused, exit 4.
	body, err := s3c.Get(ctx, caseURL.Bucket, summaries[1], casework.MaxWorkerSummaryBytes)
	if err != nil {
		t.Fatal(err)
	}
	s3Put(t, api, caseURL.Bucket, summaries[1], bytes.Replace(body, []byte(`"format"`), []byte(`"verdict": "ok",
  "format"`), 1))
	r = c.fails(exitMismatch, "1 problem:", "case", "summarize", caseURL.String(), "--targets", targets)
	if want := fmt.Sprintf("  problem    %s: not a worker summary: json: unknown field \"verdict\"\n", strings.TrimPrefix(summaries[1], caseURL.Prefix)); !strings.Contains(r.stdout, want) {
		t.Fatalf("case summarize of a tampered summary: no %q in\n%s", want, r.stdout)
	}

	// An instance target: its worker preserves the instance and writes
	// its case under the templated prefix, one prefix per snapshot; its
	// summary names both, and case summarize gathers them.
	const inst = "i-0123456789abcdef0"
	if err := srv.AddInstance(inst, []emulator.VolumeSpec{emulatortest.SyntheticVolume("/dev/xvda", 1, 0.02, 11), emulatortest.SyntheticVolume("/dev/sdf", 1, 0.03, 12)}); err != nil {
		t.Fatal(err)
	}
	srv.ResetCounters()
	instURL, _ := s3store.ParseURL("s3://plain/inst/")
	instTargets := writeJobTargets(t, t.TempDir(), inst)
	c.ok("acquire", "--targets", instTargets, "--index", "0", "--out", instURL.String()+"{target}/", "--max-rate", fmt.Sprint(maxRate), "--quiet")
	if n := srv.Counters().Total("CreateSnapshots"); n != 1 {
		t.Fatalf("the instance worker made %d CreateSnapshots calls", n)
	}
	s, key := s3WorkerSummary(t, s3c, instURL, inst)
	if s.Target != inst || s.ExitCode != 0 || s.Status != casework.StatusComplete || s.Out != instURL.String()+inst+"/" || len(s.Evidence) != 2 ||
		s.GetCalls != srv.Counters().Total("GetSnapshotBlock") {
		t.Fatalf("the instance worker's summary: %+v", s)
	}
	want := fmt.Sprintf("case %s: complete, 1 workers, 2 snapshots\n", instURL)
	for _, e := range s.Evidence {
		ev := instURL.String() + inst + "/" + e.SnapshotID + "/"
		manifest, err := s3c.Get(ctx, instURL.Bucket, instURL.Key(inst+"/"+e.SnapshotID+"/"+store.ManifestName), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(manifest); e.Directory != inst+"/"+e.SnapshotID || e.Status != casework.StatusComplete || e.ManifestSHA256 != hex.EncodeToString(sum[:]) || e.Blocks == 0 {
			t.Fatalf("the instance worker's evidence: %+v", e)
		}
		c.ok("verify", ev, "--quiet")
		want += fmt.Sprintf("        %s  %s/%s  match\n", e.SnapshotID, inst, e.SnapshotID)
	}
	r = c.ok("case", "summarize", instURL.String(), "--targets", instTargets)
	if !strings.HasPrefix(r.stdout, want[:strings.IndexByte(want, '\n')+1]) || !strings.Contains(r.stdout, fmt.Sprintf("  [0] %s  complete (exit 0)  1 run  %s\n", inst, strings.TrimPrefix(key, instURL.Prefix))) ||
		!strings.Contains(r.stdout, want[strings.IndexByte(want, '\n')+1:]) {
		t.Fatalf("case summarize of the instance worker: want\n%s\nin\n%s", want, r.stdout)
	}
}

// A worker into a bucket with Object Lock: its summary carries the
// evidence's lock; a retry of the same index resumes (nothing fetched)
// and writes a summary of its own beside the first, which stays as it
// was; case summarize counts both runs.
func TestFleetWorkerToS3Locked(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	s3c, _ := s3Env(t, c)
	targets := writeJobTargets(t, t.TempDir(), snapA)
	caseURL, _ := s3store.ParseURL("s3://locked/c/")
	until := time.Now().Add(72 * time.Hour).UTC().Format(time.DateOnly)
	worker := []string{"acquire", "--targets", targets, "--index", "0", "--out", caseURL.String() + "{target}/", "--object-lock", "governance", "--retain-until", until, "--quiet"}
	c.ok(worker...)
	first, firstKey := s3WorkerSummary(t, s3c, caseURL, snapA)
	firstBody, err := s3c.Get(context.Background(), caseURL.Bucket, firstKey, casework.MaxWorkerSummaryBytes)
	if err != nil {
		t.Fatal(err)
	}
	gets := srv.Counters().Total("GetSnapshotBlock")
	c.ok(worker...)
	keys, err := s3c.List(context.Background(), caseURL.Bucket, caseURL.Key(snapA+"."), 10)
	if err != nil || len(keys) != 2 || keys[0].Key != firstKey {
		t.Fatalf("summaries after a retry: %+v, %v", keys, err)
	}
	want := s3store.Lock{Mode: s3store.Governance, RetainUntil: mustDate(t, until)}
	var again casework.WorkerSummary
	for _, k := range keys {
		o, err := s3c.Head(context.Background(), caseURL.Bucket, k.Key)
		if err != nil || o.Lock != want {
			t.Fatalf("%s: %+v, %v; want lock %+v", k.Key, o, err, want)
		}
		body, err := s3c.Get(context.Background(), caseURL.Bucket, k.Key, casework.MaxWorkerSummaryBytes)
		if err != nil {
			t.Fatal(err)
		}
		if k.Key == firstKey && !bytes.Equal(body, firstBody) {
			t.Fatalf("the first run's summary changed:\n%s", body)
		}
		if err := json.Unmarshal(body, &again); err != nil {
			t.Fatal(err)
		}
	}
	if again.Evidence[0].Fetched != 0 || again.GetCalls != 0 || again.Evidence[0].ManifestSHA256 != first.Evidence[0].ManifestSHA256 ||
		srv.Counters().Total("GetSnapshotBlock") != gets || !again.Started.After(first.Started) {
		t.Fatalf("the retry's summary: %+v (first %+v)", again, first)
	}
	r := c.ok("case", "summarize", caseURL.String(), "--targets", targets, "--json")
	var s casework.CaseSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.ExitCode != 0 || len(s.Workers) != 1 || s.Workers[0].Runs != 2 || s.Workers[0].Summary != strings.TrimPrefix(keys[1].Key, caseURL.Prefix) ||
		s.Workers[0].Evidence[0].Outcome != casework.EvidenceMatch || s.GetCalls != gets || s.Directory != caseURL.String() {
		t.Fatalf("case summarize: %+v", s)
	}
}

// A worker to S3 that fails still leaves its summary beside where its
// evidence would be, and case summarize s3://… counts its index as not
// complete (exit 3).
func TestWorkerToS3FailureSummarized(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	const gone = "snap-0e0000000000000e5" // not in the emulator
	targets := writeJobTargets(t, t.TempDir(), snapA, gone)
	c := newCLI(t, endpoint)
	s3c, _ := s3Env(t, c)
	caseURL, _ := s3store.ParseURL("s3://plain/f/")
	c.fails(exitNotFound, gone, "acquire", "--targets", targets, "--index", "1", "--out", caseURL.String()+"{snapshot}/", "--quiet")
	s, _ := s3WorkerSummary(t, s3c, caseURL, gone)
	if s.Index != 1 || s.Target != gone || s.ExitCode != exitNotFound || s.Status != casework.StatusFailed || !strings.Contains(s.Error, gone) ||
		len(s.Evidence) != 1 || s.Evidence[0].Status != casework.StatusFailed || s.Evidence[0].ManifestSHA256 != "" || s.Out != caseURL.String()+gone+"/" {
		t.Fatalf("summary of a failed worker: %+v", s)
	}
	c.ok("acquire", "--targets", targets, "--index", "0", "--out", caseURL.String()+"{snapshot}/", "--quiet")
	r := c.run("case", "summarize", caseURL.String(), "--targets", targets, "--json")
	var sum casework.CaseSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if r.code != exitIncomplete || sum.Status != casework.StatusIncomplete || len(sum.Workers) != 2 || len(sum.Missing) != 0 || len(sum.Problems) != 0 ||
		sum.Workers[0].Evidence[0].Outcome != casework.EvidenceMatch || sum.Workers[1].Evidence[0].Outcome != casework.EvidenceNotComplete || sum.Workers[1].ExitCode != exitNotFound {
		t.Fatalf("case summarize: exit %d\n%s", r.code, r.stdout)
	}
	// Without --targets nothing is missing; a prefix with no case is
	// an empty, complete case.
	if r := c.run("case", "summarize", "s3://plain/nothing-here/"); r.code != 0 || !strings.HasPrefix(r.stdout, "case s3://plain/nothing-here/: complete, 0 workers, 0 snapshots\n") {
		t.Fatalf("an empty prefix: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
