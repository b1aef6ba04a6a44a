package ec2test

import (
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

const outpost = "arn:aws:outposts:us-east-1:111122223333:outpost/op-0123456789abcdef0"

// TestPreflightStates serves one snapshot in each state the EBS direct
// APIs refuse, and checks what DescribeSnapshots and
// DescribeSnapshotAttribute report and what the direct APIs answer.
func TestPreflightStates(t *testing.T) {
	m := map[string]emulator.SnapshotMeta{}
	for _, spec := range []string{
		"snap-0b:state=pending", "snap-0c:storage-tier=archive", "snap-0d:public=true",
		"snap-0e:outpost-arn=" + outpost, "snap-0f:state=error",
	} {
		if err := emulator.ParseSnapshotMeta(spec, m); err != nil {
			t.Fatal(err)
		}
	}
	s, ep := emulatortest.Start(t, emulator.Options{SnapshotMeta: m})
	for _, id := range []string{"snap-0a", "snap-0b", "snap-0c", "snap-0d", "snap-0e", "snap-0f"} {
		if err := s.AddSynthetic(id + "=1GiB,0.01"); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	c := ec2Client(ep, "")
	out, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		state, progress, tier, outpost string
	}
	want := map[string]view{
		"snap-0a": {"completed", "100%", "standard", ""},
		"snap-0b": {"pending", "0%", "standard", ""},
		"snap-0c": {"completed", "100%", "archive", ""},
		"snap-0d": {"completed", "100%", "standard", ""},
		"snap-0e": {"completed", "100%", "standard", outpost},
		"snap-0f": {"error", "0%", "standard", ""},
	}
	if len(out.Snapshots) != len(want) {
		t.Fatalf("%d snapshots, want %d", len(out.Snapshots), len(want))
	}
	for _, sn := range out.Snapshots {
		got := view{string(sn.State), aws.ToString(sn.Progress), string(sn.StorageTier), aws.ToString(sn.OutpostArn)}
		if got != want[aws.ToString(sn.SnapshotId)] {
			t.Errorf("%s: %+v, want %+v", aws.ToString(sn.SnapshotId), got, want[aws.ToString(sn.SnapshotId)])
		}
	}
	// The storage-tier filter sees the archived one.
	arch, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []ec2types.Filter{{Name: aws.String("storage-tier"), Values: []string{"archive"}}}})
	if err != nil || len(arch.Snapshots) != 1 || aws.ToString(arch.Snapshots[0].SnapshotId) != "snap-0c" {
		t.Fatalf("storage-tier filter: %+v %v", arch, err)
	}

	// createVolumePermission: the group all for the public one only.
	for id, public := range map[string]bool{"snap-0a": false, "snap-0d": true} {
		attr, err := c.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{
			SnapshotId: aws.String(id), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(attr.SnapshotId) != id || attr.ProductCodes != nil {
			t.Errorf("%s attribute: %+v", id, attr)
		}
		if public {
			if len(attr.CreateVolumePermissions) != 1 || attr.CreateVolumePermissions[0].Group != ec2types.PermissionGroupAll ||
				attr.CreateVolumePermissions[0].UserId != nil {
				t.Errorf("%s permissions: %+v", id, attr.CreateVolumePermissions)
			}
		} else if len(attr.CreateVolumePermissions) != 0 {
			t.Errorf("%s permissions: %+v", id, attr.CreateVolumePermissions)
		}
	}
	pc, err := c.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{
		SnapshotId: aws.String("snap-0d"), Attribute: ec2types.SnapshotAttributeNameProductCodes})
	if err != nil || len(pc.ProductCodes) != 0 || len(pc.CreateVolumePermissions) != 0 || aws.ToString(pc.SnapshotId) != "snap-0d" {
		t.Fatalf("productCodes: %+v %v", pc, err)
	}
	for _, tc := range []struct {
		in         ec2.DescribeSnapshotAttributeInput
		code, msg  string
		httpStatus int
	}{
		{ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String("snap-09"), Attribute: "createVolumePermission"},
			"InvalidSnapshot.NotFound", "The snapshot 'snap-09' does not exist.", 400},
		{ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String("vol-09"), Attribute: "createVolumePermission"},
			"InvalidSnapshotID.Malformed", `Invalid id: "vol-09" (expecting "snap-...")`, 400},
		{ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String("snap-0a"), Attribute: "colour"},
			"InvalidParameterValue", "Value (colour) for parameter Attribute is invalid. Unknown attribute.", 400},
		{ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String("snap-0a"), Attribute: "productCodes", DryRun: aws.Bool(true)},
			"DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412},
	} {
		_, err := c.DescribeSnapshotAttribute(ctx, &tc.in)
		if code, msg := apiError(t, err); code != tc.code || msg != tc.msg || httpStatus(err) != tc.httpStatus {
			t.Errorf("%+v: %s %q (%d), want %s %q (%d)", tc.in, code, msg, httpStatus(err), tc.code, tc.msg, tc.httpStatus)
		}
	}

	// The EBS direct APIs: the completed standard private one reads; the
	// others are refused before any block.
	eb := emulatortest.Client(t, ep)
	if err := listErr(eb, "snap-0a"); err != nil {
		t.Fatalf("snap-0a: %v", err)
	}
	for id, msg := range map[string]string{
		"snap-0b": "The snapshot 'snap-0b' is not completed; only completed snapshots can be read.",
		"snap-0c": "The snapshot 'snap-0c' is archived; restore it to the standard tier before reading it.",
		"snap-0d": "The snapshot 'snap-0d' is public; public snapshots are not supported.",
		"snap-0e": "The snapshot 'snap-0e' is a local snapshot on an Outpost; those are not supported.",
		"snap-0f": "The snapshot 'snap-0f' is in the error state; only completed snapshots can be read.",
	} {
		for name, call := range map[string]func() error{
			"ListSnapshotBlocks": func() error { return listErr(eb, id) },
			"ListChangedBlocks": func() error {
				_, err := eb.ListChangedBlocks(ctx, &ebs.ListChangedBlocksInput{SecondSnapshotId: aws.String(id)})
				return err
			},
			"GetSnapshotBlock": func() error {
				_, err := eb.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(id), BlockIndex: aws.Int32(0), BlockToken: aws.String("x")})
				return err
			},
		} {
			err := call()
			typ, reason := ebsReason(err)
			code, got := apiError(t, err)
			if typ != "ValidationException" || reason != "INVALID_SNAPSHOT_ID" || code != typ || got != msg || httpStatus(err) != http.StatusBadRequest {
				t.Errorf("%s %s: %s/%s %q (%d), want ValidationException/INVALID_SNAPSHOT_ID %q", name, id, typ, reason, got, httpStatus(err), msg)
			}
		}
	}
	ctr := s.Counters()
	if n := ctr.Count(emulator.OpDescribeSnapshotAttribute, emulator.OutcomeOK); n != 3 {
		t.Errorf("DescribeSnapshotAttribute ok %d, want 3\n%s", n, ctr)
	}
	if n := ctr.Count(emulator.OpListSnapshotBlocks, "ValidationException/INVALID_SNAPSHOT_ID"); n != 5 {
		t.Errorf("ListSnapshotBlocks refused %d, want 5\n%s", n, ctr)
	}
}
