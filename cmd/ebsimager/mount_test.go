package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/mount/mounttest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

const snapMount = "snap-0f0e0000000000131"

// mountRun is ebsimager mount running in the background.
type mountRun struct {
	cmd    *exec.Cmd
	dir    string
	mu     sync.Mutex
	stderr strings.Builder
	done   chan struct{} // stderr reached its end
}

// startMount runs ebsimager mount source DIR extra… on a new empty
// directory and waits for its ready line. The mount is taken down when
// the test ends, failed or not.
func startMount(t *testing.T, c *cli, source string, extra ...string) *mountRun {
	t.Helper()
	m := &mountRun{dir: t.TempDir(), done: make(chan struct{})}
	t.Cleanup(func() { exec.Command("fusermount3", "-u", "-z", m.dir).Run() })
	m.cmd = c.command(context.Background(), append([]string{"mount", source, m.dir}, extra...)...)
	pipe, err := m.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if m.cmd.ProcessState == nil {
			m.cmd.Process.Kill()
			m.cmd.Wait()
		}
	})
	ready := make(chan struct{})
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			m.mu.Lock()
			m.stderr.WriteString(sc.Text() + "\n")
			m.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "ebsimager: mounted ") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-m.done:
		m.cmd.Wait()
		t.Fatalf("mount %s ended before it was ready: exit %d\n%s", source, m.cmd.ProcessState.ExitCode(), m.errText())
	case <-time.After(time.Minute):
		t.Fatalf("mount %s not ready in a minute:\n%s", source, m.errText())
	}
	return m
}

func (m *mountRun) errText() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stderr.String()
}

// end ends the mount by how ("SIGINT", "SIGTERM" or "fusermount3") and
// asserts exit 0, the mount gone and the directory empty again; it
// returns stderr.
func (m *mountRun) end(t *testing.T, how string) string {
	t.Helper()
	switch how {
	case "SIGINT":
		m.cmd.Process.Signal(os.Interrupt)
	case "SIGTERM":
		m.cmd.Process.Signal(syscall.SIGTERM)
	default:
		if out, err := exec.Command("fusermount3", "-u", m.dir).CombinedOutput(); err != nil {
			t.Fatalf("fusermount3 -u: %v\n%s", err, out)
		}
	}
	exited := make(chan error, 1)
	go func() { <-m.done; exited <- m.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("mount ended by %s: %v\n%s", how, err, m.errText())
		}
	case <-time.After(time.Minute):
		t.Fatalf("mount did not end within a minute of %s", how)
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(data), " "+m.dir+" ") {
		t.Fatalf("%s is still mounted after %s (%v)", m.dir, how, err)
	}
	if names, err := os.ReadDir(m.dir); err != nil || len(names) != 0 {
		t.Fatalf("after the mount %s holds %v (%v)", m.dir, names, err)
	}
	return m.errText()
}

// checkMounted asserts with cmp, mmls, fls and icat that the mount on
// dir shows disk as the image file at raw does.
func checkMounted(t *testing.T, dir string, disk mounttest.Disk, whole bool) {
	t.Helper()
	tools := testenv.RequireTool(t, "mmls", "fls", "icat", "cmp")
	mmls, fls, icat, cmp := tools[0], tools[1], tools[2], tools[3]
	at := func(name string) string { return filepath.Join(dir, name) }
	for name, size := range map[string]int64{"disk.raw": mounttest.DiskSize, "p1.raw": mounttest.Ext4Len, "p2.raw": mounttest.FATLen} {
		fi, err := os.Stat(at(name))
		if err != nil || fi.Size() != size || fi.Mode() != 0o444 {
			t.Fatalf("%s: %v; want size %d, mode 0444", name, fi, size)
		}
	}
	if names, _ := os.ReadDir(dir); len(names) != 3 {
		t.Fatalf("the mount holds %v; want disk.raw, p1.raw, p2.raw", names)
	}
	if whole {
		runTool(t, cmp, at("disk.raw"), disk.Path)
	}
	if got, want := runTool(t, mmls, at("disk.raw")), runTool(t, mmls, disk.Path); got != want {
		t.Fatalf("mmls on the mount:\n%s\non the image:\n%s", got, want)
	}
	ext4 := fmt.Sprint(mounttest.Ext4Off / 512)
	flsDisk := runTool(t, fls, "-r", "-p", "-o", ext4, at("disk.raw"))
	if want := runTool(t, fls, "-r", "-p", "-o", ext4, disk.Path); flsDisk != want {
		t.Fatalf("fls -r -o %s on the mount:\n%s\non the image:\n%s", ext4, flsDisk, want)
	}
	if got, want := runTool(t, fls, "-r", "-p", at("p2.raw")), runTool(t, fls, "-r", "-p", "-o", fmt.Sprint(mounttest.FATOff/512), disk.Path); got != want {
		t.Fatalf("fls -r on p2.raw:\n%s\non the image:\n%s", got, want)
	}
	row := regexp.MustCompile(`(?m)^r/r (\d+):\t(.+)$`)
	inodes := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(flsDisk, -1) {
		inodes["/"+m[2]] = m[1]
	}
	for name, data := range disk.Ext4 {
		if name == "/filler.bin" {
			continue // left unread: a live mount fetches only what is read
		}
		if got := runTool(t, icat, "-o", ext4, at("disk.raw"), inodes[name]); got != string(data) {
			t.Fatalf("icat %s (inode %q) on the mount: %d bytes, want the %d put in", name, inodes[name], len(got), len(data))
		}
	}
	if f, err := os.OpenFile(at("disk.raw"), os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("opening disk.raw for writing: %v; want EROFS", err)
	}
	if err := os.WriteFile(at("new"), []byte("x"), 0o600); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("creating a file in the mount: %v; want EROFS", err)
	}
}

