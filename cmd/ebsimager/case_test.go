package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/store"
)

const snapRaw = "snap-0c0000000000000c7"

func loadCase(t *testing.T, dir string) casework.Case {
	t.Helper()
	var c casework.Case
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, casework.JSONName))), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// caseText is case.txt with its times and durations masked, for a golden.
func caseText(t *testing.T, dir string) string {
	t.Helper()
	s := readFile(t, filepath.Join(dir, casework.TextName))
	s = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(s, "TIME")
	s = regexp.MustCompile(`sha256 [0-9a-f]{64}`).ReplaceAllString(s, "sha256 MANIFEST") // it holds the times
	return regexp.MustCompile(`in \d+\.\d s`).ReplaceAllString(s, "in S s")
}

// manifestSum is the SHA-256 of an evidence directory's manifest.
func manifestSum(t *testing.T, ev string) string {
	t.Helper()
	return sha256File(t, filepath.Join(ev, store.ManifestName))
}

// Many snapshots, one synthetic and one a real disk image, are acquired
// at once into DIR/<snapshot-id>/, each a complete evidence directory
// that verifies and exports bit-exact, and the case files record them;
// a rerun checks both and fetches nothing.
func TestAcquireCaseOfSnapshots(t *testing.T) {
	t.Parallel()
	disk, err := sampledisk.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	if err := srv.AddRawImage(snapRaw, disk, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref")
	c.ok("acquire", snapA, "--out", ref, "--quiet")
	out := filepath.Join(dir, "case")
	srv.ResetCounters()
	r := c.ok("acquire", snapA, snapRaw, "--out", out, "--quiet")
	gets := srv.Counters().Total("GetSnapshotBlock")

	cs := loadCase(t, out)
	if cs.Format != casework.Format || cs.Status != casework.StatusComplete || cs.ExitCode != 0 || cs.Runs != 1 ||
		strings.Join(cs.Targets, " ") != snapA+" "+snapRaw || len(cs.Volumes) != 2 || cs.Preservation != "" || cs.AccountRate != 1000 {
		t.Fatalf("case.json: %+v", cs)
	}
	var blocks int64
	for i, id := range []string{snapA, snapRaw} {
		v := cs.Volumes[i]
		ev := filepath.Join(out, id)
		if v.SnapshotID != id || v.Directory != id || v.Status != casework.StatusComplete || v.ManifestSHA256 != manifestSum(t, ev) ||
			v.Fetched != v.Blocks || v.Kept != 0 || v.GetCalls != v.Blocks || v.ListCalls < 1 || v.Error != "" || v.Bytes != v.Blocks*512<<10 || v.AccountTurns != v.GetCalls {
			t.Fatalf("volume %d: %+v", i, v)
		}
		blocks += v.Blocks
		c.ok("verify", ev)
	}
	if a, b := cs.Volumes[0], cs.Volumes[1]; !a.Started.Before(b.Finished) || !b.Started.Before(a.Finished) {
		t.Fatalf("the volumes were not acquired at once: %v–%v and %v–%v", a.Started, a.Finished, b.Started, b.Finished)
	}
	if gets != blocks {
		t.Fatalf("%d Gets for %d blocks", gets, blocks)
	}
	if manifestBlocks(t, filepath.Join(out, snapA)) != manifestBlocks(t, ref) {
		t.Fatal("the case's evidence of snapA differs from a single acquisition's")
	}
	img := filepath.Join(dir, "raw.img")
	c.ok("export", filepath.Join(out, snapRaw), "--out", img, "--quiet")
	if sha256File(t, img) != sha256File(t, disk) {
		t.Fatal("the exported image is not the disk")
	}
	if r.stdout != readFile(t, filepath.Join(out, casework.TextName)) {
		t.Fatalf("stdout is not case.txt:\n%s", r.stdout)
	}
	golden(t, "case-snapshots", caseText(t, out))
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "case.json case.txt "+snapA+" "+snapRaw {
		t.Fatalf("case directory holds %s", got)
	}

	// The rerun checks both and fetches nothing.
	manifests := []string{cs.Volumes[0].ManifestSHA256, cs.Volumes[1].ManifestSHA256}
	srv.ResetCounters()
	c.ok("acquire", snapRaw, snapA, "--out", out, "--quiet")
	if n := srv.Counters().Total("GetSnapshotBlock"); n != 0 {
		t.Fatalf("rerun of a complete case made %d Gets", n)
	}
	cs = loadCase(t, out)
	for i, v := range cs.Volumes {
		if v.Status != casework.StatusComplete || v.ManifestSHA256 != manifests[i] || v.Fetched != 0 || v.Kept != v.Blocks || cs.Runs != 2 {
			t.Fatalf("rerun, volume %d: %+v", i, v)
		}
	}

	// Other targets do not go into this case; nor does a case into the
	// evidence directory of one snapshot.
	c.fails(exitConflict, "holds the case of", "acquire", snapA, "--out", out, "--targets", writeTargets(t, snapB))
	c.fails(exitConflict, "evidence directory of one snapshot", "acquire", snapA, snapRaw, "--out", ref)
}

func writeTargets(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "targets")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// --targets reads one id a line, comments and blank lines skipped; a
// malformed id is named by its line, before anything is fetched.
func TestAcquireTargetsFile(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, specA, specB)
	c := newCLI(t, endpoint)
	out := filepath.Join(t.TempDir(), "case")
	c.fails(exitInvalid, "line 3: \"snap-XYZ\"", "acquire", "--out", out, "--targets", writeTargets(t, "# the case", snapA, "snap-XYZ"))
	c.fails(exitInvalid, "named twice", "acquire", snapA, "--out", out, "--targets", writeTargets(t, snapA))
	if n := srv.Counters().Total("ListSnapshotBlocks"); n != 0 {
		t.Fatalf("refused targets made %d List calls", n)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("refused targets created the case directory")
	}
	// One snapshot named in a file makes a case too.
	c.ok("acquire", "--out", out, "--quiet", "--targets", writeTargets(t, "", "  "+snapB+"  # the data volume", ""))
	if cs := loadCase(t, out); len(cs.Volumes) != 1 || cs.Volumes[0].SnapshotID != snapB || cs.Status != casework.StatusComplete {
		t.Fatalf("case.json: %+v", cs)
	}
	c.ok("verify", filepath.Join(out, snapB))
	// --json prints case.json.
	r := c.ok("acquire", "--out", out, "--json", "--targets", writeTargets(t, snapB))
	if r.stdout != readFile(t, filepath.Join(out, casework.JSONName)) || r.stderr != "" {
		t.Fatalf("--json printed:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}

// One volume's failure stops only that volume: the others complete; the
// exit code is 3 when any is incomplete, else the first failure's, and
// case.json says which. The rerun resumes the incomplete volume alone.
func TestAcquireCaseFailures(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, specA, specB)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	out := filepath.Join(dir, "case")
	ref := filepath.Join(dir, "ref")
	c.ok("acquire", snapB, "--out", ref, "--quiet")
	var victim int64 = -1
	for i := range blockFiles(t, ref) {
		if victim < 0 || i < victim {
			victim = i
		}
	}
	srv.SetFaults(emulator.Faults{FailBlocks: []emulator.BlockFault{{Snapshot: snapB, Index: victim, Error: "InternalServerException"}}})
	missing := "snap-0123456789abcdef0"
	r := c.fails(exitIncomplete, "2 of 3 volumes did not complete", "acquire", snapA, missing, snapB, "--out", out, "--quiet", "--max-attempts", "1")
	if !strings.Contains(r.stderr, snapB+": 1 block failed after every retry") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	cs := loadCase(t, out)
	a, m, b := cs.Volumes[0], cs.Volumes[1], cs.Volumes[2]
	if cs.Status != casework.StatusIncomplete || cs.ExitCode != exitIncomplete ||
		a.Status != casework.StatusComplete || a.ExitCode != 0 || a.ManifestSHA256 != manifestSum(t, filepath.Join(out, snapA)) ||
		m.Status != casework.StatusFailed || m.ExitCode != exitNotFound || !strings.Contains(m.Error, "does not exist") ||
		b.Status != casework.StatusIncomplete || b.ExitCode != exitIncomplete || b.FailedBlocks != 1 || b.Fetched != b.Blocks-1 ||
		!strings.Contains(b.Error, fmt.Sprintf("block %d:", victim)) || b.ManifestSHA256 != "" {
		t.Fatalf("case.json: %+v", cs)
	}
	c.ok("verify", filepath.Join(out, snapA))
	for _, v := range []string{a.Error, m.Error, b.Error} {
		if v != "" && !strings.Contains(r.stdout, v[:20]) {
			t.Fatalf("the summary does not report %q:\n%s", v, r.stdout)
		}
	}

	// Without an incomplete volume, the first failure's code decides.
	srv.SetFaults(emulator.Faults{})
	srv.ResetCounters()
	c.fails(exitNotFound, missing, "acquire", snapA, missing, snapB, "--out", out, "--quiet")
	if srv.BlockGets(snapB, victim) != 1 || srv.Counters().Total("GetSnapshotBlock") != 1 {
		t.Fatalf("the rerun made %d Gets (%d of block %d)", srv.Counters().Total("GetSnapshotBlock"), srv.BlockGets(snapB, victim), victim)
	}
	cs = loadCase(t, out)
	if cs.Status != casework.StatusFailed || cs.ExitCode != exitNotFound || cs.Volumes[0].Fetched != 0 ||
		cs.Volumes[2].Status != casework.StatusComplete || cs.Volumes[2].Fetched != 1 || cs.Volumes[2].Kept != cs.Volumes[2].Blocks-1 {
		t.Fatalf("case.json after the rerun: %+v", cs)
	}
	c.ok("verify", filepath.Join(out, snapB))
}

// The progress line shows every volume, by device when it has one.
func TestCaseLine(t *testing.T) {
	vols := []casework.Progress{
		{SnapshotID: snapA, Device: "/dev/xvda", Status: casework.StatusPending, Progress: acquire.Progress{Listed: 100, ListingDone: true, Stored: 40, Skipped: 10, Bytes: 40 << 19}},
		{SnapshotID: snapB, Status: casework.StatusPending, Progress: acquire.Progress{Listed: 7, Stored: 3, Bytes: 3 << 19, Failed: 1}},
		{SnapshotID: snapRaw, Status: casework.StatusIncomplete, Progress: acquire.Progress{Listed: 9, ListingDone: true, Stored: 8, Bytes: 8 << 19, Failed: 1}},
	}
	want := "/dev/xvda 50/100 · " + snapB + " 3/listing… · " + snapRaw + " incomplete  25.5 MiB  2.5 MiB/s  retries 0  failed 2"
	if got := caseLine(vols, 10*time.Second); got != want {
		t.Fatalf("caseLine:\n%s\nwant\n%s", got, want)
	}
}

// The flags of one snapshot, or of the preservation step, are refused
// where they do not apply, before anything is asked of AWS.
func TestAcquireCaseUsage(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "http://127.0.0.1:1")
	dir := t.TempDir()
	out := filepath.Join(dir, "case")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"acquire", snapA, snapB, "--image", filepath.Join(dir, "x.raw")}, "--image applies to a single snapshot"},
		{[]string{"acquire", caseInstance, "--out", out, "--base", dir}, "--base applies to a single snapshot"},
		{[]string{"acquire", caseInstance, "--out", out, "--no-wait"}, "--no-wait applies to snapshot"},
		{[]string{"acquire", snapA, "--out", out, "--lock", "governance"}, "--lock applies to instance (i-…) and volume (vol-…) targets"},
		{[]string{"acquire", snapA, snapB, "--out", out, "--use-latest"}, "--use-latest applies to instance"},
		{[]string{"acquire", caseInstance, "--out", out, "--encrypt"}, "--encrypt in a case needs --recipient"},
		{[]string{"acquire", caseInstance, "--out", out, "--account-rate", "-1"}, "--account-rate: rate -1: must not be negative"},
		{[]string{"acquire", caseInstance, "--out", out, "--lock", "governance"}, "--lock-duration"},
	} {
		c.fails(exitUsage, tc.want, tc.args...)
	}
	c.fails(exitInvalid, `invalid target "i-XYZ"`, "acquire", snapA, "i-XYZ", "--out", out)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a refused command made the case directory")
	}
}

