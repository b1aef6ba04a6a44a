package xfs

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// This file builds real XFS images with mkfs.xfs -p (a protofile) from
// a tree the test describes, and reads them back with xfs_db, the XFS
// debugger, to cross-check the reader.

// tnode is a file of the test tree.
type tnode struct {
	name     string
	typ      fsys.Type
	perm     uint32 // permission bits, with setuid (04000) and setgid (02000)
	uid, gid uint32
	data     []byte // a regular file's content
	target   string // a symbolic link's target
	kids     []*tnode
}

func dir(name string, kids ...*tnode) *tnode {
	return &tnode{name: name, typ: fsys.TypeDir, perm: 0o755, kids: kids}
}

func reg(name string, data []byte) *tnode {
	return &tnode{name: name, typ: fsys.TypeRegular, perm: 0o644, data: data}
}

func lnk(name, target string) *tnode {
	return &tnode{name: name, typ: fsys.TypeSymlink, perm: 0o777, target: target}
}

// pattern returns n bytes, distinct for every seed.
func pattern(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// fragBlocks is the size in blocks of the file the test turns into an
// extent B+tree (see craftBtree).
const fragBlocks = 64

// fragBlock is the content mkfs writes to block i of the file "frag".
func fragBlock(i, bs int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("frag block %04d\n", i)), bs/16)
}

// bigDir returns a directory of n regular files named from prefix; one
// in eight holds a byte, so data blocks (and inode chunks) interleave
// with the directory's blocks and a large directory's extents fragment.
func bigDir(name, prefix string, n int) *tnode {
	d := dir(name)
	one := []byte{'x'}
	for i := 0; i < n; i++ {
		var data []byte
		if i%8 == 0 {
			data = one
		}
		d.kids = append(d.kids, reg(fmt.Sprintf("%s%06d", prefix, i), data))
	}
	return d
}

// testTree is the tree the images hold; bs is the file system's block
// size (the crafted B+tree file's blocks are that size).
func testTree(bs int) *tnode {
	long := strings.Repeat("L", 255)
	hello := reg("hello.txt", []byte("hello, xfs\n"))
	hello.uid, hello.gid, hello.perm = 1000, 1001, 0o640
	suid := reg("suid", []byte("#!/bin/sh\n"))
	suid.perm = 0o4755
	sgid := dir("sgid")
	sgid.perm = 0o2775
	var frag []byte
	for i := 0; i < fragBlocks; i++ {
		frag = append(frag, fragBlock(i, bs)...)
	}
	longTarget := strings.Repeat("0123456789abcdef/", 60)[:1000]
	chr := &tnode{name: "null", typ: fsys.TypeCharDev, perm: 0o666}
	blk := &tnode{name: "sda", typ: fsys.TypeBlockDev, perm: 0o660}
	fifo := &tnode{name: "fifo", typ: fsys.TypeFIFO, perm: 0o600}
	d1000 := bigDir("d1000", "entry-with-a-longer-name-", 1000)
	d1000.kids = append(d1000.kids, reg(long, []byte("long name\n")))
	return dir("",
		hello,
		reg("empty", nil),
		suid,
		sgid,
		reg("big.bin", pattern(1, 3<<20+123)),
		reg("frag", frag),
		reg("h1", pattern(2, bs)),
		reg("h2", pattern(3, bs)),
		reg("h3", pattern(4, bs)),
		dir("small",
			reg("a", []byte("a\n")),
			reg("b", pattern(5, 5000)),
			lnk("up", "../hello.txt"),
			dir("sub"),
			reg(long, []byte("x")),
		),
		dir("links", lnk("short", "hello.txt"), lnk("long", longTarget), reg("holder", holderData(longTarget, bs))),
		dir("dev", chr, blk, fifo),
		dir("deep", dir("a", dir("b", dir("c", reg("leaf.txt", []byte("deep\n")))))),
		bigDir("d100", "f", 100),
		bigDir("d300", "file-", 300),
		d1000,
		bigDir("d2000", "n", 2000),
		bigDir("d20000", "many-", 20000),
	)
}

