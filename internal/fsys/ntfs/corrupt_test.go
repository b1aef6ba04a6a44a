package ntfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// TestBigClusters reads a volume of 128 KiB clusters, whose boot sector
// gives the sectors per cluster as a negative power of two (0xF8: 2^8).
// Sleuth Kit 4.11 cannot open such a volume ("Cannot determine file
// system type"), so the files are checked against what the test wrote
// and their runs against the image's bytes.
func TestBigClusters(t *testing.T) {
	img := mkntfs(t, 64, 128<<10)
	files := map[string][]byte{"/small": []byte("small\n"), "/big": pattern(700000, 10), "/d/in-dir": pattern(200000, 11)}
	mount(t, img, func(mnt string) {
		for name, data := range files {
			if err := os.MkdirAll(filepath.Join(mnt, filepath.Dir(name)), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mnt, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	})
	fs, vol := openImage(t, img)
	boot := make([]byte, 512)
	if _, err := vol.ReadAt(boot, 0); err != nil || boot[bootSectorsPerClus] != 0xF8 || fs.ClusterSize() != 128<<10 {
		t.Fatalf("sectors per cluster byte 0x%x (%v), cluster %d; want 0xf8, 128 KiB", boot[bootSectorsPerClus], err, fs.ClusterSize())
	}
	ours := walk(t, fs)
	for p, want := range files {
		f, err := fs.Open(ours[p].entry.ID, "")
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if got := readAll(t, f); !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from the %d written", p, len(got), len(want))
		}
		if !f.Resident() && !bytes.Equal(fromRuns(t, vol, f), want) {
			t.Errorf("%s: the bytes its runs place differ", p)
		}
	}
	mft, err := fs.Open(0, "")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 4)
	if _, err := vol.ReadAt(first, mft.Runs()[0].Physical); err != nil || string(first) != "FILE" || mft.Runs()[0].Physical != int64(ondisk.U64(boot, bootMFTCluster))*128<<10 {
		t.Errorf("$MFT's runs %+v do not start at the boot sector's MFT cluster", mft.Runs())
	}
}

// TestInGPT opens a volume inside a GPT disk through a section of it:
// offsets are the partition's, and the bytes match icat -o.
func TestInGPT(t *testing.T) {
	img := mkntfs(t, 8, 4096)
	vol, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 2<<20+len(vol)+1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.RequireTool(t, "sfdisk")[0], disk)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: gpt\nstart=4096, size=%d, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n", len(vol)/512))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(vol, 2<<20); err != nil {
		t.Fatal(err)
	}
	fs, err := Open(io.NewSectionReader(f, 2<<20, int64(len(vol))), int64(len(vol)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/$MFT", "/$LogFile", "/$UpCase"} {
		id, err := fsys.Lookup(fs, p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := fs.Stat(id)
		data, err := fs.Open(id, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := tool(t, "icat", "-o", "4096", disk, st.Addr); !bytes.Equal(readAll(t, data), want) {
			t.Errorf("%s differs from icat -o 4096 %s", p, st.Addr)
		}
	}
}

// protect is fixup's inverse: it moves the last two bytes of every
// sector into the update sequence array and puts the sequence number in
// their place, as NTFS writes a record.
func protect(b []byte) {
	usa, count := int(ondisk.U16(b, recUSAOffset)), int(ondisk.U16(b, recUSACount))
	usn := b[usa : usa+2]
	for i := 1; i < count; i++ {
		pos := i*fixupStride - 2
		copy(b[usa+2*i:usa+2*i+2], b[pos:pos+2])
		copy(b[pos:pos+2], usn)
	}
}

// volume is an image in memory that tests damage.
type volume struct {
	t  *testing.T
	b  []byte
	fs *FS
}

func loadVolume(t *testing.T, path string) *volume {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := &volume{t: t, b: b}
	v.fs = v.open()
	return v
}

func (v *volume) open() *FS {
	v.t.Helper()
	fs, err := Open(bytes.NewReader(v.b), int64(len(v.b)))
	if err != nil {
		v.t.Fatal(err)
	}
	return fs
}

// recordOffset returns where MFT record n lies on the volume.
func (v *volume) recordOffset(n uint64) int64 {
	off := int64(n) * v.fs.recSize
	for _, r := range v.fs.mft.runs {
		if start := r.vcn * v.fs.cluster; off >= start && off < start+r.n*v.fs.cluster {
			return r.lcn*v.fs.cluster + off - start
		}
	}
	v.t.Fatalf("record %d is not mapped", n)
	return 0
}

// edit applies fn to MFT record n (fixed up) and writes it back
// protected.
func (v *volume) edit(n uint64, fn func(rec []byte)) {
	v.t.Helper()
	off := v.recordOffset(n)
	rec := v.b[off : off+v.fs.recSize]
	if err := fixup(rec, "test"); err != nil {
		v.t.Fatal(err)
	}
	fn(rec)
	protect(rec)
}

// attrOffset returns the offset in a fixed-up record of its first
// attribute of type typ.
func attrOffset(t *testing.T, rec []byte, typ uint32) int {
	for off := int(ondisk.U16(rec, recFirstAttr)); off+8 < len(rec); off += int(ondisk.U32(rec, off+4)) {
		if ondisk.U32(rec, off) == typ {
			return off
		}
		if ondisk.U32(rec, off) == attrEnd || ondisk.U32(rec, off+4) == 0 {
			break
		}
	}
	t.Fatalf("no attribute 0x%x", typ)
	return 0
}

// mustCorrupt walks the whole volume, stats and reads everything, and
// wants an error that wraps ErrCorrupt and names want, within seconds.
func mustCorrupt(t *testing.T, fs *FS, want string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- everything(fs) }()
	select {
	case err := <-done:
		if !errors.Is(err, fsys.ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error wrapping ErrCorrupt naming %q", err, want)
		}
		t.Log(err)
	case <-time.After(20 * time.Second):
		t.Fatal("reading a damaged volume did not end: a loop")
	}
}

// everything walks the volume and reads every stream of every file.
func everything(fs *FS) error {
	return fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
		st, err := fs.Stat(e.ID)
		if err != nil {
			return err
		}
		if st.Type == fsys.TypeSymlink {
			_, err := fs.Readlink(e.ID)
			return err
		}
		for _, s := range append([]string{""}, st.Streams...) {
			f, err := fs.Open(e.ID, s)
			if errors.Is(err, fsys.ErrIsDir) || errors.Is(err, fsys.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, f.Size())); err != nil {
				return err
			}
		}
		return nil
	})
}

