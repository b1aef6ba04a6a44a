package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
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
