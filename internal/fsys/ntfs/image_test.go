package ntfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode/utf16"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// tool runs a tool and returns its standard output.
func tool(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	return testenv.Output(t, name, args...)
}

// pattern returns n deterministic, incompressible bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// text returns n compressible bytes.
func text(n int, word string) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s line %d of a compressible file\n", word, i)
	}
	return b.Bytes()[:n]
}

// image is a test volume and what the test wrote into it.
type image struct {
	path    string
	cluster int
	files   map[string][]byte // path → contents; "path:stream" for a named stream
	links   map[string]string // symbolic links and junctions → their print names
	hard    [][2]string       // pairs of names of one file
}

// mkntfs formats a sizeMiB volume with the given cluster size.
func mkntfs(t testing.TB, sizeMiB int64, cluster int) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "ntfs.img")
	f, err := os.OpenFile(img, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(sizeMiB << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	tool(t, "mkntfs", "-F", "-Q", "-q", "-s", "512", "-c", fmt.Sprint(cluster), "-L", "EBSIMAGER", img)
	return img
}

// mount mounts img with ntfs-3g (FUSE), runs fill on the mount point and
// unmounts it.
func mount(t testing.TB, img string, fill func(mnt string)) {
	t.Helper()
	testenv.RequireTool(t, "ntfs-3g")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if testenv.CI() {
			t.Fatalf("/dev/fuse is required under CI=true: %v", err)
		}
		t.Skipf("no FUSE: %v", err)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	tool(t, "ntfs-3g", img, mnt, "-o", "streams_interface=windows")
	mounted := true
	defer func() {
		if mounted {
			exec.Command("umount", mnt).Run()
		}
	}()
	fill(mnt)
	tool(t, "umount", mnt)
	mounted = false
}

// reparse builds a symbolic link's (or, with junction, a mount point's)
// reparse data as ntfs-3g's system.ntfs_reparse_data takes it.
func reparse(target, print string, junction bool) []byte {
	u := func(s string) []byte {
		b := make([]byte, 0, 2*len(s))
		for _, c := range utf16.Encode([]rune(s)) {
			b = binary.LittleEndian.AppendUint16(b, c)
		}
		return b
	}
	sub, pr := u(target), u(print)
	var body []byte
	tag := uint32(tagSymlink)
	if junction {
		tag = tagMountPoint
		body = binary.LittleEndian.AppendUint16(body, 0)
		body = binary.LittleEndian.AppendUint16(body, uint16(len(sub)))
		body = binary.LittleEndian.AppendUint16(body, uint16(len(sub)+2))
		body = binary.LittleEndian.AppendUint16(body, uint16(len(pr)))
		body = append(append(append(append(body, sub...), 0, 0), pr...), 0, 0)
	} else {
		body = binary.LittleEndian.AppendUint16(body, 0)
		body = binary.LittleEndian.AppendUint16(body, uint16(len(sub)))
		body = binary.LittleEndian.AppendUint16(body, uint16(len(sub)))
		body = binary.LittleEndian.AppendUint16(body, uint16(len(pr)))
		body = binary.LittleEndian.AppendUint32(body, 1) // SYMLINK_FLAG_RELATIVE
		body = append(append(body, sub...), pr...)
	}
	b := binary.LittleEndian.AppendUint32(nil, tag)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(body)))
	b = binary.LittleEndian.AppendUint16(b, 0)
	return append(b, body...)
}

