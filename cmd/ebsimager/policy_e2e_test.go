package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/iampolicy"
	"github.com/ebsimager/ebsimager/internal/preserve"
)

// TestPolicyAllowsEveryCall preserves an instance and a volume on the
// emulator (snapshot, tag, share, copy under a key, lock), acquires the
// copies, snapshots the volume again and diffs the two snapshots of it,
// acquires the instance as a case (preserving it again) and with
// --use-latest, then checks every request the client made against the policy that
// `policy --snapshot --share --copy --acquire` prints for those flags,
// both ways: each request must be allowed, and the policy must allow no
// action that nothing called (but the KMS ones, which EBS calls, not
// ebsimager; the emulator serves no KMS).
func TestPolicyAllowsEveryCall(t *testing.T) {
	t.Parallel()
	const (
		inst     = "i-0a0000000000000a1"
		vol      = "vol-0b0000000000000b2"
		region   = "us-east-1" // the CLI's AWS_REGION
		forensic = "555566667777"
		key      = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	)
	srv, endpoint := emulatortest.StartInstance(t, emulator.Options{}, inst,
		emulatortest.SyntheticVolume("/dev/xvda", 1, 0.02, 11), emulatortest.SyntheticVolume("/dev/sdf", 1, 0.02, 12))
	loose := emulatortest.SyntheticVolume("", 1, 0.02, 13)
	loose.ID = vol
	if err := srv.AddVolume(loose); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	dir := t.TempDir()

	r := c.ok("snapshot", inst, vol, "--share-with", forensic, "--copy", "--kms-key", key,
		"--lock", "governance", "--lock-duration", "1d", "--json", "--quiet", "--record", filepath.Join(dir, "preservation"))
	made := preserved(t, r.stdout)
	if len(made) != 3 {
		t.Fatalf("snapshot: %d snapshots, want 3:\n%s", len(made), r.stdout)
	}
	var first string // the first snapshot of vol
	for _, s := range made {
		c.ok("acquire", s.Acquire, "--out", filepath.Join(dir, s.Acquire), "--quiet")
		if s.VolumeID == vol {
			first = s.SnapshotID
		}
	}
	again := preserved(t, c.ok("snapshot", vol, "--json", "--quiet", "--record", filepath.Join(dir, "again")).stdout)
	if len(again) != 1 || first == "" {
		t.Fatalf("snapshot %s again: %+v; first %q", vol, again, first)
	}
	c.ok("diff", first, again[0].SnapshotID)
	// acquire of an instance: its preservation and acquisition in one
	// command, then the newest completed snapshot of each volume.
	c.ok("acquire", inst, "--share-with", forensic, "--lock", "governance", "--lock-duration", "1d",
		"--out", filepath.Join(dir, "case"), "--quiet")
	c.ok("acquire", inst, "--use-latest", "--out", filepath.Join(dir, "latest"), "--quiet")

	flags := []string{"policy", "--quiet", "--snapshot", "--share", "--copy", "--acquire",
		"--region", region, "--kms-key", key, "--share-with", forensic}
	var p iampolicy.Policy
	if err := json.Unmarshal([]byte(c.ok(flags...).stdout), &p); err != nil {
		t.Fatal(err)
	}
	counted := srv.Counters()
	t.Logf("requests by operation and outcome: %v", counted.Requests)
	called := map[string]bool{}
	for op, outcomes := range counted.Requests {
		var n int64
		for _, v := range outcomes {
			n += v
		}
		if n == 0 {
			continue
		}
		reqs, ok := iamRequests(op, region, forensic)
		if !ok {
			t.Errorf("%s (%d requests): no IAM action is known for it", op, n)
			continue
		}
		for _, rq := range reqs {
			called[rq.Action] = true
			if !p.Allows(rq) {
				t.Errorf("%s (%d requests): the policy does not allow %s on %s with %v", op, n, rq.Action, rq.Resource, rq.Context)
			}
		}
	}
	for _, st := range p.Statement {
		for _, a := range st.Action {
			if !called[a] && !strings.HasPrefix(a, "kms:") {
				t.Errorf("%s allows %s, which nothing called", st.Sid, a)
			}
		}
	}
	for _, a := range []string{"ec2:CreateSnapshots", "ec2:CreateSnapshot", "ec2:CopySnapshot", "ec2:ModifySnapshotAttribute",
		"ebs:GetSnapshotBlock", "ebs:ListChangedBlocks"} {
		if !called[a] {
			t.Errorf("the run made no %s call to check", a)
		}
	}
}

