package xfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/fstest"
)

// configs are the mkfs.xfs 6.1 variants the reader is checked on.
var configs = []struct {
	name string
	size int64 // of the image
	bs   int
	opts []string
	// forms: the directory sizes give short-form, block, leaf, node
	// and B+tree directories (with 4 KiB directory blocks).
	forms bool
	// features: what xfs_db's version command must list, and the
	// crafted B+tree file's bigtime and nrext64 inode flags.
	features         []string
	bigtime, nrext64 string
}{
	// mkfs.xfs 6.1's defaults: crc, finobt, sparse inodes, reflink,
	// bigtime, inobtcount, ftype; 4 allocation groups.
	{"default", mkfsBytes, 4096, nil, true,
		[]string{"V5", "CRC", "FTYPE", "FINOBT", "SPARSE_INODES", "REFLINK", "INOBTCNT", "BIGTIME"}, "1", "0"},
	{"rmapbt-nrext64-dir8k", mkfsBytes, 4096, []string{"-m", "rmapbt=1", "-i", "nrext64=1", "-n", "size=8192"}, false,
		[]string{"V5", "CRC", "FINOBT", "REFLINK", "RMAPBT", "BIGTIME", "NREXT64"}, "1", "1"},
	{"1k-blocks-no-bigtime", mkfsBytes, 1024, []string{"-m", "bigtime=0"}, false,
		[]string{"V5", "CRC", "FINOBT", "REFLINK"}, "0", "0"},
	// A v4 file system (deprecated, but on old instances): v2 inodes, no
	// CRCs, v4 block magics, remote symlinks without headers. 512 MiB:
	// without sparse inode chunks the tree does not fit beside the
	// 64 MiB log in 300 MB.
	{"v4", 512 << 20, 4096, []string{"-m", "crc=0"}, false, []string{"V4", "FTYPE"}, "", ""},
}

func openImage(t testing.TB, img string) (*FS, *os.File) {
	t.Helper()
	return fstest.OpenImage(t, img, Open)
}

// TestImages builds images with mkfs.xfs and checks every name, type,
// inode number, byte, run and time the reader gives against the tree the
// test wrote and against xfs_db.
func TestImages(t *testing.T) {
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			im := buildImage(t, c.size, c.bs, testTree(c.bs), c.opts...)
			addXattrs(t, im, xattrPaths)
			version := strings.TrimSpace(xfsDB(t, im.path, "version"))
			_, list, _ := strings.Cut(version, " = ")
			have := map[string]bool{}
			for _, feat := range strings.Split(list, ",") {
				have[feat] = true
			}
			for _, feat := range c.features {
				if !have[feat] {
					t.Errorf("xfs_db version: %s lacks %s", version, feat)
				}
			}
			flags := dbFields(t, im.path, fmt.Sprintf("inode %d", dbIno(t, im.path, "/frag")), "p v3.bigtime v3.nrext64")
			if flags["v3.bigtime"] != c.bigtime || flags["v3.nrext64"] != c.nrext64 {
				t.Errorf("/frag: xfs_db says bigtime %s nrext64 %s, want %s %s", flags["v3.bigtime"], flags["v3.nrext64"], c.bigtime, c.nrext64)
			}
			f, fh := openImage(t, im.path)
			if f.Type() != "xfs" {
				t.Errorf("Type = %q", f.Type())
			}
			want := flatten(im.tree)
			got := walkAll(t, f)
			checkNames(t, want, got)
			checkDirsAgainstXFSDB(t, f, im, want, got)
			checkContents(t, f, fh, want, got)
			checkRunsAgainstXFSDB(t, f, im, got)
			checkStatAgainstXFSDB(t, f, im, want, got)
			checkAGs(t, f, got)
			if c.forms {
				checkForms(t, im, got)
			}
			// Whatever the geometry, the largest directory is a B+tree.
			if db := dbFields(t, im.path, fmt.Sprintf("inode %d", got["/d20000"].ID), "p core.format"); db["core.format"] != "3 (btree)" {
				t.Errorf("/d20000: format %s, want a B+tree", db["core.format"])
			}
			checkErrors(t, f, got)
		})
	}
}

