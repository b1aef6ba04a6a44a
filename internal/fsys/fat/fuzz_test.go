package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// A fuzz input is a sparse volume of fuzzSize bytes, so that the
// mutator spends its work on metadata rather than on the zeros of a
// FAT32 FAT: a list of records, each a 4-byte little-endian sector
// number (taken modulo the volume's sectors), a byte holding the count
// of sectors less one, and the sectors' bytes (a short last record keeps
// what it has). Every other byte reads as zero. Any input decodes.
const (
	fuzzSize   = 64 << 20
	fuzzSector = 512
)

type sparse map[int64][]byte // sector number to its bytes

func decode(data []byte) sparse {
	s := sparse{}
	for len(data) >= 5 {
		sec := int64(binary.LittleEndian.Uint32(data)) % (fuzzSize / fuzzSector)
		n := int(data[4]) + 1
		data = data[5:]
		for i := 0; i < n && len(data) > 0 && sec < fuzzSize/fuzzSector; i++ {
			b := make([]byte, fuzzSector)
			data = data[copy(b, data):]
			s[sec] = b
			sec++
		}
	}
	return s
}

// encode makes a fuzz input of an image: its sectors that are not all
// zeros.
func encode(img []byte) []byte {
	var out []byte
	zero := make([]byte, fuzzSector)
	for sec := 0; sec*fuzzSector < len(img) && sec*fuzzSector < fuzzSize; {
		if bytes.Equal(img[sec*fuzzSector:min(len(img), (sec+1)*fuzzSector)], zero[:min(fuzzSector, len(img)-sec*fuzzSector)]) {
			sec++
			continue
		}
		n := 0
		for n < 256 && (sec+n+1)*fuzzSector <= len(img) && !bytes.Equal(img[(sec+n)*fuzzSector:(sec+n+1)*fuzzSector], zero) {
			n++
		}
		if n == 0 { // a short, nonzero last sector
			n = 1
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(sec))
		out = append(out, byte(n-1))
		out = append(out, img[sec*fuzzSector:min(len(img), (sec+n)*fuzzSector)]...)
		sec += n
	}
	return out
}

func (s sparse) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= fuzzSize {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), fuzzSize-off))
	for i := 0; i < n; {
		pos := off + int64(i)
		sec, in := pos/fuzzSector, int(pos%fuzzSector)
		k := min(n-i, fuzzSector-in)
		if data, ok := s[sec]; ok {
			copy(b[i:i+k], data[in:])
		} else {
			clear(b[i : i+k])
		}
		i += k
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func imageBytes(t testing.TB, img string) []byte {
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// smallTree is a few files for the fuzz seeds: a long name, a
// directory, a file of several clusters.
func smallTree() tree {
	return tree{
		"/a.txt":                 []byte("a\n"),
		"/Long File Name é.txt":  content("lfn", 700),
		"/dir/inner.bin":         content("inner", 1500),
		"/dir/sub/x":             {},
		"/dir/sub/second level":  []byte("2"),
		"/a rather long name ok": []byte("ok"),
	}
}

func smallFAT(t testing.TB, sizeKiB int, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	img := dir + "/small.img"
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, int64(sizeKiB)<<10); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.vfat", append(args, img)...)
	writeTree(t, dir+"/src", smallTree())
	run(t, "mcopy", "-s", "-i", img, dir+"/src/a.txt", dir+"/src/Long File Name é.txt", dir+"/src/dir", dir+"/src/a rather long name ok", "::")
	return imageBytes(t, img)
}

// fatSeeds are a FAT12, a FAT16 and a FAT32 volume, each as small as
// its variant allows, holding smallTree.
func fatSeeds(t testing.TB) [][]byte {
	return [][]byte{
		smallFAT(t, 64, "-F", "12", "-f", "1", "-r", "16", "-s", "1", "-S", "512"),
		smallFAT(t, 2600, "-F", "16", "-f", "1", "-r", "16", "-s", "1", "-S", "512"),
		smallFAT(t, 33<<10, "-F", "32", "-f", "1", "-s", "1", "-S", "512"),
	}
}

// exercise opens data as a volume and reads all of it that a bounded
// amount of work reaches: at most 2000 entries, 64 KiB of each file.
func exercise(data []byte) {
	fs, err := Open(decode(data), fuzzSize)
	if err != nil {
		return
	}
	fs.Type()
	errStop := errors.New("enough")
	seen := 0
	buf := make([]byte, 64<<10)
	fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
		if seen++; seen > 2000 {
			return errStop
		}
		st, err := fs.Stat(e.ID)
		if err != nil || st.Type != fsys.TypeRegular {
			return nil
		}
		f, err := fs.Open(e.ID, "")
		if err != nil {
			return nil
		}
		n := min(int64(len(buf)), f.Size())
		f.ReadAt(buf[:n], 0)
		f.ReadAt(buf[:n], f.Size()-n)
		f.Runs()
		return nil
	})
	fs.Stat(fs.Root())
	for _, id := range []fsys.ID{3, 4, 100, 1 << 20} {
		if _, err := fs.Stat(id); err == nil {
			fs.ReadDir(id)
			if f, err := fs.Open(id, ""); err == nil {
				f.ReadAt(buf[:min(int64(len(buf)), f.Size())], 0)
			}
		}
	}
}

func FuzzFAT(f *testing.F) {
	for _, seed := range fatSeeds(f) {
		f.Add(encode(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) { exercise(data) })
}

func FuzzExFAT(f *testing.F) {
	img := exfatImage(f, 1, []string{"-b", "4096", "-c", "512"}, func(mnt string) {
		writeTree(f, mnt, smallTree())
	})
	f.Add(encode(imageBytes(f, img)))
	f.Fuzz(func(t *testing.T, data []byte) { exercise(data) })
}

// TestFuzzSeedsRead checks that the fuzz seeds are readable volumes, so
// that the fuzzers start from inputs that reach the directory code.
func TestFuzzSeedsRead(t *testing.T) {
	fat := fatSeeds(t)
	seeds := map[string][]byte{
		"FAT12": fat[0],
		"FAT16": fat[1],
		"FAT32": fat[2],
		"exFAT": imageBytes(t, exfatImage(t, 1, []string{"-b", "4096", "-c", "512"}, func(mnt string) { writeTree(t, mnt, smallTree()) })),
	}
	for kind, img := range seeds {
		data := encode(img)
		fs, err := Open(decode(data), fuzzSize)
		if err != nil {
			t.Fatalf("%s seed: %v", kind, err)
		}
		got := walkAll(t, fs)
		for p, want := range smallTree() {
			b, _ := readAll(t, fs, got[p].entry.ID)
			if !bytes.Equal(b, want) {
				t.Errorf("%s seed: %s: %q", kind, p, b)
			}
		}
		if fs.Variant() != kind {
			t.Errorf("%s seed reads as %s", kind, fs.Variant())
		}
		t.Logf("%s seed: %d bytes for an image of %d, %d files", kind, len(data), len(img), len(got))
	}
}
