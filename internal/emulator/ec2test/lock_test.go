package ec2test

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

func TestLockSnapshot(t *testing.T) {
	root, data := twoDisks(t)
	clk := &clock{time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)}
	s, ep := emulatortest.StartInstance(t, emulator.Options{Now: clk.now, SnapshotDelay: time.Minute}, inst,
		emulatortest.RawVolume("/dev/xvda", root), emulatortest.RawVolume("/dev/xvdb", data))
	ctx := context.Background()
	c := ec2Client(ep, "")
	gov, comp := snapshotOf(t, c, emulator.VolumeID(inst, "/dev/xvda")), snapshotOf(t, c, emulator.VolumeID(inst, "/dev/xvdb"))
	t0 := clk.t

	// A pending snapshot can be locked.
	g, err := c.LockSnapshot(ctx, &ec2.LockSnapshotInput{SnapshotId: aws.String(gov), LockMode: ec2types.LockModeGovernance, LockDuration: aws.Int32(30)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(g.SnapshotId) != gov || g.LockState != ec2types.LockStateGovernance || aws.ToInt32(g.LockDuration) != 30 ||
		!aws.ToTime(g.LockCreatedOn).Equal(t0) || !aws.ToTime(g.LockDurationStartTime).Equal(t0) ||
		!aws.ToTime(g.LockExpiresOn).Equal(t0.Add(30*24*time.Hour)) || g.CoolOffPeriod != nil || g.CoolOffPeriodExpiresOn != nil {
		t.Fatalf("governance: %+v", g)
	}
	cm, err := c.LockSnapshot(ctx, &ec2.LockSnapshotInput{SnapshotId: aws.String(comp), LockMode: ec2types.LockModeCompliance,
		LockDuration: aws.Int32(365), CoolOffPeriod: aws.Int32(24)})
	if err != nil {
		t.Fatal(err)
	}
	if cm.LockState != ec2types.LockStateComplianceCooloff || aws.ToInt32(cm.CoolOffPeriod) != 24 ||
		!aws.ToTime(cm.CoolOffPeriodExpiresOn).Equal(t0.Add(24*time.Hour)) || !aws.ToTime(cm.LockExpiresOn).Equal(t0.Add(365*24*time.Hour)) {
		t.Fatalf("compliance: %+v", cm)
	}
	// After the cool-off: compliance, which can only be lengthened, and
	// neither snapshot can be deleted.
	clk.t = t0.Add(25 * time.Hour)
	out, err := c.DescribeLockedSnapshots(ctx, &ec2.DescribeLockedSnapshotsInput{})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]ec2types.LockState{}
	for _, l := range out.Snapshots {
		states[aws.ToString(l.SnapshotId)] = l.LockState
		if aws.ToString(l.OwnerId) != "111122223333" {
			t.Errorf("owner %q", aws.ToString(l.OwnerId))
		}
	}
	if !maps.Equal(states, map[string]ec2types.LockState{gov: ec2types.LockStateGovernance, comp: ec2types.LockStateCompliance}) {
		t.Fatalf("locked: %v", states)
	}
	f, err := c.DescribeLockedSnapshots(ctx, &ec2.DescribeLockedSnapshotsInput{Filters: []ec2types.Filter{{Name: aws.String("lock-state"), Values: []string{"compliance"}}}})
	if err != nil || len(f.Snapshots) != 1 || aws.ToString(f.Snapshots[0].SnapshotId) != comp {
		t.Fatalf("lock-state filter: %+v %v", f, err)
	}
	_, err = c.LockSnapshot(ctx, &ec2.LockSnapshotInput{SnapshotId: aws.String(comp), LockMode: ec2types.LockModeGovernance, LockDuration: aws.Int32(400)})
	if code, _ := apiError(t, err); code != "IncorrectState" {
		t.Fatalf("weakening a compliance lock: %v", err)
	}
	longer, err := c.LockSnapshot(ctx, &ec2.LockSnapshotInput{SnapshotId: aws.String(comp), LockMode: ec2types.LockModeCompliance, LockDuration: aws.Int32(400)})
	if err != nil || !aws.ToTime(longer.LockCreatedOn).Equal(t0) || !aws.ToTime(longer.LockExpiresOn).Equal(clk.t.Add(400*24*time.Hour)) ||
		longer.LockState != ec2types.LockStateCompliance {
		t.Fatalf("lengthening: %+v %v", longer, err)
	}
	for _, id := range []string{gov, comp} {
		_, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
		if code, _ := apiError(t, err); code != "SnapshotLocked" || httpStatus(err) != http.StatusBadRequest {
			t.Fatalf("deleting locked %s: %v", id, err)
		}
	}
	// Once the governance lock expires, the snapshot can be deleted.
	clk.t = t0.Add(31 * 24 * time.Hour)
	if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(gov)}); err != nil {
		t.Fatalf("deleting after expiry: %v", err)
	}
	if _, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{gov}}); err == nil {
		t.Fatal("deleted snapshot described")
	}

	for _, tc := range []struct {
		in        ec2.LockSnapshotInput
		code, msg string
	}{
		{ec2.LockSnapshotInput{SnapshotId: aws.String(comp), LockMode: ec2types.LockModeGovernance, LockDuration: aws.Int32(1), CoolOffPeriod: aws.Int32(2)},
			"InvalidParameterCombination", "The parameter CoolOffPeriod can be used only with the compliance lock mode."},
		{ec2.LockSnapshotInput{SnapshotId: aws.String(comp), LockMode: ec2types.LockModeGovernance, LockDuration: aws.Int32(0)},
			"InvalidParameterValue", "Value (0) for parameter LockDuration is invalid. Expecting a value between 1 and 36500."},
		{ec2.LockSnapshotInput{SnapshotId: aws.String(comp), LockMode: ec2types.LockModeCompliance, LockDuration: aws.Int32(500), CoolOffPeriod: aws.Int32(73)},
			"InvalidParameterValue", "Value (73) for parameter CoolOffPeriod is invalid. Expecting a value between 1 and 72."},
		{ec2.LockSnapshotInput{SnapshotId: aws.String(comp), LockMode: ec2types.LockModeGovernance},
			"MissingParameter", "The request must contain either the parameter LockDuration or the parameter ExpirationDate"},
		{ec2.LockSnapshotInput{SnapshotId: aws.String("snap-0123456789abcdef0"), LockMode: ec2types.LockModeGovernance, LockDuration: aws.Int32(1)},
			"InvalidSnapshot.NotFound", "The snapshot 'snap-0123456789abcdef0' does not exist."},
	} {
		_, err := c.LockSnapshot(ctx, &tc.in)
		if code, msg := apiError(t, err); code != tc.code || msg != tc.msg {
			t.Errorf("%s %q, want %s %q", code, msg, tc.code, tc.msg)
		}
	}
	// ExpirationDate instead of a duration.
	exp := clk.t.Add(48 * time.Hour)
	other := snapshotOf(t, c, emulator.VolumeID(inst, "/dev/xvda"))
	e, err := c.LockSnapshot(ctx, &ec2.LockSnapshotInput{SnapshotId: aws.String(other), LockMode: ec2types.LockModeGovernance, ExpirationDate: aws.Time(exp)})
	if err != nil || !aws.ToTime(e.LockExpiresOn).Equal(exp) || e.LockDuration != nil {
		t.Fatalf("ExpirationDate: %+v %v", e, err)
	}
	ctr := s.Counters()
	if ctr.Count(emulator.OpLockSnapshot, emulator.OutcomeOK) != 4 || ctr.Count(emulator.OpDeleteSnapshot, "SnapshotLocked") != 2 ||
		ctr.Total(emulator.OpDescribeLockedSnapshots) != 2 {
		t.Errorf("counters:\n%s", ctr)
	}
}

// TestLockErrorState: a snapshot in the error state cannot be locked.
func TestLockErrorState(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{SnapshotMeta: map[string]emulator.SnapshotMeta{"snap-0e": {State: "error"}}})
	if err := s.AddSynthetic("snap-0e=1GiB,0.01"); err != nil {
		t.Fatal(err)
	}
	_, err := ec2Client(ep, "").LockSnapshot(context.Background(), &ec2.LockSnapshotInput{SnapshotId: aws.String("snap-0e"),
		LockMode: ec2types.LockModeGovernance, LockDuration: aws.Int32(1)})
	if code, msg := apiError(t, err); code != "IncorrectState" || msg != "Snapshot is in invalid state - error" {
		t.Fatalf("%s %q", code, msg)
	}
}
