package casework

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/acquire"
)

func TestReadTargets(t *testing.T) {
	const snap, vol, inst = "snap-0a0000000000000a1", "vol-0123456789abcdef0", "i-0123abcd"
	ids, err := ReadTargets("f", strings.NewReader("# case 42\n\n "+snap+" # root\n"+vol+"\r\n"+inst))
	if err != nil || strings.Join(ids, " ") != snap+" "+vol+" "+inst {
		t.Fatalf("ReadTargets: %q, %v", ids, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "f: names no target"},
		{"# only\n", "f: names no target"},
		{snap + "\n\ni-XYZ\n", `f line 3: "i-XYZ": want i-, vol- or snap-`},
		{"vol-0123\n", `f line 1: "vol-0123"`},
		{snap + "\n" + snap + "\n", `invalid target "` + snap + `": named twice`},
		{strings.Repeat("x", 2000), "f line 1: line longer than 1024 bytes"},
		{strings.Repeat(" \n", MaxTargetsFileBytes), "f: larger than 1048576 bytes"},
		{strings.Repeat(snap+"\n", MaxTargets+1), "f line 1001: more than 1000 targets"},
	} {
		_, err := ReadTargets("f", strings.NewReader(tc.in))
		var te *TargetError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadTargets(%.30q): %v, want %q", tc.in, err, tc.want)
		}
	}
	for id, want := range map[string]Kind{snap: KindSnapshot, vol: KindVolume, inst: KindInstance, "i-0123456789abcdef0": KindInstance} {
		if k, err := KindOf(id); err != nil || k != want {
			t.Errorf("KindOf(%s) = %v, %v", id, k, err)
		}
	}
	for _, id := range []string{"i-0123ABCD", "vol-", "i-0123abcd0", "snap-", "ami-0123abcd", "i-0123abcd/.."} {
		if _, err := KindOf(id); err == nil {
			t.Errorf("KindOf(%q) accepted", id)
		}
	}
}

// Run isolates failures, and the case's status and exit code follow
// the rule: 3 when any volume is incomplete, else the first failure's.
func TestRunFailures(t *testing.T) {
	ids := []string{"snap-01", "snap-02", "snap-03", "snap-04"}
	errDenied := errors.New("denied")
	for _, tc := range []struct {
		fail   map[string]error
		status string
		code   int
		first  string
	}{
		{nil, StatusComplete, 0, ""},
		{map[string]error{"snap-02": errDenied, "snap-04": &acquire.IncompleteError{Failed: []acquire.FailedBlock{{Index: 3, Err: errDenied}}}}, StatusIncomplete, 3, "snap-04"},
		{map[string]error{"snap-03": errDenied, "snap-02": fs.ErrNotExist}, StatusFailed, 6, "snap-02"},
	} {
		c := New(ids, SnapshotVolumes(ids), "v", time.Now())
		var calls int
		progress := 0
		err := Run(context.Background(), c, func(ctx context.Context, v Volume, p func(acquire.Progress)) (Result, error) {
			p(acquire.Progress{Listed: 2, ListingDone: true, Stored: 1})
			return Result{Blocks: 2, Fetched: 2}, tc.fail[v.SnapshotID]
		}, Options{
			Code: func(err error) int {
				calls++
				switch {
				case errors.Is(err, errDenied) && !strings.Contains(err.Error(), "block"):
					return 5
				case errors.Is(err, fs.ErrNotExist):
					return 6
				}
				return 3
			},
			Progress: func(ps []Progress) {
				progress++
				for _, p := range ps {
					if p.Status == StatusPending || p.Listed != 2 || p.Stored != 2 || !p.ListingDone {
						t.Errorf("the last report of %s: %+v", p.SnapshotID, p)
					}
				}
			},
			ProgressEvery: time.Hour,
		})
		if c.Status != tc.status || c.ExitCode != tc.code || c.Runs != 1 || progress != 1 || calls != len(tc.fail) {
			t.Fatalf("%v: status %s, exit %d, runs %d, %d progress reports, %d codes", tc.fail, c.Status, c.ExitCode, c.Runs, progress, calls)
		}
		var ce *Error
		if (err == nil) != (tc.first == "") || err != nil && (!errors.As(err, &ce) || ce.SnapshotID != tc.first || !errors.Is(err, tc.fail[tc.first]) || ce.NotComplete != len(tc.fail)) {
			t.Fatalf("%v: error %v", tc.fail, err)
		}
		for _, v := range c.Volumes {
			if want := tc.fail[v.SnapshotID]; (v.Error == "") != (want == nil) || v.Blocks != 2 || (want == nil) != (v.Status == StatusComplete) {
				t.Fatalf("%v: volume %+v", tc.fail, v)
			}
		}
	}
}