// The pre-flight checks every snapshot of a case before any Get: an
// unreadable one fails at once (exit 15), without a List or Get, and the
// others complete.
func TestAcquireCasePreflight(t *testing.T) {
	t.Parallel()
	const archived = "snap-0f0000000000000c2"
	srv, endpoint := startEmulator(t, emulator.Options{SnapshotMeta: map[string]emulator.SnapshotMeta{archived: {StorageTier: "archive"}}},
		specA, archived+"=1GiB,0.1,9")
	c := newCLI(t, endpoint)
	out := filepath.Join(t.TempDir(), "case")
	c.fails(exitUnreadable, "archive storage tier", "acquire", archived, snapA, "--out", out, "--quiet")
	cs := loadCase(t, out)
	arch, a := cs.Volumes[0], cs.Volumes[1]
	if cs.ExitCode != exitUnreadable || cs.Status != casework.StatusFailed || arch.Status != casework.StatusFailed || arch.ExitCode != exitUnreadable ||
		arch.ListCalls != 0 || arch.GetCalls != 0 || a.Status != casework.StatusComplete || a.GetCalls != a.Blocks {
		t.Fatalf("case.json: %+v", cs)
	}
	if n := srv.Counters().Total("GetSnapshotBlock"); n != a.Blocks {
		t.Fatalf("%d Gets, want %d (none of the archived snapshot)", n, a.Blocks)
	}
	if _, err := os.Stat(filepath.Join(out, archived)); err == nil {
		t.Fatal("an evidence directory was made for the archived snapshot")
	}
}
