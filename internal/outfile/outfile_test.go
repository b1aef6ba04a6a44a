package outfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// tree makes an "evidence directory" ev with a file in a subdirectory,
// and outputs of every kind beside it.
func tree(t *testing.T) (dir, ev string) {
	t.Helper()
	dir = t.TempDir()
	ev = filepath.Join(dir, "ev")
	if err := os.MkdirAll(filepath.Join(ev, "blocks"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{filepath.Join(ev, "manifest.jsonl"), filepath.Join(ev, "blocks", "b0"), filepath.Join(dir, "old.raw")} {
		if err := os.WriteFile(name, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, ev
}

func conflict(t *testing.T, err error, want string) {
	t.Helper()
	var c *ConflictError
	if !errors.As(err, &c) || !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want a ConflictError (fs.ErrExist) saying %q", err, want)
	}
}

func TestCheck(t *testing.T) {
	dir, ev := tree(t)
	var in Inputs
	if err := in.AddDir(ev); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	os.WriteFile(key, []byte("k"), 0o600)
	if err := in.AddFile(key); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Symlink(fifo, filepath.Join(dir, "to-fifo"))
	os.Symlink(ev, filepath.Join(dir, "to-ev"))
	os.Symlink(filepath.Join(ev, "blocks"), filepath.Join(dir, "to-blocks"))
	os.Symlink(filepath.Join(ev, "manifest.jsonl"), filepath.Join(dir, "to-manifest"))
	os.Symlink(filepath.Join(dir, "old.raw"), filepath.Join(dir, "to-old"))
	os.Symlink(filepath.Join(dir, "nothing"), filepath.Join(dir, "dangling"))
	if err := os.Link(filepath.Join(ev, "blocks", "b0"), filepath.Join(dir, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(key, filepath.Join(dir, "key-link")); err != nil {
		t.Fatal(err)
	}

	for _, force := range []bool{false, true} {
		for name, want := range map[string]string{
			filepath.Join(ev, "manifest.jsonl"):          "is inside " + ev,
			filepath.Join(ev, "new.raw"):                 "is inside " + ev,
			filepath.Join(ev, "blocks", "new.raw"):       "is inside " + ev,
			filepath.Join(dir, "to-ev", "new.raw"):       "is inside " + ev,
			filepath.Join(dir, "to-blocks", "x.raw.md5"): "is inside " + ev,
			ev:                                "is a directory",
			filepath.Join(dir, "to-ev"):       "is a symbolic link to a directory",
			fifo:                              "is a FIFO",
			filepath.Join(dir, "to-fifo"):     "is a symbolic link to a FIFO",
			filepath.Join(dir, "to-manifest"): "is the same file as " + filepath.Join(ev, "manifest.jsonl"),
			filepath.Join(dir, "hard"):        "is the same file as " + filepath.Join(ev, "blocks", "b0"),
			key:                               "is the same file as " + key,
			filepath.Join(dir, "key-link"):    "is the same file as " + key,
		} {
			conflict(t, in.Check(name, force), want)
		}
	}
	// A regular file, or a link to one, is replaced only with force.
	for _, name := range []string{filepath.Join(dir, "old.raw"), filepath.Join(dir, "to-old"), filepath.Join(dir, "dangling")} {
		err := in.Check(name, false)
		conflict(t, err, "already exists")
		if c := (*ConflictError)(nil); !errors.As(err, &c) || !c.Exists {
			t.Fatalf("%s: %v does not say that only existing is the problem", name, err)
		}
		if err := in.Check(name, true); err != nil {
			t.Fatalf("%s with force: %v", name, err)
		}
	}
	// A new file beside the evidence, or under a missing directory, is fine.
	for _, name := range []string{filepath.Join(dir, "new.raw"), filepath.Join(dir, "missing", "new.raw")} {
		if err := in.Check(name, false); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Nothing was touched.
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO changed: %v %v", fi, err)
	}
}

// TestCheckDevice refuses a character device node (as /dev/null is), even
// with force. Making one needs root.
func TestCheckDevice(t *testing.T) {
	dir := t.TempDir()
	null := filepath.Join(dir, "null")
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o600, 1<<8|3); err != nil { // 1,3: /dev/null's numbers
		t.Skipf("mknod needs root: %v", err)
	}
	var in Inputs
	for _, force := range []bool{false, true} {
		conflict(t, in.Check(null, force), "is a character device, not a regular file")
	}
	conflict(t, Replaceable(null), "character device")
}
