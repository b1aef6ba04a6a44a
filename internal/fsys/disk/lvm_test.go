package disk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/disk/disktest"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// lvmTools runs the LVM2 tools on loop devices of the test's own, with
// no device-mapper activation, no locking, no udev and no backups, and a
// device filter that sees only those loop devices.
type lvmTools struct {
	t     *testing.T
	loops []string
}

func (l *lvmTools) config() string {
	var accept []string
	for _, d := range l.loops {
		accept = append(accept, fmt.Sprintf(`"a|^%s$|"`, d))
	}
	return fmt.Sprintf(`devices { use_devicesfile=0 obtain_device_list_from_udev=0 filter=[%s,"r|.*|"] } `+
		`activation { udev_sync=0 udev_rules=0 monitoring=0 } backup { backup=0 archive=0 }`, strings.Join(accept, ","))
}

func (l *lvmTools) run(name string, args ...string) string {
	l.t.Helper()
	cmd := exec.Command(name, append([]string{"--config", l.config(), "--nolocking"}, args...)...)
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			stderr = exit.Stderr
		}
		l.t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// loop attaches the bytes of img from off, length bytes, as a loop
// device, detached when the test ends.
func (l *lvmTools) loop(img string, off, length int64) string {
	l.t.Helper()
	dev := strings.TrimSpace(disktest.Run(l.t, "losetup", "-f", "--show", "-o", strconv.FormatInt(off, 10), "--sizelimit", strconv.FormatInt(length, 10), img))
	l.t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	l.loops = append(l.loops, dev)
	return dev
}

