package mount_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/mount"
	"github.com/ebsimager/ebsimager/internal/mount/mounttest"
	"github.com/ebsimager/ebsimager/internal/testenv"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// served is a mount a test started.
type served struct {
	dir    string
	cancel context.CancelFunc
	done   chan error
	errs   chan error // what ReadError was given
	detach chan error // what Detached was given
}

// serve mounts files of r on a new directory and waits until it is up.
// The mount is taken down when the test ends, failed or not.
func serve(t *testing.T, r io.ReaderAt, files []mount.File, mtime time.Time) *served {
	t.Helper()
	mounttest.RequireFUSE(t)
	s := &served{dir: t.TempDir(), done: make(chan error, 1), errs: make(chan error, 100), detach: make(chan error, 1)}
	t.Cleanup(func() { exec.Command("fusermount3", "-u", "-z", s.dir).Run() })
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	t.Cleanup(cancel)
	ready := make(chan struct{})
	o := mount.Options{
		ModTime: mtime,
		Ready:   func() { close(ready) },
		ReadError: func(err error) {
			select {
			case s.errs <- err:
			default:
			}
		},
		Detached: func(err error) { s.detach <- err },
	}
	go func() { s.done <- mount.Serve(ctx, s.dir, r, files, o) }()
	select {
	case <-ready:
	case err := <-s.done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the mount was not ready in 30 s")
	}
	return s
}

// wait waits for Serve to return, and checks the mount is gone.
func (s *served) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return in 30 s")
	}
	if mounted(t, s.dir) {
		t.Fatalf("%s is still mounted after Serve returned", s.dir)
	}
}

// mounted reports whether dir is a mount point of this process's name
// space.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	return mountOptions(t, dir) != ""
}

