package ext

import (
	"bytes"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// scanAll walks every group of a scanned file system and returns its
// in-use inodes with their blocks.
func scanAll(t testing.TB, f *FS) map[uint32]Blocks {
	t.Helper()
	out := map[uint32]Blocks{}
	lay := f.Layout()
	for g := range lay.Groups {
		if _, err := f.Structures(g); err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
		tab, err := f.Table(g)
		if err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
		err = f.Inodes(g, tab, func(in *Inode) error {
			if in.Off != tab.Off+int64(in.Ino-1-uint32(g*lay.InodesPerGroup))*lay.InodeSize || in.Len != lay.InodeSize {
				t.Fatalf("inode %d at %d+%d, table at %d", in.Ino, in.Off, in.Len, tab.Off)
			}
			if !in.InUse {
				return nil
			}
			b, err := f.Blocks(in)
			if err != nil {
				t.Fatalf("inode %d: %v", in.Ino, err)
			}
			out[in.Ino] = b
			return nil
		})
		if err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
	}
	return out
}

// TestScanAgreesWithReader scans images mkfs made and checks the scan
// against the reader: the same inodes in use (every file the reader
// reaches, and no other inode past the reserved ones), and for each file
// the same data blocks as its runs, or its data inline in i_block.
func TestScanAgreesWithReader(t *testing.T) {
	for _, v := range []struct {
		name, kind string
		args       []string
	}{
		{"ext4-4k", "ext4", []string{"-b", "4096", "-I", "256"}},
		{"ext4-1k-inline", "ext4", []string{"-b", "1024", "-I", "256", "-O", "inline_data"}},
		{"ext2-1k", "ext2", []string{"-b", "1024", "-I", "128"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			img, _ := buildImage(t, v.kind, v.args, 300)
			strict, fh := openImage(t, img)
			st, err := fh.Stat()
			if err != nil {
				t.Fatal(err)
			}
			f, err := Scan(fh, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			lay := f.Layout()
			if lay.Type != strict.Type() || lay.BlockSize != strict.BlockSize() || lay.Blocks != uint64(st.Size()/lay.BlockSize) ||
				lay.FirstInode != 11 || lay.Special[8] != "journal" || lay.Filetype != true {
				t.Fatalf("layout %+v", lay)
			}
			used := scanAll(t, f)
			reached := map[uint32]bool{rootIno: true}
			err = fsys.Walk(strict, strict.Root(), "/", func(p string, e fsys.DirEntry) error {
				reached[uint32(e.ID)] = true
				b, ok := used[uint32(e.ID)]
				if !ok {
					t.Fatalf("%s (inode %d) is not in use for the scan", p, e.ID)
				}
				if e.Type == fsys.TypeDir {
					return nil
				}
				fl, err := strict.Open(e.ID, "")
				if err != nil {
					return err
				}
				if fl.Resident() {
					if fl.Size() > 0 && (b.InlineLen != iBlockLen || len(b.Data) != 0) {
						t.Errorf("%s: resident, but the scan says %+v", p, b)
					}
					return nil
				}
				want := map[int64]bool{}
				for _, r := range fl.Runs() {
					for off := int64(0); !r.Sparse() && off < r.Length; off += lay.BlockSize {
						want[(r.Physical+off)/lay.BlockSize] = true
					}
				}
				got := 0
				for _, d := range b.Data {
					for blk := d[0]; blk < d[0]+d[1]; blk++ {
						got++
						if !want[int64(blk)] {
							t.Errorf("%s: block %d is not among its runs", p, blk)
						}
					}
				}
				if got != len(want) || b.InlineOff != 0 {
					t.Errorf("%s: %d blocks scanned, %d in its runs (inline at %d)", p, got, len(want), b.InlineOff)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for ino := range used {
				if ino >= lay.FirstInode && !reached[ino] {
					t.Errorf("inode %d is in use for the scan, but no directory names it", ino)
				}
			}
			if len(reached) < 300 {
				t.Fatalf("only %d files reached", len(reached))
			}
		})
	}
}

// TestScanEntries parses a directory block: every entry, unused ones
// and the links up included, and a malformed entry stops the block with
// an error naming it.
func TestScanEntries(t *testing.T) {
	blk := make([]byte, 1024)
	put := func(off int, ino uint32, recLen uint16, name string) {
		putU32(blk[off:], ino)
		blk[off+4], blk[off+5] = byte(recLen), byte(recLen>>8)
		blk[off+6], blk[off+7] = byte(len(name)), 1
		copy(blk[off+8:], name)
	}
	put(0, 2, 12, ".")
	put(12, 2, 12, "..")
	put(24, 0, 16, "gone")
	put(40, 14, 984, "name")
	var got []string
	err := Entries(blk, 1024, true, func(ino uint32, name []byte) { got = append(got, itoa(int(ino))+":"+string(name)) })
	if err != nil || len(got) != 4 || got[2] != "0:gone" || got[3] != "14:name" {
		t.Fatalf("%v, %v", got, err)
	}
	put(40, 14, 10, "name") // rec_len shorter than an entry
	got = nil
	err = Entries(blk, 1024, true, func(ino uint32, name []byte) { got = append(got, string(name)) })
	if len(got) != 3 || err == nil || err.Error() != "entry at byte 40: rec_len 10, name_len 4: "+fsys.ErrCorrupt.Error() {
		t.Fatalf("%v, %v", got, err)
	}
}

// FuzzScan scans arbitrary volumes: no panic, no hang, and everything a
// scan returns lies within the volume.
func FuzzScan(f *testing.F) {
	for _, seed := range [][]byte{
		tinyImage(f, "ext4", "-O", "^has_journal,^resize_inode,inline_data"),
		tinyImage(f, "ext2", "-O", "^resize_inode"),
	} {
		if seed != nil {
			f.Add(seed[:fuzzHead])
		}
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		data := fuzzImage(head)
		size := int64(len(data))
		fs, err := Scan(bytes.NewReader(data), size)
		if err != nil {
			return
		}
		lay := fs.Layout()
		inside := func(what string, off, n int64) {
			if off < 0 || n <= 0 || off+n > size {
				t.Fatalf("%s: %d bytes at %d, volume of %d", what, n, off, size)
			}
		}
		// A scan bounds each call's work; its caller bounds the calls
		// (fsmap with its read budget), as this test does.
		work := 0
		for g := range lay.Groups {
			ss, _ := fs.Structures(g)
			for _, s := range ss {
				inside(s.Name, s.Off, s.Len)
			}
			tab, err := fs.Table(g)
			if err != nil {
				continue
			}
			_ = fs.Inodes(g, tab, func(in *Inode) error {
				if work++; work > 3000 {
					return errEnough
				}
				inside("inode", in.Off, in.Len)
				if !in.InUse {
					return nil
				}
				b, _ := fs.Blocks(in)
				for _, blk := range append(b.Tree, b.ACL) {
					if blk != 0 {
						inside("tree block", int64(blk)*lay.BlockSize, lay.BlockSize)
					}
				}
				for _, d := range b.Data {
					inside("data", int64(d[0])*lay.BlockSize, int64(d[1])*lay.BlockSize)
				}
				return nil
			})
		}
	})
}