// walkAll returns every entry under the root by path.
func walkAll(t testing.TB, f *FS) map[string]fsys.DirEntry {
	t.Helper()
	got := map[string]fsys.DirEntry{"/": {ID: f.Root(), Type: fsys.TypeDir}}
	err := fsys.Walk(f, f.Root(), "/", func(p string, e fsys.DirEntry) error {
		if _, dup := got[p]; dup {
			t.Errorf("%s listed twice", p)
		}
		got[p] = e
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

func checkNames(t *testing.T, want map[string]*tnode, got map[string]fsys.DirEntry) {
	if len(got) != len(want) {
		t.Errorf("%d paths, want %d", len(got), len(want))
	}
	for p, n := range want {
		e, ok := got[p]
		if !ok {
			t.Errorf("%s: missing", shorten(p))
			continue
		}
		if e.Type != n.typ {
			t.Errorf("%s: type %v, want %v", shorten(p), e.Type, n.typ)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: not in the tree", shorten(p))
		}
	}
}

func shorten(p string) string {
	if len(p) > 60 {
		return p[:40] + "…" + p[len(p)-10:]
	}
	return p
}

var dbTypes = map[string]fsys.Type{"regular": fsys.TypeRegular, "directory": fsys.TypeDir,
	"symlink": fsys.TypeSymlink, "chardev": fsys.TypeCharDev, "blkdev": fsys.TypeBlockDev,
	"fifo": fsys.TypeFIFO, "socket": fsys.TypeSocket}

// checkDirsAgainstXFSDB compares every directory's ReadDir with xfs_db's
// ls: the same names, inode numbers and types in the same order.
func checkDirsAgainstXFSDB(t *testing.T, f *FS, im image, want map[string]*tnode, got map[string]fsys.DirEntry) {
	for p, n := range want {
		if n.typ != fsys.TypeDir {
			continue
		}
		ents, err := f.ReadDir(got[p].ID)
		if err != nil {
			t.Errorf("ReadDir %s: %v", p, err)
			continue
		}
		var db []dbEntry
		for _, e := range dbLs(t, im.path, p) {
			if e.name != "." && e.name != ".." {
				db = append(db, e)
			}
		}
		if len(ents) != len(db) || len(ents) != len(n.kids) {
			t.Errorf("%s: %d entries, xfs_db lists %d, the tree has %d", p, len(ents), len(db), len(n.kids))
			continue
		}
		for i, e := range ents {
			d := db[i]
			if e.Name != d.name || uint64(e.ID) != d.ino || e.Type != dbTypes[d.typ] {
				t.Errorf("%s entry %d: %q inode %d %v; xfs_db: %q inode %d %s", p, i, shorten(e.Name), e.ID, e.Type, shorten(d.name), d.ino, d.typ)
				break
			}
		}
	}
}

// checkContents reads every file and link and compares it with what the
// tree put in; each run's bytes, read straight from the image, must be
// the file's bytes at that offset.
func checkContents(t *testing.T, f *FS, fh *os.File, want map[string]*tnode, got map[string]fsys.DirEntry) {
	for p, n := range want {
		id := got[p].ID
		switch n.typ {
		case fsys.TypeSymlink:
			target, err := f.Readlink(id)
			if err != nil || target != n.target {
				t.Errorf("Readlink %s = %q, %v; want %q", p, shorten(target), err, shorten(n.target))
			}
			st, err := f.Stat(id)
			if err != nil || st.Size != int64(len(n.target)) {
				t.Errorf("Stat %s: size %d, %v; want %d", p, st.Size, err, len(n.target))
			}
		case fsys.TypeRegular:
			fl, err := f.Open(id, "")
			if err != nil {
				t.Errorf("Open %s: %v", p, err)
				continue
			}
			if fl.Size() != int64(len(n.data)) || fl.Resident() {
				t.Errorf("%s: size %d resident %v, want %d bytes in blocks", p, fl.Size(), fl.Resident(), len(n.data))
			}
			data, err := io.ReadAll(io.NewSectionReader(fl, 0, fl.Size()+1))
			if err != nil || !bytes.Equal(data, n.data) {
				t.Errorf("%s: read %d bytes (%v), differ from the %d written", p, len(data), err, len(n.data))
			}
			checkRuns(t, p, fl, fh, n.data)
		}
	}
}

func checkRuns(t *testing.T, p string, fl fsys.File, fh *os.File, data []byte) {
	var next int64
	runs := fl.Runs()
	for i, r := range runs {
		if r.Logical != next || r.Length <= 0 {
			t.Errorf("%s: run %d %+v: want it to start at %d", p, i, r, next)
			return
		}
		if i > 0 {
			prev := runs[i-1]
			if prev.Sparse() == r.Sparse() && (r.Sparse() || prev.Physical+prev.Length == r.Physical) {
				t.Errorf("%s: runs %d and %d are not merged: %+v %+v", p, i-1, i, prev, r)
			}
		}
		chunk := data[r.Logical : r.Logical+r.Length]
		if r.Sparse() {
			if !bytes.Equal(chunk, make([]byte, len(chunk))) {
				t.Errorf("%s: sparse run %+v holds data", p, r)
			}
		} else {
			disk := make([]byte, r.Length)
			if _, err := fh.ReadAt(disk, r.Physical); err != nil || !bytes.Equal(disk, chunk) {
				t.Errorf("%s: run %+v: the image's bytes there are not the file's (%v)", p, r, err)
			}
		}
		next = r.Logical + r.Length
	}
	if next != int64(len(data)) {
		t.Errorf("%s: runs cover %d bytes, the file has %d", p, next, len(data))
	}
}

// checkRunsAgainstXFSDB compares, block by block, the runs of some
// files with the extents xfs_db's bmap reads (for frag, from the
// crafted two-level B+tree).
func checkRunsAgainstXFSDB(t *testing.T, f *FS, im image, got map[string]fsys.DirEntry) {
	agblocks := f.sb.agBlocks
	bs := int64(im.bs)
	for _, p := range []string{"/frag", "/big.bin", "/small/b", "/hello.txt", "/d100/f000042"} {
		id := got[p].ID
		fl, err := f.Open(id, "")
		if err != nil {
			t.Fatalf("Open %s: %v", p, err)
		}
		nblocks := (fl.Size() + bs - 1) / bs
		want := make([]int64, nblocks) // the byte offset of each block, or -1
		for i := range want {
			want[i] = -1
		}
		for _, e := range dbBmap(t, im.path, uint64(id)) {
			for k := uint64(0); k < e.count && int64(e.off+k) < nblocks; k++ {
				if !e.unwritten {
					want[e.off+k] = int64((e.ag*agblocks + e.agbno + k) * uint64(bs))
				}
			}
		}
		for i := range want {
			got := int64(-2)
			for _, r := range fl.Runs() {
				if off := int64(i) * bs; off >= r.Logical && off < r.Logical+r.Length {
					got = -1
					if !r.Sparse() {
						got = r.Physical + off - r.Logical
					}
				}
			}
			if got != want[i] {
				t.Errorf("%s block %d: at %d, xfs_db's bmap says %d", p, i, got, want[i])
				break
			}
		}
	}
}

// statPaths are the files whose inodes are compared with xfs_db.
var statPaths = []string{"/", "/hello.txt", "/empty", "/suid", "/sgid", "/big.bin", "/frag",
	"/small", "/small/a", "/small/up", "/links/long", "/links/short", "/dev/null", "/dev/sda",
	"/dev/fifo", "/deep/a/b/c/leaf.txt", "/d100", "/d300", "/d1000", "/d2000", "/d20000",
	"/d20000/many-019999", "/d2000/n001234"}

// checkStatAgainstXFSDB compares Stat with xfs_db's print of the inode,
// and the permissions, owners and sizes with the tree.
func checkStatAgainstXFSDB(t *testing.T, f *FS, im image, want map[string]*tnode, got map[string]fsys.DirEntry) {
	for _, p := range statPaths {
		id := got[p].ID
		st, err := f.Stat(id)
		if err != nil {
			t.Errorf("Stat %s: %v", p, err)
			continue
		}
		n := want[p]
		if st.ID != id || st.Addr != strconv.FormatUint(uint64(id), 10) || st.Type != n.typ ||
			st.Mode != n.perm || st.UID != n.uid || st.GID != n.gid {
			t.Errorf("Stat %s = %+v; the tree: %v %o %d:%d", p, st, n.typ, n.perm, n.uid, n.gid)
		}
		if n.typ == fsys.TypeRegular && st.Size != int64(len(n.data)) {
			t.Errorf("Stat %s: size %d, wrote %d", p, st.Size, len(n.data))
		}
		fields := "p core.mode core.uid core.gid core.nlinkv2 core.size " +
			"core.atime.sec core.atime.nsec core.mtime.sec core.mtime.nsec core.ctime.sec core.ctime.nsec"
		if im.v5 {
			fields += " v3.crtime.sec v3.crtime.nsec"
		}
		db := dbFields(t, im.path, fmt.Sprintf("inode %d", id), fields)
		mode := dbUint(t, db, "core.mode")
		if uint32(mode)&0o7777 != st.Mode || dbUint(t, db, "core.uid") != uint64(st.UID) ||
			dbUint(t, db, "core.gid") != uint64(st.GID) || dbUint(t, db, "core.nlinkv2") != uint64(st.Nlink) ||
			dbUint(t, db, "core.size") != uint64(st.Size) {
			t.Errorf("Stat %s = %+v; xfs_db: %v", p, st, db)
		}
		for _, tm := range []struct {
			name string
			got  time.Time
		}{{"core.atime", st.Atime}, {"core.mtime", st.Mtime}, {"core.ctime", st.Ctime}, {"v3.crtime", st.Crtime}} {
			if _, ok := db[tm.name+".sec"]; !ok && tm.name == "v3.crtime" && !im.v5 {
				if !tm.got.IsZero() {
					t.Errorf("Stat %s: crtime %v on a v4 file system", p, tm.got)
				}
				continue
			}
			sec, err := time.Parse("Mon Jan _2 15:04:05 2006", db[tm.name+".sec"])
			if err != nil {
				t.Fatalf("xfs_db %s.sec = %q: %v", tm.name, db[tm.name+".sec"], err)
			}
			w := sec.Add(time.Duration(dbUint(t, db, tm.name+".nsec")))
			if !tm.got.Equal(w) {
				t.Errorf("Stat %s: %s %v, xfs_db %v", p, tm.name, tm.got, w)
			}
		}
	}
	// mkfs.xfs -p stamps every new inode with the time it ran.
	st, _ := f.Stat(got["/hello.txt"].ID)
	if age := time.Since(st.Mtime); age < 0 || age > time.Hour || (im.v5 && !st.Crtime.Equal(st.Mtime)) {
		t.Errorf("/hello.txt: mtime %v crtime %v: want the time mkfs ran", st.Mtime, st.Crtime)
	}
}

// checkAGs checks that the tree's inodes lie in more than one allocation
// group (mkfs.xfs spreads new directories over them).
func checkAGs(t *testing.T, f *FS, got map[string]fsys.DirEntry) {
	ags := map[uint64]bool{}
	for _, e := range got {
		ags[uint64(e.ID)>>(f.sb.agBlkLog+f.sb.inoPBLog)] = true
	}
	if len(ags) < 2 {
		t.Errorf("inodes in %d allocation groups, want them spread", len(ags))
	}
}

// checkForms checks with xfs_db that the directories have the forms the
// test means them to have.
func checkForms(t *testing.T, im image, got map[string]fsys.DirEntry) {
	leafBlock := uint64(dirLeafOffset) / uint64(im.bs)
	for _, c := range []struct {
		p, format string
		magic     string // of the first block of the leaf space: leaf (0x3df1) or node (0x3ebe)
	}{
		{"/small", "1 (local)", ""},
		{"/d100", "2 (extents)", ""},
		{"/d300", "2 (extents)", "0x3df1"},
		{"/d2000", "2 (extents)", "0x3ebe"},
		{"/d20000", "3 (btree)", "0x3ebe"},
	} {
		id := got[c.p].ID
		db := dbFields(t, im.path, fmt.Sprintf("inode %d", id), "p core.format core.size")
		if db["core.format"] != c.format {
			t.Errorf("%s: format %s, want %s", c.p, db["core.format"], c.format)
		}
		if c.p == "/d100" && dbUint(t, db, "core.size") != uint64(im.bs) {
			t.Errorf("%s: %s bytes, want a single-block directory", c.p, db["core.size"])
		}
		if c.magic != "" {
			out := xfsDB(t, im.path, fmt.Sprintf("inode %d", id), fmt.Sprintf("dblock %d", leafBlock), "p")
			if !strings.Contains(out, "info.hdr.magic = "+c.magic) {
				t.Errorf("%s: leaf space starts with %.80q, want magic %s", c.p, out, c.magic)
			}
		}
	}
}

func checkErrors(t *testing.T, f *FS, got map[string]fsys.DirEntry) {
	if _, err := fsys.Lookup(f, "/small/nope"); !errors.Is(err, fsys.ErrNotFound) {
		t.Errorf("Lookup of a missing name: %v, want ErrNotFound", err)
	}
	if _, err := f.ReadDir(got["/hello.txt"].ID); !errors.Is(err, fsys.ErrNotDir) {
		t.Errorf("ReadDir of a file: %v, want ErrNotDir", err)
	}
	if _, err := f.Open(got["/small"].ID, ""); !errors.Is(err, fsys.ErrIsDir) {
		t.Errorf("Open of a directory: %v, want ErrIsDir", err)
	}
	if _, err := f.Open(got["/hello.txt"].ID, "ads"); !errors.Is(err, fsys.ErrNotFound) {
		t.Errorf("Open of a named stream: %v, want ErrNotFound", err)
	}
	if _, err := f.Readlink(got["/hello.txt"].ID); err == nil {
		t.Error("Readlink of a file: no error")
	}
	id, err := fsys.Lookup(f, "/links/short")
	if err != nil || id != got["/links/short"].ID {
		t.Errorf("Lookup /links/short = %d, %v", id, err)
	}
	fl, err := f.Open(got["/links/short"].ID, "")
	if err != nil || !fl.Resident() || fl.Size() != int64(len("hello.txt")) {
		t.Errorf("Open of a short symlink: %v", err)
	}
	fl, err = f.Open(got["/dev/fifo"].ID, "")
	if err != nil || fl.Size() != 0 {
		t.Errorf("Open of a FIFO: %v", err)
	}
	// Reads past the end and at the end.
	fl, _ = f.Open(got["/hello.txt"].ID, "")
	buf := make([]byte, 20)
	if n, err := fl.ReadAt(buf, 6); n != 5 || err != io.EOF || string(buf[:n]) != " xfs\n" {
		t.Errorf("ReadAt(20 bytes at 6) = %d %v %q", n, err, buf[:n])
	}
	if n, err := fl.ReadAt(buf, 11); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d %v", n, err)
	}
	if _, err := fl.ReadAt(buf, -1); err == nil {
		t.Error("ReadAt at -1: no error")
	}
}