// mountOptions returns the mount and super options of the mount on dir,
// or "" when there is none.
func mountOptions(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 6 && f[4] == dir {
			return f[5] + " " + f[len(f)-1]
		}
	}
	return ""
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func openVolume(t *testing.T, path string) volume.Volume {
	t.Helper()
	v, err := volume.Open(context.Background(), path, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// TestFiles: disk.raw and one file per partition, logical MBR partitions
// included and the extended container left out, read from a table sfdisk
// wrote; hostile entries are cut, dropped or deduplicated.
func TestFiles(t *testing.T) {
	path := mounttest.BuildMBR(t)
	v := openVolume(t, path)
	l, err := inspect.Inspect(v, v.Size())
	if err != nil {
		t.Fatal(err)
	}
	got := mount.Files(v.Size(), l)
	want := []mount.File{
		{Name: "disk.raw", Len: 64 << 20},
		{Name: "p1.raw", Off: 2048 * 512, Len: 8192 * 512},
		{Name: "p2.raw", Off: 10240 * 512, Len: 8192 * 512},
		{Name: "p5.raw", Off: 20480 * 512, Len: 8192 * 512},
		{Name: "p6.raw", Off: 30720 * 512, Len: 8192 * 512},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Files of the MBR disk:\n%+v\nwant\n%+v", got, want)
	}

	hostile := &inspect.Layout{Partitions: []inspect.Partition{
		{Number: 1, Offset: 512, Length: 1000},
		{Number: 1, Offset: 4096, Length: 10},      // a second p1
		{Number: 2, Offset: 1500, Length: 1 << 40}, // past the end: cut
		{Number: 3, Offset: 2048, Length: 10},      // starts at the end
		{Number: 4, Offset: -5, Length: 10},
		{Number: 7, Offset: 100, Length: 0},
	}}
	got = mount.Files(2048, hostile)
	want = []mount.File{{Name: "disk.raw", Len: 2048}, {Name: "p1.raw", Off: 512, Len: 1000}, {Name: "p2.raw", Off: 1500, Len: 548}}
	if !slices.Equal(got, want) {
		t.Fatalf("Files of a hostile table:\n%+v\nwant\n%+v", got, want)
	}
	if got := mount.Files(4096, nil); !slices.Equal(got, []mount.File{{Name: "disk.raw", Len: 4096}}) {
		t.Fatalf("Files with no table: %+v", got)
	}
}

// TestServeRealDisk mounts a GPT disk with ext4 and FAT partitions built
// by the real tools, read through a Volume of the raw image, and checks
// what the Sleuth Kit, cmp and the kernel see.
func TestServeRealDisk(t *testing.T) {
	tools := testenv.RequireTool(t, "mmls", "fls", "icat", "cmp")
	mmls, fls, icat, cmp := tools[0], tools[1], tools[2], tools[3]
	disk := mounttest.Build(t)
	v := openVolume(t, disk.Path)
	l, err := inspect.Inspect(v, v.Size())
	if err != nil {
		t.Fatal(err)
	}
	files := mount.Files(v.Size(), l)
	mtime := time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC)
	s := serve(t, v, files, mtime)
	at := func(name string) string { return filepath.Join(s.dir, name) }

	// The directory and its files: names, modes, sizes, times.
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"disk.raw", "p1.raw", "p2.raw"}; !slices.Equal(names, want) {
		t.Fatalf("ls: %v, want %v", names, want)
	}
	fi, err := os.Stat(s.dir)
	if err != nil || fi.Mode() != os.ModeDir|0o555 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("mount point: %v %v %v", fi.Mode(), fi.ModTime(), err)
	}
	sizes := map[string]int64{"disk.raw": mounttest.DiskSize, "p1.raw": mounttest.Ext4Len, "p2.raw": mounttest.FATLen}
	for name, size := range sizes {
		fi, err := os.Stat(at(name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != 0o444 || fi.Size() != size || !fi.ModTime().Equal(mtime) || st.Blksize != 512<<10 || st.Blocks != size/512 {
			t.Errorf("%s: mode %v size %d mtime %v blksize %d blocks %d; want 0444, %d, %v, 524288, %d",
				name, fi.Mode(), fi.Size(), fi.ModTime(), st.Blksize, st.Blocks, size, mtime, size/512)
		}
	}
	if opts := mountOptions(t, s.dir); !strings.HasPrefix(opts, "ro,") || !strings.Contains(opts, "max_read=1048576") {
		t.Errorf("mount options %q: want ro and max_read=1048576", opts)
	}

	// The bytes: the whole disk, and each partition at its offset.
	run(t, cmp, at("disk.raw"), disk.Path)
	run(t, cmp, "-n", fmt.Sprint(mounttest.Ext4Len), "-i", fmt.Sprintf("0:%d", mounttest.Ext4Off), at("p1.raw"), disk.Path)
	run(t, cmp, "-n", fmt.Sprint(mounttest.FATLen), "-i", fmt.Sprintf("0:%d", mounttest.FATOff), at("p2.raw"), disk.Path)

	// The Sleuth Kit reads the mount as it reads the image.
	if got, want := run(t, mmls, at("disk.raw")), run(t, mmls, disk.Path); got != want || !strings.Contains(got, "evidence-ext4") {
		t.Fatalf("mmls on the mount:\n%s\non the image:\n%s", got, want)
	}
	ext4Sector, fatSector := fmt.Sprint(mounttest.Ext4Off/512), fmt.Sprint(mounttest.FATOff/512)
	for _, args := range [][2][]string{
		{{"-r", "-p", "-o", ext4Sector, at("disk.raw")}, {"-r", "-p", "-o", ext4Sector, disk.Path}},
		{{"-r", "-p", at("p1.raw")}, {"-r", "-p", "-o", ext4Sector, disk.Path}},
		{{"-r", "-p", at("p2.raw")}, {"-r", "-p", "-o", fatSector, disk.Path}},
	} {
		if got, want := run(t, fls, args[0]...), run(t, fls, args[1]...); got != want {
			t.Fatalf("fls %v:\n%s\nfls %v:\n%s", args[0], got, args[1], want)
		}
	}
	for part, fsFiles := range map[string]map[string][]byte{"p1.raw": disk.Ext4, "p2.raw": disk.FAT} {
		inodes := flsInodes(t, run(t, fls, "-r", "-p", at(part)))
		for name, data := range fsFiles {
			ino, ok := inodes[strings.TrimPrefix(name, "/")]
			if !ok {
				t.Fatalf("fls on %s does not list %s", part, name)
			}
			if got := run(t, icat, at(part), ino); got != string(data) {
				t.Errorf("icat %s %s (%s): %d bytes, want the %d bytes put in", part, ino, name, len(got), len(data))
			}
		}
	}

	// Nothing can be written.
	for what, err := range map[string]error{
		"open for writing": openErr(at("disk.raw"), os.O_WRONLY),
		"open read-write":  openErr(at("p1.raw"), os.O_RDWR),
		"create":           openErr(at("new"), os.O_CREATE|os.O_WRONLY),
		"truncate":         os.Truncate(at("p2.raw"), 0),
		"chmod":            os.Chmod(at("disk.raw"), 0o666),
		"chtimes":          os.Chtimes(at("disk.raw"), time.Now(), time.Now()),
		"remove":           os.Remove(at("p1.raw")),
		"rename":           os.Rename(at("p1.raw"), at("p9.raw")),
		"mkdir":            os.Mkdir(at("d"), 0o700),
		"symlink":          os.Symlink("disk.raw", at("l")),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", what, err)
		}
	}

	// Many readers at once, at random offsets, all around the disk.
	concurrentReads(t, at("disk.raw"), disk.Path, 8, 200)

	s.cancel()
	s.wait(t)
}

