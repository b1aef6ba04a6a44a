package ext

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// image is a volume in memory that a test damages.
type image struct {
	t    *testing.T
	data []byte
	f    *FS // the file system before any damage
	tr   *tree
}

// newImage builds a small volume with mkfs.<kind> args from a tree of
// few names.
func newImage(t *testing.T, kind string, args ...string) *image {
	t.Helper()
	dir := t.TempDir()
	tr := writeTree(t, dir, 300)
	img := mkfs(t, dir, tr, kind, 24, args...)
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	im := &image{t: t, data: data, tr: tr}
	im.f = im.open(Options{})
	return im
}

func (im *image) open(opt Options) *FS {
	im.t.Helper()
	f, err := OpenOptions(bytes.NewReader(im.data), int64(len(im.data)), opt)
	if err != nil {
		im.t.Fatalf("Open: %v", err)
	}
	return f
}

// ino returns the inode number of path.
func (im *image) ino(p string) fsys.ID {
	im.t.Helper()
	id, err := fsys.Lookup(im.f, p)
	if err != nil {
		im.t.Fatal(err)
	}
	return id
}

// inodeOff returns where inode id's record lies in the volume.
func (im *image) inodeOff(id fsys.ID) int64 {
	im.t.Helper()
	f := im.f
	g, idx := (uint64(id)-1)/f.inodesPerGroup, (uint64(id)-1)%f.inodesPerGroup
	gd, err := f.group(g)
	if err != nil {
		im.t.Fatal(err)
	}
	return int64(gd.inodeTable)*f.bs + int64(idx)*int64(f.inodeSize)
}

func (im *image) put32(off int64, v uint32) { binary.LittleEndian.PutUint32(im.data[off:], v) }
func (im *image) put16(off int64, v uint16) { binary.LittleEndian.PutUint16(im.data[off:], v) }
func (im *image) get32(off int64) uint32    { return binary.LittleEndian.Uint32(im.data[off:]) }

// quick runs fn and fails the test if it takes more than ten seconds: a
// damaged structure must give an error, never a hang.
func quick(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer in 10 s", what)
		return nil
	}
}

func wantCorrupt(t *testing.T, what string, err error, words string) {
	t.Helper()
	if !errors.Is(err, fsys.ErrCorrupt) || !strings.Contains(err.Error(), words) {
		t.Errorf("%s: %v, want an error wrapping ErrCorrupt that says %q", what, err, words)
	}
}

// readFile opens and reads a whole file.
func readFile(f *FS, id fsys.ID) ([]byte, error) {
	fl, err := f.Open(id, "")
	if err != nil {
		return nil, err
	}
	buf := make([]byte, fl.Size())
	n, err := fl.ReadAt(buf, 0)
	if n == len(buf) {
		err = nil
	}
	return buf, err
}

// TestCorruptExtentTree gives the sparse file's extent tree a second
// root entry that names the same leaf (a tree that meets a block twice,
// as a cyclic one would), a root too deep, and a child without the
// extent magic.
func TestCorruptExtentTree(t *testing.T) {
	im := newImage(t, "ext4", "-b", "4096", "-O", "^metadata_csum")
	id := im.ino(im.tr.sparse)
	root := im.inodeOff(id) + iBlock
	if depth := binary.LittleEndian.Uint16(im.data[root+6:]); depth != 1 {
		t.Fatalf("the sparse file's tree has depth %d, want 1", depth)
	}
	saved := bytes.Clone(im.data)

	im.put16(root+2, 2)                                      // two entries
	copy(im.data[root+24:root+36], im.data[root+12:root+24]) // the second names the first's leaf
	im.put32(root+24, 100)                                   // for later logical blocks
	f := im.open(Options{})
	wantCorrupt(t, "a leaf named twice", quick(t, "a leaf named twice", func() error { _, err := f.Open(id, ""); return err }), "reached twice")

	copy(im.data, saved)
	im.put16(root+6, 6) // deeper than ext4 allows
	f = im.open(Options{})
	wantCorrupt(t, "depth 6", quick(t, "depth 6", func() error { _, err := f.Open(id, ""); return err }), "depth 6")

	copy(im.data, saved)
	leaf := int64(im.get32(root+16)) * im.f.bs
	im.put16(leaf+6, 1) // a leaf that says it is an index of depth 1
	f = im.open(Options{})
	wantCorrupt(t, "leaf of depth 1", quick(t, "leaf of depth 1", func() error { _, err := f.Open(id, ""); return err }), "depth 1")

	copy(im.data, saved)
	im.put16(leaf, 0xBEEF)
	f = im.open(Options{})
	wantCorrupt(t, "bad magic", quick(t, "bad magic", func() error { _, err := f.Open(id, ""); return err }), "bad magic")

	copy(im.data, saved)
	im.put32(root+16, uint32(im.f.blocks+5)) // a child past the end
	f = im.open(Options{})
	wantCorrupt(t, "child past the end", quick(t, "child past the end", func() error { _, err := f.Open(id, ""); return err }), "outside the file system")

	// Other files stay readable.
	if data, err := readFile(f, im.ino("/small.txt")); err != nil || string(data) != "hello, ext\n" {
		t.Errorf("small.txt after damage elsewhere: %q, %v", data, err)
	}
}

