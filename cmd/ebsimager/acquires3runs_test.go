package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
)

// TestAcquireToS3RunRecords: an acquisition to S3 that ends incomplete
// (exit 3) or interrupted (exit 130) leaves a runs/ object saying so,
// with its checksum and the evidence's lock; the run that completes the
// evidence names them, with their SHA-256, in report.json.
func TestAcquireToS3RunRecords(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, snapA+"=1GiB,0.4,1")
	c := newCLI(t, endpoint)
	s3c, _ := s3Env(t, c)
	ctx := context.Background()
	u, _ := s3store.ParseURL("s3://locked/runs/")
	lock := []string{"--object-lock", "governance", "--retain-days", "1"}
	runs := func() []string {
		keys, err := s3c.List(ctx, u.Bucket, u.Key(store.RunsDir+"/"), 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range keys {
			out = append(out, strings.TrimPrefix(k.Key, u.Prefix))
		}
		return out
	}
	readRun := func(key string) (report.RunRecord, []byte) {
		data, err := s3c.Get(ctx, u.Bucket, u.Key(key), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var r report.RunRecord
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		o, err := s3c.Head(ctx, u.Bucket, u.Key(key))
		if sum := sha256.Sum256(data); err != nil || o.SHA256 != sum || o.Lock.Mode != s3store.Governance {
			t.Errorf("%s: %+v, %v; want its SHA-256 kept and the evidence's lock", key, o, err)
		}
		return r, data
	}

	// 1. Blocks fail after every retry: exit 3, and a record naming them.
	srv.SetFaults(emulator.Faults{Corrupt: 0.2})
	r := c.fails(exitIncomplete, "failed", append([]string{"acquire", snapA, "--out", u.String(), "--max-attempts", "1", "--json"}, lock...)...)
	srv.SetFaults(emulator.Faults{})
	var sum acquireSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || len(sum.FailedBlocks) == 0 {
		t.Fatalf("incomplete run's summary: %v\n%s", err, r.stdout)
	}
	keys := runs()
	if len(keys) != 1 || !strings.HasSuffix(keys[0], "-acquire.json") {
		t.Fatalf("runs/ after an incomplete run: %q", keys)
	}
	if _, _, err := store.ParseRunKey(keys[0]); err != nil {
		t.Error(err)
	}
	if sum.RunRecord != u.String()+keys[0] {
		t.Errorf("the summary names run record %q, want %q", sum.RunRecord, u.String()+keys[0])
	}
	first, _ := readRun(keys[0])
	a := first.Record.Acquisition
	if first.Format != report.RunFormat || first.Command != "acquire" || first.Outcome != report.OutcomeIncomplete || first.ExitStatus != exitIncomplete ||
		a == nil || len(a.FailedBlocks) != len(sum.FailedBlocks) || a.FailedBlocks[0] != sum.FailedBlocks[0] ||
		a.FetchedBlocks+int64(len(a.FailedBlocks)) != a.Blocks || a.ToolVersion == "" || a.StartedAt.IsZero() || a.FinishedAt.IsZero() ||
		!strings.Contains(strings.Join(a.CommandLine, " "), "--max-attempts 1") || first.Record.Evidence.ObjectLock == nil {
		t.Fatalf("the incomplete run's record: %+v, acquisition %+v", first, a)
	}

	// 2. Interrupted: exit 130, and its own record.
	srv.SetLatency(20*time.Millisecond, 0)
	stored := func() int {
		ks, err := s3c.List(ctx, u.Bucket, u.Key("blocks/"), 100000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, k := range ks {
			if _, _, err := block.ParseFileName(path.Base(k.Key)); err == nil {
				n++
			}
		}
		return n
	}
	have := stored()
	cmd := c.command(t.Context(), append([]string{"acquire", snapA, "--out", u.String(), "--quiet", "--workers", "2"}, lock...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); stored() < have+5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the rerun stored nothing in a minute")
		}
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("Ctrl-C: exit %d", code)
	}
	keys = runs()
	if len(keys) != 2 {
		t.Fatalf("runs/ after an interrupted run: %q", keys)
	}
	var interrupted report.RunRecord
	for _, k := range keys {
		if rr, _ := readRun(k); rr.Outcome == report.OutcomeInterrupted {
			interrupted = rr
		}
	}
	if interrupted.ExitStatus != exitInterrupted || interrupted.Record == nil || interrupted.Record.Acquisition.ResumedBlocks != int64(have) {
		t.Fatalf("no interrupted run's record among %q: %+v", keys, interrupted)
	}

	// 3. The run that completes the evidence names both, with their SHA-256.
	srv.SetLatency(0, 0)
	c.ok(append([]string{"acquire", snapA, "--out", u.String(), "--quiet"}, lock...)...)
	data, err := s3c.Get(ctx, u.Bucket, u.Key(report.JSONName), 1<<24)
	if err != nil {
		t.Fatal(err)
	}
	var rec report.Report
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Acquisition.Runs) != 2 {
		t.Fatalf("report.json names runs %+v, want %q", rec.Acquisition.Runs, keys)
	}
	for i, run := range rec.Acquisition.Runs {
		_, body := readRun(keys[i])
		sum := sha256.Sum256(body)
		if run.Key != keys[i] || run.SHA256 != hex.EncodeToString(sum[:]) || run.Size != int64(len(body)) {
			t.Errorf("report.json's run %d = %+v, want %s with SHA-256 %x", i, run, keys[i], sum)
		}
	}
	if len(runs()) != 2 {
		t.Errorf("a complete run left a run object: %q", runs())
	}
	// The runs/ prefix is no block: verify and export read past it
	// (verify leaving its own run object, runs/…-verify.json).
	c.ok("verify", u.String(), "--quiet")
	var acquires, verifies int
	for _, k := range runs() {
		switch {
		case strings.HasSuffix(k, "-acquire.json"):
			acquires++
		case strings.HasSuffix(k, "-verify.json"):
			verifies++
		}
	}
	if after := runs(); len(after) != 3 || acquires != 2 || verifies != 1 {
		t.Errorf("after verify: %q; want the two acquire runs and verify's", after)
	}
}
