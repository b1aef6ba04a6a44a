package ext

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/fstest"
	"github.com/ebsimager/ebsimager/internal/ondisk"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// variants are the file systems the cross-checks build: ext4 as mkfs
// makes it (metadata_csum, 64bit, flex_bg, extents), in 1 KiB and 4 KiB
// blocks, without checksums and 64-bit descriptors, with inline data,
// with meta_bg, ext3 and ext2 with block maps, 128-byte inodes,
// directory entries without file types, and 64 KiB blocks.
var variants = []struct {
	name, kind, typ string
	args            []string
	extents, inline bool
	many            int // names in the hash-tree directory
}{
	{"ext4-4k", "ext4", "ext4", []string{"-b", "4096", "-I", "256"}, true, false, 2000},
	{"ext4-1k", "ext4", "ext4", []string{"-b", "1024", "-I", "256"}, true, false, 2000},
	{"ext4-nocsum-32bit", "ext4", "ext4", []string{"-b", "4096", "-I", "256", "-O", "^metadata_csum,^64bit"}, true, false, 400},
	{"ext4-inline-4k", "ext4", "ext4", []string{"-b", "4096", "-I", "256", "-O", "inline_data"}, true, true, 400},
	{"ext4-inline-1k-nocsum", "ext4", "ext4", []string{"-b", "1024", "-I", "512", "-O", "inline_data,^metadata_csum"}, true, true, 400},
	{"ext4-metabg-2k", "ext4", "ext4", []string{"-b", "2048", "-I", "256", "-O", "meta_bg,^resize_inode"}, true, false, 400},
	{"ext3-1k", "ext3", "ext3", []string{"-b", "1024", "-I", "256"}, false, false, 2000},
	{"ext2-4k", "ext2", "ext2", []string{"-b", "4096", "-I", "256"}, false, false, 400},
	{"ext2-2k-128", "ext2", "ext2", []string{"-b", "2048", "-I", "128"}, false, false, 400},
	{"ext2-1k-nofiletype", "ext2", "ext2", []string{"-b", "1024", "-I", "256", "-O", "^filetype"}, false, false, 400},
	// 64 KiB blocks: rec_len 65536 is stored as 0xFFFF (or 0); few
	// names, for every small file takes a 64 KiB block.
	{"ext4-64k", "ext4", "ext4", []string{"-b", "65536", "-I", "256"}, true, false, 40},
}

func openImage(t testing.TB, img string) (*FS, *os.File) {
	t.Helper()
	return fstest.OpenImage(t, img, Open)
}

// buildImage writes the tree, runs mkfs and e2fsck -D (which indexes the
// large directory as a hash tree) and returns the image.
func buildImage(t testing.TB, kind string, args []string, many int) (string, *tree) {
	t.Helper()
	dir := t.TempDir()
	tr := writeTree(t, dir, many)
	img := mkfs(t, dir, tr, kind, 40, args...)
	fsck := testenv.RequireTool(t, "e2fsck")[0]
	out, err := exec.Command(fsck, "-fyD", img).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) { // 1: the file system was changed
		t.Fatalf("e2fsck -fyD: %v\n%s", err, out)
	}
	if !slices.Contains(args, "128") {
		// mkfs.ext4 1.47.0 keeps neither nanoseconds nor the epoch bits
		// of times past 2038: set them as the kernel writes them.
		extra := uint32(midNsec)<<2 | 1
		run(t, "debugfs", "-w", "-R", fmt.Sprintf("set_inode_field /mid.txt mtime_extra %#x", extra), img)
	}
	return img, tr
}

// midNsec is the nanoseconds of mid.txt's mtime, 2100-07-08 09:10:11.
const midNsec = 987654321

// flsEntry is one line of fls -r -p -u.
type flsEntry struct {
	typ string // "r/r", "d/d", "l/l" ...
	ino uint64
}

