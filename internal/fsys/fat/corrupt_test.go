package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// noHang runs fn, failing the test if it takes more than 30 seconds: a
// damaged volume must give an error, never a loop.
func noHang(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("no answer after 30 s: a loop on a damaged volume")
		return nil
	}
}

// wantCorrupt checks that err wraps ErrCorrupt and names what it should.
func wantCorrupt(t *testing.T, err error, words ...string) {
	t.Helper()
	if !errors.Is(err, fsys.ErrCorrupt) {
		t.Fatalf("error %v, want one wrapping ErrCorrupt", err)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// patchFAT sets the FAT entry of cluster c to v in every FAT copy.
func patchFAT(t *testing.T, img string, fs *FS, c, v uint32) {
	t.Helper()
	w, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	boot := make([]byte, 512)
	if _, err := w.ReadAt(boot, 0); err != nil {
		t.Fatal(err)
	}
	nfats := int64(boot[16])
	first := int64(binary.LittleEndian.Uint16(boot[14:])) * fs.g.sectorSize
	if fs.g.kind == exfat {
		nfats = int64(boot[110])
		first = int64(binary.LittleEndian.Uint32(boot[80:])) * fs.g.sectorSize
	}
	le := binary.LittleEndian
	for i := int64(0); i < nfats; i++ {
		base := first + i*fs.g.fatBytes
		switch fs.g.kind {
		case fat12:
			b := make([]byte, 2)
			at := base + int64(c) + int64(c/2)
			if _, err := w.ReadAt(b, at); err != nil {
				t.Fatal(err)
			}
			x := le.Uint16(b)
			if c&1 == 1 {
				x = x&0x000F | uint16(v)<<4
			} else {
				x = x&0xF000 | uint16(v)&0x0FFF
			}
			le.PutUint16(b, x)
			_, err = w.WriteAt(b, at)
		case fat16:
			b := make([]byte, 2)
			le.PutUint16(b, uint16(v))
			_, err = w.WriteAt(b, base+2*int64(c))
		default:
			b := make([]byte, 4)
			le.PutUint32(b, v)
			_, err = w.WriteAt(b, base+4*int64(c))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// clustersOf lists the clusters of a file or directory, in order.
func clustersOf(t *testing.T, fs *FS, p string) (fsys.ID, []uint32) {
	t.Helper()
	id, err := fsys.Lookup(fs, p)
	if err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.node(id)
	if err != nil {
		t.Fatal(err)
	}
	var spans []span
	if n.contig {
		spans, err = fs.fat.contiguous(n.first, (n.size+fs.g.clusterSize-1)/fs.g.clusterSize, "test")
	} else if n.dir {
		spans, err = fs.fat.chain(n.first, 0, 1<<20, "test")
	} else {
		spans, err = fs.fat.chain(n.first, (n.size+fs.g.clusterSize-1)/fs.g.clusterSize, 0, "test")
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for _, s := range spans {
		for i := uint32(0); i < s.n; i++ {
			out = append(out, s.first+i)
		}
	}
	return id, out
}

func TestCorruptFAT(t *testing.T) {
	for _, c := range []struct {
		kind    string
		sizeMiB int
		args    []string
	}{
		{"FAT12", 4, []string{"-F", "12"}},
		{"FAT16", 32, []string{"-F", "16"}},
		{"FAT32", 64, []string{"-F", "32", "-S", "512", "-s", "1"}},
	} {
		t.Run(c.kind, func(t *testing.T) {
			orig, _ := fatImage(t, c.sizeMiB, sampleTree(100<<10, 600), c.args...)
			pristine, err := os.ReadFile(orig)
			if err != nil {
				t.Fatal(err)
			}
			fresh := func() (string, *FS) {
				if err := os.WriteFile(orig, pristine, 0o600); err != nil {
					t.Fatal(err)
				}
				fs, _ := openImage(t, orig)
				return orig, fs
			}
			testChains(t, fresh, "/Sub/big.bin", "/many")
		})
	}
}

// testChains damages the FAT chain of file p and of directory dir in
// each way a chain can be damaged.
func testChains(t *testing.T, fresh func() (string, *FS), p, dir string) {
	open := func(fs *FS, id fsys.ID) error {
		return noHang(t, func() error {
			f, err := fs.Open(id, "")
			if err == nil {
				_, err = f.ReadAt(make([]byte, f.Size()), 0)
			}
			return err
		})
	}
	t.Run("cycle", func(t *testing.T) {
		img, fs := fresh()
		id, cl := clustersOf(t, fs, p)
		patchFAT(t, img, fs, cl[len(cl)-2], cl[1])
		fs, _ = openImage(t, img)
		wantCorrupt(t, open(fs, id), "cycle", "file "+fmtID(id))
	})
	t.Run("self", func(t *testing.T) {
		img, fs := fresh()
		id, cl := clustersOf(t, fs, p)
		patchFAT(t, img, fs, cl[0], cl[0])
		fs, _ = openImage(t, img)
		wantCorrupt(t, open(fs, id), "itself")
	})
	t.Run("beyond the volume", func(t *testing.T) {
		img, fs := fresh()
		id, cl := clustersOf(t, fs, p)
		patchFAT(t, img, fs, cl[0], fs.g.maxCluster()+1)
		fs, _ = openImage(t, img)
		wantCorrupt(t, open(fs, id), "outside")
	})
	t.Run("free cluster", func(t *testing.T) {
		img, fs := fresh()
		id, cl := clustersOf(t, fs, p)
		patchFAT(t, img, fs, cl[0], 0)
		fs, _ = openImage(t, img)
		wantCorrupt(t, open(fs, id), "outside")
	})
	t.Run("short", func(t *testing.T) {
		img, fs := fresh()
		id, cl := clustersOf(t, fs, p)
		patchFAT(t, img, fs, cl[0], 0xFFFFFFFF)
		fs, _ = openImage(t, img)
		wantCorrupt(t, open(fs, id), "ends after 1 clusters")
	})
	t.Run("directory cycle", func(t *testing.T) {
		img, fs := fresh()
		id, cl := clustersOf(t, fs, dir)
		patchFAT(t, img, fs, cl[len(cl)-1], cl[0])
		fs, _ = openImage(t, img)
		err := noHang(t, func() error { _, err := fs.ReadDir(id); return err })
		wantCorrupt(t, err, "directory")
		err = noHang(t, func() error {
			return fsys.Walk(fs, fs.Root(), "/", func(string, fsys.DirEntry) error { return nil })
		})
		wantCorrupt(t, err, dir)
	})
	t.Run("directory in itself", func(t *testing.T) {
		// /Sub/Deep's entry is pointed at /Sub's first cluster: /Sub/Deep
		// then lists /Sub's entries, itself among them.
		img, fs := fresh()
		deep, err := fsys.Lookup(fs, "/Sub/Deep")
		if err != nil {
			t.Fatal(err)
		}
		_, sub := clustersOf(t, fs, "/Sub")
		off, _ := fs.offsetOf(deep)
		w, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		e := make([]byte, entrySize)
		w.ReadAt(e, off)
		if fs.g.kind == exfat {
			// The Stream Extension follows the File entry; its first
			// cluster is at byte 20, and the set's checksum must agree.
			set := make([]byte, 4*entrySize)
			w.ReadAt(set, off)
			binary.LittleEndian.PutUint32(set[entrySize+20:], sub[0])
			binary.LittleEndian.PutUint16(set[2:], setChecksum(set[:(1+int(set[1]))*entrySize]))
			w.WriteAt(set, off)
		} else {
			binary.LittleEndian.PutUint16(e[26:], uint16(sub[0]))
			binary.LittleEndian.PutUint16(e[20:], uint16(sub[0]>>16))
			w.WriteAt(e, off)
		}
		w.Close()
		fs, _ = openImage(t, img)
		err = noHang(t, func() error {
			return fsys.Walk(fs, fs.Root(), "/", func(string, fsys.DirEntry) error { return nil })
		})
		wantCorrupt(t, err, "Deep")
	})
}

// fmtID is the decimal address of id, as errors print it.
func fmtID(id fsys.ID) string { return fmt.Sprint(uint64(id)) }

func TestCorruptExFAT(t *testing.T) {
	orig, _ := exfatSample(t)
	pristine, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() (string, *FS) {
		if err := os.WriteFile(orig, pristine, 0o600); err != nil {
			t.Fatal(err)
		}
		fs, _ := openImage(t, orig)
		return orig, fs
	}
	// /frag.bin is the file with a FAT chain; /many has none, the root
	// always has one.
	testChains(t, fresh, "/frag.bin", "/")

	damage := func(t *testing.T, p string, at int, v byte) (*FS, fsys.ID) {
		img, fs := fresh()
		id, err := fsys.Lookup(fs, p)
		if err != nil {
			t.Fatal(err)
		}
		off, _ := fs.offsetOf(id)
		w, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt([]byte{v}, off+int64(at)); err != nil {
			t.Fatal(err)
		}
		w.Close()
		fs, _ = openImage(t, img)
		return fs, id
	}
	t.Run("set checksum", func(t *testing.T) {
		fs, id := damage(t, "/hello.txt", 2*entrySize+2, 'j') // a name character
		_, err := fs.ReadDir(fs.Root())
		wantCorrupt(t, err, "file entry set "+fmtID(id), "checksum")
		// The set read on its own fails the same check.
		_, err = fs.Stat(id)
		wantCorrupt(t, err, "checksum")
	})
	t.Run("secondary count", func(t *testing.T) {
		fs, id := damage(t, "/hello.txt", 1, 1)
		_, err := fs.ReadDir(fs.Root())
		wantCorrupt(t, err, "file entry set "+fmtID(id), "SecondaryCount 1")
	})
	t.Run("secondary count past the directory", func(t *testing.T) {
		fs, _ := damage(t, "/hello.txt", 1, 18)
		err := noHang(t, func() error { _, err := fs.ReadDir(fs.Root()); return err })
		wantCorrupt(t, err)
	})
}
