package preserve_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ebsimager/ebsimager/internal/preserve"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// motoConfig is an SDK configuration for moto_server at endpoint.
func motoConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

// motoInstance runs an instance with a root volume and one data volume
// at /dev/sdf in moto, and returns its id and its volumes by device.
func motoInstance(t *testing.T, c *ec2.Client) (string, map[string]string) {
	t.Helper()
	ctx := context.Background()
	images, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	if err != nil || len(images.Images) == 0 {
		t.Fatalf("DescribeImages: %d images, %v", len(images.Images), err)
	}
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: images.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: ec2types.InstanceTypeT3Micro,
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{
			{DeviceName: images.Images[0].RootDeviceName, Ebs: &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(8)}},
			{DeviceName: aws.String("/dev/sdf"), Ebs: &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(2)}},
		},
	})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	vols := map[string]string{}
	for _, b := range out.Reservations[0].Instances[0].BlockDeviceMappings {
		vols[aws.ToString(b.DeviceName)] = aws.ToString(b.Ebs.VolumeId)
	}
	if len(vols) != 2 || vols["/dev/sdf"] == "" || vols[aws.ToString(images.Images[0].RootDeviceName)] == "" {
		t.Fatalf("moto's instance %s has volumes %v, want a root volume and /dev/sdf", id, vols)
	}
	return id, vols
}

// TestCrossCheckMoto runs the preservation of an instance of two volumes
// against moto_server, an independent EC2, and checks through the SDK
// that each attached volume has one snapshot, tagged and shared.
func TestCrossCheckMoto(t *testing.T) {
	cfg := motoConfig(testenv.Moto(t))
	c := ec2.NewFromConfig(cfg)
	instance, vols := motoInstance(t, c)
	const forensic = "210987654321"
	o := preserve.Options{
		Case: report.Case{CaseNumber: "2024-017", EvidenceNumber: "E-3", Examiner: "J. Doe"},
		Tags: []report.Tag{{Key: "team", Value: "ir"}},
		Tool: report.Tool{Version: "9.9.9", CommandLine: []string{"ebsimager", "snapshot", instance}},
		Wait: true, PollInterval: 50 * time.Millisecond, Timeout: time.Minute,
		ShareWith: []string{forensic},
	}
	res, err := preserve.Run(context.Background(), cfg, []string{instance}, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(res.Snapshots) != 2 {
		t.Fatalf("%d snapshots, want 2: %+v", len(res.Snapshots), res.Snapshots)
	}
	byVolume := map[string]preserve.Snapshot{}
	var ids []string
	for _, s := range res.Snapshots {
		byVolume[s.VolumeID] = s
		ids = append(ids, s.SnapshotID)
	}
	out, err := c.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: ids})
	if err != nil {
		t.Fatalf("DescribeSnapshots: %v", err)
	}
	if len(out.Snapshots) != 2 {
		t.Fatalf("moto lists %d snapshots", len(out.Snapshots))
	}
	for dev, vol := range vols {
		s, ok := byVolume[vol]
		if !ok || s.Device != dev || s.InstanceID != instance || s.State != "completed" || s.Acquire != s.SnapshotID {
			t.Fatalf("volume %s at %s: %+v", vol, dev, s)
		}
		if !slices.Equal(s.Shares, []string{forensic}) {
			t.Errorf("%s shared with %v", s.SnapshotID, s.Shares)
		}
		var got ec2types.Snapshot
		for _, m := range out.Snapshots {
			if aws.ToString(m.SnapshotId) == s.SnapshotID {
				got = m
			}
		}
		if aws.ToString(got.VolumeId) != vol {
			t.Errorf("moto says %s is of %s, want %s", s.SnapshotID, aws.ToString(got.VolumeId), vol)
		}
		if d := aws.ToString(got.Description); d != "ebsimager preservation, case 2024-017, evidence E-3: crash-consistent snapshots of "+instance {
			t.Errorf("description %q", d)
		}
		tags := map[string]string{}
		for _, tag := range got.Tags {
			tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
		created, err := time.Parse(time.RFC3339, tags["ebsimager:created"])
		if err != nil || time.Since(created) > time.Minute || !strings.HasSuffix(tags["ebsimager:created"], "Z") {
			t.Errorf("created tag %q: %v", tags["ebsimager:created"], err)
		}
		delete(tags, "ebsimager:created")
		want := map[string]string{
			"ebsimager:case-number": "2024-017", "ebsimager:evidence-number": "E-3", "ebsimager:examiner": "J. Doe",
			"ebsimager:tool": "ebsimager 9.9.9", "ebsimager:instance": instance, "ebsimager:device": dev, "ebsimager:volume": vol, "team": "ir",
		}
		if !mapsEqual(tags, want) {
			t.Errorf("%s tags %v, want %v", s.SnapshotID, tags, want)
		}
		attr, err := c.DescribeSnapshotAttribute(context.Background(), &ec2.DescribeSnapshotAttributeInput{
			SnapshotId: aws.String(s.SnapshotID), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission})
		if err != nil || len(attr.CreateVolumePermissions) != 1 || aws.ToString(attr.CreateVolumePermissions[0].UserId) != forensic {
			t.Errorf("%s createVolumePermission %+v: %v", s.SnapshotID, attr, err)
		}
	}
	checkCalls(t, res.Record, "sts:GetCallerIdentity", "ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:CreateSnapshots",
		"ec2:CreateTags", "ec2:CreateTags", "ec2:DescribeSnapshots",
		"ec2:ModifySnapshotAttribute", "ec2:DescribeSnapshotAttribute", "ec2:ModifySnapshotAttribute", "ec2:DescribeSnapshotAttribute")
	if res.Record.CallerIdentity == nil || res.Record.CallerIdentity.Account != "123456789012" {
		t.Errorf("caller identity %+v", res.Record.CallerIdentity)
	}

	// A volume target: one CreateSnapshot, tagged with the instance and
	// device it is attached to.
	res, err = preserve.Run(context.Background(), cfg, []string{vols["/dev/sdf"]}, o)
	if err != nil || len(res.Snapshots) != 1 {
		t.Fatalf("volume: %+v, %v", res, err)
	}
	if s := res.Snapshots[0]; s.VolumeID != vols["/dev/sdf"] || s.Device != "/dev/sdf" || s.InstanceID != instance || s.State != "completed" {
		t.Errorf("volume snapshot %+v", s)
	}
}

// checkCalls asserts the record lists exactly these calls, each answered
// once with a request id and a time.
func checkCalls(t *testing.T, rec *report.Preservation, apis ...string) {
	t.Helper()
	var got []string
	for _, c := range rec.Calls {
		got = append(got, c.API)
		if c.Outcome != report.OutcomeOK || c.Attempts != 1 || c.RequestID == "" || c.StartedAt.IsZero() || c.Region != "us-east-1" {
			t.Errorf("call %+v", c)
		}
	}
	if !slices.Equal(got, apis) {
		t.Errorf("calls\n%v\nwant\n%v", got, apis)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