// protofile writes the tree's regular files under src and returns the
// mkfs.xfs protofile that makes the tree.
func protofile(t testing.TB, root *tnode, src string) string {
	var b strings.Builder
	b.WriteString("ebsimager-test\n0 0\n")
	sources := map[string]string{}
	var walk func(n *tnode, top bool)
	walk = func(n *tnode, top bool) {
		if !top {
			b.WriteString(n.name + " ")
		}
		u, g := byte('-'), byte('-')
		if n.perm&0o4000 != 0 {
			u = 'u'
		}
		if n.perm&0o2000 != 0 {
			g = 'g'
		}
		kind := map[fsys.Type]byte{fsys.TypeRegular: '-', fsys.TypeDir: 'd', fsys.TypeSymlink: 'l',
			fsys.TypeCharDev: 'c', fsys.TypeBlockDev: 'b', fsys.TypeFIFO: 'p'}[n.typ]
		fmt.Fprintf(&b, "%c%c%c%03o %d %d", kind, u, g, n.perm&0o777, n.uid, n.gid)
		switch n.typ {
		case fsys.TypeRegular:
			p, ok := sources[string(n.data)]
			if !ok {
				p = filepath.Join(src, strconv.Itoa(len(sources)))
				if err := os.WriteFile(p, n.data, 0o600); err != nil {
					t.Fatal(err)
				}
				sources[string(n.data)] = p
			}
			b.WriteString(" " + p)
		case fsys.TypeSymlink:
			b.WriteString(" " + n.target)
		case fsys.TypeCharDev:
			b.WriteString(" 1 3")
		case fsys.TypeBlockDev:
			b.WriteString(" 8 0")
		}
		b.WriteString("\n")
		if n.typ == fsys.TypeDir {
			for _, k := range n.kids {
				walk(k, false)
			}
			b.WriteString("$\n")
		}
	}
	walk(root, true)
	b.WriteString("$\n")
	return b.String()
}

// image is a built test image.
type image struct {
	path string
	tree *tnode
	bs   int
	v5   bool // a CRC-enabled file system (mkfs.xfs -m crc=0 makes v4)
}

// mkfsBytes is the image size: mkfs.xfs 6.1 refuses v5 file systems
// smaller than 300 MB. The file is sparse.
const mkfsBytes = 300 << 20

// buildImage makes an XFS image of size bytes (a sparse file) of the
// test tree with mkfs.xfs and the extra options, then turns "frag" into
// a two-level extent B+tree and gives the long symlink its v5 header.
func buildImage(t testing.TB, size int64, bs int, tree *tnode, opts ...string) image {
	t.Helper()
	testenv.RequireTool(t, "mkfs.xfs", "xfs_db")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o700); err != nil {
		t.Fatal(err)
	}
	proto := filepath.Join(dir, "proto")
	if err := os.WriteFile(proto, []byte(protofile(t, tree, src)), 0o600); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "xfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-q", "-f", "-b", "size=" + strconv.Itoa(bs), "-p", proto}, opts...)
	if out, err := exec.Command("mkfs.xfs", append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs %v: %v\n%s", args, err, out)
	}
	im := image{path: img, tree: tree, bs: bs}
	im.v5 = strings.Contains(xfsDB(t, img, "version"), " = V5,")
	// On v4 the B+tree is left to the 20,000-entry directory, which
	// libxfs builds: xfs_db 6.1's bmap loops on a v4 tree written field
	// by field.
	if im.v5 && findNode(tree, "/frag") != nil {
		craftBtree(t, im)
	}
	if im.v5 && findNode(tree, "/links/long") != nil {
		fixRemoteSymlink(t, im, "/links/long", "/links/holder")
	}
	return im
}

