// Package disktest builds test disks with the real tools (sfdisk,
// mkfs.ext4 -d, cryptsetup): partition tables holding file-system
// images, for the tests of the disk layer and of the commands that read
// files out of a volume. A missing tool fails the test under CI=true and
// skips it elsewhere (internal/testenv).
package disktest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// MiB is the unit partitions are sized and aligned in.
const MiB = 1 << 20

// Partition types as sfdisk's scripts name them (GPT and MBR alike).
const (
	TypeLinux    = "L"
	TypeLVM      = "V"
	TypeFAT32    = "b"                                    // MBR only: W95 FAT32
	TypeNTFS     = "7"                                    // MBR only: HPFS/NTFS/exFAT
	TypeExtended = "Ex"                                   // MBR only
	TypeBasic    = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" // GPT Microsoft basic data
)

// Partition is one entry of a test disk's table.
type Partition struct {
	Size  int64  // bytes, a whole number of MiB
	Type  string // an sfdisk type: TypeLinux, TypeLVM, …
	Image string // a file copied to the partition's start, or ""
}

// Run runs a tool and fails the test if it fails; it returns the output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Disk writes a disk image of size bytes at path with a partition table
// (label "gpt" or "dos") made by sfdisk, the partitions one after the
// other from 1 MiB (an MBR extended partition, TypeExtended with the
// size of them all plus 1 MiB each, holds the logical ones that follow
// it, each 1 MiB after the end of the previous one, room for its EBR), and each partition's image copied in. It returns the
// partitions' offsets in bytes, in sfdisk's order.
func Disk(t testing.TB, path, label string, size int64, parts []Partition) []int64 {
	t.Helper()
	sfdisk := testenv.RequireTool(t, "sfdisk")[0]
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	fmt.Fprintf(&script, "label: %s\n", label)
	if label == "dos" {
		script.WriteString("label-id: 0x7e57d15c\n")
	} else {
		script.WriteString("label-id: 7E57D15C-0000-4000-8000-000000000013\n")
	}
	start := int64(MiB)
	var offsets []int64
	logical := false
	for _, p := range parts {
		if p.Type == TypeExtended {
			logical = true
			fmt.Fprintf(&script, "start=%d, size=%d, type=Ex\n", start/512, p.Size/512)
			offsets = append(offsets, start)
			start += MiB // the first logical partition's EBR takes the first MiB
			continue
		}
		fmt.Fprintf(&script, "start=%d, size=%d, type=%s\n", start/512, p.Size/512, p.Type)
		offsets = append(offsets, start)
		start += p.Size
		if logical {
			start += MiB // the next logical partition's EBR
		}
	}
	cmd := exec.Command(sfdisk, "--no-reread", "--no-tell-kernel", "-q", path)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v\n%s\nscript:\n%s", path, err, out, script.String())
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, p := range parts {
		if p.Image != "" {
			copySparse(t, f, offsets[i], p.Image, p.Size)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return offsets
}

// copySparse copies the file img to f at off, leaving its zero chunks
// as holes so that a 300 MB XFS image costs only its metadata.
func copySparse(t testing.TB, f *os.File, off int64, img string, limit int64) {
	t.Helper()
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > limit {
		t.Fatalf("image %s: %d bytes, more than its partition's %d", img, fi.Size(), limit)
	}
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	for pos := int64(0); pos < fi.Size(); pos += int64(len(buf)) {
		n, err := in.ReadAt(buf, pos)
		if n == 0 && err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			continue
		}
		if _, err := f.WriteAt(buf[:n], off+pos); err != nil {
			t.Fatal(err)
		}
	}
}

// Ext4 makes an ext4 file system of size bytes at path holding the tree
// under dir (mkfs.ext4 -d), with fixed UUID and hash seed so that two runs
// give the same layout.
func Ext4(t testing.TB, path string, size int64, dir string, extra ...string) {
	t.Helper()
	mkfs := testenv.RequireTool(t, "mkfs.ext4")[0]
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-q", "-F", "-b", "1024", "-U", "7e57e4a1-0013-4000-8000-000000000001",
		"-E", "hash_seed=7e57e4a1-0013-4000-8000-000000000002", "-L", "evroot"}, extra...)
	Run(t, mkfs, append(args, "-d", dir, path)...)
}

// LUKS1 makes a LUKS1 header in a file of size bytes at path (PBKDF2 at
// 1000 iterations: fast, and nothing ever opens it).
func LUKS1(t testing.TB, path string, size int64) {
	t.Helper()
	cs := testenv.RequireTool(t, "cryptsetup")[0]
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	key := path + ".key"
	if err := os.WriteFile(key, []byte("evidence"), 0o600); err != nil {
		t.Fatal(err)
	}
	Run(t, cs, "luksFormat", "--batch-mode", "--type", "luks1", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
		"--key-file", key, path)
}