// TestCorruptIndirectBlocks makes a double indirect block name itself
// as each of its indirect blocks, and a triple indirect block (in a free
// block) the same: the walk must stop at the block met twice.
func TestCorruptIndirectBlocks(t *testing.T) {
	im := newImage(t, "ext2", "-b", "1024")
	id := im.ino("/d/big.bin") // 3 MiB in 1 KiB blocks: double and triple indirect
	ib := im.inodeOff(id) + iBlock
	dind := im.get32(ib + 4*13)
	if dind == 0 || im.get32(ib+4*14) != 0 {
		t.Fatalf("big.bin has no double indirect block (%d), or a triple one", dind)
	}
	want := im.tr.files["/d/big.bin"]
	if data, err := readFile(im.f, id); err != nil || !bytes.Equal(data, want) {
		t.Fatalf("big.bin before damage: %v", err)
	}
	saved := bytes.Clone(im.data)
	tind := uint32(im.f.blocks - 10) // free: the files fill the first few MiB
	for _, blk := range []uint32{dind, tind} {
		copy(im.data, saved)
		if blk == tind {
			im.put32(ib+4*14, tind)
			im.put32(im.inodeOff(id)+iSizeLo, (12+256+65536+10)<<10) // reaching into the triple indirect block
		}
		off := int64(blk) * im.f.bs
		for k := int64(0); k < im.f.bs; k += 4 {
			im.put32(off+k, blk)
		}
		f := im.open(Options{})
		err := quick(t, "self-naming indirect block", func() error { _, err := readFile(f, id); return err })
		wantCorrupt(t, "self-naming indirect block", err, "reached twice")
	}
	copy(im.data, saved)
	im.put32(ib+4*12, uint32(im.f.blocks)+1) // the single indirect block past the end
	f := im.open(Options{})
	wantCorrupt(t, "indirect block past the end", quick(t, "past the end", func() error { _, err := readFile(f, id); return err }), "outside the file system")
}

// TestCorruptDirectory gives a directory entry rec_len 0 (a parser that
// trusted it would loop forever), then one that runs past the block.
func TestCorruptDirectory(t *testing.T) {
	im := newImage(t, "ext4", "-b", "4096", "-O", "^metadata_csum")
	id := im.ino("/d")
	in, err := im.f.inode(uint64(id))
	if err != nil {
		t.Fatal(err)
	}
	ext, err := im.f.extents(in, in.size)
	if err != nil || len(ext) == 0 {
		t.Fatalf("/d's blocks: %v", err)
	}
	blk := int64(ext[0].physical) * im.f.bs
	// The block starts with "." (12 bytes) and ".." (12 bytes).
	saved := bytes.Clone(im.data)
	for _, tc := range []struct {
		recLen uint16
		words  string
	}{{0, "rec_len 0"}, {0xFFF0, "rec_len 65520"}, {13, "rec_len 13"}} {
		copy(im.data, saved)
		im.put16(blk+24+4, tc.recLen)
		f := im.open(Options{})
		err := quick(t, "ReadDir", func() error { _, err := f.ReadDir(id); return err })
		wantCorrupt(t, tc.words, err, tc.words)
		if err := fsys.Walk(f, f.Root(), "/", func(string, fsys.DirEntry) error { return nil }); !errors.Is(err, fsys.ErrCorrupt) {
			t.Errorf("walk over the damaged directory: %v", err)
		}
		if _, err := f.ReadDir(im.ino("/many")); err != nil {
			t.Errorf("another directory after damage elsewhere: %v", err)
		}
	}
}