func findNode(root *tnode, p string) *tnode {
	n := root
	for _, name := range strings.Split(strings.Trim(p, "/"), "/") {
		if name == "" {
			continue
		}
		var next *tnode
		for _, k := range n.kids {
			if k.name == name {
				next = k
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// xfsDB runs xfs_db read-only with the commands and returns its output.
func xfsDB(t testing.TB, img string, cmds ...string) string {
	t.Helper()
	return runDB(t, img, "-r", cmds...)
}

func runDB(t testing.TB, img, mode string, cmds ...string) string {
	t.Helper()
	args := []string{mode}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	cmd := exec.Command("xfs_db", append(args, img)...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("xfs_db %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String()
}

// dbEntry is a line of xfs_db's ls.
type dbEntry struct {
	name string
	ino  uint64
	typ  string
}

var lsLine = regexp.MustCompile(`^\d+\s+(\d+)\s+(\S+)\s+0x[0-9a-f]+\s+(\d+)\s+(.*) \((good|bad)\)$`)

// dbLs lists a directory with xfs_db's ls.
func dbLs(t testing.TB, img, p string) []dbEntry {
	t.Helper()
	var ents []dbEntry
	for _, l := range strings.Split(xfsDB(t, img, "ls "+p), "\n") {
		m := lsLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ino, _ := strconv.ParseUint(m[1], 10, 64)
		ents = append(ents, dbEntry{name: m[4], ino: ino, typ: m[2]})
	}
	return ents
}

// dbExtent is a line of xfs_db's bmap.
type dbExtent struct {
	off, ag, agbno, count uint64
	unwritten             bool
}

var bmapLine = regexp.MustCompile(`^data offset (\d+) startblock \d+ \((\d+)/(\d+)\) count (\d+) flag (\d)$`)

func dbBmap(t testing.TB, img string, ino uint64) []dbExtent {
	t.Helper()
	var exts []dbExtent
	for _, l := range strings.Split(xfsDB(t, img, fmt.Sprintf("inode %d", ino), "bmap"), "\n") {
		m := bmapLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n := func(i int) uint64 { v, _ := strconv.ParseUint(m[i], 10, 64); return v }
		exts = append(exts, dbExtent{off: n(1), ag: n(2), agbno: n(3), count: n(4), unwritten: m[5] == "1"})
	}
	return exts
}

// dbFields prints fields of the current object and returns them by name.
func dbFields(t testing.TB, img string, cmds ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(xfsDB(t, img, cmds...), "\n") {
		if k, v, ok := strings.Cut(l, " = "); ok {
			out[k] = v
		}
	}
	return out
}

func dbUint(t testing.TB, fields map[string]string, k string) uint64 {
	t.Helper()
	v, ok := fields[k]
	if !ok {
		t.Fatalf("xfs_db printed no %s", k)
	}
	n, err := strconv.ParseUint(strings.Fields(v)[0], 0, 64)
	if err != nil {
		t.Fatalf("xfs_db %s = %q: %v", k, v, err)
	}
	return n
}

// fragMap says where the crafted B+tree puts file block l of "frag": at
// block phys of mkfs's extent, or nowhere (a hole or an unwritten extent,
// read as zeros). Leaf A maps blocks 0-31 in pairs from the end of the
// extent backwards, its fourth record unwritten; blocks 32-39 are a
// hole; leaf B maps blocks 40-71 from the start of the extent.
func fragMap(l int) (phys int, ok bool) {
	switch {
	case l < 32:
		k := l / 2
		return 62 - 2*k + l%2, k != 3
	case l < 40:
		return 0, false
	default:
		return l - 40, true
	}
}

// fragSize is frag's size after crafting: 72 blocks less 100 bytes.
func fragSize(bs int) int64 { return 72*int64(bs) - 100 }

// fragContent is what frag reads as after crafting.
func fragContent(bs int) []byte {
	var b []byte
	for l := 0; l < 72; l++ {
		if p, ok := fragMap(l); ok {
			b = append(b, fragBlock(p, bs)...)
		} else {
			b = append(b, make([]byte, bs)...)
		}
	}
	return b[:fragSize(bs)]
}

// craftBtree uses xfs_db (expert mode; it writes each field and
// recomputes the block's CRC) to turn the single-extent file "frag"
// into a two-level extent B+tree: a root in the inode pointing to a node
// block (h3's block) pointing to two leaves (h1's and h2's blocks),
// mapping frag's blocks as fragMap says. h1, h2 and h3 are then emptied.
// mkfs.xfs -p writes each file as one extent, so nothing else makes an
// extent B+tree without mounting the file system.
func craftBtree(t testing.TB, im image) {
	t.Helper()
	ls := map[string]uint64{}
	for _, e := range dbLs(t, im.path, "/") {
		ls[e.name] = e.ino
	}
	sb := dbFields(t, im.path, "sb 0", "p uuid agblocks")
	uuid := sb["uuid"]
	agblocks := dbUint(t, sb, "agblocks")
	one := func(name string) (uint64, uint64) {
		exts := dbBmap(t, im.path, ls[name])
		if len(exts) != 1 {
			t.Fatalf("%s: %d extents before crafting, want 1", name, len(exts))
		}
		return exts[0].ag<<bitsFor(agblocks) | exts[0].agbno, exts[0].ag*agblocks + exts[0].agbno
	}
	frag, _ := one("frag")
	var fsb, lin [3]uint64
	for i, h := range []string{"h1", "h2", "h3"} {
		fsb[i], lin[i] = one(h)
	}
	sectors := uint64(im.bs / 512)
	c := []string{
		fmt.Sprintf("inode %d", ls["frag"]),
		"write core.format 3", "write core.nextents 32",
		fmt.Sprintf("write core.size %d", fragSize(im.bs)),
		fmt.Sprintf("write core.nblocks %d", fragBlocks+3),
		fmt.Sprintf("inode %d", ls["frag"]),
		"write u3.bmbt.level 2", "write u3.bmbt.numrecs 1",
		"write u3.bmbt.keys[1].startoff 0", fmt.Sprintf("write u3.bmbt.ptrs[1] %d", fsb[2]),
	}
	hdr := func(i int, level, n int, left, right string) {
		c = append(c, fmt.Sprintf("fsblock %d", fsb[i]), "type bmapbtd")
		for _, kv := range [][2]string{{"magic", "0x424d4133"}, {"level", strconv.Itoa(level)},
			{"numrecs", strconv.Itoa(n)}, {"leftsib", left}, {"rightsib", right},
			{"bno", strconv.FormatUint(lin[i]*sectors, 10)}, {"lsn", "0"}, {"uuid", uuid},
			{"owner", strconv.FormatUint(ls["frag"], 10)}} {
			c = append(c, "write -d "+kv[0]+" "+kv[1])
		}
	}
	null := "-- -1"
	hdr(2, 1, 2, null, null)
	c = append(c, "write -d keys[1].startoff 0", "write -d keys[2].startoff 40",
		fmt.Sprintf("write -d ptrs[1] %d", fsb[0]), fmt.Sprintf("write -d ptrs[2] %d", fsb[1]))
	hdr(0, 0, 16, null, strconv.FormatUint(fsb[1], 10))
	leaf := func(first int) {
		for k := 0; k < 16; k++ {
			l := first + 2*k
			p, ok := fragMap(l) // the unwritten record keeps its blocks
			flag := 0
			if !ok {
				flag = 1
			}
			c = append(c, fmt.Sprintf("write -d recs[%d].startoff %d", k+1, l),
				fmt.Sprintf("write -d recs[%d].startblock %d", k+1, frag+uint64(p)),
				fmt.Sprintf("write -d recs[%d].blockcount 2", k+1),
				fmt.Sprintf("write -d recs[%d].extentflag %d", k+1, flag))
		}
	}
	leaf(0)
	hdr(1, 0, 16, strconv.FormatUint(fsb[0], 10), null)
	leaf(40)
	for _, h := range []string{"h1", "h2", "h3"} {
		c = append(c, fmt.Sprintf("inode %d", ls[h]), "write core.nextents 0", "write core.size 0", "write core.nblocks 0")
	}
	script := filepath.Join(filepath.Dir(im.path), "craft.xfs_db")
	if err := os.WriteFile(script, []byte(strings.Join(c, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runDB(t, im.path, "-x", "source "+script)
	for _, h := range []string{"h1", "h2", "h3"} {
		findNode(im.tree, "/"+h).data = nil
	}
	n := findNode(im.tree, "/frag")
	n.data = fragContent(im.bs)
	if got := dbBmap(t, im.path, ls["frag"]); len(got) != 32 {
		t.Fatalf("xfs_db reads %d extents of the crafted B+tree, want 32", len(got))
	}
}

// bitsFor is the number of bits of an AG block number (sb_agblklog).
func bitsFor(agblocks uint64) uint {
	n := uint(0)
	for uint64(1)<<n < agblocks {
		n++
	}
	return n
}

// flatten lists the tree's files by path.
func flatten(root *tnode) map[string]*tnode {
	out := map[string]*tnode{}
	var walk func(n *tnode, p string)
	walk = func(n *tnode, p string) {
		out[p] = n
		for _, k := range n.kids {
			walk(k, path.Join(p, k.name))
		}
	}
	walk(root, "/")
	return out
}

// fixRemoteSymlink gives a remote symbolic link the v5 block headers
// that mkfs.xfs 6.1 -p leaves out: it writes the target's bytes raw into
// one block, which xfs_repair -n calls "bad symlink header" and the
// kernel refuses. xfs_db shifts the target past the 56-byte header, then
// writes the header's fields and its CRC. When the target does not fit
// in one block beside its header (1 KiB blocks), the rest goes in a
// second block, taken from the file holder, which the test wrote with 56
// bytes of room and the target's tail (holderData); the link's inode gets
// a second extent record and the holder is emptied.
func fixRemoteSymlink(t testing.TB, im image, link, holder string) {
	t.Helper()
	ino := dbIno(t, im.path, link)
	n := findNode(im.tree, link)
	space := im.bs - symlinkHdrSize
	exts := dbBmap(t, im.path, ino)
	if len(exts) != 1 || exts[0].count != 1 || len(n.target) > 2*space {
		t.Fatalf("%s: %d-byte target in %v: want one block", link, len(n.target), exts)
	}
	sb := dbFields(t, im.path, "sb 0", "p uuid agblocks")
	agblocks := dbUint(t, sb, "agblocks")
	fsb := func(e dbExtent) uint64 { return e.ag<<bitsFor(agblocks) | e.agbno }
	sectors := func(e dbExtent) uint64 { return (e.ag*agblocks + e.agbno) * uint64(im.bs/512) }
	runDB(t, im.path, "-x", fmt.Sprintf("fsblock %d", fsb(exts[0])),
		"type data", fmt.Sprintf("write rshift %d 0 %d", symlinkHdrSize, im.bs))
	header := func(block int, e dbExtent, off, n int) {
		out := runDB(t, im.path, "-x", fmt.Sprintf("inode %d", ino), fmt.Sprintf("dblock %d", block), "type symlink",
			"write -d magic 0x58534c4d", fmt.Sprintf("write -d offset %d", off), fmt.Sprintf("write -d bytes %d", n),
			"write -d uuid "+sb["uuid"], fmt.Sprintf("write -d owner %d", ino),
			fmt.Sprintf("write -d bno %d", sectors(e)), "write -d lsn 0", "p crc")
		if !strings.Contains(out, "(correct)") {
			t.Fatalf("xfs_db: %s block %d's CRC is not correct:\n%s", link, block, out)
		}
	}
	if len(n.target) <= space {
		header(0, exts[0], 0, len(n.target))
		return
	}
	hino := dbIno(t, im.path, holder)
	hexts := dbBmap(t, im.path, hino)
	if len(hexts) != 1 || hexts[0].count != 1 {
		t.Fatalf("%s: %v, want one block", holder, hexts)
	}
	runDB(t, im.path, "-x", fmt.Sprintf("inode %d", ino), "write core.nextents 2", "write core.nblocks 2",
		"write u3.bmx[1].startoff 1", fmt.Sprintf("write u3.bmx[1].startblock %d", fsb(hexts[0])),
		"write u3.bmx[1].blockcount 1", "write u3.bmx[1].extentflag 0",
		fmt.Sprintf("inode %d", hino), "write core.nextents 0", "write core.size 0", "write core.nblocks 0")
	findNode(im.tree, holder).data = nil
	header(0, exts[0], 0, space)
	header(1, hexts[0], space, len(n.target)-space)
	if got := dbBmap(t, im.path, ino); len(got) != 2 {
		t.Fatalf("%s: xfs_db reads %d extents, want 2", link, len(got))
	}
}

// holderData is what the holder of a long link's second block holds:
// room for the header, then the part of the target the first block
// cannot take.
func holderData(target string, bs int) []byte {
	b := make([]byte, bs)
	if space := bs - symlinkHdrSize; len(target) > space {
		copy(b[symlinkHdrSize:], target[space:])
	}
	return b
}

// xattrPaths get a 32-byte security.selinux attribute, as every file of
// an SELinux system (RHEL, Amazon Linux) has: the attribute fork takes
// room from the data fork (di_forkoff), whatever its format. /small is
// left out: xfs_db 6.1's attr_set crashes on a short-form directory
// that no longer fits beside the attribute fork.
var xattrPaths = []string{"/hello.txt", "/frag", "/big.bin", "/deep/a", "/sgid", "/links/short", "/links/long",
	"/dev/null", "/d100", "/d300", "/d20000", "/d20000/many-000000"}

// addXattrs sets the attributes with xfs_db's attr_set (libxfs moves
// the data fork's content, a B+tree root included, to make room).
func addXattrs(t testing.TB, im image, paths []string) {
	t.Helper()
	for _, p := range paths {
		// One run each: xfs_db 6.1 can crash on a second attr_set.
		runDB(t, im.path, "-x", fmt.Sprintf("inode %d", dbIno(t, im.path, p)), "attr_set -s -v 32 selinux")
	}
	for _, p := range paths {
		f := dbFields(t, im.path, fmt.Sprintf("inode %d", dbIno(t, im.path, p)), "p core.forkoff")
		if dbUint(t, f, "core.forkoff") == 0 {
			t.Fatalf("%s: no attribute fork after attr_set", p)
		}
	}
}

// dbIno is the inode number xfs_db's ls gives a path.
func dbIno(t testing.TB, img, p string) uint64 {
	t.Helper()
	parent, name := path.Split(p)
	for _, e := range dbLs(t, img, parent) {
		if e.name == name {
			return e.ino
		}
	}
	t.Fatalf("xfs_db: no %s", p)
	return 0
}
