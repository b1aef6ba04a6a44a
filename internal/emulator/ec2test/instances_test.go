package ec2test

import (
	"bytes"
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

const inst = "i-0123456789abcdef0"

// clock is a settable clock for Options.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// twoDisks writes a root image (3 MiB, blocks 0 and 5) and a data image
// (2 GiB + 1 byte: 3 GiB reported, blocks 1 and 4000).
func twoDisks(t *testing.T) (root, data string) {
	dir := t.TempDir()
	root, data = filepath.Join(dir, "root.raw"), filepath.Join(dir, "data.raw")
	writeBlocks(t, root, 3<<20, map[int64][]byte{0: pattern(1), 5: pattern(2)})
	writeBlocks(t, data, 2<<30+1, map[int64][]byte{1: pattern(3), 4000: pattern(4)})
	return root, data
}

func TestDescribeInstancesAndVolumes(t *testing.T) {
	root, data := twoDisks(t)
	clk := &clock{time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)}
	s, ep := emulatortest.StartInstance(t, emulator.Options{Now: clk.now}, inst,
		emulatortest.RawVolume("/dev/xvda", root), emulatortest.RawVolume("/dev/xvdb", data),
		emulatortest.SyntheticVolume("/dev/xvdc", 8, 0.01, 7))
	spare := "vol-0fedcba9876543210"
	if err := s.AddVolume(emulator.VolumeSpec{ID: spare, RawPath: root, KMSKeyID: "arn:aws:kms:us-east-1:111122223333:key/k1"}); err != nil {
		t.Fatal(err)
	}
	volA, volB, volC := emulator.VolumeID(inst, "/dev/xvda"), emulator.VolumeID(inst, "/dev/xvdb"), emulator.VolumeID(inst, "/dev/xvdc")
	if len(volA) != len("vol-")+17 || volA == volB || emulator.VolumeID(inst, "/dev/xvda") != volA {
		t.Fatalf("volume ids %s %s", volA, volB)
	}
	ctx := context.Background()
	c := ec2Client(ep, "")
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{inst}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 || aws.ToString(out.Reservations[0].OwnerId) != "111122223333" {
		t.Fatalf("reservations: %+v", out.Reservations)
	}
	in := out.Reservations[0].Instances[0]
	if aws.ToString(in.InstanceId) != inst || in.State.Name != ec2types.InstanceStateNameRunning || aws.ToInt32(in.State.Code) != 16 ||
		aws.ToString(in.RootDeviceName) != "/dev/xvda" || in.RootDeviceType != ec2types.DeviceTypeEbs ||
		!aws.ToTime(in.LaunchTime).Equal(clk.t) || len(in.BlockDeviceMappings) != 3 ||
		aws.ToString(in.Placement.AvailabilityZone) != "us-east-1a" || in.Placement.Tenancy != ec2types.TenancyDefault ||
		aws.ToString(in.ImageId) != "ami-0abcdef1234567890" || in.InstanceType != ec2types.InstanceTypeT3Micro {
		t.Fatalf("instance: %+v", in)
	}
	for k, want := range []struct {
		dev, vol string
		del      bool
	}{{"/dev/xvda", volA, true}, {"/dev/xvdb", volB, false}, {"/dev/xvdc", volC, false}} {
		m := in.BlockDeviceMappings[k]
		if aws.ToString(m.DeviceName) != want.dev || aws.ToString(m.Ebs.VolumeId) != want.vol || m.Ebs.Status != ec2types.AttachmentStatusAttached ||
			aws.ToBool(m.Ebs.DeleteOnTermination) != want.del || !aws.ToTime(m.Ebs.AttachTime).Equal(clk.t) {
			t.Errorf("mapping %d: %+v %+v", k, m, m.Ebs)
		}
	}

	vols, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{inst}}}})
	if err != nil {
		t.Fatal(err)
	}
	type vview struct {
		id, state, dev string
		size           int32
	}
	var got []vview
	for _, v := range vols.Volumes {
		dev := ""
		if len(v.Attachments) == 1 {
			a := v.Attachments[0]
			dev = aws.ToString(a.Device)
			if aws.ToString(a.InstanceId) != inst || aws.ToString(a.VolumeId) != aws.ToString(v.VolumeId) || a.State != ec2types.VolumeAttachmentStateAttached {
				t.Errorf("attachment %+v", a)
			}
		}
		if aws.ToBool(v.Encrypted) || v.KmsKeyId != nil {
			t.Errorf("volume %s encrypted", aws.ToString(v.VolumeId))
		}
		got = append(got, vview{aws.ToString(v.VolumeId), string(v.State), dev, aws.ToInt32(v.Size)})
	}
	want := []vview{{volA, "in-use", "/dev/xvda", 1}, {volB, "in-use", "/dev/xvdb", 3}, {volC, "in-use", "/dev/xvdc", 8}}
	slices.SortFunc(want, func(a, b vview) int { return cmpString(a.id, b.id) })
	if !slices.Equal(got, want) {
		t.Fatalf("volumes %+v, want %+v", got, want)
	}
	sp, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{spare}})
	if err != nil || len(sp.Volumes) != 1 || sp.Volumes[0].State != ec2types.VolumeStateAvailable || len(sp.Volumes[0].Attachments) != 0 ||
		!aws.ToBool(sp.Volumes[0].Encrypted) || aws.ToString(sp.Volumes[0].KmsKeyId) != "arn:aws:kms:us-east-1:111122223333:key/k1" {
		t.Fatalf("spare volume: %+v %v", sp, err)
	}
	byID, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("volume-id"), Values: []string{volB, spare}}}})
	if err != nil || len(byID.Volumes) != 2 {
		t.Fatalf("volume-id filter: %+v %v", byID, err)
	}
	all, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"stopped"}}}})
	if err != nil || len(all.Reservations) != 0 {
		t.Fatalf("instance-state-name filter: %+v %v", all, err)
	}

	for _, tc := range []struct {
		call      func() error
		code, msg string
	}{
		{func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef1"}})
			return err
		}, "InvalidInstanceID.NotFound", "The instance ID 'i-0123456789abcdef1' does not exist"},
		{func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef1", "i-01234567"}})
			return err
		}, "InvalidInstanceID.NotFound", "The instance IDs 'i-0123456789abcdef1, i-01234567' do not exist"},
		{func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-xyz"}})
			return err
		}, "InvalidInstanceID.Malformed", `Invalid id: "i-xyz" (expecting "i-...")`},
		{func() error {
			_, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{"vol-0123456789abcdef9"}})
			return err
		}, "InvalidVolume.NotFound", "The volume 'vol-0123456789abcdef9' does not exist"},
		{func() error {
			_, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{"snap-0123"}})
			return err
		}, "InvalidVolumeID.Malformed", `Invalid id: "snap-0123" (expecting "vol-...")`},
		{func() error {
			_, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("colour"), Values: []string{"x"}}}})
			return err
		}, "InvalidParameterValue", "The filter 'colour' is invalid"},
	} {
		err := tc.call()
		if code, msg := apiError(t, err); code != tc.code || msg != tc.msg || httpStatus(err) != 400 {
			t.Errorf("%s %q (%d), want %s %q", code, msg, httpStatus(err), tc.code, tc.msg)
		}
	}
	ctr := s.Counters()
	if ctr.Total(emulator.OpDescribeInstances) != 5 || ctr.Count(emulator.OpDescribeInstances, "InvalidInstanceID.NotFound") != 2 ||
		ctr.Total(emulator.OpDescribeVolumes) != 6 {
		t.Errorf("counters:\n%s", ctr)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestCreateSnapshotsLineage snapshots an instance, rewrites a disk,
// snapshots the volume again, and reads both through the EBS direct APIs.
func TestCreateSnapshotsLineage(t *testing.T) {
	root, data := twoDisks(t)
	clk := &clock{time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)}
	s, ep := emulatortest.StartInstance(t, emulator.Options{Now: clk.now, SnapshotDelay: time.Minute}, inst,
		emulatortest.RawVolume("/dev/xvda", root), emulatortest.RawVolume("/dev/xvdb", data),
		emulatortest.SyntheticVolume("/dev/xvdc", 1, 0.01, 7))
	volA, volB, volC := emulator.VolumeID(inst, "/dev/xvda"), emulator.VolumeID(inst, "/dev/xvdb"), emulator.VolumeID(inst, "/dev/xvdc")
	ctx := context.Background()
	c := ec2Client(ep, "")
	caseTags := []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: []ec2types.Tag{
		{Key: aws.String("case"), Value: aws.String("2024-017")}, {Key: aws.String("examiner"), Value: aws.String("jd")}}}}
	out, err := c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{
		InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String(inst)},
		Description:           aws.String("case 2024-017"), TagSpecifications: caseTags})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Snapshots) != 3 {
		t.Fatalf("%d snapshots, want 3", len(out.Snapshots))
	}
	first := map[string]string{} // volume → snapshot
	for k, sn := range out.Snapshots {
		vol := []string{volA, volB, volC}[k]
		if aws.ToString(sn.VolumeId) != vol || sn.State != ec2types.SnapshotStatePending || aws.ToString(sn.Progress) != "0%" ||
			aws.ToString(sn.Description) != "case 2024-017" || aws.ToString(sn.OwnerId) != "111122223333" ||
			!aws.ToTime(sn.StartTime).Equal(clk.t) || aws.ToBool(sn.Encrypted) || aws.ToInt32(sn.VolumeSize) != []int32{1, 3, 1}[k] ||
			!maps.Equal(tagMap(sn.Tags), map[string]string{"case": "2024-017", "examiner": "jd"}) {
			t.Errorf("snapshot %d: %+v", k, sn)
		}
		first[vol] = aws.ToString(sn.SnapshotId)
	}
	eb := emulatortest.Client(t, ep)
	// Pending: half-way through the delay it reports 50% and cannot be read.
	clk.t = clk.t.Add(30 * time.Second)
	d, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{first[volA]}})
	if err != nil || d.Snapshots[0].State != ec2types.SnapshotStatePending || aws.ToString(d.Snapshots[0].Progress) != "50%" {
		t.Fatalf("half-way: %+v %v", d, err)
	}
	if typ, reason := ebsReason(listErr(eb, first[volA])); typ != "ValidationException" || reason != "INVALID_SNAPSHOT_ID" {
		t.Fatalf("pending snapshot listed: %s %s", typ, reason)
	}
	// The disk changes while the snapshot is pending: the snapshot keeps
	// the content at creation time.
	writeBlocks(t, data, 2<<30+1, map[int64][]byte{1: pattern(9), 7: pattern(8)})
	clk.t = clk.t.Add(30 * time.Second)
	d, err = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []ec2types.Filter{{Name: aws.String("volume-id"), Values: []string{volB}}}})
	if err != nil || len(d.Snapshots) != 1 {
		t.Fatalf("by volume: %+v %v", d, err)
	}
	if sn := d.Snapshots[0]; aws.ToString(sn.SnapshotId) != first[volB] || sn.State != ec2types.SnapshotStateCompleted ||
		aws.ToString(sn.Progress) != "100%" || aws.ToInt32(sn.VolumeSize) != 3 || sn.StorageTier != ec2types.StorageTierStandard ||
		aws.ToString(sn.Description) != "case 2024-017" || tagMap(sn.Tags)["case"] != "2024-017" {
		t.Fatalf("completed: %+v", sn)
	}
	wantOld := map[int64][]byte{1: pattern(3), 4000: pattern(4)}
	if got := readAll(t, eb, first[volB]); !sameBlocks(got, wantOld) {
		t.Fatalf("old snapshot blocks %v", slices.Sorted(maps.Keys(got)))
	}
	if got := readAll(t, eb, first[volA]); !sameBlocks(got, map[int64][]byte{0: pattern(1), 5: pattern(2)}) {
		t.Fatalf("root snapshot blocks %v", slices.Sorted(maps.Keys(got)))
	}

	// CreateSnapshot of the changed volume: a child of the first.
	one, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(volB), Description: aws.String("again")})
	if err != nil {
		t.Fatal(err)
	}
	second := aws.ToString(one.SnapshotId)
	if one.State != ec2types.SnapshotStatePending || aws.ToString(one.VolumeId) != volB || aws.ToInt32(one.VolumeSize) != 3 ||
		aws.ToString(one.Description) != "again" || len(one.Tags) != 0 {
		t.Fatalf("CreateSnapshot: %+v", one)
	}
	clk.t = clk.t.Add(time.Minute)
	if got := readAll(t, eb, second); !sameBlocks(got, map[int64][]byte{1: pattern(9), 7: pattern(8), 4000: pattern(4)}) {
		t.Fatalf("new snapshot blocks %v", slices.Sorted(maps.Keys(got)))
	}
	if got := changed(t, eb, first[volB], second); !slices.Equal(got, []int64{1, 7}) {
		t.Fatalf("changed blocks %v, want [1 7]", got)
	}
	// The old snapshot still reads the old bytes.
	if got := readAll(t, eb, first[volB]); !sameBlocks(got, wantOld) {
		t.Fatal("old snapshot changed")
	}
	// Successive snapshots of a synthetic volume: nothing changed.
	syn, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(volC)})
	if err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Minute)
	if got := changed(t, eb, first[volC], aws.ToString(syn.SnapshotId)); len(got) != 0 {
		t.Fatalf("synthetic changed %v", got)
	}
	// Exclusions.
	ex, err := c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: &ec2types.InstanceSpecification{
		InstanceId: aws.String(inst), ExcludeBootVolume: aws.Bool(true), ExcludeDataVolumeIds: []string{volC}}})
	if err != nil || len(ex.Snapshots) != 1 || aws.ToString(ex.Snapshots[0].VolumeId) != volB {
		t.Fatalf("excluded: %+v %v", ex, err)
	}
	for _, tc := range []struct {
		in        ec2.CreateSnapshotsInput
		code, msg string
	}{
		{ec2.CreateSnapshotsInput{InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String("i-0123456789abcdef1")}},
			"InvalidInstanceID.NotFound", "The instance ID 'i-0123456789abcdef1' does not exist"},
		{ec2.CreateSnapshotsInput{InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String("vol-1")}},
			"InvalidInstanceID.Malformed", `Invalid id: "vol-1" (expecting "i-...")`},
		{ec2.CreateSnapshotsInput{InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String(inst)},
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: caseTags[0].Tags}}},
			"InvalidParameterValue", "'volume' is not a valid taggable resource type for this operation."},
	} {
		_, err := c.CreateSnapshots(ctx, &tc.in)
		if code, msg := apiError(t, err); code != tc.code || msg != tc.msg {
			t.Errorf("%s %q, want %s %q", code, msg, tc.code, tc.msg)
		}
	}
	_, err = c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String("vol-0123456789abcdef9")})
	if code, msg := apiError(t, err); code != "InvalidVolume.NotFound" || msg != "The volume 'vol-0123456789abcdef9' does not exist" {
		t.Errorf("CreateSnapshot of no volume: %s %q", code, msg)
	}
	ctr := s.Counters()
	if ctr.Count(emulator.OpCreateSnapshots, emulator.OutcomeOK) != 2 || ctr.Count(emulator.OpCreateSnapshot, emulator.OutcomeOK) != 2 ||
		ctr.Total(emulator.OpCreateSnapshots) != 5 {
		t.Errorf("counters:\n%s", ctr)
	}
}

func sameBlocks(a, b map[int64][]byte) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return bytes.Equal(x, y) && len(x) == block.Size })
}