// TestCorruptSizes gives a file sizes its blocks cannot address, and
// one past what a Stat can hold.
func TestCorruptSizes(t *testing.T) {
	for _, args := range [][]string{{"ext4", "-b", "4096", "-O", "^metadata_csum"}, {"ext2", "-b", "1024"}} {
		im := newImage(t, args[0], args[1:]...)
		id := im.ino("/small.txt")
		off := im.inodeOff(id)
		im.put32(off+iSizeHi, 0x7FFFFFFF)
		f := im.open(Options{})
		wantCorrupt(t, args[0]+" huge size", quick(t, "huge size", func() error { _, err := f.Open(id, ""); return err }), "can address")
		im.put32(off+iSizeHi, 0xFFFFFFFF)
		f = im.open(Options{})
		_, err := f.Stat(id)
		wantCorrupt(t, args[0]+" size past 2^63", err, "size")
	}
}

// TestChecksums damages one inode, one extent block and one directory
// block of a metadata_csum volume: each fails its own calls with the
// structure named, and every other file stays readable.
func TestChecksums(t *testing.T) {
	im := newImage(t, "ext4", "-b", "4096")
	if !im.f.csum {
		t.Fatal("mkfs.ext4 made no metadata_csum volume")
	}
	small, sparse, many := im.ino("/small.txt"), im.ino(im.tr.sparse), im.ino(im.tr.many)
	im.data[im.inodeOff(small)+iUIDLo] ^= 1
	leaf := int64(im.get32(im.inodeOff(sparse)+iBlock+16)) * im.f.bs
	im.data[leaf+12+4] ^= 1 // the first extent's length
	in, err := im.f.inode(uint64(many))
	if err != nil {
		t.Fatal(err)
	}
	ext, err := im.f.extents(in, in.size)
	if err != nil {
		t.Fatal(err)
	}
	dirBlk := int64(ext[0].physical+ext[0].count-1) * im.f.bs // a leaf block, not the hash-tree root
	im.data[dirBlk+20] ^= 1                                   // in a name

	f := im.open(Options{})
	_, err = f.Stat(small)
	wantCorrupt(t, "inode", err, fmt.Sprintf("inode %d: checksum", small))
	_, err = f.Open(sparse, "")
	wantCorrupt(t, "extent block", err, "extent block checksum")
	_, err = f.ReadDir(many)
	wantCorrupt(t, "directory block", err, "directory block checksum")
	if data, err := readFile(f, im.ino("/d/big.bin")); err != nil || !bytes.Equal(data, im.tr.files["/d/big.bin"]) {
		t.Errorf("an undamaged file: %v", err)
	}
	if _, err := f.ReadDir(f.Root()); err != nil {
		t.Errorf("the root directory: %v", err)
	}

	lax := im.open(Options{IgnoreChecksums: true})
	if st, err := lax.Stat(small); err != nil || st.UID != 1 {
		t.Errorf("IgnoreChecksums: %+v, %v", st, err)
	}
	if _, err := lax.ReadDir(many); err != nil {
		t.Errorf("IgnoreChecksums: %v", err)
	}

	im.data[superOff+0x30] ^= 1 // s_wtime
	if _, err := Open(bytes.NewReader(im.data), int64(len(im.data))); !errors.Is(err, fsys.ErrCorrupt) || !strings.Contains(err.Error(), "superblock: checksum") {
		t.Errorf("superblock checksum: %v", err)
	}
}

