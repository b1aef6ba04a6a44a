package ext

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// tinyImage returns a fuzzVolume-byte volume made by mkfs.<kind> args from a few
// files, or nil when mkfs is not installed (fuzzing then starts from
// nothing).
func tinyImage(f *testing.F, kind string, args ...string) []byte {
	mkfs, err := exec.LookPath("mkfs." + kind)
	if err != nil {
		return nil
	}
	dir := f.TempDir()
	root := filepath.Join(dir, "root")
	writeFile(f, filepath.Join(root, "a"), []byte("a\n"))
	writeFile(f, filepath.Join(root, "d", "b"), pattern(5000, 1))
	writeFile(f, filepath.Join(root, "d", "c"), pattern(70, 2))
	writeFile(f, filepath.Join(root, "s"), sparseFile(8, 1024, 8192))
	for i := range 40 {
		writeFile(f, filepath.Join(root, "m", "entry-number-"+itoa(i)), nil)
	}
	if err := os.Symlink("a", filepath.Join(root, "l")); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(string(pattern(100, 3)[:80]), filepath.Join(root, "L")); err != nil {
		f.Fatal(err)
	}
	img := filepath.Join(dir, "tiny.img")
	if err := os.WriteFile(img, make([]byte, fuzzVolume), 0o600); err != nil {
		f.Fatal(err)
	}
	cmd := exec.Command(mkfs, append(append([]string{"-q", "-F", "-b", "1024", "-N", "64"}, args...), "-d", root, img)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.Fatalf("mkfs.%s: %v\n%s", kind, err, out)
	}
	if fsck, err := exec.LookPath("e2fsck"); err == nil {
		_ = exec.Command(fsck, "-fyD", img).Run() // index m as a hash tree
	}
	data, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	return data
}

var errEnough = errors.New("enough")

// The fuzzer mutates the first fuzzHead bytes of a fuzzVolume-byte
// volume, where mkfs puts the metadata of a tiny file system (superblock,
// descriptors, bitmaps, inode table, directories, extent and indirect
// blocks); the rest reads as zeros. Small inputs keep the fuzzer's
// minimization quick.
const (
	fuzzHead   = 64 << 10
	fuzzVolume = 256 << 10
)

func fuzzImage(head []byte) []byte {
	vol := make([]byte, fuzzVolume)
	copy(vol, head)
	return vol
}

// FuzzExt opens a volume, walks it and reads every file, within a
// bound: whatever the bytes, no panic, no hang, and what is returned
// keeps the promises of fsys.File.
func FuzzExt(f *testing.F) {
	for _, seed := range [][]byte{
		tinyImage(f, "ext4", "-O", "^has_journal,^resize_inode,inline_data"),
		tinyImage(f, "ext4", "-O", "^has_journal,^resize_inode,^metadata_csum,^64bit"),
		tinyImage(f, "ext2", "-O", "^resize_inode"),
	} {
		if seed == nil {
			continue
		}
		// A seed mkfs made reads without an error.
		seed = seed[:fuzzHead]
		vol := fuzzImage(seed)
		fs, err := Open(bytes.NewReader(vol), int64(len(vol)))
		if err != nil {
			f.Fatalf("seed: %v", err)
		}
		files := 0
		if err := fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
			files++
			if e.Type == fsys.TypeDir {
				return nil
			}
			_, err := fs.Open(e.ID, "")
			return err
		}); err != nil || files != 49 {
			f.Fatalf("seed: %d files, %v", files, err)
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		data := fuzzImage(head)
		fs, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		work := 0
		opened := map[fsys.ID]bool{}
		_ = fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
			if work++; work > 300 {
				return errEnough
			}
			if opened[e.ID] {
				return nil // a second name: the file was read
			}
			opened[e.ID] = true
			st, err := fs.Stat(e.ID)
			if err != nil {
				return nil
			}
			if st.Type == fsys.TypeSymlink {
				_, _ = fs.Readlink(e.ID)
			}
			if st.Type == fsys.TypeDir {
				return nil
			}
			fl, err := fs.Open(e.ID, "")
			if err != nil {
				return nil
			}
			checkFile(t, fl, int64(len(data)))
			return nil
		})
	})
}

// checkFile checks a file's runs and reads its start and end.
func checkFile(t *testing.T, fl fsys.File, volume int64) {
	pos := int64(0)
	for _, r := range fl.Runs() {
		if r.Logical != pos || r.Length <= 0 || (!r.Sparse() && r.Physical+r.Length > volume) {
			t.Fatalf("run %+v after byte %d (volume %d)", r, pos, volume)
		}
		pos += r.Length
	}
	if !fl.Resident() && pos != fl.Size() {
		t.Fatalf("runs cover %d of %d bytes", pos, fl.Size())
	}
	buf := make([]byte, 64<<10)
	for _, off := range []int64{0, max(fl.Size()-int64(len(buf)), 0)} {
		n, err := fl.ReadAt(buf, off)
		want := min(int64(len(buf)), fl.Size()-off)
		if int64(n) != want || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("ReadAt(%d) of %d bytes: %d, %v", off, fl.Size(), n, err)
		}
	}
}