// buildImage makes a volume holding every kind of file the reader must
// read, through ntfs-3g: resident, non-resident, empty, sparse and
// compressed files, named streams, a 1000-entry directory, long and
// non-ASCII names, hard links, reparse-point symbolic links and
// junctions, a file whose streams overflow into extension records, a
// file fragmented past one record's run list, and an $Extend\$UsnJrnl
// with a sparse $J.
func buildImage(t testing.TB, sizeMiB int64, cluster int, entries int) *image {
	t.Helper()
	im := &image{path: mkntfs(t, sizeMiB, cluster), cluster: cluster, files: map[string][]byte{}, links: map[string]string{}}
	mount(t, im.path, func(mnt string) {
		write := func(name string, data []byte) {
			t.Helper()
			if err := os.WriteFile(filepath.Join(mnt, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
			im.files["/"+name] = data
		}
		mkdir := func(name string) {
			t.Helper()
			if err := os.Mkdir(filepath.Join(mnt, name), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		write("small.txt", []byte("resident data\n"))
		write("big.bin", pattern(300000, 1))
		write("empty", nil)
		write("small.txt:ads1", []byte("x\n"))
		write("big.bin:bigads", pattern(50000, 2))
		// A sparse file: a hole, then data, then a hole to the end.
		sp := make([]byte, 10<<20)
		copy(sp[9000000:], "data far into a sparse file")
		f, err := os.OpenFile(filepath.Join(mnt, "sparse"), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(sp[9000000:9000100], 9000000); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(int64(len(sp))); err != nil {
			t.Fatal(err)
		}
		f.Close()
		im.files["/sparse"] = sp

		// Compression: files created in a directory marked compressed
		// are compressed (when clusters are at most 4 KiB).
		mkdir("comp")
		if err := syscall.Setxattr(filepath.Join(mnt, "comp"), "system.ntfs_attrib_be", []byte{0, 0, 0x08, 0}, 0); err != nil {
			t.Fatalf("marking comp compressed: %v", err)
		}
		write("comp/text.txt", text(300000, "compress"))
		write("comp/random.bin", pattern(70000, 3))
		write("comp/tiny", []byte("tiny"))
		mixed := append(text(100000, "mixed"), pattern(70000, 4)...)
		mixed = append(mixed, make([]byte, 300000)...) // whole zero units are stored sparse
		mixed = append(mixed, text(5000, "tail")...)
		write("comp/mixed", mixed)

		mkdir("many")
		for i := range entries {
			write(fmt.Sprintf("many/entry-%04d.txt", i), []byte(fmt.Sprintf("entry %d\n", i)))
		}
		write("héllo wörld ✓.txt", []byte("unicode\n"))
		write("日本語の名前", pattern(5000, 5))
		write(strings.Repeat("long-name-", 25)+"end", []byte("long\n"))
		// A DOS 8.3 name beside the long one: the index holds a Win32
		// entry and a DOS entry, and only the long name is listed.
		write("Long File Name.txt", []byte("dos\n"))
		if err := syscall.Setxattr(filepath.Join(mnt, "Long File Name.txt"), "system.ntfs_dos_name", []byte("LONGFI~1.TXT"), 0); err != nil {
			t.Fatalf("setting a DOS name: %v", err)
		}
		if err := os.Link(filepath.Join(mnt, "small.txt"), filepath.Join(mnt, "hard.txt")); err != nil {
			t.Fatal(err)
		}
		im.files["/hard.txt"], im.files["/hard.txt:ads1"] = im.files["/small.txt"], im.files["/small.txt:ads1"]
		im.hard = append(im.hard, [2]string{"/small.txt", "/hard.txt"})

		// ntfs-3g makes symbolic links as Interix files (regular files
		// to Windows and Sleuth Kit); reparse points are set through
		// its system.ntfs_reparse_data attribute.
		if err := os.Symlink("small.txt", filepath.Join(mnt, "interix")); err != nil {
			t.Fatal(err)
		}
		write("symlink", nil)
		delete(im.files, "/symlink")
		if err := syscall.Setxattr(filepath.Join(mnt, "symlink"), "system.ntfs_reparse_data", reparse("small.txt", "small.txt", false), 0); err != nil {
			t.Fatalf("making a reparse-point symbolic link: %v", err)
		}
		im.links["/symlink"] = "small.txt"
		mkdir("junction")
		if err := syscall.Setxattr(filepath.Join(mnt, "junction"), "system.ntfs_reparse_data", reparse(`\??\C:\Windows`, `C:\Windows`, true), 0); err != nil {
			t.Fatalf("making a junction: %v", err)
		}
		im.links["/junction"] = `C:\Windows`

		// Sixty named streams overflow the base record: ntfs-3g moves
		// attributes to extension records named by an $ATTRIBUTE_LIST.
		write("streams", []byte("base\n"))
		for i := range 60 {
			write(fmt.Sprintf("streams:s%03d", i), []byte(strings.Repeat(fmt.Sprintf("stream %d\n", i), 3)))
		}

		// $UsnJrnl: ntfs-3g keeps none, but lets one be made and moved
		// into $Extend. $J is sparse, as Windows keeps it.
		write("usn", nil)
		delete(im.files, "/usn")
		j := make([]byte, 8<<20+4000)
		copy(j[8<<20:], pattern(4000, 6))
		f, err = os.OpenFile(filepath.Join(mnt, "usn:$J"), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(j[8<<20:], 8<<20); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := os.WriteFile(filepath.Join(mnt, "usn:$Max"), pattern(32, 7), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(mnt, "usn"), filepath.Join(mnt, "$Extend", "$UsnJrnl")); err != nil {
			t.Fatal(err)
		}
		im.files["/$Extend/$UsnJrnl:$J"] = j
		im.files["/$Extend/$UsnJrnl:$Max"] = pattern(32, 7)

		fragment(t, mnt, im)
	})
	return im
}

// fragment fills the volume, frees every other small file and writes a
// file into the holes: its run list outgrows its record and continues,
// by VCN, in extension records.
func fragment(t testing.TB, mnt string, im *image) {
	t.Helper()
	piece := max(im.cluster, 2048) // non-resident, one or a few clusters
	const holes = 700
	if err := os.Mkdir(filepath.Join(mnt, "holes"), 0o700); err != nil {
		t.Fatal(err)
	}
	small := pattern(piece, 8)
	for i := range 2 * holes {
		if err := os.WriteFile(filepath.Join(mnt, "holes", fmt.Sprint(i)), small, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Fill the free space (until ENOSPC, whatever statfs says), then
	// give back 256 KiB: the freed holes are nearly all there is.
	f, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	size := int64(0)
	for _, chunk := range []int{1 << 20, 64 << 10, 4 << 10} {
		buf := pattern(chunk, 14) // not zeros: ntfs-3g would keep them sparse
		for {
			n, err := f.Write(buf)
			size += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.Truncate(max(size-256<<10, 0)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2*holes; i += 2 {
		if err := os.Remove(filepath.Join(mnt, "holes", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	data := pattern(holes*piece*9/10, 9)
	if err := os.WriteFile(filepath.Join(mnt, "fragmented"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	im.files["/fragmented"] = data
}
