package fat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// exfatSample builds a 16 MiB exFAT volume (4 KiB clusters) holding
// sampleTree, a fragmented /frag.bin written into the holes of deleted
// files, and /grown.bin, extended with truncate past what was written.
func exfatSample(t testing.TB) (string, tree) {
	t.Helper()
	const csize = 4096
	files := sampleTree(2<<20, 600)
	img := exfatImage(t, 16, []string{"-c", "4K"}, func(mnt string) {
		writeTree(t, mnt, files)
		for i := 1; i <= 6; i++ {
			name := fmt.Sprintf("/frag/f%d", i)
			files[name] = content(name, 2*csize)
			writeTree(t, mnt, tree{name: files[name]})
		}
		for _, name := range []string{"/frag/f2", "/frag/f4"} {
			if err := os.Remove(filepath.Join(mnt, name)); err != nil {
				t.Fatal(err)
			}
			delete(files, name)
		}
		files["/frag.bin"] = content("frag", 6*csize+100)
		writeTree(t, mnt, tree{"/frag.bin": files["/frag.bin"]})
		grown := content("grown", 5000)
		writeTree(t, mnt, tree{"/grown.bin": grown})
		if err := os.Truncate(filepath.Join(mnt, "grown.bin"), 3*csize+7); err != nil {
			t.Fatal(err)
		}
		files["/grown.bin"] = append(grown, make([]byte, 3*csize+7-len(grown))...)
	})
	return img, files
}

func TestExFATVolume(t *testing.T) {
	img, files := exfatSample(t)
	fs, _ := openImage(t, img)
	if fs.Variant() != "exFAT" || fs.Type() != "exfat" {
		t.Fatalf("variant %s, type %s", fs.Variant(), fs.Type())
	}
	crossCheck(t, img, files)

	got := walkAll(t, fs)
	frag := fs.nodes[got["/frag.bin"].entry.ID]
	f, err := fs.Open(got["/frag.bin"].entry.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if frag.contig || len(f.Runs()) < 2 {
		t.Errorf("/frag.bin: NoFatChain %v, runs %v; want a fragmented file with a FAT chain", frag.contig, f.Runs())
	}
	contig := 0
	for _, o := range got {
		if n := fs.nodes[o.entry.ID]; n.contig && n.size > fs.g.clusterSize {
			contig++
		}
	}
	if contig == 0 {
		t.Errorf("no file of more than one cluster has the NoFatChain flag: that path is untested")
	}
	g := fs.nodes[got["/grown.bin"].entry.ID]
	t.Logf("%d files of several clusters without a FAT chain; /grown.bin: ValidDataLength %d of %d", contig, g.valid, g.size)
	id := got["/many"].entry.ID
	entries, err := fs.ReadDir(id)
	if err != nil || len(entries) != 600 {
		t.Fatalf("/many: %d entries, %v", len(entries), err)
	}
	if st := got["/many"].stat; st.Size <= fs.g.clusterSize {
		t.Errorf("/many: %d bytes, not more than one cluster", st.Size)
	}
}

// TestExFATValidDataLength lowers a file's ValidDataLength (and fixes
// its entry set's checksum): the bytes past it read as zeros and lie in
// a sparse run, as the specification says (section 7.6.5).
func TestExFATValidDataLength(t *testing.T) {
	img, files := exfatSample(t)
	fs, raw := openImage(t, img)
	id, err := fsys.Lookup(fs, "/Sub/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(files["/Sub/big.bin"]))
	const valid = 10000
	off, _ := fs.offsetOf(id)
	set := make([]byte, 3*entrySize) // File, Stream Extension, one name entry
	if _, err := raw.ReadAt(set, off); err != nil {
		t.Fatal(err)
	}
	if set[0] != exFile || set[1] != 2 || set[entrySize] != exStream {
		t.Fatalf("/Sub/big.bin: entry set % x", set[:2])
	}
	binary.LittleEndian.PutUint64(set[entrySize+8:], valid)
	binary.LittleEndian.PutUint16(set[2:], setChecksum(set))
	w, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(set, off); err != nil {
		t.Fatal(err)
	}
	w.Close()

	fs, _ = openImage(t, img)
	if _, err := fsys.Lookup(fs, "/Sub/big.bin"); err != nil {
		t.Fatal(err)
	}
	data, f := readAll(t, fs, id)
	want := append(append([]byte(nil), files["/Sub/big.bin"][:valid]...), make([]byte, size-valid)...)
	if !bytes.Equal(data, want) {
		t.Errorf("bytes past ValidDataLength are not zeros")
	}
	runs := f.Runs()
	last := runs[len(runs)-1]
	if !last.Sparse() || last.Logical != valid || last.Length != size-valid {
		t.Errorf("runs %v: want a sparse run of %d bytes at %d", runs, size-valid, valid)
	}
}
