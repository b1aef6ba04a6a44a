package ec2test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

func TestCreateTags(t *testing.T) {
	root, _ := twoDisks(t)
	_, ep := emulatortest.StartInstance(t, emulator.Options{}, inst,
		emulator.VolumeSpec{Device: "/dev/xvda", RawPath: root, Tags: []emulator.Tag{{Key: "Name", Value: "web-root"}}})
	vol := emulator.VolumeID(inst, "/dev/xvda")
	ctx := context.Background()
	c := ec2Client(ep, "")
	snap := snapshotOf(t, c, vol)
	tags := []ec2types.Tag{{Key: aws.String("case"), Value: aws.String("2024-017")}, {Key: aws.String("Name"), Value: aws.String("evidence")}}
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{snap, vol, inst}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"case": "2024-017", "Name": "evidence"}
	d, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
	if err != nil || !maps.Equal(tagMap(d.Snapshots[0].Tags), want) {
		t.Fatalf("snapshot tags: %+v %v", d, err)
	}
	v, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{vol}})
	if err != nil || !maps.Equal(tagMap(v.Volumes[0].Tags), want) {
		t.Fatalf("volume tags: %+v %v", v, err)
	}
	in, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:case"), Values: []string{"2024-*"}}}})
	if err != nil || len(in.Reservations) != 1 || !maps.Equal(tagMap(in.Reservations[0].Instances[0].Tags), want) {
		t.Fatalf("instance tags: %+v %v", in, err)
	}
	// CopyTagsFromSource copies the volume's tags, under the given ones.
	cs, err := c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String(inst)},
		CopyTagsFromSource: ec2types.CopyTagsFromSourceVolume,
		TagSpecifications:  []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: []ec2types.Tag{{Key: aws.String("case"), Value: aws.String("8")}}}}})
	if err != nil || !maps.Equal(tagMap(cs.Snapshots[0].Tags), map[string]string{"case": "8", "Name": "evidence"}) {
		t.Fatalf("copied tags: %+v %v", cs, err)
	}
	for _, tc := range []struct {
		ids       []string
		code, msg string
	}{
		{[]string{snap, "snap-0123456789abcdef0"}, "InvalidSnapshot.NotFound", "The snapshot 'snap-0123456789abcdef0' does not exist."},
		{[]string{"vol-0123456789abcdef0"}, "InvalidVolume.NotFound", "The volume 'vol-0123456789abcdef0' does not exist"},
		{[]string{"i-0123456789abcdef1"}, "InvalidInstanceID.NotFound", "The instance ID 'i-0123456789abcdef1' does not exist"},
		{[]string{"ami-0123"}, "InvalidID", "The ID 'ami-0123' is not valid"},
	} {
		_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: tc.ids, Tags: tags})
		if code, msg := apiError(t, err); code != tc.code || msg != tc.msg {
			t.Errorf("%v: %s %q, want %s %q", tc.ids, code, msg, tc.code, tc.msg)
		}
	}
	// Nothing was tagged by the failed call naming snap and a missing one.
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{snap, "vol-0123456789abcdef0"}, Tags: []ec2types.Tag{{Key: aws.String("x"), Value: aws.String("y")}}})
	if err == nil {
		t.Fatal("tagged a missing volume")
	}
	d, _ = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
	if _, ok := tagMap(d.Snapshots[0].Tags)["x"]; ok {
		t.Fatal("a failed CreateTags tagged the snapshot")
	}
}

