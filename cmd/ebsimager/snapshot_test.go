package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/report"
)

// TestSnapshotRefusals: what EC2 would refuse, or what contradicts
// itself, is refused before any call, and no record directory is made.
func TestSnapshotRefusals(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "http://127.0.0.1:1") // nothing listens: no call may be made
	dir := filepath.Join(t.TempDir(), "rec")
	const inst = "i-0123456789abcdef0"
	for _, tc := range []struct {
		code int
		want string
		args []string
	}{
		{exitInvalid, `invalid target "snap-0123456789abcdef0": want an instance id`, []string{"snapshot", "snap-0123456789abcdef0"}},
		{exitInvalid, "target " + inst + " given twice", []string{"snapshot", inst, inst}},
		{exitUsage, "missing argument", []string{"snapshot"}},
		{exitUsage, "--lock needs --lock-duration of 1 to 36500 days (got 0)", []string{"snapshot", inst, "--lock", "governance"}},
		{exitUsage, "--lock-duration: invalid duration \"25h\": want whole days", []string{"snapshot", inst, "--lock", "governance", "--lock-duration", "25h"}},
		{exitUsage, "--cool-off applies to a compliance lock only", []string{"snapshot", inst, "--lock", "governance", "--lock-duration", "30d", "--cool-off", "24h"}},
		{exitUsage, "--cool-off must be 1 to 72 hours (got 96)", []string{"snapshot", inst, "--lock", "compliance", "--lock-duration", "30d", "--cool-off", "4d"}},
		{exitUsage, "drop --no-wait", []string{"snapshot", inst, "--no-wait", "--share-with", "111122223333"}},
		{exitUsage, "want 12 digits", []string{"snapshot", inst, "--share-with", "1111-2222-3333"}},
		{exitUsage, "--copy and --kms-key go together", []string{"snapshot", inst, "--copy"}},
		{exitUsage, "is an AWS managed key", []string{"snapshot", inst, "--copy", "--kms-key", "alias/aws/ebs"}},
		{exitUsage, "the aws: prefix is reserved", []string{"snapshot", inst, "--tag", "aws:cloudformation=x"}},
		{exitUsage, `invalid tag "novalue": want KEY=VALUE`, []string{"snapshot", inst, "--tag", "novalue"}},
		{exitUsage, `invalid device "sdf"`, []string{"snapshot", inst, "--device", "sdf"}},
		{exitUsage, "--timeout must be positive", []string{"snapshot", inst, "--timeout", "0s"}},
	} {
		args := append(tc.args, "--record", dir)
		c.fails(tc.code, tc.want, args...)
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("%v made the record directory: %v", tc.args, err)
		}
	}
}

const preserveInstance = "i-0123456789abcdef0"

// startPreserveEmulator serves an instance of two volumes, /dev/xvda
// (root) and /dev/sdf.
func startPreserveEmulator(t *testing.T, o emulator.Options) string {
	t.Helper()
	_, endpoint := emulatortest.StartInstance(t, o, preserveInstance,
		emulatortest.SyntheticVolume("/dev/xvda", 1, 0.01, 1), emulatortest.SyntheticVolume("/dev/sdf", 2, 0.01, 2))
	return endpoint
}

// loadPreservation reads the record in dir, checking the files' modes.
func loadPreservation(t *testing.T, dir string) *report.Preservation {
	t.Helper()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("record directory: %v, %v", fi, err)
	}
	for _, name := range []string{report.PreservationJSONName, report.PreservationTextName} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v", name, fi, err)
		}
	}
	var rec report.Preservation
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, report.PreservationJSONName))), &rec); err != nil {
		t.Fatal(err)
	}
	return &rec
}

// stableTimes replaces the times of a run in s by placeholders.
var stableTimes = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)