// BitLocker writes a file of size bytes at path that starts with a
// BitLocker boot sector: the "-FVE-FS-" OEM identifier and the boot
// signature. Nothing else of BitLocker is there; it is only identified.
func BitLocker(t testing.TB, path string, size int64) {
	t.Helper()
	b := make([]byte, 4096)
	copy(b, "\xeb\x58\x90-FVE-FS-\x00\x02\x08\x00\x00\x00\x00\x00\x00\xf8")
	b[510], b[511] = 0x55, 0xAA
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// Tree writes files (path relative to dir: content) under dir, making
// directories as needed. A content starting with "->" makes a symbolic
// link to the rest.
func Tree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := dir + "/" + name
		if err := os.MkdirAll(p[:strings.LastIndexByte(p, '/')], 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
}

// XFS makes an XFS file system of size bytes (mkfs.xfs needs 300 MB for
// v5; the file is sparse) at path holding files (as Tree takes them;
// names must hold no white space, which protofiles cannot express),
// through a mkfs.xfs protofile: every file 0644, every directory 0755,
// owned by root.
func XFS(t testing.TB, path string, size int64, files map[string]string) {
	t.Helper()
	mkfs := testenv.RequireTool(t, "mkfs.xfs")[0]
	src := path + ".src"
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	type node struct {
		kids    map[string]*node
		content *string
	}
	root := &node{kids: map[string]*node{}}
	for name, content := range files {
		n := root
		parts := strings.Split(name, "/")
		for _, p := range parts[:len(parts)-1] {
			if n.kids[p] == nil {
				n.kids[p] = &node{kids: map[string]*node{}}
			}
			n = n.kids[p]
		}
		c := content
		n.kids[parts[len(parts)-1]] = &node{content: &c}
	}
	var b strings.Builder
	b.WriteString("ebsimager-test\n0 0\nd--755 0 0\n")
	count := 0
	var walk func(n *node)
	walk = func(n *node) {
		names := make([]string, 0, len(n.kids))
		for k := range n.kids {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, name := range names {
			k := n.kids[name]
			switch {
			case k.content == nil:
				fmt.Fprintf(&b, "%s d--755 0 0\n", name)
				walk(k)
				b.WriteString("$\n")
			case strings.HasPrefix(*k.content, "->"):
				fmt.Fprintf(&b, "%s l--777 0 0 %s\n", name, strings.TrimPrefix(*k.content, "->"))
			default:
				count++
				p := fmt.Sprintf("%s/%d", src, count)
				if err := os.WriteFile(p, []byte(*k.content), 0o600); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "%s ---644 0 0 %s\n", name, p)
			}
		}
	}
	walk(root)
	b.WriteString("$\n")
	proto := path + ".proto"
	if err := os.WriteFile(proto, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	Run(t, mkfs, "-q", "-f", "-p", proto, path)
}

// NTFS makes an NTFS file system of size bytes at path (mkntfs, 512-byte
// sectors, 4 KiB clusters) and writes files into it through an ntfs-3g
// FUSE mount with Windows-style streams: a name "dir/file.txt:stream"
// writes a named data stream of dir/file.txt, which must come first in
// order ("a" before "a:s", as the sorted names give). Symbolic links are
// not supported. It needs /dev/fuse: without it the test fails under
// CI=true and is skipped elsewhere.
func NTFS(t testing.TB, path string, size int64, files map[string]string) {
	t.Helper()
	tools := testenv.RequireTool(t, "mkntfs", "ntfs-3g", "umount")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if testenv.CI() {
			t.Fatalf("/dev/fuse is required under CI=true: %v", err)
		}
		t.Skipf("no FUSE: %v", err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	Run(t, tools[0], "-F", "-Q", "-q", "-s", "512", "-c", "4096", "-L", "EVNTFS", path)
	mnt := path + ".mnt"
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	Run(t, tools[1], path, mnt, "-o", "streams_interface=windows")
	mounted := true
	defer func() {
		if mounted {
			exec.Command(tools[2], mnt).Run()
		}
	}()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := mnt + "/" + name
		if err := os.MkdirAll(p[:strings.LastIndexByte(p, '/')], 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Run(t, tools[2], mnt)
	mounted = false
}

// FAT makes a FAT file system of size bytes at path (mkfs.vfat, with
// fatBits 12, 16 or 32) and copies files into it with mtools.
func FAT(t testing.TB, path string, size int64, fatBits int, files map[string]string) {
	t.Helper()
	tools := testenv.RequireTool(t, "mkfs.vfat", "mmd", "mcopy")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	Run(t, tools[0], "-F", fmt.Sprint(fatBits), "-n", "EVFAT", "-i", "7e57fa70", path)
	src := path + ".src"
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	made := map[string]bool{}
	for i, name := range names {
		parts := strings.Split(name, "/")
		for j := 1; j < len(parts); j++ {
			if dir := strings.Join(parts[:j], "/"); !made[dir] {
				Run(t, tools[1], "-i", path, "::"+dir)
				made[dir] = true
			}
		}
		tmp := fmt.Sprintf("%s/%d", src, i)
		if err := os.WriteFile(tmp, []byte(files[name]), 0o600); err != nil {
			t.Fatal(err)
		}
		Run(t, tools[2], "-i", path, tmp, "::"+name)
	}
}