// preserved reads the snapshots that snapshot --json lists.
func preserved(t *testing.T, out string) []preserve.Snapshot {
	t.Helper()
	var res struct {
		Snapshots []preserve.Snapshot `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("snapshot --json: %v\n%s", err, out)
	}
	return res.Snapshots
}

// iamRequests is what IAM authorizes for one request the emulator counted
// under op: the action on each resource the call names, with the
// condition keys the call carries. A snapshot's id is left out of its ARN:
// the policy's patterns do not name ids. ok is false for an operation no
// IAM action is known for.
func iamRequests(op, region, shareWith string) (reqs []iampolicy.Request, ok bool) {
	arn := func(kind string) string {
		if kind == "snapshot" {
			return fmt.Sprintf("arn:aws:ec2:%s::snapshot/snap-0123456789abcdef0", region)
		}
		return fmt.Sprintf("arn:aws:ec2:%s:111122223333:%s/%s-0123456789abcdef0", region, kind, map[string]string{"instance": "i", "volume": "vol"}[kind])
	}
	inRegion := map[string][]string{"aws:RequestedRegion": {region}}
	req := func(action, resource string, ctx map[string][]string) iampolicy.Request {
		return iampolicy.Request{Action: action, Resource: resource, Context: ctx}
	}
	// Tags in the request that creates a resource are authorized as
	// ec2:CreateTags with ec2:CreateAction: ebsimager tags every
	// snapshot it makes.
	tagOnCreate := func(action string) iampolicy.Request {
		return req("ec2:CreateTags", arn("snapshot"), map[string][]string{"ec2:CreateAction": {action}})
	}
	switch op {
	case emulator.OpListSnapshotBlocks, emulator.OpGetSnapshotBlock, emulator.OpListChangedBlocks:
		return []iampolicy.Request{req("ebs:"+op, arn("snapshot"), nil)}, true
	case emulator.OpGetCallerIdentity:
		return nil, true // sts:GetCallerIdentity needs no permission
	case emulator.OpDescribeSnapshots, emulator.OpDescribeInstances, emulator.OpDescribeVolumes, emulator.OpDescribeLockedSnapshots:
		return []iampolicy.Request{req("ec2:"+op, "*", inRegion)}, true
	case emulator.OpCreateSnapshots:
		return []iampolicy.Request{req("ec2:CreateSnapshots", arn("instance"), nil), req("ec2:CreateSnapshots", arn("volume"), nil),
			req("ec2:CreateSnapshots", arn("snapshot"), nil), tagOnCreate("CreateSnapshots")}, true
	case emulator.OpCreateSnapshot:
		return []iampolicy.Request{req("ec2:CreateSnapshot", arn("volume"), nil), req("ec2:CreateSnapshot", arn("snapshot"), nil),
			tagOnCreate("CreateSnapshot")}, true
	case emulator.OpCopySnapshot:
		return []iampolicy.Request{req("ec2:CopySnapshot", arn("snapshot"), nil), tagOnCreate("CopySnapshot")}, true
	case emulator.OpCreateTags:
		// A CreateTags call on its own: the device and volume of each
		// snapshot of an instance's set.
		keys := []string{preserve.TagPrefix + "device", preserve.TagPrefix + "volume"}
		return []iampolicy.Request{req("ec2:CreateTags", arn("snapshot"), map[string][]string{"aws:TagKeys": keys})}, true
	case emulator.OpModifySnapshotAttribute:
		return []iampolicy.Request{req("ec2:ModifySnapshotAttribute", arn("snapshot"), map[string][]string{"ec2:Add/userId": {shareWith}})}, true
	case emulator.OpDescribeSnapshotAttribute, emulator.OpLockSnapshot, emulator.OpDeleteSnapshot:
		return []iampolicy.Request{req("ec2:"+op, arn("snapshot"), nil)}, true
	}
	return nil, false
}
