package xfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// overlay serves an image with some byte ranges replaced, so a test can
// damage a structure without copying 300 MB.
type overlay struct {
	base    io.ReaderAt
	patches []patch
}

type patch struct {
	off  int64
	data []byte
}

func (o *overlay) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.base.ReadAt(p, off)
	for _, pt := range o.patches {
		lo, hi := max(off, pt.off), min(off+int64(len(p)), pt.off+int64(len(pt.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], pt.data[lo-pt.off:hi-pt.off])
		}
	}
	return n, err
}

// edit changes n bytes at off: fn gets their current content.
func (o *overlay) edit(t *testing.T, off int64, n int, fn func(b []byte)) {
	t.Helper()
	b := make([]byte, n)
	if _, err := o.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	fn(b)
	o.patches = append(o.patches, patch{off, b})
}

// setCRC stores the CRC32C of b (the four bytes at off taken as zero)
// as XFS does, so that a damaged structure passes its checksum.
func setCRC(b []byte, off int) {
	clear(b[off : off+4])
	binary.LittleEndian.PutUint32(b[off:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// corruptTree is the test tree without its large directories.
func corruptTree(bs int) *tnode {
	root := testTree(bs)
	var kids []*tnode
	for _, k := range root.kids {
		if !strings.HasPrefix(k.name, "d") || k.name == "dev" || k.name == "deep" || k.name == "d100" {
			kids = append(kids, k)
		}
	}
	root.kids = kids
	return root
}

// TestCorrupt damages one structure at a time in a real image and
// checks that the reader reports it, naming it and wrapping
// fsys.ErrCorrupt (or fsys.ErrUnsupported for a v4 superblock), and
// never loops.
func TestCorrupt(t *testing.T) {
	const bs = 4096
	im := buildImage(t, mkfsBytes, bs, corruptTree(bs))
	clean, fh := openImage(t, im.path)
	st, _ := fh.Stat()
	got := walkAll(t, clean)
	ino := func(p string) uint64 { return uint64(got[p].ID) }
	inodeAt := func(p string) int64 {
		pos, err := clean.inodePos(ino(p))
		if err != nil {
			t.Fatal(err)
		}
		return pos
	}
	// The crafted B+tree's node block, from the pointer in frag's root.
	node := dbUint(t, dbFields(t, im.path, fmt.Sprintf("inode %d", ino("/frag")), "p u3.bmbt.ptrs[1]"), "u3.bmbt.ptrs[1]")
	nodePos, err := clean.fsbPos(node, 1)
	if err != nil {
		t.Fatal(err)
	}
	d100 := dbBmap(t, im.path, ino("/d100"))
	d100Pos := int64(d100[0].ag*clean.sb.agBlocks+d100[0].agbno) * bs
	editInode := func(o *overlay, p string, fn func(b []byte)) {
		o.edit(t, inodeAt(p), int(clean.sb.inodeSize), func(b []byte) { fn(b); setCRC(b, inodeCRCOff) })
	}
	be := binary.BigEndian

	cases := []struct {
		name   string
		damage func(o *overlay)
		op     func(f *FS) error
		want   error
		says   string
	}{
		{"btree leaf met twice", func(o *overlay) {
			o.edit(t, nodePos, bs, func(b []byte) {
				maxrecs := (bs - bmbtHdrSize) / bmbtKeyPtr
				ptrs := b[bmbtHdrSize+maxrecs*8:]
				copy(ptrs[8:16], ptrs[0:8])
				setCRC(b, bmbtCRCOff)
			})
		}, openOp("/frag", got), fsys.ErrCorrupt, "met twice"},
		{"btree node points to itself", func(o *overlay) {
			o.edit(t, nodePos, bs, func(b []byte) {
				maxrecs := (bs - bmbtHdrSize) / bmbtKeyPtr
				be.PutUint64(b[bmbtHdrSize+maxrecs*8:], node)
				setCRC(b, bmbtCRCOff)
			})
		}, openOp("/frag", got), fsys.ErrCorrupt, "is met twice (a cycle)"},
		{"btree root skips a level", func(o *overlay) {
			// The root (level 2) points straight at the first leaf.
			editInode(o, "/frag", func(b []byte) {
				maxrecs := (len(b) - inodeCoreSize - bmdrHdrSize) / bmbtKeyPtr
				ptr := b[inodeCoreSize+bmdrHdrSize+maxrecs*8:]
				leaf := dbUint(t, dbFields(t, im.path, fmt.Sprintf("fsblock %d", node), "type bmapbtd", "p ptrs[1]"), "ptrs[1]")
				be.PutUint64(ptr, leaf)
			})
		}, openOp("/frag", got), fsys.ErrCorrupt, "level 0 (want 1)"},
		{"btree block bad magic", func(o *overlay) {
			o.edit(t, nodePos, bs, func(b []byte) { be.PutUint32(b, 0x424d4151); setCRC(b, bmbtCRCOff) })
		}, openOp("/frag", got), fsys.ErrCorrupt, "extent btree: block"},
		{"btree block CRC", func(o *overlay) {
			o.edit(t, nodePos+100, 1, func(b []byte) { b[0] ^= 1 })
		}, openOp("/frag", got), fsys.ErrCorrupt, "CRC mismatch"},
		{"btree root level", func(o *overlay) {
			editInode(o, "/frag", func(b []byte) { be.PutUint16(b[inodeCoreSize:], 40) })
		}, openOp("/frag", got), fsys.ErrCorrupt, "root: level 40"},
		{"directory block bad magic", func(o *overlay) {
			o.edit(t, d100Pos, bs, func(b []byte) { be.PutUint32(b, 0x58444234); setCRC(b, dirCRCOff) })
		}, readDirOp("/d100", got), fsys.ErrCorrupt, "bad magic 0x58444234"},
		{"directory block CRC", func(o *overlay) {
			o.edit(t, d100Pos+200, 1, func(b []byte) { b[0] ^= 0x20 })
		}, readDirOp("/d100", got), fsys.ErrCorrupt, "directory block 0: CRC mismatch"},
		{"directory entry tag", func(o *overlay) {
			o.edit(t, d100Pos, bs, func(b []byte) { b[dirHdrSize+8] = 200; setCRC(b, dirCRCOff) })
		}, readDirOp("/d100", got), fsys.ErrCorrupt, "entry at offset 64"},
		{"inode CRC", func(o *overlay) {
			o.edit(t, inodeAt("/hello.txt")+9, 1, func(b []byte) { b[0] ^= 1 })
		}, statOp("/hello.txt", got), fsys.ErrCorrupt, "CRC mismatch"},
		{"inode magic", func(o *overlay) {
			editInode(o, "/hello.txt", func(b []byte) { b[0] = 'X' })
		}, statOp("/hello.txt", got), fsys.ErrCorrupt, "bad magic"},
		{"inode in the wrong place", func(o *overlay) {
			editInode(o, "/hello.txt", func(b []byte) { be.PutUint64(b[152:], 999) })
		}, statOp("/hello.txt", got), fsys.ErrCorrupt, "says it is inode 999"},
		{"file size beyond 2^63", func(o *overlay) {
			editInode(o, "/hello.txt", func(b []byte) { be.PutUint64(b[56:], 1<<63) })
		}, statOp("/hello.txt", got), fsys.ErrCorrupt, "size"},
		{"realtime file", func(o *overlay) {
			editInode(o, "/hello.txt", func(b []byte) { be.PutUint16(b[90:], be.Uint16(b[90:])|diflagRealtime) })
		}, openOp("/hello.txt", got), fsys.ErrUnsupported, "realtime file"},
		{"free inode", func(o *overlay) {
			editInode(o, "/hello.txt", func(b []byte) { be.PutUint16(b[2:], 0) })
		}, statOp("/hello.txt", got), fsys.ErrNotFound, "free inode"},
		{"inode number outside the AGs", func(o *overlay) {}, func(f *FS) error {
			_, err := f.Stat(fsys.ID(f.sb.agCount << (f.sb.agBlkLog + f.sb.inoPBLog)))
			return err
		}, fsys.ErrCorrupt, "outside the file system"},
		{"huge extent count", func(o *overlay) {
			editInode(o, "/hello.txt", func(b []byte) { be.PutUint32(b[76:], 1<<30) })
		}, openOp("/hello.txt", got), fsys.ErrCorrupt, "extents do not fit"},
		{"extent beyond its AG", func(o *overlay) {
			editInode(o, "/hello.txt", func(b []byte) {
				// startblock's low bits: an AG block number past agblocks.
				rec := b[inodeCoreSize:]
				lo := be.Uint64(rec[8:])
				be.PutUint64(rec[8:], lo|(clean.sb.agBlocks+5)<<21)
			})
		}, openOp("/hello.txt", got), fsys.ErrCorrupt, "outside the allocation groups"},
		{"huge symlink size", func(o *overlay) {
			editInode(o, "/links/long", func(b []byte) { be.PutUint64(b[56:], 1<<40) })
		}, readlinkOp("/links/long", got), fsys.ErrCorrupt, "symbolic link of 1099511627776 bytes"},
		{"remote symlink header", func(o *overlay) {
			exts := dbBmap(t, im.path, ino("/links/long"))
			pos := int64(exts[0].ag*clean.sb.agBlocks+exts[0].agbno) * bs
			o.edit(t, pos, bs, func(b []byte) { be.PutUint32(b[8:], 5000); setCRC(b, symlinkCRCOff) })
		}, readlinkOp("/links/long", got), fsys.ErrCorrupt, "5000 bytes at 0"},
		{"huge short-form directory size", func(o *overlay) {
			editInode(o, "/small", func(b []byte) { be.PutUint64(b[56:], 60000) })
		}, readDirOp("/small", got), fsys.ErrCorrupt, "short-form directory: size 60000"},
		{"huge directory size", func(o *overlay) {
			editInode(o, "/d100", func(b []byte) { be.PutUint64(b[56:], 1<<40) })
		}, readDirOp("/d100", got), fsys.ErrCorrupt, "directory of 1099511627776 bytes"},
		{"short-form directory cycle", func(o *overlay) {
			// /small/sub's entry points back at the root directory.
			editInode(o, "/small", func(b []byte) {
				i := strings.Index(string(b[inodeCoreSize:]), "sub")
				be.PutUint32(b[inodeCoreSize+i+4:], uint32(clean.Root()))
			})
		}, func(f *FS) error {
			return fsys.Walk(f, f.Root(), "/", func(string, fsys.DirEntry) error { return nil })
		}, fsys.ErrCorrupt, "a cycle"},
		{"superblock version 3", func(o *overlay) {
			o.edit(t, 0, 512, func(b []byte) { be.PutUint16(b[100:], be.Uint16(b[100:])&^0xf|3); setCRC(b, sbCRCOff) })
		}, nil, fsys.ErrUnsupported, "versions 4 and 5 are read"},
		{"v3 inodes in a v4 file system", func(o *overlay) {
			o.edit(t, 0, 512, func(b []byte) { be.PutUint16(b[100:], be.Uint16(b[100:])&^0xf|4) })
		}, statOp("/hello.txt", got), fsys.ErrCorrupt, "inode version 3 in a v4 file system"},
		{"superblock magic", func(o *overlay) {
			o.edit(t, 0, 4, func(b []byte) { b[0] = 0 })
		}, nil, fsys.ErrCorrupt, "superblock: bad magic"},
		{"superblock CRC", func(o *overlay) {
			o.edit(t, 200, 1, func(b []byte) { b[0] ^= 1 })
		}, nil, fsys.ErrCorrupt, "superblock: CRC mismatch"},
		{"superblock agblklog", func(o *overlay) {
			o.edit(t, 0, 512, func(b []byte) { b[124]++; setCRC(b, sbCRCOff) })
		}, nil, fsys.ErrCorrupt, "allocation groups of"},
		{"superblock larger than the volume", func(o *overlay) {
			o.edit(t, 0, 512, func(b []byte) { be.PutUint64(b[8:], be.Uint64(b[8:])+1); setCRC(b, sbCRCOff) })
		}, nil, fsys.ErrCorrupt, "data blocks"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := &overlay{base: fh}
			c.damage(o)
			f, err := Open(o, st.Size())
			if c.op != nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				err = c.op(f)
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %v; want one wrapping %v that says %q", err, c.want, c.says)
			}
		})
	}
	// The clean image still reads (the overlays changed nothing).
	if _, err := clean.Open(got["/frag"].ID, ""); err != nil {
		t.Fatal(err)
	}
}

func openOp(p string, got map[string]fsys.DirEntry) func(*FS) error {
	return func(f *FS) error {
		_, err := f.Open(got[p].ID, "")
		return err
	}
}

func readDirOp(p string, got map[string]fsys.DirEntry) func(*FS) error {
	return func(f *FS) error {
		_, err := f.ReadDir(got[p].ID)
		return err
	}
}

func statOp(p string, got map[string]fsys.DirEntry) func(*FS) error {
	return func(f *FS) error {
		_, err := f.Stat(got[p].ID)
		return err
	}
}

func readlinkOp(p string, got map[string]fsys.DirEntry) func(*FS) error {
	return func(f *FS) error {
		_, err := f.Readlink(got[p].ID)
		return err
	}
}

// TestDirBlockTail: a data block whose unused region stops 8 bytes short
// of the end leaves room for no entry; reading the name length there
// would run past the block.
func TestDirBlockTail(t *testing.T) {
	f := &FS{noCRC: true, sb: superblock{v5: true}}
	buf := make([]byte, 4096)
	be := binary.BigEndian
	be.PutUint32(buf, dirDataMagic)
	be.PutUint16(buf[dirHdrSize:], dirFreeTag)
	be.PutUint16(buf[dirHdrSize+2:], 4096-dirHdrSize-8)
	be.PutUint16(buf[4096-8-2:], dirHdrSize)
	_, err := f.dirBlockEntries(0, 1, buf, 0, nil)
	if !errors.Is(err, fsys.ErrCorrupt) || !strings.Contains(err.Error(), "8 stray bytes at offset 4088") {
		t.Fatalf("error %v, want 8 stray bytes", err)
	}
}

// TestBudget: a call that would read more metadata than the budget
// allows stops with an error instead of reading on.
func TestBudget(t *testing.T) {
	b := &budget{left: 3 * 4096}
	for i := 0; i < 3; i++ {
		if err := b.spend("directory", 4096); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	if err := b.spend("directory", 4096); !errors.Is(err, fsys.ErrCorrupt) || !strings.Contains(err.Error(), "directory: more than") {
		t.Fatalf("fourth block: %v", err)
	}
}
