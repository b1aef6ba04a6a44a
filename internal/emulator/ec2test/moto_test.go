package ec2test

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// fieldPaths lists the paths of the fields set in v ("Snapshots[].State"),
// following pointers, structs and slices; SDK metadata is left out.
func fieldPaths(v any) []string {
	var out []string
	var walk func(prefix string, rv reflect.Value)
	walk = func(prefix string, rv reflect.Value) {
		for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
			if rv.IsNil() {
				return
			}
			rv = rv.Elem()
		}
		switch rv.Kind() {
		case reflect.Struct:
			if rv.Type().PkgPath() != "" && !strings.Contains(rv.Type().PkgPath(), "service/ec2") {
				if prefix != "" {
					out = append(out, prefix)
				}
				return
			}
			for i := range rv.NumField() {
				f := rv.Type().Field(i)
				if !f.IsExported() || f.Name == "ResultMetadata" {
					continue
				}
				walk(strings.TrimPrefix(prefix+"."+f.Name, "."), rv.Field(i))
			}
		case reflect.Slice:
			for i := range rv.Len() {
				walk(prefix+"[]", rv.Index(i))
			}
		default:
			if !rv.IsZero() {
				out = append(out, prefix)
			}
		}
	}
	walk("", reflect.ValueOf(v))
	slices.Sort(out)
	return slices.Compact(out)
}

// missingFrom returns the paths of want that got lacks.
func missingFrom(got, want []string) []string {
	var out []string
	for _, p := range want {
		if !slices.Contains(got, p) {
			out = append(out, p)
		}
	}
	return out
}

// scenario runs the preservation calls against one server, for the
// instance it names, and returns each response.
func scenario(t *testing.T, c *ec2.Client, instance string) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	must := func(name string, v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = v
	}
	di, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instance}})
	must("DescribeInstances", di, err)
	dv, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{instance}}}})
	must("DescribeVolumes", dv, err)
	tags := []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: []ec2types.Tag{{Key: aws.String("case"), Value: aws.String("7")}}}}
	cs, err := c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String(instance)},
		Description: aws.String("case 7"), TagSpecifications: tags})
	must("CreateSnapshots", cs, err)
	one, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: dv.Volumes[0].VolumeId, Description: aws.String("case 7"), TagSpecifications: tags})
	must("CreateSnapshot", one, err)
	ds, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(one.SnapshotId)}})
	must("DescribeSnapshots", ds, err)
	ms, err := c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: one.SnapshotId,
		Attribute: "createVolumePermission", OperationType: ec2types.OperationTypeAdd, UserIds: []string{forensic}})
	must("ModifySnapshotAttribute", ms, err)
	da, err := c.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: one.SnapshotId, Attribute: "createVolumePermission"})
	must("DescribeSnapshotAttribute", da, err)
	cp, err := c.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceSnapshotId: one.SnapshotId, SourceRegion: aws.String("us-east-1"),
		Encrypted: aws.Bool(true), KmsKeyId: aws.String("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"), TagSpecifications: tags})
	must("CopySnapshot", cp, err)
	ct, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(one.SnapshotId)}, Tags: tags[0].Tags})
	must("CreateTags", ct, err)
	return out
}

// TestMotoShapes runs the same preservation calls against moto and the
// emulator and checks, through the SDK, that every field moto's answers
// set is set in the emulator's too, except the few it does not model.
func TestMotoShapes(t *testing.T) {
	ep := testenv.Moto(t)
	moto := ec2Client(ep, "")
	ctx := context.Background()
	run, err := moto.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-12c6146b"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdb"), Ebs: &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(2)}}}})
	if err != nil {
		t.Fatalf("moto RunInstances: %v", err)
	}
	fromMoto := scenario(t, moto, aws.ToString(run.Instances[0].InstanceId))

	root, data := twoDisks(t)
	_, emuEP := emulatortest.StartInstance(t, emulator.Options{}, inst, emulatortest.RawVolume("/dev/xvda", root), emulatortest.RawVolume("/dev/xvdb", data))
	fromEmu := scenario(t, ec2Client(emuEP, ""), inst)

	for _, name := range slices.Sorted(maps.Keys(fromMoto)) {
		lack := missingFrom(fieldPaths(fromEmu[name]), fieldPaths(fromMoto[name]))
		lack = slices.DeleteFunc(lack, func(p string) bool { return unmodelled(name, p) })
		if len(lack) > 0 {
			t.Errorf("%s: moto sets fields the emulator does not:\n  %s", name, strings.Join(lack, "\n  "))
		}
	}
}

// unmodelled are fields moto sets that the emulator leaves out: an
// instance's network interfaces, metadata options and public address,
// which a forensic client has no use for; the client token of a launch
// the emulator never made; Platform, which EC2 sets only for Windows; and
// SriovNetSupport.
func unmodelled(action, path string) bool {
	if action != "DescribeInstances" {
		return false
	}
	const in = "Reservations[].Instances[]."
	for _, p := range []string{"NetworkInterfaces[].", "MetadataOptions."} {
		if strings.HasPrefix(path, in+p) {
			return true
		}
	}
	return slices.Contains([]string{in + "PublicDnsName", in + "PublicIpAddress", in + "ClientToken", in + "Platform", in + "SriovNetSupport"}, path)
}