// TestLVM builds a volume group of two PVs (partitions 2 and 3 of a GPT
// disk) with the LVM2 tools: LV root linear across both PVs, LV data,
// and LV striped over both. It writes an ext4 image into root's extents
// where lvs and pvs place them, and checks that the disk layer finds root
// at those offsets, reads it back byte for byte, identifies its ext4, and
// refuses the striped LV as unsupported.
func TestLVM(t *testing.T) {
	testenv.RequireTool(t, "pvcreate", "vgcreate", "lvcreate", "lvextend", "lvs", "pvs", "losetup")
	if os.Geteuid() != 0 {
		if testenv.CI() {
			t.Fatal("the LVM2 test needs root for loop devices, and runs as root under CI=true")
		}
		t.Skip("the LVM2 test needs root for loop devices")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	off := disktest.Disk(t, img, "gpt", 64*MiB, []disktest.Partition{
		{Size: 4 * MiB, Type: disktest.TypeLinux},
		{Size: 24 * MiB, Type: disktest.TypeLVM},
		{Size: 24 * MiB, Type: disktest.TypeLVM},
	})
	l := &lvmTools{t: t}
	pv1 := l.loop(img, off[1], 24*MiB)
	pv2 := l.loop(img, off[2], 24*MiB)
	vg := fmt.Sprintf("ev%d", os.Getpid())
	l.run("pvcreate", "-y", pv1, pv2)
	l.run("vgcreate", "-s", "2M", vg, pv1, pv2)
	dm := []string{"--driverloaded", "n", "-an", "-Zn"}
	l.run("lvcreate", append(dm, "-L", "6M", "-n", "root", vg, pv1)...)
	l.run("lvcreate", append(dm, "-L", "4M", "-n", "data", vg, pv1)...)
	l.run("lvextend", "--driverloaded", "n", "-L", "10M", vg+"/root", pv2)
	l.run("lvcreate", append(dm, "-i", "2", "-I", "64k", "-L", "4M", "-n", "striped", vg)...)

	// Where the tools say root's extents are.
	peStart := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(l.run("pvs", "--noheadings", "--nosuffix", "--units", "b", "--separator", "|", "-o", "pv_name,pe_start")), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		peStart[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
	}
	partOf := map[string]int64{pv1: off[1], pv2: off[2]}
	var want []Segment
	for _, line := range strings.Split(strings.TrimSpace(l.run("lvs", "--noheadings", "--separator", "|", "-o", "lv_name,seg_start_pe,seg_pe_ranges", vg+"/root")), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		start, _ := strconv.ParseInt(f[1], 10, 64)
		dev, rng, _ := strings.Cut(f[2], ":")
		lo, hi, _ := strings.Cut(rng, "-")
		a, _ := strconv.ParseInt(lo, 10, 64)
		b, _ := strconv.ParseInt(hi, 10, 64)
		want = append(want, Segment{Logical: start * 2 * MiB, Physical: partOf[dev] + peStart[dev] + a*2*MiB, Length: (b - a + 1) * 2 * MiB})
	}
	for _, d := range l.loops {
		disktest.Run(t, "losetup", "-d", d)
	}
	if len(want) != 2 || want[1].Physical < off[2] {
		t.Fatalf("root should span both PVs: %+v", want)
	}

	// An ext4 file system written into root's extents.
	tree := filepath.Join(dir, "tree")
	disktest.Tree(t, tree, map[string]string{"etc/hostname": "in an LV\n"})
	ext := filepath.Join(dir, "ext4.img")
	disktest.Ext4(t, ext, 10*MiB, tree)
	extBytes := fileBytes(t, ext)
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range want {
		if _, err := f.WriteAt(extBytes[s.Logical:s.Logical+s.Length], s.Physical); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	d := openDisk(t, img)
	checkParts(t, d, []partWant{
		{"1", KindPartition, "unknown", "", off[0], 4 * MiB},
		{"2", KindPartition, "lvm2_pv", "", off[1], 24 * MiB},
		{"3", KindPartition, "lvm2_pv", "", off[2], 24 * MiB},
		{vg + "/root", KindLV, "ext4", "", want[0].Physical, 10 * MiB},
		{vg + "/data", KindLV, "unknown", "", off[1] + peStart[pv1] + 3*2*MiB, 4 * MiB},
		{vg + "/striped", KindLV, "unknown", "", 0, 0},
	})
	root, err := d.Part(vg + "/root")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(root.Segments) != fmt.Sprint(want) || root.PV != "2,3" {
		t.Fatalf("root's segments %+v on %s, lvs says %+v", root.Segments, root.PV, want)
	}
	if got := readAll(t, root.Reader(), root.Length); !bytes.Equal(got, extBytes) {
		t.Fatal("root does not read back the ext4 image written into its extents")
	}
	// Reads across the segment boundary, and past the end.
	b := make([]byte, 4096)
	if n, err := root.Reader().ReadAt(b, want[1].Logical-2048); n != 4096 || err != nil || !bytes.Equal(b, extBytes[want[1].Logical-2048:want[1].Logical+2048]) {
		t.Fatalf("read across the segments: %d, %v", n, err)
	}
	if n, err := root.Reader().ReadAt(b, root.Length-100); n != 100 || err != io.EOF {
		t.Fatalf("read past the end: %d, %v", n, err)
	}

	// The ext4 reader reads the file through the LV's two segments.
	_, rootFS, id, _, err := d.Resolve(Path{Part: vg + "/root", Path: "/etc/hostname"})
	if err != nil {
		t.Fatal(err)
	}
	file, err := rootFS.Open(id, "")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, file.Size())
	if _, err := file.ReadAt(got, 0); err != nil && err != io.EOF || string(got) != "in an LV\n" {
		t.Fatalf("%s/root:/etc/hostname: %q, %v", vg, got, err)
	}
	if p, err := d.Single(); err != nil || p.Name != vg+"/root" {
		t.Fatalf("Single: %v, %v", p, err)
	}
	for _, c := range []struct{ name, want string }{
		{vg + "/striped", "segment1 is \"striped\" with 2 stripes; only linear segments are read"},
		{"2", "partition 2 (lvm2_pv): it is an LVM2 physical volume; read its logical volumes as " + vg + "/root:/path, " + vg + "/data:/path"},
	} {
		if _, err := d.Open(c.name); !errors.Is(err, fsys.ErrUnsupported) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%s): %v, want ErrUnsupported with %q", c.name, err, c.want)
		}
	}
}
