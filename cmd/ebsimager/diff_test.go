package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/diff"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

const (
	snapDiffBase  = "snap-0d1f000000000000a"
	snapDiffNew   = "snap-0d1f000000000000b"
	snapDiffOther = "snap-0d1f000000000000c"
)

// blocksImage writes a raw image whose listed blocks are filled with the
// given byte.
func blocksImage(t *testing.T, path string, size int64, blocks map[int64]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		if _, err := f.WriteAt(bytes.Repeat([]byte{b}, block.Size), i*block.Size); err != nil {
			t.Fatal(err)
		}
	}
}

// rawPair serves a base image and a child of it in which block 1 changed,
// block 2 was zeroed (unlisted: removed), and 3, 6 and 7 were added.
func rawPair(t *testing.T) (*emulator.Server, string) {
	t.Helper()
	dir := t.TempDir()
	base, next := filepath.Join(dir, "base.raw"), filepath.Join(dir, "new.raw")
	blocksImage(t, base, 8<<20, map[int64]byte{0: 0x11, 1: 0x22, 2: 0x33, 5: 0x55})
	blocksImage(t, next, 8<<20, map[int64]byte{0: 0x11, 1: 0x2f, 3: 0x44, 5: 0x55, 6: 0x66, 7: 0x77})
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapDiffBase, base, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddRawImage(snapDiffNew, next, emulator.RawOptions{Parent: snapDiffBase}); err != nil {
		t.Fatal(err)
	}
	return srv, endpoint
}