// TestRefused checks what the reader says it cannot read: unknown
// incompatible features and encrypted files.
func TestRefused(t *testing.T) {
	im := newImage(t, "ext4", "-b", "4096", "-O", "^metadata_csum")
	saved := bytes.Clone(im.data)
	id := im.ino("/small.txt")
	flags := im.inodeOff(id) + iFlags
	im.put32(flags, im.get32(flags)|flagEncrypt)
	f := im.open(Options{})
	if _, err := f.Open(id, ""); !errors.Is(err, fsys.ErrUnsupported) || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted file: %v", err)
	}
	if _, err := f.Stat(id); err != nil {
		t.Errorf("Stat of an encrypted file: %v", err)
	}
	copy(im.data, saved)
	im.put32(superOff+sFeatureIncompat, im.get32(superOff+sFeatureIncompat)|incompatCompression)
	if _, err := Open(bytes.NewReader(im.data), int64(len(im.data))); !errors.Is(err, fsys.ErrUnsupported) {
		t.Errorf("compression feature: %v", err)
	}
	copy(im.data, saved)
	if _, err := Open(bytes.NewReader(im.data[:8192]), 8192); !errors.Is(err, fsys.ErrCorrupt) {
		t.Errorf("a volume cut short: %v", err)
	}
	if _, err := Open(bytes.NewReader(make([]byte, 4096)), 4096); !errors.Is(err, fsys.ErrCorrupt) {
		t.Errorf("zeros: %v", err)
	}
}

// TestConcurrent reads one volume from several goroutines at once, as
// triage does: every file reads as written (run with -race).
func TestConcurrent(t *testing.T) {
	im := newImage(t, "ext4", "-b", "1024")
	f := im.open(Options{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			errs <- fsys.Walk(f, f.Root(), "/", func(p string, e fsys.DirEntry) error {
				want, ok := im.tr.files[p]
				if !ok {
					return nil
				}
				got, err := readFile(f, e.ID)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, want) {
					return fmt.Errorf("%s: %d bytes differ from the %d written", p, len(got), len(want))
				}
				return nil
			})
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestGroupChecksums damages group 1's descriptor (a free-block count)
// with metadata_csum (crc32c) and with uninit_bg (crc16): inodes of
// group 1 fail naming the descriptor, those of group 0 read on.
func TestGroupChecksums(t *testing.T) {
	for _, args := range [][]string{{"-b", "1024"}, {"-b", "1024", "-O", "^metadata_csum,uninit_bg"}} {
		im := newImage(t, "ext4", args...)
		if im.f.groups < 2 || im.f.roCompat&(roMetadataCsum|roGDTCsum) == 0 {
			t.Fatalf("%v: %d groups, features %#x", args, im.f.groups, im.f.roCompat)
		}
		desc := (int64(im.f.firstData)+1)*im.f.bs + int64(im.f.descSize)
		im.data[desc+0x0C] ^= 1
		f := im.open(Options{})
		_, err := f.Stat(fsys.ID(im.f.inodesPerGroup + 1))
		wantCorrupt(t, fmt.Sprint(args), err, "group descriptor 1: checksum")
		if data, err := readFile(f, im.ino("/small.txt")); err != nil || string(data) != "hello, ext\n" {
			t.Errorf("%v: a file of group 0: %q, %v", args, data, err)
		}
		if _, err := im.open(Options{IgnoreChecksums: true}).Stat(fsys.ID(im.f.inodesPerGroup + 1)); errors.Is(err, fsys.ErrCorrupt) {
			t.Errorf("%v: IgnoreChecksums: %v", args, err)
		}
	}
}

// TestRecLen checks rec_len's decoding (ext4_rec_len_from_disk): 64 KiB
// blocks keep bits 16 and 17 in the low two bits, and a whole block as
// 0xFFFF or 0.
func TestRecLen(t *testing.T) {
	for _, tc := range []struct {
		bs   int64
		disk uint16
		want int
	}{
		{4096, 12, 12}, {4096, 4096, 4096}, {4096, 0, 0},
		{65536, 0xFFFF, 65536}, {65536, 0, 65536}, {65536, 65532, 65532}, {65536, 12, 12},
		{65536, 0x0001 | 8, 1<<16 | 8}, // bit 16 in the low bits
	} {
		d := dirReader{f: &FS{bs: tc.bs}}
		if got := d.recLen(tc.disk); got != tc.want {
			t.Errorf("%d-byte blocks: rec_len %#x is %d, want %d", tc.bs, tc.disk, got, tc.want)
		}
	}
}
