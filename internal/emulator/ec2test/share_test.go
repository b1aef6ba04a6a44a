package ec2test

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

const forensic = "444455556666"

// snapshotOf makes one snapshot of a volume and returns its id.
func snapshotOf(t *testing.T, c *ec2.Client, vol string) string {
	t.Helper()
	out, err := c.CreateSnapshot(context.Background(), &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.SnapshotId)
}

func permissions(t *testing.T, c *ec2.Client, id string) []string {
	t.Helper()
	out, err := c.DescribeSnapshotAttribute(context.Background(), &ec2.DescribeSnapshotAttributeInput{
		SnapshotId: aws.String(id), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil {
		t.Fatal(err)
	}
	var l []string
	for _, p := range out.CreateVolumePermissions {
		l = append(l, string(p.Group)+aws.ToString(p.UserId))
	}
	return l
}

// TestShareAndCopy shares a plain snapshot, fails to share one under the
// AWS managed key, copies it under a customer managed key into another
// region, and shares the copy.
func TestShareAndCopy(t *testing.T) {
	root, data := twoDisks(t)
	const cmk = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	s, ep := emulatortest.StartInstance(t, emulator.Options{}, inst,
		emulatortest.RawVolume("/dev/xvda", root),
		emulator.VolumeSpec{Device: "/dev/xvdb", RawPath: data, Encrypted: true})
	volA, volB := emulator.VolumeID(inst, "/dev/xvda"), emulator.VolumeID(inst, "/dev/xvdb")
	ctx := context.Background()
	c := ec2Client(ep, "")
	plain, managed := snapshotOf(t, c, volA), snapshotOf(t, c, volB)

	// The encrypted volume's snapshot is under the AWS managed key.
	d, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{managed}})
	if err != nil {
		t.Fatal(err)
	}
	awsKey := emulator.AWSManagedKeyARN("us-east-1", "111122223333")
	if sn := d.Snapshots[0]; !aws.ToBool(sn.Encrypted) || aws.ToString(sn.KmsKeyId) != awsKey || !strings.HasPrefix(awsKey, "arn:aws:kms:us-east-1:111122223333:key/") {
		t.Fatalf("managed: %+v", sn)
	}

	_, err = c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(plain),
		Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission, OperationType: ec2types.OperationTypeAdd, UserIds: []string{forensic}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(plain),
		CreateVolumePermission: &ec2types.CreateVolumePermissionModifications{Add: []ec2types.CreateVolumePermission{{UserId: aws.String("777788889999")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := permissions(t, c, plain); !slices.Equal(got, []string{forensic, "777788889999"}) {
		t.Fatalf("shared with %v", got)
	}
	_, err = c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(plain),
		CreateVolumePermission: &ec2types.CreateVolumePermissionModifications{Remove: []ec2types.CreateVolumePermission{{UserId: aws.String("777788889999")}}}})
	if err != nil || !slices.Equal(permissions(t, c, plain), []string{forensic}) {
		t.Fatalf("remove: %v %v", err, permissions(t, c, plain))
	}
	// Public, then private again: the EBS direct APIs follow.
	eb := emulatortest.Client(t, ep)
	for _, op := range []ec2types.OperationType{ec2types.OperationTypeAdd, ec2types.OperationTypeRemove} {
		_, err := c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(plain),
			Attribute: "createVolumePermission", OperationType: op, GroupNames: []string{"all"}})
		if err != nil {
			t.Fatal(err)
		}
		typ, _ := ebsReason(listErr(eb, plain))
		if got := permissions(t, c, plain); op == ec2types.OperationTypeAdd && (!slices.Equal(got, []string{"all", forensic}) || typ != "ValidationException") ||
			op == ec2types.OperationTypeRemove && (!slices.Equal(got, []string{forensic}) || typ != "") {
			t.Fatalf("%s all: %v, list %s", op, got, typ)
		}
	}

	// The AWS managed key: EC2 refuses to share.
	_, err = c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(managed),
		Attribute: "createVolumePermission", OperationType: ec2types.OperationTypeAdd, UserIds: []string{forensic}})
	if code, msg := apiError(t, err); code != "OperationNotPermitted" || msg != "Encrypted snapshots with EBS default key cannot be shared" || httpStatus(err) != http.StatusBadRequest {
		t.Fatalf("sharing under the managed key: %s %q", code, msg)
	}
	if got := permissions(t, c, managed); len(got) != 0 {
		t.Fatalf("managed shared with %v", got)
	}

	// Copy under a customer managed key into us-west-2.
	west := ec2Client(ep, "us-west-2")
	cp, err := west.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(managed), SourceRegion: aws.String("us-east-1"),
		Encrypted: aws.Bool(true), KmsKeyId: aws.String(cmk),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: []ec2types.Tag{{Key: aws.String("case"), Value: aws.String("7")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	copyID := aws.ToString(cp.SnapshotId)
	if !maps.Equal(tagMap(cp.Tags), map[string]string{"case": "7"}) || copyID == managed {
		t.Fatalf("copy: %+v", cp)
	}
	d, err = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{copyID}})
	if err != nil {
		t.Fatal(err)
	}
	if sn := d.Snapshots[0]; aws.ToString(sn.KmsKeyId) != cmk || !aws.ToBool(sn.Encrypted) || aws.ToString(sn.VolumeId) != "vol-ffffffff" ||
		aws.ToString(sn.Description) != "[Copied "+managed+" from us-east-1]" || aws.ToInt32(sn.VolumeSize) != 3 || sn.State != ec2types.SnapshotStateCompleted {
		t.Fatalf("copy described: %+v", sn)
	}
	if got, want := readAll(t, eb, copyID), readAll(t, eb, managed); !sameBlocks(got, want) || len(got) != 2 {
		t.Fatalf("copy blocks differ: %d vs %d", len(got), len(want))
	}
	if got := s.SnapshotRegion(copyID); got != "us-west-2" {
		t.Fatalf("copy region %q", got)
	}
	if _, err := c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(copyID),
		Attribute: "createVolumePermission", OperationType: ec2types.OperationTypeAdd, UserIds: []string{forensic}}); err != nil {
		t.Fatalf("sharing the copy: %v", err)
	}
	// Encrypted snapshots cannot be public.
	_, err = c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(copyID),
		Attribute: "createVolumePermission", OperationType: ec2types.OperationTypeAdd, GroupNames: []string{"all"}})
	if code, _ := apiError(t, err); code != "OperationNotPermitted" {
		t.Fatalf("public encrypted: %v", err)
	}
	for _, tc := range []struct {
		in        ec2.CopySnapshotInput
		code, msg string
	}{
		{ec2.CopySnapshotInput{SourceSnapshotId: aws.String(plain), SourceRegion: aws.String("us-east-1"), KmsKeyId: aws.String(cmk)},
			"InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set."},
		{ec2.CopySnapshotInput{SourceSnapshotId: aws.String("snap-0123456789abcdef0"), SourceRegion: aws.String("us-east-1")},
			"InvalidSnapshot.NotFound", "The snapshot 'snap-0123456789abcdef0' does not exist."},
	} {
		_, err := c.CopySnapshot(ctx, &tc.in)
		if code, msg := apiError(t, err); code != tc.code || msg != tc.msg {
			t.Errorf("%s %q, want %s %q", code, msg, tc.code, tc.msg)
		}
	}
	ctr := s.Counters()
	if ctr.Count(emulator.OpModifySnapshotAttribute, emulator.OutcomeOK) != 6 || ctr.Count(emulator.OpModifySnapshotAttribute, "OperationNotPermitted") != 2 ||
		ctr.Count(emulator.OpCopySnapshot, emulator.OutcomeOK) != 1 || ctr.Total(emulator.OpCopySnapshot) != 3 {
		t.Errorf("counters:\n%s", ctr)
	}
}

// TestCopyPending: EC2 copies only completed snapshots.
func TestCopyPending(t *testing.T) {
	root, _ := twoDisks(t)
	_, ep := emulatortest.StartInstance(t, emulator.Options{SnapshotDelay: time.Hour}, inst, emulatortest.RawVolume("/dev/xvda", root))
	c := ec2Client(ep, "")
	id := snapshotOf(t, c, emulator.VolumeID(inst, "/dev/xvda"))
	_, err := c.CopySnapshot(context.Background(), &ec2.CopySnapshotInput{SourceSnapshotId: aws.String(id), SourceRegion: aws.String("us-east-1")})
	if code, msg := apiError(t, err); code != "IncorrectState" || msg != "Snapshot is in invalid state - pending" {
		t.Fatalf("copying a pending snapshot: %s %q", code, msg)
	}
}