// Load resumes the case of the same targets, in any order, and refuses
// other targets or a record that names a path outside the case.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	ids := []string{"snap-0a0000000000000a1", "snap-0b0000000000000b2"}
	if c, err := Load(dir, ids); c != nil || err != nil {
		t.Fatalf("no case: %v, %v", c, err)
	}
	c := New(ids, SnapshotVolumes(ids), "v", time.Date(2026, 12, 5, 15, 0, 0, 0, time.UTC))
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, []string{ids[1], ids[0]})
	if err != nil || len(got.Volumes) != 2 || got.Volumes[1].Directory != ids[1] || got.Status != StatusPending {
		t.Fatalf("Load: %+v, %v", got, err)
	}
	var ce *ConflictError
	if _, err := Load(dir, ids[:1]); !errors.As(err, &ce) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("other targets: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, JSONName))
	bad := strings.Replace(string(data), `"directory": "`+ids[0]+`"`, `"directory": "../`+ids[0]+`"`, 1)
	os.WriteFile(filepath.Join(dir, JSONName), []byte(bad), 0o600)
	if _, err := Load(dir, ids); err == nil || !strings.Contains(err.Error(), `directory "../`) {
		t.Fatalf("a directory outside the case: %v", err)
	}
	text, _ := os.ReadFile(filepath.Join(dir, TextName))
	want := fmt.Sprintf("ebsimager case: 0 of 2 volumes complete, status pending (exit 0)\n  targets       %s %s\n  account       no account-wide limit\n  created       2026-12-05T15:00:00Z\n  run 0         started 2026-12-05T15:00:00Z\n\n%s  pending\n  directory     %s/\n\n%s  pending\n  directory     %s/\n",
		ids[0], ids[1], ids[0], ids[0], ids[1], ids[1])
	if string(text) != want {
		t.Fatalf("case.txt:\n%s\nwant:\n%s", text, want)
	}
}

func TestPlanVolumes(t *testing.T) {
	const inst, vol = "i-0123456789abcdef0", "vol-0aaaaaaaaaaaaaaa1"
	pres := []Preserved{
		{InstanceID: inst, Device: "/dev/xvda", VolumeID: "vol-01", SnapshotID: "snap-01"},
		{InstanceID: inst, Device: "/dev/sdf", VolumeID: "vol-02", SnapshotID: "snap-02"},
		{VolumeID: vol, SnapshotID: "snap-03"},
		{VolumeID: "vol-09", SnapshotID: "snap-09"},
	}
	var got []string
	for _, v := range PlanVolumes([]string{"snap-05", vol, inst, "snap-02"}, pres) {
		got = append(got, v.SnapshotID+"@"+v.InstanceID+v.Device+":"+v.VolumeID)
	}
	want := "snap-05@: snap-03@:" + vol + " snap-01@" + inst + "/dev/xvda:vol-01 snap-02@" + inst + "/dev/sdf:vol-02 snap-09@:vol-09"
	if strings.Join(got, " ") != want {
		t.Fatalf("PlanVolumes:\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

func TestReadPreservation(t *testing.T) {
	dir := t.TempDir()
	const inst = "i-0123456789abcdef0"
	if found, err := ReadPreservation(dir, []string{inst}); found != nil || err != nil {
		t.Fatalf("no record: %v %v", found, err)
	}
	rec := `{"targets":["` + inst + `"],"outcome":"running","snapshots":[{"instance_id":"` + inst + `","device":"/dev/xvda","volume_id":"vol-01","snapshot_id":"snap-0aaaaaaaaaaaaaaa1","acquire":"snap-0aaaaaaaaaaaaaaa2"}],"calls":[]}`
	os.WriteFile(filepath.Join(dir, PreservationJSON), []byte(rec), 0o600)
	os.WriteFile(filepath.Join(dir, PreservationText), []byte("text"), 0o600)
	got, err := ReadPreservation(dir, []string{inst})
	if err != nil || got == nil || len(got.Snapshots) != 1 || got.Snapshots[0] != (Preserved{InstanceID: inst, Device: "/dev/xvda", VolumeID: "vol-01", SnapshotID: "snap-0aaaaaaaaaaaaaaa2"}) ||
		!strings.Contains(got.Stopped, "stopped while it ran") {
		t.Fatalf("ReadPreservation: %+v %v", got, err)
	}
	var ce *ConflictError
	if _, err := ReadPreservation(dir, []string{"i-0123abcd"}); !errors.As(err, &ce) {
		t.Fatalf("other targets: %v", err)
	}
	for n := 1; n <= 2; n++ {
		os.WriteFile(filepath.Join(dir, PreservationJSON), []byte(rec), 0o600)
		name, err := SetAsidePreservation(dir)
		if err != nil || name != fmt.Sprintf("preservation.failed-%d.json", n) {
			t.Fatalf("SetAsidePreservation: %q %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "preservation.failed-1.txt")); err != nil {
		t.Fatal(err)
	}
	if found, _ := ReadPreservation(dir, []string{inst}); found != nil {
		t.Fatal("the record was not set aside")
	}
}

func TestRetriesText(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]int64
		want string
	}{
		{nil, "no retries"},
		{map[string]int64{"throttle": 0}, "no retries"},
		{map[string]int64{"throttle": 1}, "1 retry (1 throttle)"},
		{map[string]int64{"server-error": 3, "throttle": 9}, "12 retries (9 throttle, 3 server-error)"},
	} {
		if got := RetriesText(tc.in); got != tc.want {
			t.Errorf("RetriesText(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