// TestMount mounts a GPT disk with ext4 and FAT partitions, built by the
// real tools, from each kind of source (a raw image, an evidence
// directory, evidence in S3, an E01, a split raw image and a live snapshot), reads it with cmp and the
// Sleuth Kit, and ends each mount a different way. The live mount
// fetches only what was read, keeps it with --cache DIR, and a later
// acquire --out DIR fetches only the rest.
func TestMount(t *testing.T) {
	mounttest.RequireFUSE(t)
	disk := mounttest.Build(t)
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapMount, disk.Path, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapMount, "--out", ev, "--quiet")
	allocated := int64(len(blockIndexes(t, ev)))
	c.ok("export", ev, "--format", "e01", "--out", filepath.Join(dir, "disk"), "--quiet")
	c.ok("export", ev, "--out", filepath.Join(dir, "split.raw"), "--split", "300MiB", "--quiet")
	s3Env(t, c)
	c.ok("acquire", snapMount, "--out", "s3://plain/mount/", "--quiet")

	for _, tc := range []struct {
		name, source, end string
		whole             bool // cmp the whole disk (1 GiB through FUSE)
	}{
		{"raw", disk.Path, "SIGINT", true},
		{"evidence", ev, "fusermount3", true},
		{"E01", filepath.Join(dir, "disk.E01"), "SIGTERM", true},
		{"split", filepath.Join(dir, "split.raw.001"), "SIGINT", false},
		{"S3", "s3://plain/mount/", "SIGTERM", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := startMount(t, c, tc.source)
			want := fmt.Sprintf("ebsimager: mounted %s at %s: disk.raw, p1.raw, p2.raw; Ctrl-C or fusermount3 -u %s to end\n", tc.source, m.dir, m.dir)
			if got := m.errText(); got != want {
				t.Fatalf("ready line %q, want %q", got, want)
			}
			checkMounted(t, m.dir, disk, tc.whole)
			if out := m.end(t, tc.end); out != want {
				t.Fatalf("stderr %q; want the ready line alone", out)
			}
		})
	}

	t.Run("snapshot", func(t *testing.T) {
		cache := filepath.Join(dir, "cache")
		srv.ResetCounters()
		m := startMount(t, c, snapMount, "--cache", cache)
		checkMounted(t, m.dir, disk, false)
		out := m.end(t, "SIGINT")
		ctr := srv.Counters()
		gets, lists := ctr.Total(emulator.OpGetSnapshotBlock), ctr.Total(emulator.OpListSnapshotBlocks)
		stored := int64(len(blockIndexes(t, cache)))
		t.Logf("mount of the snapshot, read with mmls, fls and icat: %d List and %d Get calls, %d blocks stored, of %d allocated", lists, gets, stored, allocated)
		if gets == 0 || gets >= allocated/2 || stored != gets {
			t.Fatalf("%d Gets and %d blocks stored for %d allocated; want as many stored as fetched, and under half", gets, stored, allocated)
		}
		line := fmt.Sprintf("ebsimager: read %s live: %d List and %d Get calls (%d blocks fetched, %d bytes, ", snapMount, lists, gets, gets, gets*512<<10)
		if !strings.Contains(out, line) || !strings.Contains(out, fmt.Sprintf("; %d blocks stored in %s\n", stored, cache)) {
			t.Fatalf("stderr:\n%s\nwant a line with %q", out, line)
		}
		rec, err := report.Load(cache)
		if err != nil || len(rec.Steps) != 1 || rec.Steps[0].Kind != report.StepReadLive || rec.Steps[0].Outcome != report.OutcomeOK ||
			rec.Steps[0].ReadLive.StoredBlocks != stored || rec.Steps[0].ReadLive.Requests.GetCalls != gets {
			t.Fatalf("record of the mount: %v %+v", err, rec)
		}

		srv.ResetCounters()
		c.ok("acquire", snapMount, "--out", cache, "--quiet")
		if got := srv.Counters().Total(emulator.OpGetSnapshotBlock); got != allocated-stored {
			t.Fatalf("acquire after the mount: %d Gets; want %d allocated - %d kept = %d", got, allocated, stored, allocated-stored)
		}
		c.ok("verify", cache)
		if got, want := blockLines(t, cache), blockLines(t, ev); got != want {
			t.Fatal("the manifest after mount --cache and acquire differs from a fresh acquisition's")
		}
	})
}