// smallImage is a small volume with a compressed file, a directory of
// 200 entries (an index allocation) and a file whose streams need an
// attribute list.
func smallImage(t testing.TB) *image {
	im := &image{path: mkntfs(t, 16, 4096), cluster: 4096, files: map[string][]byte{}}
	mount(t, im.path, func(mnt string) {
		write := func(name string, data []byte) {
			if err := os.WriteFile(filepath.Join(mnt, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
			im.files["/"+name] = data
		}
		for _, d := range []string{"comp", "dir"} {
			if err := os.Mkdir(filepath.Join(mnt, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := syscall.Setxattr(filepath.Join(mnt, "comp"), "system.ntfs_attrib_be", []byte{0, 0, 0x08, 0}, 0); err != nil {
			t.Fatal(err)
		}
		write("comp/text", text(200000, "small"))
		write("big", pattern(100000, 12))
		for i := range 200 {
			write(fmt.Sprintf("dir/%03d", i), []byte{byte(i)})
		}
		write("streams", []byte("base"))
		for i := range 60 {
			write(fmt.Sprintf("streams:s%02d", i), []byte(strings.Repeat("stream ", 5)))
		}
	})
	return im
}

func TestCorrupt(t *testing.T) {
	im := smallImage(t)
	clean := loadVolume(t, im.path)
	if err := everything(clean.fs); err != nil {
		t.Fatalf("the undamaged volume: %v", err)
	}
	lookup := func(fs *FS, p string) fsys.ID {
		id, err := fsys.Lookup(fs, p)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}

	t.Run("torn-record", func(t *testing.T) {
		v := loadVolume(t, im.path)
		off := v.recordOffset(recordRoot)
		v.b[off+2*fixupStride-1] ^= 0xFF // the second sector's update sequence number
		mustCorrupt(t, v.open(), "MFT record 5: update sequence mismatch in sector 1")
	})
	t.Run("torn-index-record", func(t *testing.T) {
		v := loadVolume(t, im.path)
		f, _ := v.fs.load(lookup(v.fs, "/dir"))
		r := dataPieces(f.attrs, attrIndexAlloc, "$I30")[0].runs[0]
		v.b[r.lcn*v.fs.cluster+3*fixupStride-2] ^= 0x55
		mustCorrupt(t, v.open(), "index record at VCN 0: update sequence mismatch in sector 2")
	})
	t.Run("run-past-the-volume", func(t *testing.T) {
		v := loadVolume(t, im.path)
		v.edit(uint64(lookup(v.fs, "/big")), func(rec []byte) {
			a := attrOffset(t, rec, attrData)
			rl := a + int(ondisk.U16(rec, a+0x20))
			h := rec[rl]
			rec[rl+int(h&0xF)+int(h>>4)] = 0x7F // the LCN delta's top byte
		})
		mustCorrupt(t, v.open(), "past the volume's")
	})
	t.Run("attribute-list-cycle", func(t *testing.T) {
		v := loadVolume(t, im.path)
		id := lookup(v.fs, "/streams")
		f, _ := v.fs.load(id)
		list, _ := findAttr(f.rec.attrs, attrAttrList, "")
		entries, _ := v.fs.attrList(list, "")
		var ext uint64
		for _, e := range entries {
			if e.ref != uint64(id) {
				ext = e.ref
			}
		}
		// The extension record claims itself as its base: the list
		// and the record no longer agree, whichever is followed.
		v.edit(ext, func(rec []byte) {
			copy(rec[recBaseRef:], []byte{byte(ext), byte(ext >> 8), byte(ext >> 16), 0, 0, 0})
		})
		mustCorrupt(t, v.open(), fmt.Sprintf("names record %d, whose base is %d", ext, ext))
	})
	t.Run("reused-extension-record", func(t *testing.T) {
		v := loadVolume(t, im.path)
		id := lookup(v.fs, "/streams")
		f, _ := v.fs.load(id)
		list, _ := findAttr(f.rec.attrs, attrAttrList, "")
		entries, _ := v.fs.attrList(list, "")
		var ext uint64
		for _, e := range entries {
			if e.ref != uint64(id) {
				ext = e.ref
			}
		}
		v.edit(ext, func(rec []byte) { rec[recSequence]++ })
		mustCorrupt(t, v.open(), fmt.Sprintf("attribute list names record %d with sequence", ext))
	})
	t.Run("index-loop", func(t *testing.T) {
		v := loadVolume(t, im.path)
		f, _ := v.fs.load(lookup(v.fs, "/dir"))
		alloc, err := newStream(v.fs, "test", dataPieces(f.attrs, attrIndexAlloc, "$I30"), false)
		if err != nil {
			t.Fatal(err)
		}
		// Point the last entry of the index record at VCN 0 back at
		// VCN 0.
		base := alloc.runs[0].lcn * v.fs.cluster
		blk := v.b[base : base+4096]
		if err := fixup(blk, "test"); err != nil {
			t.Fatal(err)
		}
		h := blk[ixHeader:]
		end := int(ondisk.U32(h, ihEnd))
		last := 0
		for off := int(ondisk.U32(h, ihEntries)); off < end; off += int(ondisk.U16(h, off+ieLen)) {
			last = off
		}
		n := int(ondisk.U16(h, last+ieLen))
		if ondisk.U32(h, last+ieFlags)&ieFlagSubnode == 0 {
			copy(h[last+n:], make([]byte, 8))
			n += 8
			binary.LittleEndian.PutUint16(h[last+ieLen:], uint16(n))
			binary.LittleEndian.PutUint32(h[last+ieFlags:], ieFlagLast|ieFlagSubnode)
			binary.LittleEndian.PutUint32(h[ihEnd:], uint32(end+8))
		}
		copy(h[last+n-8:], make([]byte, 8)) // VCN 0: itself
		protect(blk)
		mustCorrupt(t, v.open(), "index record at VCN 0 is reached twice")
	})
	t.Run("bad-lznt1", func(t *testing.T) {
		v := loadVolume(t, im.path)
		f, _ := v.fs.load(lookup(v.fs, "/comp/text"))
		r := dataPieces(f.attrs, attrData, "")[0].runs[0]
		off := r.lcn * v.fs.cluster
		v.b[off+2] = 0x01 // the first chunk's first token: a back-reference before any byte
		mustCorrupt(t, v.open(), "compression unit 0: lznt1: chunk at byte 0: truncated or leading back-reference")
	})
}

// TestConcurrentReads reads a compressed and a plain file from several
// goroutines at once, through one FS and one File each (run with -race).
func TestConcurrentReads(t *testing.T) {
	im := smallImage(t)
	fs, _ := openImage(t, im.path)
	var files []fsys.File
	var want [][]byte
	for _, p := range []string{"/comp/text", "/big"} {
		id, err := fsys.Lookup(fs, p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := fs.Open(id, "")
		if err != nil {
			t.Fatal(err)
		}
		files, want = append(files, f), append(want, im.files[p])
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			f, w := files[g%2], want[g%2]
			buf := make([]byte, 3000+g*512)
			for off := int64(g * 100); off < f.Size(); off += int64(len(buf)) {
				n, err := f.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:n], w[off:off+int64(n)]) {
					errs <- fmt.Errorf("goroutine %d: bytes at %d differ", g, off)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestWOFUnsupported: a file compressed by Windows' WOF (compact OS)
// keeps its data in a named stream behind a reparse point; its default
// stream is not the file's bytes, so reading it says ErrUnsupported
// rather than returning what is there.
func TestWOFUnsupported(t *testing.T) {
	img := mkntfs(t, 8, 4096)
	mount(t, img, func(mnt string) {
		p := filepath.Join(mnt, "wof")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// A WOF reparse point: tag, data length 16, then the WOF and
		// file provider headers (version 1, provider 2 = file, version
		// 1, algorithm 1 = XPRESS8K).
		data := []byte{0x17, 0, 0, 0x80, 16, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0}
		if err := syscall.Setxattr(p, "system.ntfs_reparse_data", data, 0); err != nil {
			t.Fatalf("setting a WOF reparse point: %v", err)
		}
	})
	fs, _ := openImage(t, img)
	id, err := fsys.Lookup(fs, "/wof")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := fs.Stat(id); err != nil || st.Type != fsys.TypeRegular {
		t.Fatalf("stat: %+v, %v", st, err)
	}
	if _, err := fs.Open(id, ""); !errors.Is(err, fsys.ErrUnsupported) {
		t.Fatalf("Open of a WOF file: %v, want ErrUnsupported", err)
	}
}
