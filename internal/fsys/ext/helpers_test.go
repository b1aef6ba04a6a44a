package ext

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// run runs a tool and returns its standard output.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	return testenv.Output(t, name, args...)
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pattern returns n deterministic, incompressible-looking bytes, never a
// whole zero block.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x) | 1
	}
	return b
}

// tree is what the test writes into the directory mkfs copies.
type tree struct {
	root   string
	files  map[string][]byte // path (from /) -> contents of regular files
	links  map[string]string // path -> symlink target
	hard   [2]string         // two names of one file
	sparse string            // the file with many data regions
	many   string            // the directory with ~2000 entries
}

// sparseFile returns a file of regions data blocks every gap bytes.
func sparseFile(regions int, region, gap int) []byte {
	b := make([]byte, (regions-1)*gap+region)
	for i := range regions {
		copy(b[i*gap:], pattern(region, byte(i)))
	}
	return b
}

// writeTree writes the test tree under dir/root: small, large, empty and
// sparse files, a directory of 2000 names, long and non-ASCII names,
// fast and slow symlinks, a hard link, a FIFO and a character device,
// owners above 65535 and times with nanoseconds and past 2038.
func writeTree(t testing.TB, dir string, manyNames int) *tree {
	t.Helper()
	tr := &tree{root: filepath.Join(dir, "root"), files: map[string][]byte{}, links: map[string]string{}}
	add := func(p string, data []byte) {
		writeFile(t, filepath.Join(tr.root, p), data)
		tr.files["/"+p] = data
	}
	add("small.txt", []byte("hello, ext\n"))
	add("tiny", []byte("x"))
	add("mid.txt", pattern(100, 7))
	add("d/big.bin", pattern(3<<20+123, 1))
	add("d/sub/deep.txt", []byte("deep\n"))
	add("empty", nil)
	tr.sparse = "/d/sparse.bin"
	add(tr.sparse[1:], sparseFile(300, 4096, 64<<10))
	add("zeros-then-data", append(make([]byte, 1<<20), pattern(5000, 3)...))
	add(strings.Repeat("L", 255), []byte("long name\n"))
	add("héllo wörld 日本語.txt", []byte("unicode\n"))
	add("bad\xffname", []byte("not utf-8\n"))
	tr.many = "/many"
	for i := range manyNames {
		add(filepath.Join(tr.many[1:], strings.Repeat("n", i%40)+string(rune('a'+i%26))+"-"+itoa(i)), []byte(itoa(i)))
	}
	tr.hard = [2]string{"/small.txt", "/hardlink"}
	if err := os.Link(filepath.Join(tr.root, "small.txt"), filepath.Join(tr.root, "hardlink")); err != nil {
		t.Fatal(err)
	}
	tr.files["/hardlink"] = tr.files["/small.txt"]
	tr.links["/fast"] = "small.txt"
	tr.links["/d/slow"] = strings.Repeat("long/", 40) + "target"
	for p, target := range tr.links {
		if err := os.Symlink(target, filepath.Join(tr.root, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(tr.root, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := syscall.Mknod(filepath.Join(tr.root, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(tr.root, "d", "big.bin"), 70000, 80001); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Chmod(filepath.Join(tr.root, "mid.txt"), 0o4751); err != nil { // os.Chmod takes os.FileMode bits
		t.Fatal(err)
	}
	at := time.Date(2001, 2, 3, 4, 5, 6, 123456789, time.UTC)
	mt := time.Date(2100, 7, 8, 9, 10, 11, 987654321, time.UTC) // past 2038: an epoch bit
	if err := os.Chtimes(filepath.Join(tr.root, "mid.txt"), at, mt); err != nil {
		t.Fatal(err)
	}
	return tr
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// mkfs builds an image of sizeMiB with mkfs.<kind> -d tree and the args.
func mkfs(t testing.TB, dir string, tr *tree, kind string, sizeMiB int64, args ...string) string {
	t.Helper()
	img := filepath.Join(dir, "fs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(sizeMiB << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, "mkfs."+kind, append(append([]string{"-q", "-F"}, args...), "-d", tr.root, img)...)
	return img
}
