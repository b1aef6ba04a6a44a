package casework

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
)

const (
	testInstance = "i-0123456789abcdef0"
	testSnapA    = "snap-0a0000000000000a1"
	testSnapB    = "snap-0b0000000000000b2"
)

func runObjects(t *testing.T, m *bucket.Memory, command string) []string {
	t.Helper()
	keys, err := runKeys(context.Background(), m, command)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// A preservation killed while it ran left checkpoints, one each time its
// snapshots changed (not at every request): the rerun takes the one that
// names the most snapshots. One that ended writes preservation.json,
// which then wins; one that made nothing writes a run object only.
func TestBucketPreservation(t *testing.T) {
	ctx := context.Background()
	m := &bucket.Memory{}
	p := NewBucket(ctx, m)
	targets := []string{testInstance}
	rec := report.NewPreservation(report.Tool{Version: "test"}, time.Now())
	rec.Targets, rec.Outcome = targets, "running"
	for range 3 { // requests before any snapshot: nothing written
		if err := p.Checkpoint(rec); err != nil {
			t.Fatal(err)
		}
	}
	if got, _, err := p.Preservation(targets); got != nil || err != nil || m.Puts() != 0 {
		t.Fatalf("no snapshot yet: %+v, %v, %d puts", got, err, m.Puts())
	}
	rec.Snapshots = []report.PreservedSnapshot{{InstanceID: testInstance, Device: "/dev/xvda", VolumeID: "vol-0a", SnapshotID: testSnapA, State: "pending", Progress: "0%", Acquire: testSnapA}}
	for i := range 5 { // polls: only the progress changes
		rec.Snapshots[0].Progress = fmt.Sprintf("%d%%", i*10)
		if err := p.Checkpoint(rec); err != nil {
			t.Fatal(err)
		}
	}
	rec.Snapshots = append(rec.Snapshots, report.PreservedSnapshot{InstanceID: testInstance, Device: "/dev/sdf", VolumeID: "vol-0b", SnapshotID: testSnapB, State: "pending", Acquire: testSnapB})
	p.Checkpoint(rec)
	rec.Snapshots[0].State, rec.Snapshots[1].State = "completed", "completed"
	p.Checkpoint(rec)
	if keys := runObjects(t, m, RunSnapshot); len(keys) != 3 {
		t.Fatalf("checkpoints: %v, want 3 (one per change of the snapshots)", keys)
	}
	got, name, err := p.Preservation(targets)
	if err != nil || got == nil || len(got.Snapshots) != 2 || got.Snapshots[1].SnapshotID != testSnapB || got.Snapshots[1].Device != "/dev/sdf" ||
		!strings.Contains(got.Stopped, "stopped while it ran") || !isRunKey(name, RunSnapshot) {
		t.Fatalf("from the checkpoints: %+v %q %v", got, name, err)
	}
	if _, _, err := p.Preservation([]string{"i-0123456789abcdef1"}); !errors.As(err, new(*ConflictError)) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("other targets: %v", err)
	}

	rec.Outcome = report.OutcomeOK
	if name, err := p.SavePreservation(rec); err != nil || name != PreservationJSON {
		t.Fatalf("saving: %q %v", name, err)
	}
	if _, err := m.Head(ctx, PreservationText); err != nil {
		t.Fatal(err)
	}
	if got, name, err := p.Preservation(targets); err != nil || name != PreservationJSON || got.Stopped != "" || len(got.Snapshots) != 2 {
		t.Fatalf("from preservation.json: %+v %q %v", got, name, err)
	}
	// Written once: a second final record is refused, never overwritten.
	if _, err := p.SavePreservation(rec); !errors.Is(err, bucket.ErrExists) {
		t.Fatalf("a second preservation.json: %v", err)
	}

	// A preservation that made nothing leaves a run object only.
	m2 := &bucket.Memory{}
	rec.Snapshots, rec.Outcome = nil, report.OutcomeFailed
	if name, err := NewBucket(ctx, m2).SavePreservation(rec); err != nil || !isRunKey(name, RunSnapshot) {
		t.Fatalf("a preservation that made nothing: %q %v", name, err)
	}
	if got, _, err := NewBucket(ctx, m2).Preservation(targets); got != nil || err != nil {
		t.Fatalf("a rerun would not preserve again: %+v %v", got, err)
	}
}

// A case's record in a bucket: each run that does not complete every
// volume writes a run object; the first that does writes case.json and
// case.txt, once; later runs write run objects again. Load takes the
// record of the latest run.
func TestBucketCaseRecords(t *testing.T) {
	ctx := context.Background()
	m := &bucket.Memory{}
	p := NewBucket(ctx, m)
	targets := []string{testInstance}
	if c, err := p.Load(targets); c != nil || err != nil {
		t.Fatalf("an empty prefix: %+v %v", c, err)
	}
	c := New(targets, []Volume{{InstanceID: testInstance, SnapshotID: testSnapA}, {InstanceID: testInstance, SnapshotID: testSnapB}}, "test", time.Now().UTC())
	c.Runs, c.Status = 1, StatusIncomplete
	if name, err := p.Save(c); err != nil || !isRunKey(name, RunCase) {
		t.Fatalf("an incomplete run: %q %v", name, err)
	}
	if _, err := m.Head(ctx, JSONName); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("case.json after an incomplete run: %v", err)
	}
	got, err := p.Load(targets)
	if err != nil || got == nil || got.Runs != 1 || got.Volumes[1].SnapshotID != testSnapB {
		t.Fatalf("loading the incomplete run: %+v %v", got, err)
	}
	for run := 2; run <= 4; run++ {
		got.Runs, got.Status = run, StatusComplete
		name, err := p.Save(got)
		if want := run == 2; err != nil || (name == JSONName) != want {
			t.Fatalf("run %d: %q %v", run, name, err)
		}
		if got, err = p.Load(targets); err != nil || got.Runs != run {
			t.Fatalf("after run %d: %+v %v", run, got, err)
		}
	}
	if keys := runObjects(t, m, RunCase); len(keys) != 3 {
		t.Fatalf("run objects: %v", keys)
	}
	if _, err := m.Head(ctx, TextName); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Load([]string{testSnapA}); !errors.As(err, new(*ConflictError)) {
		t.Fatalf("other targets: %v", err)
	}
	m.Set("evidence.json", []byte("{}"))
	if err := CheckBucketPrefix(ctx, m); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("the prefix of one snapshot's evidence: %v", err)
	}
}

func TestIsRunKey(t *testing.T) {
	now := time.Date(2026, 12, 5, 18, 4, 5, 0, time.UTC)
	a, _ := store.RunKey(now, RunCase)
	if !isRunKey(a, RunCase) || isRunKey(a, RunSnapshot) || runTime(a) != now {
		t.Fatalf("%q", a)
	}
	for _, k := range []string{"runs/20261305T180405Z-01234567-case.json", "runs/20261205T180405Z-0123456g-case.json", "x/runs/20261205T180405Z-01234567-case.json", "runs/20261205T180405Z-01234567-case.jsonx"} {
		if isRunKey(k, RunCase) {
			t.Errorf("%q taken for a run key", k)
		}
	}
}
