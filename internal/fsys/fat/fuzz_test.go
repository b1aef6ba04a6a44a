package fat

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// padded is a fuzz input seen as a volume of fuzzSize bytes: the input,
// then zeros. Seeds are real images with their trailing zeros cut.
type padded []byte

const fuzzSize = 64 << 20

func (p padded) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= fuzzSize {
		return 0, io.EOF
	}
	n := len(b)
	if rest := fuzzSize - off; int64(n) > rest {
		n = int(rest)
	}
	clear(b[:n])
	if off < int64(len(p)) {
		copy(b[:n], p[off:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func trimmed(t testing.TB, img string) []byte {
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimRight(b, "\x00")
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
	return trimmed(t, img)
}

// exercise opens data as a volume and reads all of it that a bounded
// amount of work reaches: at most 2000 entries, 64 KiB of each file.
func exercise(data []byte) {
	fs, err := Open(padded(data), fuzzSize)
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
	f.Add(smallFAT(f, 64, "-F", "12", "-f", "1", "-r", "16", "-s", "1", "-S", "512"))
	f.Add(smallFAT(f, 2600, "-F", "16", "-f", "1", "-r", "16", "-s", "1", "-S", "512"))
	f.Add(smallFAT(f, 33<<10, "-F", "32", "-f", "1", "-s", "1", "-S", "512"))
	f.Fuzz(func(t *testing.T, data []byte) { exercise(data) })
}

func FuzzExFAT(f *testing.F) {
	img := exfatImage(f, 1, []string{"-b", "4096", "-c", "512"}, func(mnt string) {
		writeTree(f, mnt, smallTree())
	})
	f.Add(trimmed(f, img))
	f.Fuzz(func(t *testing.T, data []byte) { exercise(data) })
}

// TestFuzzSeedsRead checks that the fuzz seeds are readable volumes, so
// that the fuzzers start from inputs that reach the directory code.
func TestFuzzSeedsRead(t *testing.T) {
	seeds := map[string][]byte{
		"FAT12": smallFAT(t, 64, "-F", "12", "-f", "1", "-r", "16", "-s", "1", "-S", "512"),
		"exFAT": trimmed(t, exfatImage(t, 1, []string{"-b", "4096", "-c", "512"}, func(mnt string) { writeTree(t, mnt, smallTree()) })),
	}
	for kind, data := range seeds {
		fs, err := Open(padded(data), fuzzSize)
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
		t.Logf("%s seed: %d bytes, %d files", kind, len(data), len(got))
	}
}