func fls(t *testing.T, img string) map[string]flsEntry {
	out := map[string]flsEntry{}
	sc := bufio.NewScanner(bytes.NewReader(run(t, "fls", "-r", "-p", "-u", img)))
	for sc.Scan() {
		line := sc.Text()
		head, name, ok := strings.Cut(line, "\t")
		f := strings.Fields(head)
		if !ok || len(f) != 2 {
			t.Fatalf("fls line %q", line)
		}
		if strings.HasPrefix(name, "$OrphanFiles") {
			continue // Sleuth Kit's virtual directory, not on disk
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(f[1], ":"), 10, 64)
		if err != nil {
			t.Fatalf("fls line %q: %v", line, err)
		}
		out["/"+name] = flsEntry{f[0], ino}
	}
	return out
}

// bodyLine is one line of fls -m.
type bodyLine struct {
	ino                         uint64
	mode                        string
	uid, gid                    uint32
	size                        int64
	atime, mtime, ctime, crtime int64
}

func bodyfile(t *testing.T, img string) map[string]bodyLine {
	out := map[string]bodyLine{}
	sc := bufio.NewScanner(bytes.NewReader(run(t, "fls", "-r", "-u", "-m", "/", img)))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) != 11 {
			t.Fatalf("bodyfile line %q", sc.Text())
		}
		if strings.HasPrefix(f[1], "/$OrphanFiles") {
			continue
		}
		if len(f[3]) > 2 && f[3][2] == 'l' {
			f[1], _, _ = strings.Cut(f[1], " -> ") // a link's name comes with its target
		}
		n := make([]int64, 11)
		for _, i := range []int{2, 4, 5, 6, 7, 8, 9, 10} {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				t.Fatalf("bodyfile line %q: %v", sc.Text(), err)
			}
			n[i] = v
		}
		out[f[1]] = bodyLine{uint64(n[2]), f[3], uint32(n[4]), uint32(n[5]), n[6], n[7], n[8], n[9], n[10]}
	}
	return out
}

// tskMode writes a mode as Sleuth Kit does in bodyfiles: the entry's
// type ("-" when the directory does not record it), the inode's, and the
// permissions: "r/rrw-r--r--".
func tskMode(entry fsys.Type, st fsys.Stat) string {
	letters := map[fsys.Type]string{fsys.TypeRegular: "r", fsys.TypeDir: "d", fsys.TypeSymlink: "l", fsys.TypeCharDev: "c",
		fsys.TypeBlockDev: "b", fsys.TypeFIFO: "p", fsys.TypeSocket: "s", fsys.TypeUnknown: "-"}
	perm := []byte("rwxrwxrwx")
	for i := range perm {
		if st.Mode&(1<<(8-i)) == 0 {
			perm[i] = '-'
		}
	}
	special := func(bit uint32, i int, set, unset byte) {
		if st.Mode&bit != 0 {
			if perm[i] == 'x' {
				perm[i] = set
			} else {
				perm[i] = unset
			}
		}
	}
	special(0o4000, 2, 's', 'S')
	special(0o2000, 5, 's', 'S')
	special(0o1000, 8, 't', 'T')
	return letters[entry] + "/" + letters[st.Type] + string(perm)
}

func unix(tm time.Time) int64 {
	if tm.IsZero() {
		return 0
	}
	return tm.Unix()
}

func readAll(t *testing.T, fl fsys.File) []byte {
	t.Helper()
	buf := make([]byte, fl.Size())
	n, err := fl.ReadAt(buf, 0)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(buf)) {
		t.Fatalf("ReadAt: %d bytes: %v", n, err)
	}
	if n != len(buf) {
		t.Fatalf("ReadAt: %d of %d bytes", n, len(buf))
	}
	// Reading in odd pieces gives the same bytes.
	var pieces []byte
	for off := int64(0); off < fl.Size(); {
		p := make([]byte, 777+off%5000)
		n, err := fl.ReadAt(p, off)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("ReadAt %d: %v", off, err)
		}
		if n == 0 {
			t.Fatalf("ReadAt %d: no bytes", off)
		}
		pieces = append(pieces, p[:n]...)
		off += int64(n)
	}
	if !bytes.Equal(pieces, buf) {
		t.Fatal("reading in pieces differs from reading at once")
	}
	if n, err := fl.ReadAt(make([]byte, 1), fl.Size()); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the end: %d, %v", n, err)
	}
	return buf
}

