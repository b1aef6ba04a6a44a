package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/preflight"
	"github.com/ebsimager/ebsimager/internal/preserve"
)

// The pre-flight through the binary: each snapshot the EBS direct APIs
// cannot read fails with its message, its hint and its exit code, and
// the emulator serves no GetSnapshotBlock and nothing is written.

const (
	snapPreKMS = "snap-0f0000000000000f1"
	preKey     = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
)

// unreadable runs args, which must fail with exit code and exactly the
// message and hint lines want, fetch no block from srv and leave no
// evidence in out.
func unreadable(t *testing.T, c *cli, srv *emulator.Server, out string, code int, want string, args ...string) {
	t.Helper()
	r := c.run(args...)
	if r.code != code || r.stderr != want {
		t.Fatalf("ebsimager %s: exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
	if n := srv.Counters().Total(emulator.OpGetSnapshotBlock); n != 0 {
		t.Fatalf("ebsimager %s: %d GetSnapshotBlock requests, want none", strings.Join(args, " "), n)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("ebsimager %s left %s", strings.Join(args, " "), out)
	}
}

func TestPreflightKMSDenied(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{
		SnapshotMeta: map[string]emulator.SnapshotMeta{snapPreKMS: {KMSKeyID: preKey}},
		Faults:       emulator.Faults{Deny: map[string]string{snapPreKMS: emulator.DenyDependencyAccessDenied}},
	}, snapPreKMS+"=1GiB,0.1,5")
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	unreadable(t, c, srv, ev, exitDenied,
		"ebsimager: snapshot "+snapPreKMS+" is encrypted, and the caller may not use KMS key "+preKey+" (kms:Decrypt denied: DEPENDENCY_ACCESS_DENIED)\n"+
			"ebsimager: hint: grant the caller kms:Decrypt (and kms:DescribeKey) on "+preKey+" in the key policy or a grant, "+
			"or have its owner copy the snapshot re-encrypted under a key the caller may use (ebsimager snapshot --copy --kms-key KEY)\n",
		"acquire", snapPreKMS, "--out", ev)
	if n := srv.Counters().Total(emulator.OpListSnapshotBlocks); n != 1 {
		t.Fatalf("%d List requests, want 1 (the pre-flight's)", n)
	}
	// Read live, the listing's refusal is explained the same way.
	unreadable(t, c, srv, ev, exitDenied,
		"ebsimager: snapshot "+snapPreKMS+" is encrypted, and the caller may not use KMS key "+preKey+" (kms:Decrypt denied: DEPENDENCY_ACCESS_DENIED)\n"+
			"ebsimager: hint: grant the caller kms:Decrypt (and kms:DescribeKey) on "+preKey+" in the key policy or a grant, "+
			"or have its owner copy the snapshot re-encrypted under a key the caller may use (ebsimager snapshot --copy --kms-key KEY)\n",
		"ls", snapPreKMS, "/")
}

func TestPreflightPending(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{})
	out, err := emulatortest.Client(t, endpoint).StartSnapshot(context.Background(), &ebsapi.StartSnapshotInput{VolumeSize: aws.Int64(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.SnapshotId)
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	unreadable(t, c, srv, ev, exitUnreadable,
		"ebsimager: snapshot "+id+" is still pending (0% done): the EBS direct APIs read only completed snapshots\n"+
			"ebsimager: hint: wait until it completes (aws ec2 wait snapshot-completed --snapshot-ids "+id+"), then run the same command again\n",
		"acquire", id, "--out", ev)
	if n := srv.Counters().Total(emulator.OpListSnapshotBlocks); n != 0 {
		t.Fatalf("%d List requests, want none", n)
	}
}

// TestPreflightRecorded: a readable snapshot is acquired with no extra
// request of the EBS direct APIs, EC2 DescribeSnapshots is asked once
// (by the pre-flight; the record keeps its answer), and the record lists
// the pre-flight's calls.
func TestPreflightRecorded(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	r := c.ok("acquire", snapA, "--out", ev, "--json")
	var sum acquireSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatal(err)
	}
	cnt := srv.Counters()
	if cnt.Total(emulator.OpGetSnapshotBlock) != sum.Blocks || cnt.Total(emulator.OpListSnapshotBlocks) != sum.Counts.ListCalls ||
		cnt.Total(emulator.OpDescribeSnapshots) != 1 {
		t.Fatalf("counters %s; want %d Gets, %d Lists, one DescribeSnapshots", cnt, sum.Blocks, sum.Counts.ListCalls)
	}
	var rec struct {
		Acquisition struct {
			AWS struct {
				Snapshot *struct{ State string }
				Calls    []struct{ API, Outcome string }
			}
		}
	}
	data, err := os.ReadFile(filepath.Join(ev, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, call := range rec.Acquisition.AWS.Calls {
		calls = append(calls, call.API+"/"+call.Outcome)
	}
	want := "sts:GetCallerIdentity/ok ec2:DescribeSnapshots/ok ec2:DescribeSnapshotAttribute/ok"
	if got := strings.Join(calls, " "); got != want || rec.Acquisition.AWS.Snapshot == nil || rec.Acquisition.AWS.Snapshot.State != "completed" {
		t.Fatalf("recorded calls %q, want %q; snapshot %+v", got, want, rec.Acquisition.AWS.Snapshot)
	}
}

// TestPreflightUnreadable: archived, public, Outposts local, pending and
// failed snapshots, each with its message and hint, exit 15, no Get; and
// the same reasons from the direct APIs' refusals when EC2 may not be
// asked.
func TestPreflightUnreadable(t *testing.T) {
	t.Parallel()
	const (
		archived = "snap-0f0000000000000a1"
		public   = "snap-0f0000000000000a2"
		outpost  = "snap-0f0000000000000a3"
		pending  = "snap-0f0000000000000a4"
		failed   = "snap-0f0000000000000a5"
		arn      = "arn:aws:outposts:us-east-1:111122223333:outpost/op-0123456789abcdef0"
	)
	meta := map[string]emulator.SnapshotMeta{
		archived: {StorageTier: "archive"},
		public:   {Public: true},
		outpost:  {OutpostARN: arn},
		pending:  {State: "pending"},
		failed:   {State: "error"},
	}
	var specs []string
	for id := range meta {
		specs = append(specs, id+"=1GiB,0.1,6")
	}
	srv, endpoint := startEmulator(t, emulator.Options{SnapshotMeta: meta}, specs...)
	denied, deniedEndpoint := startEmulator(t, emulator.Options{SnapshotMeta: meta, DenyDescribeSnapshots: true}, specs...)
	const (
		restore = "ebsimager: hint: restore it first: aws ec2 restore-snapshot-tier --snapshot-id %[1]s --temporary-restore-days 7 (or --permanent-restore); " +
			"a restore takes up to 72 hours, and aws ec2 describe-snapshot-tier-status shows it; then run the same command again\n"
		copyIn   = "ebsimager: hint: copy it into your account first (aws ec2 copy-snapshot --source-region us-east-1 --source-snapshot-id %[1]s), then acquire the copy\n"
		copyOut  = "ebsimager: hint: copy it to the Region first (aws ec2 copy-snapshot --source-region us-east-1 --source-snapshot-id %[1]s, with no --destination-outpost-arn), then acquire the copy\n"
		wait     = "ebsimager: hint: wait until it completes (aws ec2 wait snapshot-completed --snapshot-ids %[1]s), then run the same command again\n"
		retake   = "ebsimager: hint: a snapshot that failed never completes: take a new snapshot of the volume (ebsimager snapshot vol-…) and acquire that\n"
		archMsg  = "ebsimager: snapshot %[1]s is in the archive storage tier: the EBS direct APIs cannot read an archived snapshot\n"
		pubMsg   = "ebsimager: snapshot %[1]s is public: the EBS direct APIs do not read public snapshots\n"
		errMsg   = "ebsimager: snapshot %[1]s is in state error, not completed: the EBS direct APIs read only completed snapshots\n"
		outMsg   = "ebsimager: snapshot %[1]s is a local snapshot on AWS Outposts%[2]s: the EBS direct APIs do not read Outposts local snapshots\n"
		pendMsg  = "ebsimager: snapshot %[1]s is still pending%[2]s: the EBS direct APIs read only completed snapshots\n"
		outWhere = " (" + arn + ")"
	)
	for _, tc := range []struct {
		id, checked, refused string
	}{
		{archived, fmt.Sprintf(archMsg+restore, archived), ""},
		{public, fmt.Sprintf(pubMsg+copyIn, public), ""},
		{outpost, fmt.Sprintf(outMsg+copyOut, outpost, outWhere), fmt.Sprintf(outMsg+copyOut, outpost, "")},
		{pending, fmt.Sprintf(pendMsg+wait, pending, " (0% done)"), fmt.Sprintf(pendMsg+wait, pending, "")},
		{failed, fmt.Sprintf(errMsg+retake, failed), ""},
	} {
		ev := filepath.Join(t.TempDir(), "ev")
		unreadable(t, newCLI(t, endpoint), srv, ev, exitUnreadable, tc.checked, "acquire", tc.id, "--out", ev)
		if tc.refused == "" {
			tc.refused = tc.checked
		}
		unreadable(t, newCLI(t, deniedEndpoint), denied, ev, exitUnreadable, tc.refused, "acquire", tc.id, "--out", ev)
		img := filepath.Join(t.TempDir(), "img.raw")
		unreadable(t, newCLI(t, endpoint), srv, img, exitUnreadable, tc.checked, "acquire", tc.id, "--image", img)
	}
	// The pre-flight stopped every acquisition before its listing: the
	// only List requests are those of the runs with EC2 denied.
	if n := srv.Counters().Total(emulator.OpListSnapshotBlocks); n != 0 {
		t.Fatalf("%d List requests with EC2 answering, want none", n)
	}
	if n := denied.Counters().Total(emulator.OpListSnapshotBlocks); n != int64(len(meta)) {
		t.Fatalf("%d List requests with EC2 denied, want %d (one refused each)", n, len(meta))
	}
	// Read live or budgeted, a refused listing is explained by asking EC2
	// then.
	none := filepath.Join(t.TempDir(), "none")
	unreadable(t, newCLI(t, endpoint), srv, none, exitUnreadable, fmt.Sprintf(archMsg+restore, archived), "budget", archived)
	unreadable(t, newCLI(t, endpoint), srv, none, exitUnreadable, fmt.Sprintf(outMsg+copyOut, outpost, outWhere), "ls", outpost, "/")
	unreadable(t, newCLI(t, endpoint), srv, none, exitUnreadable, fmt.Sprintf(pendMsg+wait, pending, " (0% done)"), "cat", pending, "/etc/hostname")
}

// TestExitUnreadable: the pre-flight's errors, and the snapshot
// command's snapshot still pending at --timeout or failed, are exit 15;
// a KMS key the caller may not use is exit 5. (The binary cannot reach
// the --timeout through the emulator yet: it does not tag.)
func TestExitUnreadable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		err  error
		want int
	}{
		{&preflight.Error{Snapshot: snapA, Reason: preflight.Archived}, exitUnreadable},
		{fmt.Errorf("acquiring: %w", &preflight.Error{Snapshot: snapA, Reason: preflight.Pending}), exitUnreadable},
		{&preflight.Error{Snapshot: snapA, Reason: preflight.KMSDenied}, exitDenied},
		{fmt.Errorf("waiting: %w", &preserve.NotCompletedError{Timeout: time.Second}), exitUnreadable},
		{&preserve.StateError{Snapshot: preserve.Snapshot{SnapshotID: snapA, State: "error"}}, exitUnreadable},
	} {
		if got := exitCode(ctx, tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