// TestSnapshotCommand: `snapshot i-…` against the emulator prints the
// two snapshots (--json exactly), and records every call with its
// request id in the record directory.
func TestSnapshotCommand(t *testing.T) {
	t.Parallel()
	c := newCLI(t, startPreserveEmulator(t, emulator.Options{}))
	dir := filepath.Join(t.TempDir(), "rec")
	r := c.ok("snapshot", preserveInstance, "--case-number", "2024-017", "--evidence-number", "E-3", "--examiner", "J. Doe",
		"--tag", "team=ir", "--json", "--record", dir, "--quiet")
	golden(t, "snapshot-json", strings.ReplaceAll(stableTimes.ReplaceAllString(r.stdout, "TIME"), dir, "DIR"))
	rec := loadPreservation(t, dir)
	var apis []string
	for _, call := range rec.Calls {
		apis = append(apis, call.API)
		if call.RequestID == "" || call.Outcome != report.OutcomeOK || call.Attempts != 1 || call.StartedAt.IsZero() || call.Region != "us-east-1" {
			t.Errorf("call %+v", call)
		}
	}
	if got := strings.Join(apis, " "); got != "sts:GetCallerIdentity ec2:DescribeInstances ec2:DescribeVolumes ec2:CreateSnapshots ec2:CreateTags ec2:CreateTags ec2:DescribeSnapshots" {
		t.Errorf("calls %s", got)
	}
	if rec.Outcome != "ok" || len(rec.Snapshots) != 2 || rec.CallerIdentity == nil || rec.Case.Examiner != "J. Doe" ||
		!slices.Equal(rec.Targets, []string{preserveInstance}) || rec.Run.CommandLine[1] != "snapshot" {
		t.Errorf("record %+v", rec)
	}
	txt := readFile(t, filepath.Join(dir, report.PreservationTextName))
	for _, s := range rec.Snapshots {
		if !strings.Contains(txt, s.SnapshotID+" of "+s.VolumeID+" ("+preserveInstance+" "+s.Device+") in us-east-1") {
			t.Errorf("preservation.txt does not list %s", s.SnapshotID)
		}
	}

	// Text output: a line per snapshot, and where the record is.
	dir2 := filepath.Join(t.TempDir(), "rec")
	r = c.ok("snapshot", emulator.VolumeID(preserveInstance, "/dev/sdf"), "--record", dir2, "--quiet")
	s := loadPreservation(t, dir2).Snapshots
	want := s[0].SnapshotID + "  " + preserveInstance + " /dev/sdf " + s[0].VolumeID + "  completed 100%\nrecord: " + filepath.Join(dir2, "preservation.json") + "\n"
	if r.stdout != want {
		t.Errorf("stdout\n%s\nwant\n%s", r.stdout, want)
	}
	c.fails(exitConflict, "already holds a preservation record", "snapshot", preserveInstance, "--record", dir2)
}

// TestSnapshotFailures: a snapshot still pending at --timeout is named,
// a denial names the action, a missing instance its id, and the record
// of what was done is kept in every case.
func TestSnapshotFailures(t *testing.T) {
	t.Parallel()
	c := newCLI(t, startPreserveEmulator(t, emulator.Options{SnapshotDelay: time.Hour}))
	dir := filepath.Join(t.TempDir(), "rec")
	r := c.fails(exitUnreadable, "2 snapshots not completed within 1s: snap-", "snapshot", preserveInstance, "--timeout", "1s", "--record", dir)
	rec := loadPreservation(t, dir)
	if rec.Outcome != "failed" || len(rec.Snapshots) != 2 || !strings.Contains(r.stderr, "the custody record, with every snapshot made so far, is in "+dir) {
		t.Fatalf("stderr %s\nrecord %+v", r.stderr, rec)
	}
	for _, s := range rec.Snapshots {
		if !strings.Contains(r.stderr, s.SnapshotID+" of "+s.VolumeID+" ("+preserveInstance+" "+s.Device+") is pending at 0%") {
			t.Errorf("stderr does not name %s:\n%s", s.SnapshotID, r.stderr)
		}
	}

	c.fails(exitNotFound, "ec2:DescribeInstances i-0fffffffffffffff0: not found: InvalidInstanceID.NotFound",
		"snapshot", "i-0fffffffffffffff0", "--record", filepath.Join(t.TempDir(), "rec"))

	denied := newCLI(t, startPreserveEmulator(t, emulator.Options{DenyEC2: []string{"CreateSnapshots"}}))
	dir = filepath.Join(t.TempDir(), "rec")
	r = denied.fails(exitDenied, "ec2:CreateSnapshots "+preserveInstance+": access denied (the caller needs ec2:CreateSnapshots): UnauthorizedOperation",
		"snapshot", preserveInstance, "--record", dir)
	if !strings.Contains(r.stderr, "hint: the caller needs ec2:CreateSnapshots") {
		t.Errorf("no hint:\n%s", r.stderr)
	}
	if last := loadPreservation(t, dir).Calls; last[len(last)-1].Outcome != report.OutcomeDenied {
		t.Errorf("the denial is not recorded: %+v", last[len(last)-1])
	}
}

