package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
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
		{"emulate", "--instance", "i-0123=/dev/xvda:synthetic:1GiB"},
		{"emulate", "--instance", "i-01234567=xvda"},
		{"emulate", "--instance", "i-01234567=/dev/xvda:synthetic:7MiB"},
		{"emulate", "--volume", "vol-01234567"},
		{"emulate", "--volume", "vol-01234567=synthetic:1GiB", "--volume-meta", "vol-0123456789abcdef0:encrypted=true"},
		{"emulate", "--volume", "vol-01234567=synthetic:1GiB", "--volume-meta", "vol-01234567:colour=red"},
		{"emulate", "--synthetic", specA, "--archive-fraction", "1.5"},
		{"emulate", "--synthetic", specA, "--kms-deny-fraction", "NaN"},
		{"emulate", "--synthetic", specA, "--snapshot-delay", "-1s"},
		{"emulate", "--synthetic", specA, "--deny-ec2", "RunInstances"},
		{"emulate", "--synthetic", specA, "--snapshot-meta", snapA + ":storage-tier=glacier"},
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

// TestEmulateInstance serves an instance of two volumes and a spare one,
// and asks the EC2 side for them over the wire.
func TestEmulateInstance(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "")
	disk := filepath.Join(t.TempDir(), "root.raw")
	if err := os.WriteFile(disk, bytes.Repeat([]byte{7}, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	const inst = "i-0123456789abcdef0"
	cmd := c.command(t.Context(), "emulate", "--instance", inst+"=/dev/xvda:"+disk+",/dev/xvdb:synthetic:2GiB,0.5,7",
		"--volume", "vol-0fedcba9876543210=synthetic:1GiB", "--volume-meta", "vol-0fedcba9876543210:encrypted=true",
		"--snapshot-delay", "1h", "--deny-ec2", "LockSnapshot")
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
	m := regexp.MustCompile(`endpoint=(http://127\.0\.0\.1:\d+);`).FindStringSubmatch(sc.Text())
	if m == nil {
		t.Fatalf("ready line %q", sc.Text())
	}
	post := func(form url.Values) string {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, m[1]+"/", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=emulator/20240501/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	body := post(url.Values{"Action": {"DescribeInstances"}, "Version": {"2016-11-15"}})
	for _, want := range []string{"<instanceId>" + inst + "</instanceId>", "<rootDeviceName>/dev/xvda</rootDeviceName>",
		"<deviceName>/dev/xvda</deviceName>", "<deviceName>/dev/xvdb</deviceName>"} {
		if !strings.Contains(body, want) {
			t.Errorf("DescribeInstances lacks %s:\n%s", want, body)
		}
	}
	body = post(url.Values{"Action": {"DescribeVolumes"}, "Version": {"2016-11-15"}, "VolumeId.1": {"vol-0fedcba9876543210"}})
	if !strings.Contains(body, "<status>available</status>") || !strings.Contains(body, "<encrypted>true</encrypted><kmsKeyId>arn:aws:kms:us-east-1:111122223333:key/") {
		t.Errorf("DescribeVolumes:\n%s", body)
	}
	body = post(url.Values{"Action": {"CreateSnapshots"}, "Version": {"2016-11-15"}, "InstanceSpecification.InstanceId": {inst}})
	if n := strings.Count(body, "<state>pending</state>"); n != 2 {
		t.Errorf("CreateSnapshots made %d pending snapshots, want 2:\n%s", n, body)
	}
	snap := regexp.MustCompile(`<snapshotId>(snap-[0-9a-f]+)</snapshotId>`).FindStringSubmatch(body)
	if snap == nil {
		t.Fatalf("no snapshot id:\n%s", body)
	}
	body = post(url.Values{"Action": {"LockSnapshot"}, "Version": {"2016-11-15"}, "SnapshotId": {snap[1]}, "LockMode": {"governance"}, "LockDuration": {"1"}})
	if !strings.Contains(body, "<Code>UnauthorizedOperation</Code>") {
		t.Errorf("LockSnapshot:\n%s", body)
	}
	cmd.Process.Signal(os.Interrupt)
	var rest strings.Builder
	for sc.Scan() {
		rest.WriteString(sc.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("emulate after Ctrl-C: %v", err)
	}
	for _, want := range []string{"CreateSnapshots: 1 (ok 1)", "DescribeInstances: 1 (ok 1)", "DescribeVolumes: 1 (ok 1)", "LockSnapshot: 1 (UnauthorizedOperation 1)"} {
		if !strings.Contains(rest.String(), want) {
			t.Errorf("shutdown counters lack %q:\n%s", want, rest.String())
		}
	}
}
