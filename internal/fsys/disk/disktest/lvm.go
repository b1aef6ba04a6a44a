package disktest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// LVM runs the LVM2 tools on loop devices of the test's own, with no
// device-mapper activation, no locking, no udev and no backups, and a
// device filter that sees only those loop devices: nothing outside the
// test's image is touched.
type LVM struct {
	t     testing.TB
	loops []string
}

// NewLVM checks for the LVM2 tools, losetup and root (loop devices need
// it): under CI=true a missing one fails the test, elsewhere skips it.
func NewLVM(t testing.TB) *LVM {
	t.Helper()
	testenv.RequireTool(t, "pvcreate", "vgcreate", "lvcreate", "lvextend", "lvs", "pvs", "losetup")
	if os.Geteuid() != 0 {
		if testenv.CI() {
			t.Fatal("the LVM2 tests need root for loop devices, and run as root under CI=true")
		}
		t.Skip("the LVM2 tests need root for loop devices")
	}
	return &LVM{t: t}
}

func (l *LVM) config() string {
	var accept []string
	for _, d := range l.loops {
		accept = append(accept, fmt.Sprintf(`"a|^%s$|"`, d))
	}
	return fmt.Sprintf(`devices { use_devicesfile=0 obtain_device_list_from_udev=0 filter=[%s,"r|.*|"] } `+
		`activation { udev_sync=0 udev_rules=0 monitoring=0 } backup { backup=0 archive=0 }`, strings.Join(accept, ","))
}

// Run runs an LVM2 tool with the test's configuration; creating or
// extending an LV needs "--driverloaded", "n" (and lvcreate "-an", "-Zn").
func (l *LVM) Run(name string, args ...string) string {
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

// Loop attaches length bytes of img from off as a loop device, detached
// by Detach or when the test ends.
func (l *LVM) Loop(img string, off, length int64) string {
	l.t.Helper()
	dev := strings.TrimSpace(Run(l.t, "losetup", "-f", "--show", "-o", strconv.FormatInt(off, 10), "--sizelimit", strconv.FormatInt(length, 10), img))
	l.t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	l.loops = append(l.loops, dev)
	return dev
}

// Detach detaches the loop devices (before the image is read or
// written directly).
func (l *LVM) Detach() {
	l.t.Helper()
	for _, d := range l.loops {
		Run(l.t, "losetup", "-d", d)
	}
}

// Extent places Length bytes of an LV, from its offset Logical, at
// Physical on the disk image.
type Extent struct{ Logical, Physical, Length int64 }

// Extents is where lvs and pvs say the LV vg/lv lies on the disk: each
// segment's PE range on its PV, at the PV's pe_start, the PV at the
// offset partOf gives its loop device.
func (l *LVM) Extents(lv string, extentSize int64, partOf map[string]int64) []Extent {
	l.t.Helper()
	peStart := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(l.Run("pvs", "--noheadings", "--nosuffix", "--units", "b", "--separator", "|", "-o", "pv_name,pe_start")), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		peStart[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
	}
	var out []Extent
	for _, line := range strings.Split(strings.TrimSpace(l.Run("lvs", "--noheadings", "--separator", "|", "-o", "lv_name,seg_start_pe,seg_pe_ranges", lv)), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		start, _ := strconv.ParseInt(f[1], 10, 64)
		dev, rng, _ := strings.Cut(f[2], ":")
		lo, hi, _ := strings.Cut(rng, "-")
		a, _ := strconv.ParseInt(lo, 10, 64)
		b, _ := strconv.ParseInt(hi, 10, 64)
		out = append(out, Extent{Logical: start * extentSize, Physical: partOf[dev] + peStart[dev] + a*extentSize, Length: (b - a + 1) * extentSize})
	}
	return out
}

// WriteExtents writes the file img into the extents of an LV on the
// disk image path.
func WriteExtents(t testing.TB, path, img string, extents []Extent) {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, e := range extents {
		if e.Logical >= int64(len(b)) {
			continue
		}
		if _, err := f.WriteAt(b[e.Logical:min(int64(len(b)), e.Logical+e.Length)], e.Physical); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
