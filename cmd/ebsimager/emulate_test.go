package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/report"
)

// TestEmulateCommand runs `ebsimager emulate` as a user would: it prints
// one ready line with the endpoint and the environment to export, serves
// other ebsimager processes, and prints its counters when interrupted.
func TestEmulateCommand(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "")
	const full = "snap-0f0000000000000f1" // every slot allocated, so block 0 is listed
	cmd := c.command(t.Context(), "emulate", "--synthetic", specA, "--synthetic", full+"=1GiB,1,1", "--fail-block", full+":0=Drop")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatal("no ready line")
	}
	ready := sc.Text()
	m := regexp.MustCompile(`^ebsimager emulate: ready endpoint=(http://127\.0\.0\.1:\d+); export AWS_ENDPOINT_URL=(\S+) AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=\S+ AWS_SECRET_ACCESS_KEY=\S+$`).FindStringSubmatch(ready)
	if m == nil || m[1] != m[2] {
		t.Fatalf("ready line %q", ready)
	}
	user := newCLI(t, m[1])
	r := user.ok("budget", snapA, "--json")
	var e struct{ Blocks int64 }
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Blocks == 0 {
		t.Fatalf("budget against emulate: %s %v", r.stdout, err)
	}
	// The failing block is reported as such, by index.
	user.fails(exitIncomplete, "block 0", "acquire", full, "--out", filepath.Join(t.TempDir(), "ev"), "--quiet", "--max-attempts", "2")

	cmd.Process.Signal(os.Interrupt)
	var rest strings.Builder
	for sc.Scan() {
		rest.WriteString(sc.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("emulate after Ctrl-C: %v", err)
	}
	out := rest.String()
	for _, want := range []string{"stopped; requests served:", "ListSnapshotBlocks", "GetSnapshotBlock", "dropped", "bytes served:"} {
		if !strings.Contains(out, want) {
			t.Errorf("shutdown counters lack %q:\n%s", want, out)
		}
	}
}

func TestEmulateRefusesRemoteAndBadSpecs(t *testing.T) {
	c := newCLI(t, "")
	for _, args := range [][]string{
		{"emulate", "--listen", "0.0.0.0:0", "--synthetic", specA},
		{"emulate", "--synthetic", "snap-0a1=7MiB"},
		{"emulate", "--synthetic", "snap-0a1=1GiB,1.5"},
		{"emulate", "--synthetic", "bad=1GiB"},
		{"emulate", "--synthetic", specA, "--get-rate-per-snapshot", "NaN"},
		{"emulate", "--synthetic", specA, "--get-rate-per-account", "+Inf"},
		{"emulate", "--synthetic", specA, "--list-rate", "-1"},
		{"emulate", "--synthetic", specA, "--get-burst", "NaN"},
		{"emulate", "--synthetic", specA, "--get-burst", "0"},
		{"emulate", "--synthetic", specA, "--get-burst", "0.5"},
		{"emulate", "--synthetic", specA, "--get-burst", "0s"},
		{"emulate", "--synthetic", specA, "--list-burst", "-100ms"},
		{"emulate", "--synthetic", specA, "--list-burst", "fast"},
		{"emulate", "--synthetic", specA, "--fault-throttle", "NaN"},
	} {
		if r := c.run(args...); r.code != exitUsage || !strings.HasPrefix(r.stderr, "ebsimager: ") {
			t.Errorf("ebsimager %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// TestDemo runs the README's demo command and checks its claims.
func TestDemo(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "")
	dir := t.TempDir()
	r := c.ok("demo", "--dir", dir)
	for _, want := range []string{
		"== budget", "== acquire", "== verify", "verification OK", "== export",
		"the exported image is bit-identical to the sample disk",
		"== inspect", "evidence-ext4", "EVIDENCE-NTFS", "matches (E01 ", "report.html",
		"== ls", "hostname", "== cat", "web-01.evidence.internal", "== triage", "collected 2 files (976329 bytes)",
		"8 blocks read of 17 allocated", "1 List and 8 Get calls",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	// ls, cat and triage read the snapshot before it is acquired, and
	// each says what it fetched.
	if strings.Index(r.stdout, "== triage") > strings.Index(r.stdout, "== acquire") {
		t.Errorf("the demo's triage does not come before its acquisition:\n%s", r.stdout)
	}
	if n := strings.Count(r.stderr, "live: 1 List and "); n != 3 {
		t.Errorf("%d live summaries on stderr, want 3 (ls, cat, triage):\n%s", n, r.stderr)
	}
	sums, err := os.ReadFile(filepath.Join(dir, "triage", "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"files/p1/etc/passwd", "files/p1/var/log/auth.log"} {
		got := sha256File(t, filepath.Join(dir, "triage", f))
		if !strings.Contains(string(sums), got+"  "+f+"\n") {
			t.Errorf("triage SHA256SUMS lacks %s with sha256 %s", f, got)
		}
	}
	if got := sha256File(t, filepath.Join(dir, "triage", "files/p1/etc/passwd")); got != "d6ec5ea097ac17aed0c836feb2d132f5839c01843bfd787634e4180e6407c4fd" {
		t.Errorf("triage collected /etc/passwd with sha256 %s, the sample disk's is d6ec5ea0… (files.json)", got)
	}
	if got, want := sha256File(t, filepath.Join(dir, "image.raw")), sha256File(t, filepath.Join(dir, "sample.raw")); got != want {
		t.Fatalf("demo image %s, sample %s", got, want)
	}
	// Each custody step records its own command, not the demo's.
	rec, err := report.Load(filepath.Join(dir, "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	runs := []report.Run{rec.Acquisition.Run}
	kinds := []string{"acquire"}
	for _, s := range rec.Steps {
		runs, kinds = append(runs, s.Run), append(kinds, s.Kind)
	}
	for i, run := range runs {
		cl := run.CommandLine
		if len(cl) < 2 || cl[0] != "ebsimager" || !slices.Contains(cl, kinds[i]) || slices.Contains(cl, "demo") {
			t.Errorf("the demo's %s step records the command line %q", kinds[i], cl)
		}
	}
}
