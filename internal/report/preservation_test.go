package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// samplePreservation is a finished preservation: an instance of two
// volumes snapshotted, copied under a customer managed key, the copies
// locked and shared, and one denied call on the way.
func samplePreservation() *Preservation {
	t0 := time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)
	lock := &SnapshotLock{Mode: "compliance", State: "compliance-cooloff", DurationDays: 30, CoolOffHours: 24,
		LockedAt: t0.Add(time.Minute), CoolOffExpiresOn: t0.Add(24*time.Hour + time.Minute), ExpiresOn: t0.Add(30*24*time.Hour + time.Minute)}
	const key = "arn:aws:kms:us-east-1:111122223333:key/k1"
	snap := func(dev, vol, id, cp string) PreservedSnapshot {
		return PreservedSnapshot{InstanceID: "i-0123456789abcdef0", Device: dev, VolumeID: vol, SnapshotID: id, Region: "us-east-1",
			State: "completed", Progress: "100%", StartTime: t0, Encrypted: true, KMSKeyID: "arn:aws:kms:us-east-1:111122223333:key/aws-ebs",
			Tags:    []Tag{{Key: "ebsimager:case-number", Value: "2024-017"}, {Key: "ebsimager:device", Value: dev}},
			Copies:  []SnapshotCopy{{SnapshotID: cp, Region: "us-east-1", KMSKeyID: key, State: "completed", Progress: "100%", Lock: lock, Shares: []string{"210987654321"}}},
			Acquire: cp}
	}
	call := func(api string, at time.Duration, ret string) APICall {
		return APICall{Call: Call{API: api, Outcome: OutcomeOK, Attempts: 1}, Region: "us-east-1", RequestID: "req-" + api[4:],
			StartedAt: t0.Add(at), DurationSeconds: 0.012, Request: "i-0123456789abcdef0", Returned: ret}
	}
	denied := call("ec2:DescribeVolumes", 2*time.Second, "")
	denied.Outcome, denied.Code, denied.Error, denied.Attempts = OutcomeDenied, "UnauthorizedOperation", "You are not authorized to perform this operation.", 1
	return &Preservation{
		Run:            Run{ToolVersion: "0.1.0", CommandLine: []string{"ebsimager", "snapshot", "i-0123456789abcdef0"}, Host: testHost, StartedAt: t0, FinishedAt: t0.Add(3 * time.Minute)},
		Case:           Case{CaseNumber: "2024-017", Examiner: "J. Doe"},
		Region:         "us-east-1",
		Endpoint:       "https://ec2.us-east-1.amazonaws.com",
		CallerIdentity: &CallerIdentity{Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/responder", UserID: "AIDAEXAMPLE"},
		Targets:        []string{"i-0123456789abcdef0"},
		Options: PreservedWith{Mode: "snapshot", Wait: true, TimeoutSeconds: 1800, Lock: "compliance", LockDays: 30, CoolOffHours: 24,
			ShareWith: []string{"210987654321"}, Copy: true, KMSKey: key, CopyRegion: "us-east-1"},
		Snapshots: []PreservedSnapshot{snap("/dev/xvda", "vol-0aaaaaaaaaaaaaaa1", "snap-0aaaaaaaaaaaaaaa1", "snap-0ccccccccccccccc1"),
			snap("/dev/sdf", "vol-0aaaaaaaaaaaaaaa2", "snap-0aaaaaaaaaaaaaaa2", "snap-0ccccccccccccccc2")},
		Calls: []APICall{call("sts:GetCallerIdentity", 0, "arn:aws:iam::111122223333:user/responder"),
			call("ec2:DescribeInstances", time.Second, "i-0123456789abcdef0 (running, root /dev/xvda): /dev/xvda vol-0aaaaaaaaaaaaaaa1, /dev/sdf vol-0aaaaaaaaaaaaaaa2"),
			denied},
		Outcome: OutcomeOK,
	}
}

func TestPreservationRecord(t *testing.T) {
	r := samplePreservation()
	dir := t.TempDir()
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{PreservationJSONName, PreservationTextName} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name, data)
		if fi, _ := os.Stat(filepath.Join(dir, name)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", name, fi.Mode())
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, PreservationJSONName))
	var back Preservation
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	again, err := back.JSON()
	if err != nil || !bytes.Equal(again, data) {
		t.Errorf("the record does not read back to the same JSON: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files in the record directory, want 2 (no temporary file left)", len(entries))
	}
}

// TestPreservationEmpty: a record of nothing done still has every list.
func TestPreservationEmpty(t *testing.T) {
	js, err := NewPreservation(Tool{Version: "1"}, time.Now()).JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"targets", "snapshots", "calls", "notes"} {
		if l, ok := m[k].([]any); !ok || len(l) != 0 {
			t.Errorf("%s: %v", k, m[k])
		}
	}
	if m["format"] != PreservationFormat {
		t.Errorf("format %v", m["format"])
	}
}