// TestSnapshotLockShareCopy: the warning about a compliance lock comes
// before the lock; sharing under the AWS managed key is refused with the
// way out; with --copy --kms-key the copy is locked and shared.
func TestSnapshotLockShareCopy(t *testing.T) {
	t.Parallel()
	c := newCLI(t, startPreserveEmulator(t, emulator.Options{}))
	r := c.ok("snapshot", preserveInstance, "--device", "/dev/sdf", "--lock", "compliance", "--lock-duration", "1d", "--cool-off", "1h",
		"--record", filepath.Join(t.TempDir(), "rec"), "--quiet")
	if !strings.HasPrefix(r.stderr, "ebsimager: WARNING: a compliance lock cannot be undone: after the 1-hour cool-off period nobody, "+
		"not even the account's root user, can remove it or shorten it, and the snapshots cannot be deleted for 1 days, until it expires; they are billed until then\n") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if !strings.Contains(r.stdout, "completed 100%  locked compliance-cooloff until ") {
		t.Errorf("stdout:\n%s", r.stdout)
	}

	_, endpoint := emulatortest.StartInstance(t, emulator.Options{}, preserveInstance,
		emulator.VolumeSpec{Device: "/dev/xvda", Synthetic: &emulator.SyntheticSpec{VolumeGiB: 1, Fraction: 0.01, Seed: 1}, Encrypted: true})
	enc := newCLI(t, endpoint)
	dir := filepath.Join(t.TempDir(), "rec")
	r = enc.fails(exitInvalid, "OperationNotPermitted: Encrypted snapshots with EBS default key cannot be shared",
		"snapshot", preserveInstance, "--share-with", "210987654321", "--record", dir)
	if !strings.Contains(r.stderr, "hint: a snapshot encrypted under the AWS managed key (aws/ebs) cannot be shared: add --copy --kms-key KEY") ||
		len(loadPreservation(t, dir).Snapshots) != 1 {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	const key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	dir = filepath.Join(t.TempDir(), "rec")
	r = enc.ok("snapshot", preserveInstance, "--share-with", "210987654321", "--copy", "--kms-key", key, "--lock", "governance",
		"--lock-duration", "720h", "--record", dir, "--quiet")
	s := loadPreservation(t, dir).Snapshots[0]
	cp := s.Copies[0]
	if cp.KMSKeyID != key || cp.Lock == nil || cp.Lock.DurationDays != 30 || !slices.Equal(cp.Shares, []string{"210987654321"}) || s.Acquire != cp.SnapshotID {
		t.Errorf("copy %+v", s)
	}
	if want := "copy " + cp.SnapshotID + " in us-east-1 completed  locked governance until "; !strings.Contains(r.stdout, want) ||
		!strings.Contains(r.stdout, "  shared with 210987654321\n") {
		t.Errorf("stdout:\n%s\nwant %q", r.stdout, want)
	}
}

// startWaiting starts `snapshot` of an instance whose snapshots stay
// pending, recording in dir, and returns once it waits for them, with
// the rest of its standard error.
func startWaiting(t *testing.T, dir string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	c := newCLI(t, startPreserveEmulator(t, emulator.Options{SnapshotDelay: time.Hour}))
	cmd := c.command(t.Context(), "snapshot", preserveInstance, "--record", dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "snapshots: 0 of 2 completed") {
	}
	return cmd, lines
}

// TestSnapshotInterrupted: Ctrl-C while waiting ends at once (exit 130),
// keeps the record of the snapshots made, and says where it is.
func TestSnapshotInterrupted(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "rec")
	cmd, lines := startWaiting(t, dir)
	cmd.Process.Signal(os.Interrupt)
	var rest strings.Builder
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v\n%s", err, rest.String())
	}
	want := "ebsimager: interrupted; the custody record in " + dir + " lists every snapshot made before the interruption; running the same command again makes new snapshots\n"
	if !strings.HasSuffix(rest.String(), want) {
		t.Errorf("stderr:\n%s\nwant the end\n%s", rest.String(), want)
	}
	if rec := loadPreservation(t, dir); len(rec.Snapshots) != 2 || rec.Outcome != "failed" || rec.Error != "context canceled" {
		t.Errorf("record: %d snapshots, %s %q", len(rec.Snapshots), rec.Outcome, rec.Error)
	}
}

// TestSnapshotKilled: killed outright while waiting, the command still
// leaves the record of the snapshots it made (saved after every call).
func TestSnapshotKilled(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "rec")
	cmd, lines := startWaiting(t, dir)
	cmd.Process.Kill()
	for lines.Scan() {
	}
	cmd.Wait()
	rec := loadPreservation(t, dir)
	if rec.Outcome != "running" || len(rec.Snapshots) != 2 || rec.Snapshots[1].Device != "/dev/sdf" || rec.Calls[len(rec.Calls)-1].API != "ec2:DescribeSnapshots" {
		t.Errorf("record after a kill: %s, %d snapshots, %d calls", rec.Outcome, len(rec.Snapshots), len(rec.Calls))
	}
}