// checkRuns checks that the runs cover the file in logical order, that
// stored runs hold the file's bytes on the volume, and holes its zeros.
func checkRuns(t *testing.T, name string, fl fsys.File, data []byte, vol io.ReaderAt, bs int64) (stored, holes int) {
	t.Helper()
	runs := fl.Runs()
	if fl.Resident() {
		if len(runs) != 0 {
			t.Errorf("%s: resident with runs %v", name, runs)
		}
		return 0, 0
	}
	pos := int64(0)
	for i, r := range runs {
		if r.Logical != pos || r.Length <= 0 || r.Logical%bs != 0 {
			t.Fatalf("%s: run %d %+v after byte %d", name, i, r, pos)
		}
		if i > 0 && r.Sparse() && runs[i-1].Sparse() {
			t.Errorf("%s: two holes in a row at run %d", name, i)
		}
		if i > 0 && !r.Sparse() && runs[i-1].Physical+runs[i-1].Length == r.Physical {
			t.Errorf("%s: contiguous runs %d and %d not merged", name, i-1, i)
		}
		want := data[r.Logical : r.Logical+r.Length]
		if r.Sparse() {
			holes++
			if !bytes.Equal(want, make([]byte, len(want))) {
				t.Errorf("%s: hole %+v over bytes that are not zeros", name, r)
			}
		} else {
			stored++
			got := make([]byte, r.Length)
			if _, err := vol.ReadAt(got, r.Physical); err != nil || r.Physical%bs != 0 {
				t.Fatalf("%s: run %+v: %v", name, r, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: run %+v does not hold the file's bytes", name, r)
			}
		}
		pos += r.Length
	}
	if pos != int64(len(data)) {
		t.Errorf("%s: runs cover %d of %d bytes", name, pos, len(data))
	}
	return stored, holes
}

// TestMatchesSleuthKit reads every variant's tree and checks it against
// what the test wrote and what Sleuth Kit's fls, icat and bodyfile say.
func TestMatchesSleuthKit(t *testing.T) {
	icat := testenv.RequireTool(t, "mkfs.ext4", "fls", "icat", "e2fsck", "debugfs")[2]
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel() // mostly waiting on mkfs, fls and icat
			img, tr := buildImage(t, v.kind, v.args, v.many)
			f, fh := openImage(t, img)
			if f.Type() != v.typ {
				t.Fatalf("type %q, want %q", f.Type(), v.typ)
			}
			walked := map[string]fsys.DirEntry{}
			if err := fsys.Walk(f, f.Root(), "/", func(p string, e fsys.DirEntry) error {
				if _, dup := walked[p]; dup {
					return fmt.Errorf("%s listed twice", p)
				}
				walked[p] = e
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			want := fls(t, img)
			if len(walked) != len(want) || len(want) < v.many+20 {
				t.Errorf("walk found %d names, fls %d", len(walked), len(want))
			}
			body := bodyfile(t, img)
			icats := 0
			for p, fe := range want {
				e, ok := walked[p]
				if !ok {
					t.Errorf("%s (inode %d) not found by the walk", p, fe.ino)
					continue
				}
				st, err := f.Stat(e.ID)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				tsk := tskMode(e.Type, st)
				if uint64(e.ID) != fe.ino || tsk[:3] != fe.typ || (e.Type != fsys.TypeUnknown && e.Type != st.Type) || st.Addr != strconv.FormatUint(fe.ino, 10) {
					t.Errorf("%s: inode %d %s (entry %v), fls says %d %s", p, e.ID, tsk, e.Type, fe.ino, fe.typ)
				}
				b, ok := body[p]
				got := bodyLine{uint64(st.ID), tsk, st.UID, st.GID, st.Size, unix(st.Atime), unix(st.Mtime), unix(st.Ctime), unix(st.Crtime)}
				if v.typ != "ext4" {
					got.crtime = 0 // Sleuth Kit reads crtime on ext4 only
				}
				if p == "/mid.txt" && slices.Contains(v.args, "128") {
					// Without the extra space that holds the epoch bits,
					// the kernel reads seconds as signed: 2100 is 1964.
					// Sleuth Kit reads them unsigned.
					got.mtime += 1 << 32
				}
				if !ok || got != b {
					t.Errorf("%s: stat %+v, bodyfile %+v", p, got, b)
				}
				if st.Type == fsys.TypeSymlink {
					target, err := f.Readlink(e.ID)
					if err != nil || int64(len(target)) != st.Size || (tr.links[p] != "" && target != tr.links[p]) {
						t.Errorf("%s: readlink %q, %v (size %d)", p, target, err, st.Size)
					}
				}
				if st.Type != fsys.TypeRegular {
					continue
				}
				fl, err := f.Open(e.ID, "")
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				data := readAll(t, fl)
				if content, ok := tr.files[p]; ok && !bytes.Equal(data, content) {
					t.Errorf("%s: %d bytes differ from the %d written", p, len(data), len(content))
				}
				checkRuns(t, p, fl, data, fh, f.BlockSize())
				if strings.HasPrefix(p, tr.many+"/") && fe.ino%200 != 0 {
					continue // icat a few of the directory's 2000 (icat is slow)
				}
				icats++
				cat, err := exec.Command(icat, img, strconv.FormatUint(fe.ino, 10)).Output()
				if err != nil && p == tr.sparse && f.BlockSize() < 4096 {
					// Sleuth Kit 4.11 cannot map this file's extent tree
					// in small blocks ("No filler entry for 0"); its bytes
					// were checked against those written.
					t.Logf("%s: icat: %v", p, err)
					continue
				}
				if err != nil || !bytes.Equal(cat, data) {
					t.Errorf("%s: %d bytes, icat gives %d different ones (%v)", p, len(data), len(cat), err)
				}
			}
			if icats < 12 {
				t.Errorf("only %d files compared with icat", icats)
			}
			checkTree(t, f, fh, tr, walked, v.extents, v.inline, v.many)
		})
	}
}

