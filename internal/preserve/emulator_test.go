package preserve_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/preserve"
	"github.com/ebsimager/ebsimager/internal/report"
)

const instance = "i-0123456789abcdef0"

// startInstance serves an emulator holding instance with a root volume
// /dev/xvda and a data volume /dev/sdf.
func startInstance(t *testing.T, o emulator.Options) (aws.Config, *emulator.Server) {
	t.Helper()
	srv, endpoint := emulatortest.StartInstance(t, o, instance,
		emulatortest.SyntheticVolume("/dev/xvda", 1, 0.01, 1), emulatortest.SyntheticVolume("/dev/sdf", 2, 0.01, 2))
	return configFor(endpoint), srv
}

// configFor is an SDK configuration for the emulator at endpoint.
func configFor(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("emulator", "emulator", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

func baseOptions() preserve.Options {
	return preserve.Options{
		Case: report.Case{CaseNumber: "2024-017", EvidenceNumber: "E-3", Examiner: "J. Doe"},
		Tool: report.Tool{Version: "9.9.9", CommandLine: []string{"ebsimager", "snapshot"}},
		Tags: []report.Tag{{Key: "team", Value: "ir"}},
		Wait: true, PollInterval: 20 * time.Millisecond, Timeout: time.Minute,
	}
}

// tagsOf reads a snapshot's tags through the SDK, the created time
// checked and left out.
func tagsOf(t *testing.T, c *ec2.Client, id string) (map[string]string, string) {
	t.Helper()
	out, err := c.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil || len(out.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots %s: %v", id, err)
	}
	tags := map[string]string{}
	for _, tag := range out.Snapshots[0].Tags {
		tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	created, err := time.Parse(time.RFC3339, tags["ebsimager:created"])
	if err != nil || time.Since(created) > time.Minute || !strings.HasSuffix(tags["ebsimager:created"], "Z") {
		t.Errorf("%s created %q: %v", id, tags["ebsimager:created"], err)
	}
	delete(tags, "ebsimager:created")
	return tags, aws.ToString(out.Snapshots[0].Description)
}

// TestInstanceSnapshots: an instance of two volumes becomes two
// completed snapshots, each with its device and volume, the exact tags
// and the case in its Description; the record lists every call.
func TestInstanceSnapshots(t *testing.T) {
	cfg, _ := startInstance(t, emulator.Options{})
	var seen []preserve.Progress
	o := baseOptions()
	o.Progress = func(p preserve.Progress) { seen = append(seen, p) }
	res, err := preserve.Run(context.Background(), cfg, []string{instance}, o)
	if err != nil {
		t.Fatal(err)
	}
	devices := []string{"/dev/xvda", "/dev/sdf"}
	if len(res.Snapshots) != 2 {
		t.Fatalf("%d snapshots", len(res.Snapshots))
	}
	c := ec2.NewFromConfig(cfg)
	for i, s := range res.Snapshots {
		vol := emulator.VolumeID(instance, devices[i])
		if s.InstanceID != instance || s.Device != devices[i] || s.VolumeID != vol || s.State != "completed" || s.Progress != "100%" ||
			s.Acquire != s.SnapshotID || s.Region != "us-east-1" || s.Lock != nil || len(s.Copies) != 0 {
			t.Errorf("snapshot %d: %+v", i, s)
		}
		tags, desc := tagsOf(t, c, s.SnapshotID)
		want := map[string]string{
			"ebsimager:case-number": "2024-017", "ebsimager:evidence-number": "E-3", "ebsimager:examiner": "J. Doe",
			"ebsimager:tool": "ebsimager 9.9.9", "ebsimager:instance": instance, "ebsimager:device": devices[i], "ebsimager:volume": vol, "team": "ir",
		}
		if !mapsEqual(tags, want) {
			t.Errorf("%s tags\n%v\nwant\n%v", s.SnapshotID, tags, want)
		}
		if desc != "ebsimager preservation, case 2024-017, evidence E-3: crash-consistent snapshots of "+instance {
			t.Errorf("description %q", desc)
		}
		if len(s.Tags) != 9 {
			t.Errorf("recorded tags %v", s.Tags)
		}
	}
	checkCalls(t, res.Record, "sts:GetCallerIdentity", "ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:CreateSnapshots",
		"ec2:CreateTags", "ec2:CreateTags", "ec2:DescribeSnapshots")
	if got := res.Record.Calls[3].Returned; !strings.Contains(got, res.Snapshots[0].SnapshotID) || !strings.Contains(got, res.Snapshots[1].SnapshotID) {
		t.Errorf("CreateSnapshots returned %q", got)
	}
	if len(seen) == 0 || seen[len(seen)-1].Done != 2 || seen[len(seen)-1].Total != 2 {
		t.Errorf("progress %+v", seen)
	}
	if r := res.Record; r.Outcome != "ok" || r.CallerIdentity == nil || r.Options.Mode != "snapshot" || r.Region != "us-east-1" || r.Case.CaseNumber != "2024-017" {
		t.Errorf("record %+v", r)
	}
}

// TestNarrowing: --exclude-boot and --device leave volumes out of the
// crash-consistent set through its exclusions.
func TestNarrowing(t *testing.T) {
	cfg, _ := startInstance(t, emulator.Options{})
	for _, tc := range []struct {
		name   string
		edit   func(*preserve.Options)
		device string
		asked  string
	}{
		{"exclude-boot", func(o *preserve.Options) { o.ExcludeBoot = true }, "/dev/sdf", instance + ", excluding /dev/xvda (root)"},
		{"device", func(o *preserve.Options) { o.Devices = []string{"/dev/xvda"} }, "/dev/xvda", instance + ", excluding /dev/sdf"},
	} {
		o := baseOptions()
		tc.edit(&o)
		res, err := preserve.Run(context.Background(), cfg, []string{instance}, o)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(res.Snapshots) != 1 || res.Snapshots[0].Device != tc.device || res.Snapshots[0].VolumeID != emulator.VolumeID(instance, tc.device) {
			t.Errorf("%s: %+v", tc.name, res.Snapshots)
		}
		if got := res.Record.Calls[3]; got.API != "ec2:CreateSnapshots" || got.Request != tc.asked {
			t.Errorf("%s: asked %q", tc.name, got.Request)
		}
	}
	o := baseOptions()
	o.Devices = []string{"/dev/sdz"}
	_, err := preserve.Run(context.Background(), cfg, []string{instance}, o)
	if kind(err) != ebs.KindNotFound || !strings.Contains(err.Error(), "no target instance has an EBS volume at /dev/sdz") {
		t.Errorf("missing device: %v", err)
	}
	o = baseOptions()
	o.Devices, o.ExcludeBoot = []string{"/dev/xvda"}, true
	_, err = preserve.Run(context.Background(), cfg, []string{instance}, o)
	if kind(err) != ebs.KindInvalid || !strings.Contains(err.Error(), "nothing to snapshot on "+instance) {
		t.Errorf("nothing left: %v", err)
	}
}

func kind(err error) ebs.Kind {
	var pe *preserve.Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return -1
}

// TestVolumeSnapshot: a volume target is one CreateSnapshot, tagged with
// the instance and device it is attached to.
func TestVolumeSnapshot(t *testing.T) {
	cfg, _ := startInstance(t, emulator.Options{})
	vol := emulator.VolumeID(instance, "/dev/sdf")
	res, err := preserve.Run(context.Background(), cfg, []string{vol}, baseOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Snapshots) != 1 || res.Snapshots[0].VolumeID != vol || res.Snapshots[0].Device != "/dev/sdf" || res.Snapshots[0].InstanceID != instance ||
		res.Snapshots[0].State != "completed" {
		t.Fatalf("%+v", res.Snapshots)
	}
	tags, desc := tagsOf(t, ec2.NewFromConfig(cfg), res.Snapshots[0].SnapshotID)
	if tags["ebsimager:device"] != "/dev/sdf" || tags["ebsimager:volume"] != vol || tags["ebsimager:instance"] != instance || len(tags) != 8 {
		t.Errorf("tags %v", tags)
	}
	if desc != "ebsimager preservation, case 2024-017, evidence E-3: snapshot of "+vol {
		t.Errorf("description %q", desc)
	}
	checkCalls(t, res.Record, "sts:GetCallerIdentity", "ec2:DescribeVolumes", "ec2:CreateSnapshot", "ec2:DescribeSnapshots")
}

// TestNoWaitAndTimeout: --no-wait returns pending snapshots at once; a
// wait shorter than the snapshots take names each one still pending,
// and the record still lists them.
func TestNoWaitAndTimeout(t *testing.T) {
	cfg, _ := startInstance(t, emulator.Options{SnapshotDelay: time.Hour})
	o := baseOptions()
	o.Wait = false
	start := time.Now()
	res, err := preserve.Run(context.Background(), cfg, []string{instance}, o)
	if err != nil || len(res.Snapshots) != 2 || time.Since(start) > 30*time.Second {
		t.Fatalf("no wait: %+v, %v", res, err)
	}
	for _, s := range res.Snapshots {
		if s.State != "pending" {
			t.Errorf("no wait: %s is %s", s.SnapshotID, s.State)
		}
	}
	o = baseOptions()
	o.Timeout = 300 * time.Millisecond
	res, err = preserve.Run(context.Background(), cfg, []string{instance}, o)
	var nc *preserve.NotCompletedError
	if !errors.As(err, &nc) || len(nc.Pending) != 2 || res == nil || len(res.Snapshots) != 2 {
		t.Fatalf("timeout: %v, %+v", err, res)
	}
	for _, s := range res.Snapshots {
		if !strings.Contains(err.Error(), s.SnapshotID+" of "+s.VolumeID+" ("+instance+" "+s.Device+") is pending at ") {
			t.Errorf("the error does not name %s: %v", s.SnapshotID, err)
		}
	}
	if res.Record.Outcome != "failed" || res.Record.Error != err.Error() || len(res.Record.Snapshots) != 2 {
		t.Errorf("record %s %q %d", res.Record.Outcome, res.Record.Error, len(res.Record.Snapshots))
	}
}

// TestRefusedByEC2: a missing instance or volume is not found, naming
// it; a denied action is access denied, naming it, and recorded as
// denied with its request id.
func TestRefusedByEC2(t *testing.T) {
	cfg, _ := startInstance(t, emulator.Options{DenyEC2: []string{"CreateSnapshots"}})
	for _, id := range []string{"i-0fffffffffffffff0", "vol-0fffffffffffffff0"} {
		res, err := preserve.Run(context.Background(), cfg, []string{id}, baseOptions())
		if kind(err) != ebs.KindNotFound || !strings.Contains(err.Error(), id) || res == nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	res, err := preserve.Run(context.Background(), cfg, []string{instance}, baseOptions())
	if kind(err) != ebs.KindAccessDenied || !strings.Contains(err.Error(), "ec2:CreateSnapshots") {
		t.Fatalf("denied: %v", err)
	}
	last := res.Record.Calls[len(res.Record.Calls)-1]
	if last.API != "ec2:CreateSnapshots" || last.Outcome != report.OutcomeDenied || last.Code != "UnauthorizedOperation" || last.RequestID == "" || last.Attempts != 1 {
		t.Errorf("recorded %+v", last)
	}
	if len(res.Snapshots) != 0 || res.Record.Outcome != "failed" {
		t.Errorf("after a denial: %+v", res.Record)
	}
}

// TestLatest: --use-latest takes the newest completed snapshot of each
// volume and makes none.
func TestLatest(t *testing.T) {
	cfg, _ := startInstance(t, emulator.Options{})
	o := baseOptions()
	var made []string
	for range 2 {
		res, err := preserve.Run(context.Background(), cfg, []string{instance}, o)
		if err != nil {
			t.Fatal(err)
		}
		made = nil
		for _, s := range res.Snapshots {
			made = append(made, s.SnapshotID)
		}
	}
	res, err := preserve.Latest(context.Background(), cfg, []string{instance}, o)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range res.Snapshots {
		got = append(got, s.SnapshotID)
	}
	if !slices.Equal(got, made) || res.Record.Options.Mode != "use-latest" {
		t.Errorf("latest %v, want the second set %v", got, made)
	}
	for _, c := range res.Record.Calls {
		if strings.HasPrefix(c.API, "ec2:Create") {
			t.Errorf("use-latest made %s", c.API)
		}
	}
	vol := emulator.VolumeID(instance, "/dev/sdf")
	cfg2, _ := startInstance(t, emulator.Options{})
	_, err = preserve.Latest(context.Background(), cfg2, []string{vol}, o)
	if kind(err) != ebs.KindNotFound || !strings.Contains(err.Error(), "no completed snapshot of "+vol+" (i-0123456789abcdef0 /dev/sdf)") {
		t.Errorf("no snapshot: %v", err)
	}
}

const (
	forensic = "210987654321"
	cmk      = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
)

// TestLock: each snapshot is locked as asked, and the lock EC2 returned
// is recorded.
func TestLock(t *testing.T) {
	cfg, _ := startInstance(t, emulator.Options{})
	for _, tc := range []struct {
		mode  string
		cool  int
		state string
	}{{preserve.LockGovernance, 0, "governance"}, {preserve.LockCompliance, 24, "compliance-cooloff"}} {
		o := baseOptions()
		o.Lock, o.LockDays, o.CoolOffHours = tc.mode, 30, tc.cool
		start := time.Now()
		res, err := preserve.Run(context.Background(), cfg, []string{instance}, o)
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		for _, s := range res.Snapshots {
			l := s.Lock
			if l == nil || l.Mode != tc.mode || l.State != tc.state || l.DurationDays != 30 || l.CoolOffHours != tc.cool ||
				l.LockedAt.Before(start.Add(-time.Second)) || !l.ExpiresOn.Equal(l.LockedAt.Add(30*24*time.Hour)) {
				t.Errorf("%s: %s lock %+v", tc.mode, s.SnapshotID, l)
			}
			if tc.cool > 0 && !l.CoolOffExpiresOn.Equal(l.LockedAt.Add(24*time.Hour)) {
				t.Errorf("%s: cool-off until %v", tc.mode, l.CoolOffExpiresOn)
			}
		}
		n := len(res.Record.Calls)
		for _, c := range res.Record.Calls[n-2:] {
			if c.API != "ec2:LockSnapshot" || c.RequestID == "" || !strings.Contains(c.Returned, tc.state+" until ") {
				t.Errorf("%s: call %+v", tc.mode, c)
			}
		}
	}
}

// TestShare: the snapshots are shared with the account and the share is
// read back; under the AWS managed key EC2 refuses, and the error says
// to copy; with --copy the copy, re-encrypted under the customer managed
// key, is shared and locked instead of the original.
func TestShare(t *testing.T) {
	cfg, _ := startInstance(t, emulator.Options{})
	o := baseOptions()
	o.ShareWith = []string{forensic, "111111111111"}
	res, err := preserve.Run(context.Background(), cfg, []string{instance}, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Snapshots {
		if !slices.Equal(s.Shares, []string{"111111111111", forensic}) {
			t.Errorf("%s shared with %v", s.SnapshotID, s.Shares)
		}
	}

	_, endpoint := emulatortest.StartInstance(t, emulator.Options{}, instance,
		emulator.VolumeSpec{Device: "/dev/xvda", Synthetic: &emulator.SyntheticSpec{VolumeGiB: 1, Fraction: 0.01, Seed: 1}, Encrypted: true},
		emulator.VolumeSpec{Device: "/dev/sdf", Synthetic: &emulator.SyntheticSpec{VolumeGiB: 1, Fraction: 0.01, Seed: 2}, Encrypted: true})
	cfg.BaseEndpoint = aws.String(endpoint)
	o = baseOptions()
	o.ShareWith = []string{forensic}
	res, err = preserve.Run(context.Background(), cfg, []string{instance}, o)
	var pe *preserve.Error
	if !errors.As(err, &pe) || pe.Kind != ebs.KindInvalid || !strings.Contains(pe.Hint, "--copy --kms-key KEY") ||
		!strings.Contains(err.Error(), "OperationNotPermitted: Encrypted snapshots with EBS default key cannot be shared") {
		t.Fatalf("shared under the AWS managed key: %v", err)
	}
	if len(res.Snapshots) != 2 || res.Record.Outcome != "failed" {
		t.Errorf("the snapshots made are not recorded: %+v", res.Snapshots)
	}

	for _, region := range []string{"", "eu-west-1"} {
		o.Copy, o.KMSKey, o.CopyRegion = true, cmk, region
		o.Lock, o.LockDays = preserve.LockGovernance, 7
		res, err = preserve.Run(context.Background(), cfg, []string{instance}, o)
		if err != nil {
			t.Fatalf("copy to %q: %v", region, err)
		}
		want := "us-east-1"
		if region != "" {
			want = region
		}
		for _, s := range res.Snapshots {
			if len(s.Copies) != 1 || s.Lock != nil || len(s.Shares) != 0 {
				t.Fatalf("copy to %q: %+v", region, s)
			}
			c := s.Copies[0]
			if c.Region != want || c.KMSKeyID != cmk || c.State != "completed" || c.Lock == nil || c.Lock.State != "governance" ||
				!slices.Equal(c.Shares, []string{forensic}) || c.SnapshotID == s.SnapshotID {
				t.Errorf("copy to %q: %+v", region, c)
			}
			if acquire := map[bool]string{true: c.SnapshotID, false: s.SnapshotID}[region == ""]; s.Acquire != acquire {
				t.Errorf("copy to %q: acquire %s", region, s.Acquire)
			}
			tags, _ := tagsOf(t, ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.Region = want }), c.SnapshotID)
			if tags["ebsimager:source-snapshot"] != s.SnapshotID || tags["ebsimager:device"] != s.Device || tags["ebsimager:case-number"] != "2024-017" {
				t.Errorf("copy tags %v", tags)
			}
		}
		var regions []string
		for _, c := range res.Record.Calls {
			if c.API == "ec2:CopySnapshot" || c.API == "ec2:LockSnapshot" || c.API == "ec2:ModifySnapshotAttribute" {
				regions = append(regions, c.Region)
			}
		}
		if len(regions) != 6 || slices.ContainsFunc(regions, func(r string) bool { return r != want }) {
			t.Errorf("copy to %q: regions of the calls %v", region, regions)
		}
	}
}

// TestCheckpoint: the record is handed over after every request, and a
// failure to save it stops the run at once.
func TestCheckpoint(t *testing.T) {
	cfg, _ := startInstance(t, emulator.Options{})
	var calls []int
	o := baseOptions()
	o.Checkpoint = func(r *report.Preservation) error {
		if r.Outcome != preserve.OutcomeRunning {
			t.Errorf("checkpoint outcome %q", r.Outcome)
		}
		calls = append(calls, len(r.Calls))
		if len(r.Calls) == 5 && len(r.Snapshots) != 2 {
			t.Errorf("after CreateSnapshots the record holds %d snapshots", len(r.Snapshots))
		}
		return nil
	}
	res, err := preserve.Run(context.Background(), cfg, []string{instance}, o)
	if err != nil || !slices.Equal(calls, []int{1, 2, 3, 4, 5, 6, 7}) || res.Record.Outcome != "ok" {
		t.Fatalf("checkpoints %v, %v", calls, err)
	}
	full := errors.New("disk full")
	o.Checkpoint = func(r *report.Preservation) error {
		if r.Calls[len(r.Calls)-1].API == "ec2:CreateSnapshots" {
			return full
		}
		return nil
	}
	res, err = preserve.Run(context.Background(), cfg, []string{instance}, o)
	if !errors.Is(err, full) || len(res.Record.Calls) != 4 || len(res.Snapshots) != 2 || res.Snapshots[1].Device != "/dev/sdf" {
		t.Fatalf("a failed checkpoint: %v, %d calls", err, len(res.Record.Calls))
	}
}

// TestShareRefusedBeforehand: when a volume's key is visibly the AWS
// managed alias, sharing is refused before any snapshot is made.
func TestShareRefusedBeforehand(t *testing.T) {
	_, endpoint := emulatortest.StartInstance(t, emulator.Options{}, instance,
		emulator.VolumeSpec{Device: "/dev/xvda", Synthetic: &emulator.SyntheticSpec{VolumeGiB: 1, Fraction: 0.01, Seed: 1}, Encrypted: true, KMSKeyID: "alias/aws/ebs"})
	o := baseOptions()
	o.ShareWith = []string{forensic}
	res, err := preserve.Run(context.Background(), configFor(endpoint), []string{instance}, o)
	var pe *preserve.Error
	if !errors.As(err, &pe) || pe.Kind != ebs.KindInvalid || !strings.Contains(pe.Hint, "--copy --kms-key KEY") ||
		!strings.Contains(err.Error(), "is encrypted under the AWS managed key alias/aws/ebs, so its snapshots cannot be shared; nothing was made") {
		t.Fatalf("%v", err)
	}
	checkCalls(t, res.Record, "sts:GetCallerIdentity", "ec2:DescribeInstances", "ec2:DescribeVolumes")
}
