package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
)

// verifyS3Run runs verify on the evidence under u with --json, and returns
// its output and the step recorded in its run object, checked against
// the SHA-256 S3 keeps for it.
func verifyS3Run(t *testing.T, c *cli, s3c *s3store.Client, u s3store.URL, code int, args ...string) (verifyS3Output, report.Step) {
	t.Helper()
	r := c.run(append([]string{"verify", u.String(), "--json"}, args...)...)
	var out verifyS3Output
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != code || err != nil {
		t.Fatalf("verify %s: exit %d (want %d), %v\n%s%s", u, r.code, code, err, r.stdout, r.stderr)
	}
	if out.Run == nil || !out.Recorded || !regexp.MustCompile(`^runs/\d{8}T\d{6}Z-[0-9a-f]{8}-verify\.json$`).MatchString(out.Run.Key) {
		t.Fatalf("verify %s: recorded %v in run object %+v", u, out.Recorded, out.Run)
	}
	body, err := s3c.Get(context.Background(), u.Bucket, u.Key(out.Run.Key), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	o, err := s3c.Head(context.Background(), u.Bucket, u.Key(out.Run.Key))
	if sum := sha256.Sum256(body); err != nil || hex.EncodeToString(sum[:]) != out.Run.SHA256 || o.SHA256.Hex() != out.Run.SHA256 {
		t.Fatalf("run object %s: %v; S3's checksum %s, the body's %x, the output says %s", out.Run.Key, err, o.SHA256.Hex(), sum, out.Run.SHA256)
	}
	var step report.Step
	if err := json.Unmarshal(body, &step); err != nil || step.Kind != report.StepVerify || step.Verify == nil {
		t.Fatalf("run object %s: %v\n%s", out.Run.Key, err, body)
	}
	return out, step
}

// TestVerifyS3 verifies evidence in S3 against its snapshot, and records
// each verification as a run object of its own: the verdict, the counts
// and the failures; a run object that cannot be written is exit 13.
func TestVerifyS3(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	s3c, api := s3Env(t, c)
	u, _ := s3store.ParseURL("s3://plain/v/")
	sum := acquireJSON(t, c.ok("acquire", snapA, "--out", u.String(), "--quiet", "--json"))

	srv.ResetCounters()
	out, step := verifyS3Run(t, c, s3c, u, 0, "--against-snapshot", "--full")
	if !out.OK || out.Blocks != sum.Blocks || out.Snapshot == nil || out.Snapshot.Listed != sum.Blocks || out.Snapshot.Fetched != sum.Blocks ||
		out.Snapshot.MissingCount+out.Snapshot.ExtraCount+out.Snapshot.DifferCount != 0 {
		t.Fatalf("verify --against-snapshot --full: %+v snapshot %+v; want %d blocks listed and fetched", out, out.Snapshot, sum.Blocks)
	}
	if out.Record == nil || out.Record.Outcome != store.CompareMatch || out.Record.Detail != "the acquisition record in report.json" {
		t.Fatalf("compared with report.json: %+v", out.Record)
	}
	if n := srv.Counters().Total(emulator.OpGetSnapshotBlock); n != sum.Blocks {
		t.Errorf("%d GetSnapshotBlock calls, want %d", n, sum.Blocks)
	}
	v := step.Verify
	if len(v.Compared) != 3 || v.Compared[0].Record != report.JSONName || v.Compared[0].Outcome != report.CompareMatch {
		t.Fatalf("recorded comparisons: %+v", v.Compared)
	}
	if step.Outcome != report.OutcomeOK || !v.OK || v.Target != u.String() || v.Blocks != sum.Blocks || v.StoredChecked != sum.Blocks ||
		v.ContentChecked != sum.Blocks || v.ManifestSHA256 != sum.ManifestSHA256 || v.Snapshot == nil || v.Snapshot.Listed != sum.Blocks {
		t.Fatalf("recorded step: %+v verify %+v", step, v)
	}

	// A tampered object: exit 4, and the failure is recorded.
	_, es := s3Manifest(t, s3c, u)
	e := es[len(es)/2]
	bad := tamperS3Object(t, s3c, api, u, e, 7, 1)
	out, step = verifyS3Run(t, c, s3c, u, exitMismatch)
	if out.OK || step.Outcome != report.OutcomeFailed || step.Verify.OK || len(step.Verify.Problems) != 1 ||
		step.Verify.Problems[0].Index != e.Index || !strings.Contains(step.Verify.Problems[0].Detail, hex.EncodeToString(bad[:])) {
		t.Fatalf("tampered: %+v; recorded %+v %+v", out, step, step.Verify)
	}
	if keys, err := s3c.List(context.Background(), u.Bucket, u.Key(store.RunsDir+"/"), 10); err != nil || len(keys) != 2 {
		t.Fatalf("run objects: %+v, %v; want 2", keys, err)
	}

	// S3 refusing the run object (moto denies nothing: a proxy in
	// front of it refuses every PUT) is exit 13 after the verdict, on
	// evidence that verifies; --no-record writes nothing.
	v2, _ := s3store.ParseURL("s3://plain/v2/")
	c.ok("acquire", snapA, "--out", v2.String(), "--quiet")
	deny := denyPuts(t, c)
	r := c.run("verify", v2.String())
	if r.code != exitUnrecorded || !strings.Contains(r.stdout, "verification OK") || !strings.Contains(r.stderr, "the verification was not recorded in "+v2.String()) {
		t.Fatalf("verify with PUT denied: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	c.ok("verify", v2.String(), "--no-record")
	if deny.Load() < 1 {
		t.Fatal("no PUT reached the proxy")
	}
	if keys, err := s3c.List(context.Background(), v2.Bucket, v2.Key(store.RunsDir+"/"), 10); err != nil || len(keys) != 0 {
		t.Fatalf("run objects: %+v, %v; want none", keys, err)
	}
}

// denyPuts points the CLI's S3 at a proxy in front of its S3 that
// answers every PUT with S3's 403 AccessDenied, and counts them.
func denyPuts(t *testing.T, c *cli) *atomic.Int64 {
	t.Helper()
	var target string
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "AWS_ENDPOINT_URL_S3="); ok {
			target = v
		}
	}
	tu, err := url.Parse(target)
	if err != nil || target == "" {
		t.Fatalf("no S3 endpoint to put a proxy in front of (%v)", err)
	}
	var denied atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(tu)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			denied.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.env = append(c.env, "AWS_ENDPOINT_URL_S3="+srv.URL)
	return &denied
}