// checkTree checks what the tree was written to hold: the hash-tree
// directory, the sparse file's extent tree and holes, the hard link,
// the special files, owners, modes and times.
func checkTree(t *testing.T, f *FS, fh *os.File, tr *tree, walked map[string]fsys.DirEntry, extents, inline bool, names int) {
	many := walked[tr.many]
	entries, err := f.ReadDir(many.ID)
	if err != nil || len(entries) != names {
		t.Fatalf("%s: %d entries, %v", tr.many, len(entries), err)
	}
	in, err := f.inode(uint64(many.ID))
	if htree := names*60 > int(f.bs); err != nil || (htree && in.flags&flagIndex == 0) {
		t.Errorf("%s is not a hash-tree directory (flags %#x, %v)", tr.many, in.flags, err)
	}

	sp := walked[tr.sparse]
	in, err = f.inode(uint64(sp.ID))
	if err != nil {
		t.Fatal(err)
	}
	if extents && f.bs < 64<<10 && (in.flags&flagExtents == 0 || ondisk.U16(in.raw, iBlock+6) < 1) {
		t.Errorf("%s: no extent tree of depth 1 or more", tr.sparse)
	}
	fl, err := f.Open(sp.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	stored, holes := checkRuns(t, tr.sparse, fl, tr.files[tr.sparse], fh, f.BlockSize())
	wantStored, wantHoles := 300, 299
	if f.bs >= 64<<10 {
		wantStored, wantHoles = 1, 0 // each 4 KiB region lies in its own 64 KiB block: no hole
	}
	if stored < wantStored || holes != wantHoles {
		t.Errorf("%s: %d stored runs and %d holes, want >= 300 and 299", tr.sparse, stored, holes)
	}

	a, b := walked[tr.hard[0]], walked[tr.hard[1]]
	st, err := f.Stat(a.ID)
	if a.ID != b.ID || err != nil || st.Nlink != 2 {
		t.Errorf("hard link: inodes %d and %d, nlink %d, %v", a.ID, b.ID, st.Nlink, err)
	}
	if st, err := f.Stat(walked["/fifo"].ID); err != nil || st.Type != fsys.TypeFIFO || st.Mode != 0o640 {
		t.Errorf("fifo: %+v, %v", st, err)
	}
	if os.Geteuid() == 0 {
		if st, err := f.Stat(walked["/null"].ID); err != nil || st.Type != fsys.TypeCharDev {
			t.Errorf("null: %+v, %v", st, err)
		}
		if st, err := f.Stat(walked["/d/big.bin"].ID); err != nil || st.UID != 70000 || st.GID != 80001 {
			t.Errorf("big.bin: uid %d gid %d, %v", st.UID, st.GID, err)
		}
	}
	st, err = f.Stat(walked["/mid.txt"].ID)
	wantM := time.Date(2100, 7, 8, 9, 10, 11, midNsec, time.UTC)
	if f.inodeSize == oldInodeSize {
		wantM = time.Date(1964, 6, 1, 2, 41, 55, 0, time.UTC) // 2100 without epoch bits, as the kernel reads it
	}
	if err != nil || st.Mode != 0o4751 || st.Size != 100 || !st.Mtime.Equal(wantM) {
		t.Errorf("mid.txt: %+v, %v", st, err)
	}
	if st, err := f.Stat(walked["/d"].ID); err != nil || st.Type != fsys.TypeDir || st.Nlink != 3 {
		t.Errorf("/d: %+v, %v", st, err)
	}

	small, err := f.Open(walked["/small.txt"].ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if small.Resident() != inline {
		t.Errorf("small.txt: resident %v with inline_data %v", small.Resident(), inline)
	}
	if inline {
		mid, err := f.Open(walked["/mid.txt"].ID, "")
		if err != nil || !mid.Resident() {
			t.Errorf("mid.txt (100 bytes, partly in system.data) is not inline: %v", err)
		}
		sub, err := f.inode(uint64(walked["/d/sub"].ID))
		if err != nil || sub.flags&flagInlineData == 0 {
			t.Errorf("/d/sub is not an inline directory: %v", err)
		}
	}
	if slow, err := f.inode(uint64(walked["/d/slow"].ID)); inline && f.inodeSize >= 512 && (err != nil || slow.flags&flagInlineData == 0) {
		t.Errorf("/d/slow is not an inline symlink in 512-byte inodes: %v", err)
	}
	if fast, err := f.inode(uint64(walked["/fast"].ID)); err != nil || !f.fastSymlink(fast) {
		t.Errorf("/fast is not a fast symlink: %v", err)
	}
	if slow, err := f.inode(uint64(walked["/d/slow"].ID)); err != nil || f.fastSymlink(slow) {
		t.Errorf("/d/slow is a fast symlink: %v", err)
	}

	// Errors callers branch on.
	if _, err := f.Open(f.Root(), ""); !errors.Is(err, fsys.ErrIsDir) {
		t.Errorf("Open(root): %v", err)
	}
	if _, err := f.ReadDir(walked["/small.txt"].ID); !errors.Is(err, fsys.ErrNotDir) {
		t.Errorf("ReadDir(file): %v", err)
	}
	if _, err := f.Open(walked["/small.txt"].ID, "ads"); !errors.Is(err, fsys.ErrNotFound) {
		t.Errorf("Open(stream): %v", err)
	}
	if _, err := f.Stat(fsys.ID(f.inodes + 1)); !errors.Is(err, fsys.ErrNotFound) {
		t.Errorf("Stat(past the last inode): %v", err)
	}
	if id, err := fsys.Lookup(f, "/d/sub/deep.txt"); err != nil || id == 0 {
		t.Errorf("Lookup: %d, %v", id, err)
	}
}