func TestDiffExactOutput(t *testing.T) {
	_, endpoint := rawPair(t)
	c := newCLI(t, endpoint)
	r := c.ok("diff", snapDiffBase, snapDiffNew)
	want := `changes from snap-0d1f000000000000a to snap-0d1f000000000000b (1 GiB volume, 524288-byte blocks)
 start_block   blocks           offset         length  kind     partitions
           1        1           524288         524288  changed  -
           2        1          1048576         524288  removed  -
           3        1          1572864         524288  added    -
           6        2          3145728        1048576  added    -
total: 5 blocks (2621440 bytes) in 4 runs: 3 added, 1 changed, 1 removed; 1 List calls
`
	if r.stdout != want {
		t.Fatalf("text:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = c.ok("diff", snapDiffBase, snapDiffNew, "--json")
	wantJSON := `{
  "base_snapshot": "snap-0d1f000000000000a",
  "snapshot": "snap-0d1f000000000000b",
  "volume_size_gib": 1,
  "block_size": 524288,
  "list_calls": 1,
  "get_calls": 0,
  "totals": {
    "runs": 4,
    "blocks": 5,
    "bytes": 2621440,
    "added": 3,
    "changed": 1,
    "removed": 1
  },
  "runs": [
    {
      "start_block": 1,
      "blocks": 1,
      "offset": 524288,
      "length": 524288,
      "kind": "changed"
    },
    {
      "start_block": 2,
      "blocks": 1,
      "offset": 1048576,
      "length": 524288,
      "kind": "removed"
    },
    {
      "start_block": 3,
      "blocks": 1,
      "offset": 1572864,
      "length": 524288,
      "kind": "added"
    },
    {
      "start_block": 6,
      "blocks": 2,
      "offset": 3145728,
      "length": 1048576,
      "kind": "added"
    }
  ]
}
`
	if r.stdout != wantJSON || r.stderr != "" {
		t.Fatalf("JSON:\n%s\nwant:\n%s\nstderr: %q", r.stdout, wantJSON, r.stderr)
	}

	// The original tool's changelog, one line per changed block.
	out := filepath.Join(t.TempDir(), snapDiffNew+"_changelog.txt")
	c.ok("diff", snapDiffBase, snapDiffNew, "--out", out, "--quiet")
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wantLog := "blockindex|offset|length\n1|524288|524288\n2|1048576|524288\n3|1572864|524288\n6|3145728|524288\n7|3670016|524288\n"
	if string(got) != wantLog {
		t.Fatalf("changelog:\n%s\nwant:\n%s", got, wantLog)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("changelog mode %v, %v", fi.Mode(), err)
	}
	c.fails(exitConflict, "pass --force", "diff", snapDiffBase, snapDiffNew, "--out", out)
	c.ok("diff", snapDiffBase, snapDiffNew, "--out", out, "--force", "--quiet")
}

// TestDiffSyntheticChild checks the command's runs against the emulator's
// ListChangedBlocks, walked here with the EBS client, for a synthetic
// child with all three kinds spread over many pages.
func TestDiffSyntheticChild(t *testing.T) {
	srv, endpoint := startEmulator(t, emulator.Options{}, snapDiffBase+"=2GiB,0.2,5")
	if err := srv.AddChild(snapDiffNew + "=child-of:" + snapDiffBase + ",0.2,6"); err != nil {
		t.Fatal(err)
	}
	r := newCLI(t, endpoint).ok("diff", snapDiffBase, snapDiffNew, "--json")
	var d diff.Diff
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	want := map[int64]diff.Kind{}
	snap := &ebs.Snapshot{API: emulatortest.Client(t, endpoint), ID: snapDiffNew, PageSize: 100}
	err := snap.Changes(context.Background(), snapDiffBase, 0, func(p ebs.ChangePage) error {
		for _, c := range p.Changes {
			want[c.Index] = diff.Change{Index: c.Index, InBase: c.FirstToken != "", InNew: c.SecondToken != ""}.Kind()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]diff.Kind{}
	var counts = map[diff.Kind]int64{}
	for i, run := range d.Runs {
		if run.Offset != run.StartBlock*block.Size || run.Length != run.Blocks*block.Size {
			t.Fatalf("run %+v: offset or length wrong", run)
		}
		if i > 0 && d.Runs[i-1].End() == run.StartBlock && d.Runs[i-1].Kind == run.Kind {
			t.Fatalf("runs %d and %d should have been merged", i-1, i)
		}
		for b := run.StartBlock; b < run.End(); b++ {
			got[b] = run.Kind
			counts[run.Kind]++
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the command's %d changed blocks differ from the %d listed", len(got), len(want))
	}
	if counts[diff.Added] == 0 || counts[diff.Changed] == 0 || counts[diff.Removed] == 0 ||
		d.Totals.Added != counts[diff.Added] || d.Totals.Changed != counts[diff.Changed] || d.Totals.Removed != counts[diff.Removed] ||
		d.Totals.Blocks != int64(len(want)) || d.Totals.Bytes != int64(len(want))*block.Size || d.Totals.Runs != len(d.Runs) {
		t.Fatalf("totals %+v, counted %v", d.Totals, counts)
	}
	if d.ListCalls != 1 {
		t.Fatalf("%d List calls for %d changes, want 1 (10,000 per page)", d.ListCalls, len(want))
	}
}

func TestDiffErrors(t *testing.T) {
	srv, endpoint := rawPair(t)
	if err := srv.AddSynthetic(snapDiffOther + "=1GiB,0.1,7"); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	r := c.fails(exitInvalid, "are not snapshots of one volume's lineage", "diff", snapDiffOther, snapDiffNew)
	if !strings.Contains(r.stderr, "UNRELATED_SNAPSHOTS") || !strings.Contains(r.stderr, "ebsimager: hint: ListChangedBlocks compares") {
		t.Fatalf("unrelated snapshots:\n%s", r.stderr)
	}
	c.fails(exitInvalid, `invalid snapshot id "vol-1"`, "diff", "vol-1", snapDiffNew)
	c.fails(exitNotFound, "hint: check the snapshot id", "diff", snapDiffBase, "snap-0123456789abcdef0")
	c.fails(exitUsage, "missing argument: ebsimager diff takes BASE_SNAPSHOT SNAPSHOT", "diff", snapDiffBase)
	c.fails(exitUsage, "--evidence needs --base-evidence", "diff", snapDiffBase, snapDiffNew, "--evidence", "x")
	c.fails(exitLocalIO, "no such file", "diff", snapDiffBase, snapDiffNew, "--base-evidence", filepath.Join(t.TempDir(), "none"))
}

func diffTool(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(testenv.RequireTool(t, name)[0], args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// editDiskPartition lets edit change one partition of disk with the
// file-system tools, through a copy of it.
func editDiskPartition(t *testing.T, disk string, off, n int64, edit func(img string)) {
	t.Helper()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(img, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	edit(img)
	if buf, err = os.ReadFile(img); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(buf, off); err != nil {
		t.Fatal(err)
	}
}

// TestDiffNamesFiles changes known files of the sample disk's ext4 and
// NTFS partitions with debugfs and ntfscp, serves the disk before and
// after as related snapshots, and checks the files diff names, with the
// base as evidence (acquired) or as an image, and the new snapshot
// fetched or read from its own image.
func TestDiffNamesFiles(t *testing.T) {
	t.Parallel()
	testenv.RequireTool(t, "debugfs", "ntfscp", "cp")
	dir := t.TempDir()
	base, err := sampledisk.Extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(dir, "new.raw")
	diffTool(t, "cp", "--sparse=always", base, next)
	work := t.TempDir()
	put := func(name, data string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const extOff, ntfsOff, partLen = 2048 * 512, (2048 + 131072) * 512, 131072 * 512 // make-sample-disk.sh's layout
	editDiskPartition(t, next, extOff, partLen, func(img string) {
		cmds := put("cmds", "rm /etc/passwd\nwrite "+put("passwd", "root:x:0:0::/root:/bin/sh\nmallory:x:0:0::/:/bin/sh\n")+" /etc/passwd\n"+
			"rm /home/analyst/notes.txt\nwrite "+put("implant", strings.Repeat("implant ", 1000))+" /usr/local/bin/implant\n")
		diffTool(t, "debugfs", "-w", "-f", cmds, img)
	})
	editDiskPartition(t, next, ntfsOff, partLen, func(img string) {
		diffTool(t, "ntfscp", img, put("hosts.txt", "127.0.0.1 localhost\n198.51.100.66 exfil.example.invalid\n"), "hosts.txt")
	})
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapDiffBase, base, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddRawImage(snapDiffNew, next, emulator.RawOptions{Parent: snapDiffBase}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapDiffBase, "--out", ev, "--quiet")

	srv.ResetCounters()
	r := c.ok("diff", snapDiffBase, snapDiffNew, "--base-evidence", ev, "--json")
	var d diff.Diff
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	gets := srv.Counters().Count("GetSnapshotBlock", emulator.OutcomeOK)
	if gets == 0 || gets > d.Totals.Blocks || d.GetCalls != gets {
		t.Fatalf("%d blocks fetched (%d counted) for %d changed", gets, d.GetCalls, d.Totals.Blocks)
	}
	files := map[string]diff.FileChange{}
	for _, f := range d.Files {
		files[f.Path] = f
	}
	for path, want := range map[string]string{
		"/etc/passwd":             diff.FileChanged,
		"/home/analyst/notes.txt": diff.FileDeleted,
		"/usr/local/bin/implant":  diff.FileAdded,
		"/hosts.txt":              diff.FileChanged,
	} {
		f, ok := files[path]
		if !ok || f.Status != want || f.Kind != "file" {
			t.Errorf("%s: %+v (named %v), want %s", path, f, ok, want)
		}
	}
	if f := files["/usr/local/bin/implant"]; !f.Data || f.DataBytes == 0 || f.Partition != 1 || f.FileSystem != "ext4" {
		t.Errorf("implant: %+v", f)
	}
	if f := files["/hosts.txt"]; !f.Data || f.Partition != 2 || f.FileSystem != "ntfs" {
		t.Errorf("hosts.txt: %+v", f)
	}
	for _, path := range []string{"/README.txt", "/etc/hostname", "/var/log/auth.log", "/Security.log", "/tool.bin"} {
		if f, ok := files[path]; ok {
			t.Errorf("untouched %s named: %+v", path, f)
		}
	}
	if len(d.Partitions) != 2 || d.Partitions[0].FileSystem != "ext4" || !d.Partitions[0].Mapped || d.Partitions[1].FileSystem != "ntfs" || !d.Partitions[1].Mapped {
		t.Fatalf("partitions %+v", d.Partitions)
	}
	for _, run := range d.Runs {
		if len(run.Partitions) == 0 {
			t.Errorf("run %+v outside the partitions", run)
		}
	}

	// The same files from the base as an image and the new snapshot's
	// own image, with no block fetched.
	srv.ResetCounters()
	r2 := c.ok("diff", snapDiffBase, snapDiffNew, "--base-evidence", base, "--evidence", next, "--json")
	var d2 diff.Diff
	if err := json.Unmarshal([]byte(r2.stdout), &d2); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d2.Files, d.Files) || d2.GetCalls != 0 || srv.Counters().Count("GetSnapshotBlock", emulator.OutcomeOK) != 0 {
		t.Fatalf("with --evidence: %d files (want %d), %d Get calls", len(d2.Files), len(d.Files), d2.GetCalls)
	}
	text := c.ok("diff", snapDiffBase, snapDiffNew, "--base-evidence", ev, "--quiet").stdout
	for _, line := range []string{
		"  deleted file      partition 1 ext4 /home/analyst/notes.txt (",
		"  added   file      partition 1 ext4 /usr/local/bin/implant (data ",
		`  partition 2 "EVIDENCE-NTFS" (ntfs) at 68157440, 67108864 bytes: `,
	} {
		if !strings.Contains(text, line) {
			t.Errorf("text output lacks %q:\n%s", line, text)
		}
	}

	// Evidence of the other snapshot is refused.
	c.fails(exitConflict, "holds evidence of "+snapDiffBase+", not "+snapDiffNew, "diff", snapDiffBase, snapDiffNew, "--base-evidence", ev, "--evidence", ev)

	// The base's evidence in S3 gives the same diff, text, JSON (the
	// same blocks fetched) and changelog, as its directory.
	s3Env(t, c)
	s3ev := "s3://plain/diff-base/"
	c.ok("acquire", snapDiffBase, "--out", s3ev, "--quiet")
	if got := c.ok("diff", snapDiffBase, snapDiffNew, "--base-evidence", s3ev, "--json").stdout; got != r.stdout {
		t.Errorf("diff --base-evidence %s --json:\n%s\nfrom the directory:\n%s", s3ev, got, r.stdout)
	}
	logDir, logS3 := filepath.Join(dir, "dir.log"), filepath.Join(dir, "s3.log")
	c.ok("diff", snapDiffBase, snapDiffNew, "--base-evidence", ev, "--quiet", "--out", logDir)
	if got := c.ok("diff", snapDiffBase, snapDiffNew, "--base-evidence", s3ev, "--quiet", "--out", logS3).stdout; got != text {
		t.Errorf("diff --base-evidence %s:\n%s\nfrom the directory:\n%s", s3ev, got, text)
	}
	if a, b := readFile(t, logDir), readFile(t, logS3); a != b || !strings.HasPrefix(a, "blockindex|offset|length\n") {
		t.Errorf("changelog from S3:\n%s\nfrom the directory:\n%s", b, a)
	}
}
