package disk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/disk/disktest"
)

// TestLVM builds a volume group of two PVs (partitions 2 and 3 of a GPT
// disk) with the LVM2 tools: LV root linear across both PVs, LV data,
// and LV striped over both. It writes an ext4 image into root's extents
// where lvs and pvs place them, and checks that the disk layer finds root
// at those offsets, reads it back byte for byte, identifies its ext4, and
// refuses the striped LV as unsupported.
func TestLVM(t *testing.T) {
	l := disktest.NewLVM(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	off := disktest.Disk(t, img, "gpt", 64*MiB, []disktest.Partition{
		{Size: 4 * MiB, Type: disktest.TypeLinux},
		{Size: 24 * MiB, Type: disktest.TypeLVM},
		{Size: 24 * MiB, Type: disktest.TypeLVM},
	})
	pv1 := l.Loop(img, off[1], 24*MiB)
	pv2 := l.Loop(img, off[2], 24*MiB)
	vg := fmt.Sprintf("ev%d", os.Getpid())
	l.Run("pvcreate", "-y", pv1, pv2)
	l.Run("vgcreate", "-s", "2M", vg, pv1, pv2)
	dm := []string{"--driverloaded", "n", "-an", "-Zn"}
	l.Run("lvcreate", append(dm, "-L", "6M", "-n", "root", vg, pv1)...)
	l.Run("lvcreate", append(dm, "-L", "4M", "-n", "data", vg, pv1)...)
	l.Run("lvextend", "--driverloaded", "n", "-L", "10M", vg+"/root", pv2)
	l.Run("lvcreate", append(dm, "-i", "2", "-I", "64k", "-L", "4M", "-n", "striped", vg)...)

	// Where the tools say root's extents are.
	var want []Segment
	for _, e := range l.Extents(vg+"/root", 2*MiB, map[string]int64{pv1: off[1], pv2: off[2]}) {
		want = append(want, Segment(e))
	}
	pvs := strings.Fields(l.Run("pvs", "--noheadings", "--nosuffix", "--units", "b", "-o", "pe_start", pv1))
	peStart1, _ := strconv.ParseInt(pvs[0], 10, 64)
	l.Detach()
	if len(want) != 2 || want[1].Physical < off[2] {
		t.Fatalf("root should span both PVs: %+v", want)
	}

	// An ext4 file system written into root's extents.
	tree := filepath.Join(dir, "tree")
	disktest.Tree(t, tree, map[string]string{"etc/hostname": "in an LV\n"})
	ext := filepath.Join(dir, "ext4.img")
	disktest.Ext4(t, ext, 10*MiB, tree)
	extBytes := fileBytes(t, ext)
	var extents []disktest.Extent
	for _, s := range want {
		extents = append(extents, disktest.Extent(s))
	}
	disktest.WriteExtents(t, img, ext, extents)

	d := openDisk(t, img)
	checkParts(t, d, []partWant{
		{"1", KindPartition, "unknown", "", off[0], 4 * MiB},
		{"2", KindPartition, "lvm2_pv", "", off[1], 24 * MiB},
		{"3", KindPartition, "lvm2_pv", "", off[2], 24 * MiB},
		{vg + "/root", KindLV, "ext4", "", want[0].Physical, 10 * MiB},
		{vg + "/data", KindLV, "unknown", "", off[1] + peStart1 + 3*2*MiB, 4 * MiB},
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