// TestMountErrors: a mount point that is missing, not a directory or not
// empty is exit 2, checked before the source is opened (no Gets); FUSE
// missing is exit 1; --cache goes with a snapshot only.
func TestMountErrors(t *testing.T) {
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	img := filepath.Join(dir, "img.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(full, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ point, want string }{
		{filepath.Join(dir, "missing"), "does not exist"},
		{img, "is not a directory"},
		{full, "is not empty"},
	} {
		r := c.fails(exitUsage, "ebsimager: mount point "+tc.point+" "+tc.want+"; it must be an empty directory\nebsimager: hint: give an empty directory: mkdir "+tc.point, "mount", snapA, tc.point)
		if r.stdout != "" {
			t.Fatalf("stdout %q", r.stdout)
		}
	}
	if n := srv.Counters().Total(emulator.OpListSnapshotBlocks); n != 0 {
		t.Fatalf("refused mounts made %d List calls", n)
	}
	c.fails(exitUsage, "--cache: "+img+" is not a snapshot", "mount", img, t.TempDir(), "--cache", filepath.Join(dir, "c"))
	c.fails(exitUsage, "missing argument: ebsimager mount takes SOURCE MOUNTPOINT", "mount", img)
	c.fails(exitUsage, `--memory "1KiB": want a size of at least 1MiB`, "mount", snapA, t.TempDir(), "--memory", "1KiB")

	noFUSE := newCLI(t, endpoint)
	noFUSE.env = []string{"PATH=" + t.TempDir()}
	noFUSE.fails(exitError, "ebsimager: FUSE is not available: neither fusermount3 nor fusermount is on PATH", "mount", img, t.TempDir())
}

// TestMountStale: a mount whose process was killed (kill -9) leaves a
// dead mount point; mounting there again is a local I/O error (exit 9)
// whose hint says how to clear it, and after fusermount3 -u it mounts.
func TestMountStale(t *testing.T) {
	mounttest.RequireFUSE(t)
	c := newCLI(t, "")
	img := filepath.Join(t.TempDir(), "img.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	m := startMount(t, c, img)
	m.cmd.Process.Kill()
	<-m.done
	m.cmd.Wait()
	c.fails(exitLocalIO, "transport endpoint is not connected\nebsimager: hint: a mount that ended uncleanly is still there: fusermount3 -u "+m.dir, "mount", img, m.dir)
	if out, err := exec.Command("fusermount3", "-u", m.dir).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v\n%s", err, out)
	}
	again := c.command(context.Background(), "mount", img, m.dir)
	if err := again.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if fi, err := os.Stat(filepath.Join(m.dir, "disk.raw")); err == nil && fi.Size() == 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			again.Process.Kill()
			again.Wait()
			t.Fatal("no mount a minute after clearing the dead one")
		}
	}
	again.Process.Signal(os.Interrupt)
	if err := again.Wait(); err != nil {
		t.Fatalf("the new mount, interrupted: %v", err)
	}
}