// TestDenyEC2 refuses chosen actions, DryRun included, and counts every
// action a client made, unknown ones as Unknown.
func TestDenyEC2(t *testing.T) {
	root, _ := twoDisks(t)
	o := emulator.Options{DenyEC2: []string{emulator.OpCreateSnapshots, emulator.OpLockSnapshot}}
	s, ep := emulatortest.StartInstance(t, o, inst, emulatortest.RawVolume("/dev/xvda", root))
	ctx := context.Background()
	c := ec2Client(ep, "")
	spec := &ec2types.InstanceSpecification{InstanceId: aws.String(inst)}
	for _, dry := range []bool{false, true} {
		_, err := c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: spec, DryRun: aws.Bool(dry)})
		code, msg := apiError(t, err)
		if code != "UnauthorizedOperation" || httpStatus(err) != http.StatusForbidden || msg != "You are not authorized to perform this operation. "+
			"User: arn:aws:iam::111122223333:user/emulator is not authorized to perform: ec2:CreateSnapshots because no identity-based policy allows the ec2:CreateSnapshots action" {
			t.Fatalf("denied CreateSnapshots (dry run %v): %s %q", dry, code, msg)
		}
	}
	// An allowed action with DryRun answers DryRunOperation, and makes
	// nothing.
	_, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(emulator.VolumeID(inst, "/dev/xvda")), DryRun: aws.Bool(true)})
	if code, _ := apiError(t, err); code != "DryRunOperation" || httpStatus(err) != http.StatusPreconditionFailed {
		t.Fatalf("dry run: %v", err)
	}
	id := snapshotOf(t, c, emulator.VolumeID(inst, "/dev/xvda"))
	_, err = c.LockSnapshot(ctx, &ec2.LockSnapshotInput{SnapshotId: aws.String(id), LockMode: ec2types.LockModeGovernance, LockDuration: aws.Int32(1)})
	if code, _ := apiError(t, err); code != "UnauthorizedOperation" {
		t.Fatalf("denied LockSnapshot: %v", err)
	}
	_, err = c.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	if code, msg := apiError(t, err); code != "InvalidAction" || msg != "The action DescribeImages is not valid for this web service." {
		t.Fatalf("unknown action: %s %q", code, msg)
	}
	got := s.Counters().String()
	want := "CreateSnapshot: 2 (DryRunOperation 1, ok 1)\nCreateSnapshots: 2 (UnauthorizedOperation 2)\n" +
		"LockSnapshot: 1 (UnauthorizedOperation 1)\nUnknown: 1 (InvalidAction 1)\nbytes served: 0 (0.0 MiB)\n"
	if got != want {
		t.Fatalf("counters:\n%s\nwant:\n%s", got, want)
	}
}

// TestFractions draws archived, public and KMS-denied snapshots from the
// seed: the same ones on every run, about the asked share, each refused
// by the EBS direct APIs for its reason.
func TestFractions(t *testing.T) {
	o := emulator.Options{Seed: 7, ArchiveFraction: 0.25, PublicFraction: 0.25, KMSDenyFraction: 0.25}
	run := func() map[string]string {
		s, ep := emulatortest.StartInstance(t, o, inst, emulatortest.SyntheticVolume("/dev/xvda", 1, 0.01, 1))
		_ = s
		c := ec2Client(ep, "")
		eb := emulatortest.Client(t, ep)
		ctx := context.Background()
		out := map[string]string{}
		for range 200 {
			id := snapshotOf(t, c, emulator.VolumeID(inst, "/dev/xvda"))
			d, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
			if err != nil {
				t.Fatal(err)
			}
			sn := d.Snapshots[0]
			typ, reason := ebsReason(listErr(eb, id))
			public := len(permissions(t, c, id)) > 0
			out[id] = fmt.Sprintf("%s|%v|%v|%s|%s/%s", sn.StorageTier, public, aws.ToBool(sn.Encrypted), aws.ToString(sn.KmsKeyId), typ, reason)
		}
		return out
	}
	a, b := run(), run()
	if !maps.Equal(a, b) {
		t.Fatal("fractions differ between runs with the same seed")
	}
	denied := emulator.DeniedKeyARN("us-east-1", "111122223333")
	var archived, public, kms, clean int
	for id, v := range a {
		f := strings.Split(v, "|")
		switch {
		case f[4] == "AccessDeniedException/DEPENDENCY_ACCESS_DENIED":
			kms++
			if f[2] != "true" || f[3] != denied {
				t.Errorf("%s denied but %s", id, v)
			}
		case f[0] == "archive" || f[1] == "true":
			if f[0] == "archive" {
				archived++
			}
			if f[1] == "true" {
				public++
			}
			if f[4] != "ValidationException/INVALID_SNAPSHOT_ID" {
				t.Errorf("%s: %s", id, v)
			}
		default:
			clean++
			if f[4] != "/" || f[2] != "false" {
				t.Errorf("%s: %s", id, v)
			}
		}
	}
	// 200 draws at 1/4: each count is 50 ± 20 (over 3 standard deviations).
	for name, n := range map[string]int{"kms-denied": kms, "archived": archived, "public": public} {
		if n < 25 || n > 75 {
			t.Errorf("%s %d of 200, want about 50", name, n)
		}
	}
	if clean == 0 {
		t.Error("no snapshot is readable")
	}
	t.Logf("archived %d, public %d, kms-denied %d, readable %d of 200", archived, public, kms, clean)
}
