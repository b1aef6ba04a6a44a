package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/iampolicy"
	"github.com/ebsimager/ebsimager/internal/preserve"
)

// TestPolicyAllowsEveryCall preserves an instance on the emulator (snapshot,
// tag, share, copy under a key, lock), acquires the copies, and checks
// every request the client made against the policy that
// `policy --snapshot --share --copy --acquire` prints for those flags: each
// one must be allowed, and the policy must allow no action that nothing
// called (but for the KMS calls, which EBS makes, and the calls of the
// steps this run does not take).
func TestPolicyAllowsEveryCall(t *testing.T) {
	t.Parallel()
	const (
		inst     = "i-0a0000000000000a1"
		region   = "us-east-1" // the CLI's AWS_REGION
		forensic = "555566667777"
		key      = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	)
	srv, endpoint := emulatortest.StartInstance(t, emulator.Options{}, inst,
		emulatortest.SyntheticVolume("/dev/xvda", 1, 0.02, 11), emulatortest.SyntheticVolume("/dev/sdf", 1, 0.02, 12))
	c := newCLI(t, endpoint)
	dir := t.TempDir()

	r := c.ok("snapshot", inst, "--share-with", forensic, "--copy", "--kms-key", key,
		"--lock", "governance", "--lock-duration", "1d", "--json", "--quiet", "--record", filepath.Join(dir, "preservation"))
	ids := acquireIDs(t, r.stdout)
	if len(ids) != 2 {
		t.Fatalf("snapshot: %d snapshots to acquire, want 2:\n%s", len(ids), r.stdout)
	}
	for _, id := range ids {
		c.ok("acquire", id, "--out", filepath.Join(dir, id), "--quiet")
	}

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
	// Calls this run does not make: CreateSnapshot (a volume target),
	// ListChangedBlocks (--base, diff); KMS is called by EBS, not by
	// ebsimager, and the emulator serves no KMS.
	notRun := []string{"ec2:CreateSnapshot", "ebs:ListChangedBlocks"}
	for _, st := range p.Statement {
		for _, a := range st.Action {
			if !called[a] && !slices.Contains(notRun, a) && !strings.HasPrefix(a, "kms:") {
				t.Errorf("%s allows %s, which nothing called", st.Sid, a)
			}
		}
	}
	if !called["ec2:CreateSnapshots"] || !called["ebs:GetSnapshotBlock"] || !called["ec2:ModifySnapshotAttribute"] {
		t.Fatalf("the run made too few calls to check anything: %v", called)
	}
}

// acquireIDs reads the snapshots to acquire from snapshot --json.
func acquireIDs(t *testing.T, out string) []string {
	t.Helper()
	var res struct {
		Snapshots []struct {
			Acquire string `json:"acquire"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("snapshot --json: %v\n%s", err, out)
	}
	var ids []string
	for _, s := range res.Snapshots {
		ids = append(ids, s.Acquire)
	}
	return ids
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
