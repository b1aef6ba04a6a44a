package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

const caseInstance = "i-0c0000000000000c1"

// ext4Disk is a 1 GiB disk holding one ext4 file system made by
// mkfs.ext4 -d from a small tree of files.
func ext4Disk(t *testing.T) string {
	t.Helper()
	testenv.RequireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for i, name := range []string{"etc/hostname", "var/log/auth.log", "home/user/notes.txt"} {
		p := filepath.Join(tree, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.Repeat(name+"\n", 1000*(i+1))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	disk := filepath.Join(dir, "data.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	testenv.Output(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", tree, disk)
	return disk
}

// The first "done when": acquire i-… against the emulator's
// instance of two raw disks snapshots both volumes as one set, acquires
// them at once under one account limiter, and leaves two evidence
// directories that export bit-exact, the preservation record and the
// case summary. A rerun makes no snapshot and fetches nothing.
func TestAcquireInstance(t *testing.T) {
	t.Parallel()
	root, err := sampledisk.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := ext4Disk(t)
	disks := map[string]string{"/dev/xvda": root, "/dev/sdf": data}
	sums := map[string]string{"/dev/xvda": sha256File(t, root), "/dev/sdf": sha256File(t, data)}
	srv, endpoint := emulatortest.StartInstance(t, emulator.Options{TrackBlocks: true, Latency: 2 * time.Millisecond}, caseInstance,
		emulatortest.RawVolume("/dev/xvda", root), emulatortest.RawVolume("/dev/sdf", data))
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	out := filepath.Join(dir, "case")
	r := c.ok("acquire", caseInstance, "--out", out, "--case-number", "IR-2026-14", "--examiner", "J. Doe", "--quiet")

	cnt := srv.Counters()
	if n := cnt.Total("CreateSnapshots"); n != 1 {
		t.Fatalf("%d CreateSnapshots calls, want 1 (one crash-consistent set)\n%s", n, cnt)
	}
	cs := loadCase(t, out)
	if cs.Status != casework.StatusComplete || cs.ExitCode != 0 || cs.Runs != 1 || len(cs.Volumes) != 2 || cs.AccountRate != 1000 ||
		strings.Join(cs.Targets, " ") != caseInstance || cs.Preservation != casework.PreservationJSON || cs.PreservationError != "" {
		t.Fatalf("case.json: %+v", cs)
	}
	rec, err := casework.ReadPreservation(out, []string{caseInstance})
	if err != nil || rec == nil || len(rec.Snapshots) != 2 || rec.Stopped != "" {
		t.Fatalf("preservation.json: %+v %v", rec, err)
	}
	preserved := rec.Snapshots
	var blocks int64
	for i, dev := range []string{"/dev/xvda", "/dev/sdf"} {
		v := cs.Volumes[i]
		ev := filepath.Join(out, v.SnapshotID)
		if v.InstanceID != caseInstance || v.Device != dev || v.VolumeID != emulator.VolumeID(caseInstance, dev) ||
			v.SnapshotID != preserved[i].SnapshotID || v.Directory != v.SnapshotID || v.Status != casework.StatusComplete ||
			v.ManifestSHA256 != manifestSum(t, ev) || v.Fetched != v.Blocks || v.GetCalls != v.Blocks || v.AccountTurns != v.GetCalls || v.Error != "" {
			t.Fatalf("volume %s: %+v", dev, v)
		}
		blocks += v.Blocks
		c.ok("verify", ev)
		img := filepath.Join(dir, strings.TrimPrefix(dev, "/dev/")+".raw")
		c.ok("export", ev, "--out", img, "--quiet")
		if got := sha256File(t, img); got != sums[dev] {
			t.Fatalf("%s: exported image sha256 %s, the disk %s %s", dev, got, disks[dev], sums[dev])
		}
	}
	if a, b := cs.Volumes[0], cs.Volumes[1]; !a.Started.Before(b.Finished) || !b.Started.Before(a.Finished) {
		t.Fatalf("the volumes were not acquired at once: %v–%v and %v–%v", a.Started, a.Finished, b.Started, b.Finished)
	}
	if n := cnt.Total("GetSnapshotBlock"); n != blocks {
		t.Fatalf("%d Gets for %d blocks", n, blocks)
	}
	if r.stdout != readFile(t, filepath.Join(out, casework.TextName)) {
		t.Fatalf("stdout is not case.txt:\n%s", r.stdout)
	}
	text := strings.NewReplacer(cs.Volumes[0].SnapshotID, "SNAP-ROOT", cs.Volumes[1].SnapshotID, "SNAP-DATA").Replace(caseText(t, out))
	golden(t, "case-instance", text)
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"case.json", "case.txt", "preservation.json", "preservation.txt", cs.Volumes[0].SnapshotID, cs.Volumes[1].SnapshotID}
	if cs.Volumes[0].SnapshotID > cs.Volumes[1].SnapshotID {
		want[4], want[5] = want[5], want[4]
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("the case directory holds %v, want %v", names, want)
	}

	// A rerun makes no snapshot and fetches nothing: it checks both.
	srv.ResetCounters()
	r = c.ok("acquire", caseInstance, "--out", out, "--quiet")
	if n, g := srv.Counters().Total("CreateSnapshots"), srv.Counters().Total("GetSnapshotBlock"); n != 0 || g != 0 {
		t.Fatalf("the rerun made %d CreateSnapshots and %d Get calls", n, g)
	}
	if !strings.Contains(r.stderr, "nothing is preserved again") {
		t.Fatalf("the rerun does not say it resumes:\n%s", r.stderr)
	}
	again := loadCase(t, out)
	for i, v := range again.Volumes {
		if v.SnapshotID != cs.Volumes[i].SnapshotID || v.Status != casework.StatusComplete || v.Kept != v.Blocks || v.ManifestSHA256 != cs.Volumes[i].ManifestSHA256 {
			t.Fatalf("rerun, volume %d: %+v", i, v)
		}
	}

	// A run that stopped after the preservation record and before
	// case.json is resumed from the record: still no new snapshot.
	os.Remove(filepath.Join(out, casework.JSONName))
	srv.ResetCounters()
	c.ok("acquire", caseInstance, "--out", out, "--quiet")
	if n := srv.Counters().Total("CreateSnapshots"); n != 0 {
		t.Fatalf("a rerun from preservation.json made %d CreateSnapshots calls", n)
	}
	if again = loadCase(t, out); again.Volumes[0].SnapshotID != cs.Volumes[0].SnapshotID || again.Volumes[1].Device != "/dev/sdf" || again.Status != casework.StatusComplete {
		t.Fatalf("case.json from preservation.json: %+v", again)
	}
}

// A preservation that stops part way (here LockSnapshot is denied after
// both snapshots were made) records the snapshots it made and why it
// stopped; the rerun acquires those snapshots and makes none.
func TestAcquireInstancePreservationStops(t *testing.T) {
	t.Parallel()
	srv, endpoint := emulatortest.StartInstance(t, emulator.Options{TrackBlocks: true, DenyEC2: []string{"LockSnapshot"}}, caseInstance,
		emulatortest.SyntheticVolume("/dev/xvda", 1, 0.02, 3), emulatortest.SyntheticVolume("/dev/sdf", 1, 0.03, 4))
	c := newCLI(t, endpoint)
	out := filepath.Join(t.TempDir(), "case")
	args := []string{"acquire", caseInstance, "--out", out, "--quiet", "--lock", "governance", "--lock-duration", "1d"}
	c.fails(exitDenied, "LockSnapshot", args...)
	cnt := srv.Counters()
	if cnt.Total("CreateSnapshots") != 1 || cnt.Total("GetSnapshotBlock") != 0 {
		t.Fatalf("calls:\n%s", cnt)
	}
	cs := loadCase(t, out)
	if cs.Status != casework.StatusPending || len(cs.Volumes) != 2 || !strings.Contains(cs.PreservationError, "LockSnapshot") || cs.Preservation != casework.PreservationJSON {
		t.Fatalf("case.json: %+v", cs)
	}
	snaps := []string{cs.Volumes[0].SnapshotID, cs.Volumes[1].SnapshotID}

	srv.ResetCounters()
	r := c.ok(args...)
	if n := srv.Counters().Total("CreateSnapshots") + srv.Counters().Total("LockSnapshot"); n != 0 {
		t.Fatalf("the rerun preserved again (%d calls)", n)
	}
	cs = loadCase(t, out)
	if cs.Status != casework.StatusComplete || cs.Volumes[0].SnapshotID != snaps[0] || cs.Volumes[1].SnapshotID != snaps[1] || cs.Runs != 1 {
		t.Fatalf("case.json after the rerun: %+v", cs)
	}
	if !strings.Contains(r.stdout, "preservation  stopped part way") {
		t.Fatalf("case.txt does not say the preservation stopped:\n%s", r.stdout)
	}
}

// --use-latest takes the newest completed snapshot of each volume: none
// is made; a volume target is preserved alone (CreateSnapshot).
func TestAcquireUseLatestAndVolume(t *testing.T) {
	t.Parallel()
	srv, endpoint := emulatortest.StartInstance(t, emulator.Options{TrackBlocks: true}, caseInstance,
		emulatortest.SyntheticVolume("/dev/xvda", 1, 0.02, 5), emulatortest.SyntheticVolume("/dev/sdf", 1, 0.03, 6))
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	c.ok("snapshot", caseInstance, "--record", filepath.Join(dir, "rec"), "--quiet")
	rec, err := casework.ReadPreservation(filepath.Join(dir, "rec"), []string{caseInstance})
	if err != nil || rec == nil || len(rec.Snapshots) != 2 {
		t.Fatalf("snapshot's record: %v %v", rec, err)
	}
	made := rec.Snapshots
	srv.ResetCounters()
	latest := filepath.Join(dir, "latest")
	c.ok("acquire", caseInstance, "--use-latest", "--out", latest, "--quiet")
	if n := srv.Counters().Total("CreateSnapshots") + srv.Counters().Total("CreateSnapshot"); n != 0 {
		t.Fatalf("--use-latest made %d snapshots", n)
	}
	cs := loadCase(t, latest)
	if cs.Status != casework.StatusComplete || len(cs.Volumes) != 2 || cs.Volumes[0].SnapshotID != made[0].SnapshotID || cs.Volumes[1].SnapshotID != made[1].SnapshotID {
		t.Fatalf("--use-latest case: %+v, made %+v", cs, made)
	}

	vol := emulator.VolumeID(caseInstance, "/dev/sdf")
	srv.ResetCounters()
	one := filepath.Join(dir, "vol")
	c.ok("acquire", vol, "--out", one, "--quiet")
	if n := srv.Counters().Total("CreateSnapshot"); n != 1 {
		t.Fatalf("%d CreateSnapshot calls for a volume", n)
	}
	cs = loadCase(t, one)
	if v := cs.Volumes; len(v) != 1 || v[0].VolumeID != vol || v[0].SnapshotID == made[1].SnapshotID || v[0].Status != casework.StatusComplete {
		t.Fatalf("volume case: %+v", cs)
	}
	// The volume did not change: both snapshots hold the same bytes.
	c.ok("export", filepath.Join(one, cs.Volumes[0].SnapshotID), "--out", filepath.Join(dir, "a.raw"), "--quiet")
	c.ok("export", filepath.Join(latest, made[1].SnapshotID), "--out", filepath.Join(dir, "b.raw"), "--quiet")
	if sha256File(t, filepath.Join(dir, "a.raw")) != sha256File(t, filepath.Join(dir, "b.raw")) {
		t.Fatal("two snapshots of an unchanged volume export differently")
	}
}

// A run killed outright while it waits for its snapshots leaves the
// preservation record saved after its last request; the rerun acquires
// the snapshots it names and makes none.
func TestAcquireInstanceKilledWhilePreserving(t *testing.T) {
	t.Parallel()
	srv, endpoint := emulatortest.StartInstance(t, emulator.Options{TrackBlocks: true, SnapshotDelay: 2 * time.Second}, caseInstance,
		emulatortest.SyntheticVolume("/dev/xvda", 1, 0.02, 7), emulatortest.SyntheticVolume("/dev/sdf", 1, 0.03, 8))
	c := newCLI(t, endpoint)
	out := filepath.Join(t.TempDir(), "case")
	args := []string{"acquire", caseInstance, "--out", out, "--quiet"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := c.command(ctx, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		if rec, _ := casework.ReadPreservation(out, []string{caseInstance}); rec != nil && len(rec.Snapshots) == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no preservation record with both snapshots")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(out, casework.JSONName)); err == nil {
		t.Fatal("the killed run got as far as case.json: the test proves nothing")
	}
	rec, _ := casework.ReadPreservation(out, []string{caseInstance})
	time.Sleep(2 * time.Second) // the snapshots complete
	srv.ResetCounters()
	c.ok(args...)
	if n := srv.Counters().Total("CreateSnapshots"); n != 0 {
		t.Fatalf("the rerun made %d CreateSnapshots calls", n)
	}
	cs := loadCase(t, out)
	if cs.Status != casework.StatusComplete || cs.Volumes[0].SnapshotID != rec.Snapshots[0].SnapshotID || cs.Volumes[1].SnapshotID != rec.Snapshots[1].SnapshotID ||
		!strings.Contains(cs.PreservationError, "stopped while it ran") {
		t.Fatalf("case.json: %+v", cs)
	}
}