// openErr opens path with flag and returns the error.
func openErr(path string, flag int) error {
	f, err := os.OpenFile(path, flag, 0o600)
	if err == nil {
		f.Close()
	}
	return err
}

// flsInodes maps the paths of the regular files of fls -r -p output
// ("r/r 12:	etc/passwd") to their inode numbers.
func flsInodes(t *testing.T, out string) map[string]string {
	t.Helper()
	row := regexp.MustCompile(`^r/r (\d+(?:-\d+-\d+)?):\t(.+)$`)
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if g := row.FindStringSubmatch(line); g != nil {
			m[g[2]] = g[1]
		}
	}
	return m
}

// concurrentReads reads the mounted file and the image at the same
// random offsets from several goroutines, each through its own open,
// and compares: the kernel sends the server concurrent reads.
func concurrentReads(t *testing.T, mounted, image string, workers, reads int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			m, err := os.Open(mounted)
			if err != nil {
				errs <- err
				return
			}
			defer m.Close()
			img, err := os.Open(image)
			if err != nil {
				errs <- err
				return
			}
			defer img.Close()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			got, want := make([]byte, 3<<20), make([]byte, 3<<20)
			for range reads {
				n := 1 + rng.IntN(len(got))
				off := rng.Int64N(mounttest.FATOff + mounttest.FATLen - int64(n))
				if _, err := m.ReadAt(got[:n], off); err != nil {
					errs <- fmt.Errorf("reading the mount at %d: %w", off, err)
					return
				}
				if _, err := img.ReadAt(want[:n], off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got[:n], want[:n]) {
					errs <- fmt.Errorf("%d bytes at %d differ from the image", n, off)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestExternalUnmount: fusermount3 -u ends Serve with nil.
func TestExternalUnmount(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<12)
	s := serve(t, bytes.NewReader(data), mount.Files(int64(len(data)), nil), time.Time{})
	got, err := os.ReadFile(filepath.Join(s.dir, "disk.raw"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading disk.raw: %d bytes, %v", len(got), err)
	}
	run(t, "fusermount3", "-u", s.dir)
	s.wait(t)
}

// TestBusyUnmount: a file left open when Serve's context ends does not
// keep the mount: it is detached, Detached says so, and Serve returns.
func TestBusyUnmount(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 1<<20)
	s := serve(t, bytes.NewReader(data), mount.Files(int64(len(data)), nil), time.Time{})
	f, err := os.Open(filepath.Join(s.dir, "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s.cancel()
	s.wait(t)
	select {
	case err := <-s.detach:
		if !strings.Contains(err.Error(), "was busy") {
			t.Fatalf("Detached: %v", err)
		}
	default:
		t.Fatal("a busy mount ended without Detached")
	}
}

// failingReader fails every read that reaches bad.
type failingReader struct {
	data []byte
	bad  int64
}

var errBad = fmt.Errorf("block 3: %w", volume.ErrCorrupt)

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.bad {
		n := max(0, int(r.bad-off))
		copy(p, r.data[off:off+int64(n)])
		return n, errBad
	}
	return copy(p, r.data[off:]), nil
}

// TestReadError: a read the volume fails is EIO to the reader, never
// short or wrong bytes, and ReadError gets the volume's error; the bytes
// before it still read.
func TestReadError(t *testing.T) {
	data := bytes.Repeat([]byte("evidence"), 1<<18) // 2 MiB
	const bad = 3 << 19                             // 1.5 MiB
	s := serve(t, failingReader{data, bad}, mount.Files(int64(len(data)), nil), time.Time{})
	f, err := os.Open(filepath.Join(s.dir, "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 1<<20)
	if _, err := f.ReadAt(head, 0); err != nil || !bytes.Equal(head, data[:1<<20]) {
		t.Fatalf("reading the first MiB: %v", err)
	}
	if n, err := f.ReadAt(make([]byte, 4096), bad+4096); !errors.Is(err, syscall.EIO) {
		t.Fatalf("reading past the bad offset: %d bytes, %v; want EIO", n, err)
	}
	select {
	case err := <-s.errs:
		if !errors.Is(err, volume.ErrCorrupt) || !strings.Contains(err.Error(), "reading disk.raw at offset") {
			t.Fatalf("ReadError got %v", err)
		}
	default:
		t.Fatal("ReadError was not called")
	}
	f.Close()
	s.cancel()
	s.wait(t)
}

// TestMountPoint: only an empty directory is mounted on.
func TestMountPoint(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, problem := range map[string]string{
		filepath.Join(dir, "missing"): "does not exist",
		file:                          "is not a directory",
		dir:                           "is not empty",
	} {
		err := mount.Serve(context.Background(), path, bytes.NewReader(nil), mount.Files(0, nil), mount.Options{})
		var mp *mount.MountPointError
		if !errors.As(err, &mp) || mp.Problem != problem || !strings.Contains(err.Error(), "must be an empty directory") {
			t.Errorf("Serve on %s: %v; want %q", path, err, problem)
		}
	}
	if err := mount.CheckMountPoint(t.TempDir()); err != nil {
		t.Fatalf("an empty directory: %v", err)
	}
}

// recordingReader records the size of every read that reaches it.
type recordingReader struct {
	r     io.ReaderAt
	mu    sync.Mutex
	sizes map[int]int
}

func (r *recordingReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.sizes[len(p)]++
	r.mu.Unlock()
	return r.r.ReadAt(p, off)
}

// TestLargeReads: a process reading big chunks is served in requests of
// 1 MiB (max_read), not the 128 KiB of FUSE's default, and the kernel
// keeps what it read: reading the file again reaches the volume for a
// fraction of it at most (the kernel may have dropped some pages).
func TestLargeReads(t *testing.T) {
	data := make([]byte, 16<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	rec := &recordingReader{r: bytes.NewReader(data), sizes: map[int]int{}}
	s := serve(t, rec, mount.Files(int64(len(data)), nil), time.Time{})
	path := filepath.Join(s.dir, "disk.raw")
	var passes [2]map[int]int
	for i := range passes {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(bufio.NewReaderSize(f, 4<<20))
		f.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("reading disk.raw: %d bytes, %v", len(got), err)
		}
		rec.mu.Lock()
		passes[i], rec.sizes = rec.sizes, map[int]int{}
		rec.mu.Unlock()
	}
	t.Logf("read sizes reaching the volume: first pass %v, second %v", passes[0], passes[1])
	total := func(sizes map[int]int) int {
		n := 0
		for size, count := range sizes {
			n += size * count
			if size > 1<<20 {
				t.Errorf("%d reads of %d bytes: more than max_read", count, size)
			}
		}
		return n
	}
	if n := total(passes[0]); passes[0][1<<20] < 8 || n != len(data) {
		t.Fatalf("first pass: read sizes %v, %d bytes in all; want most of the 16 MiB in 1 MiB reads, and each byte read once", passes[0], n)
	}
	if n := total(passes[1]); n > len(data)/4 {
		t.Fatalf("second pass: %d bytes reached the volume again (%v); want the page cache to serve most", n, passes[1])
	}
	s.cancel()
	s.wait(t)
}
