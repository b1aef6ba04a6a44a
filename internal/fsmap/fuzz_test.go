package fsmap

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// tinyExt returns a 128 KiB ext4 volume with a few files when mkfs.ext4
// is installed, for fuzz seeds.
func tinyExt(f *testing.F) []byte {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return nil
	}
	dir := f.TempDir()
	root := filepath.Join(dir, "root")
	writeFile(f, filepath.Join(root, "a"), []byte("a\n"))
	writeFile(f, filepath.Join(root, "d", "b"), pattern(5000, 1))
	img := filepath.Join(dir, "tiny.img")
	truncate(f, img, 128<<10)
	if out, err := exec.Command(mkfs, "-q", "-F", "-b", "1024", "-N", "16", "-O", "^has_journal,^resize_inode", "-d", root, img).CombinedOutput(); err != nil {
		f.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// checkMap asserts what every map must satisfy, whatever the input.
func checkMap(t *testing.T, m *Map, size int64) {
	if m == nil {
		return
	}
	prev := int64(-1)
	for _, e := range m.extents {
		if e.Off < 0 || e.Len <= 0 || e.End() > size || e.End() > m.Size || e.Off < prev {
			t.Fatalf("extent %+v out of order or out of range (size %d)", e, size)
		}
		if e.Owner < 0 || e.Owner >= len(m.owners) || (e.Role != Data && e.Role != Metadata) {
			t.Fatalf("extent %+v has no owner or role", e)
		}
		prev = e.Off
	}
	for _, e := range m.Lookup(0, size) {
		if e.Len <= 0 {
			t.Fatalf("lookup returned %+v", e)
		}
	}
}

func FuzzBuild(f *testing.F) {
	if ext := tinyExt(f); ext != nil {
		f.Add(ext)
	}
	f.Add(craftNTFS())
	f.Add(extSuperblockOnly())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _ := Build(bytes.NewReader(data), int64(len(data)), Options{})
		checkMap(t, m, int64(len(data)))
	})
}

// FuzzNTFSRecord puts arbitrary bytes in MFT record 20 of the crafted
// volume, fixed up or not.
func FuzzNTFSRecord(f *testing.F) {
	v := craftNTFS()
	at := craftMFT2*craftCluster + 4*craftRecord
	f.Add(v[at:at+craftRecord], false)
	f.Add(record(1, recFlagInUse, 0, fileName(5, 5, "x"), nonResident(attrData, 0, 9, 5000, runOf(10, 300))), false)
	f.Add(record(1, recFlagInUse, 0, resident(attrAttributeList, "", attrListEntry(attrData, 0, 20))), true)
	f.Fuzz(func(t *testing.T, rec []byte, intoRecord0 bool) {
		vol := bytes.Clone(v)
		if intoRecord0 {
			at = craftMFT1 * craftCluster
		}
		copy(vol[at:at+craftRecord], rec)
		m, _ := Build(bytes.NewReader(vol), int64(len(vol)), Options{})
		checkMap(t, m, int64(len(vol)))
	})
}

func FuzzDecodeRuns(f *testing.F) {
	f.Add([]byte{0x21, 0x10, 0x00, 0x01, 0x00}, int64(0))
	f.Add(append(runOf(3, 400), runOf(2, -100)...), int64(7))
	f.Add([]byte{0x01, 0x05, 0x11, 0x02, 0xff, 0x00}, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, vcn int64) {
		runs, _ := decodeRuns(b, vcn)
		next := vcn
		for _, r := range runs {
			if r.vcn != next || r.n <= 0 || r.lcn < 0 {
				t.Fatalf("run %+v after VCN %d", r, next)
			}
			next += r.n
		}
	})
}

// FuzzExtDirectory parses arbitrary directory blocks.
func FuzzExtDirectory(f *testing.F) {
	blk := make([]byte, 1024)
	le32(blk, 0, 2)
	le16(blk, 4, 12)
	blk[6], blk[7] = 1, 2
	blk[8] = '.'
	le32(blk, 12, 12)
	le16(blk, 16, 1012)
	blk[18], blk[19] = 4, 1
	copy(blk[20:], "name")
	f.Add(blk, true)
	f.Add(blk[:56], false)
	f.Fuzz(func(t *testing.T, buf []byte, filetype bool) {
		x := &extFS{b: newBuilder("ext4", 1<<20, 1024, nil), bs: 1024, inodes: 100, parents: map[uint32][]extLink{}, usedDirs: map[uint32]bool{}}
		for i := range uint32(101) {
			x.usedDirs[i] = true
		}
		if filetype {
			x.incompat = incompatFiletype
		}
		x.entries(11, buf)
		for ino, links := range x.parents {
			if ino == 0 || uint64(ino) > x.inodes || len(links) == 0 {
				t.Fatalf("link to inode %d", ino)
			}
		}
	})
}
