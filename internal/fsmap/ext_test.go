package fsmap

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// extImage builds an ext file system with mkfs.ext4 -d and debugfs: small
// and multi-block files, a hard link, a fast and a slow symlink, nested
// directories, and a file written into fragmented free space so that
// ext4 gives it an extent tree with an index block (ext2: indirect
// blocks).
func extImage(t *testing.T, sizeMiB int64, mkfsArgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "a.txt"), []byte("hello, ext\n"))
	writeFile(t, filepath.Join(root, "d", "big.bin"), pattern(300<<10, 1))
	writeFile(t, filepath.Join(root, "d", "sub", "deep.txt"), []byte("deep\n"))
	writeFile(t, filepath.Join(root, "empty"), nil)
	for i := range 60 {
		writeFile(t, filepath.Join(root, "frag", fmt.Sprintf("f%02d", i)), pattern(8<<10, byte(i)))
	}
	if err := os.Link(filepath.Join(root, "a.txt"), filepath.Join(root, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("long/", 20)+"target", filepath.Join(root, "longlink")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "fs.img")
	truncate(t, img, sizeMiB<<20)
	run(t, "mkfs.ext4", append(append([]string{"-q", "-F"}, mkfsArgs...), "-d", root, img)...)
	big := filepath.Join(dir, "fragmented")
	writeFile(t, big, pattern(400000, 9))
	var cmds strings.Builder
	for i := 0; i < 60; i += 2 {
		fmt.Fprintf(&cmds, "rm /frag/f%02d\n", i)
	}
	fmt.Fprintf(&cmds, "write %s /frag/big\n", big)
	writeFile(t, filepath.Join(dir, "cmds"), []byte(cmds.String()))
	run(t, "debugfs", "-w", "-f", filepath.Join(dir, "cmds"), img)
	return img
}

var (
	metaBlock = regexp.MustCompile(`\((IND|DIND|TIND|ETB\d+)\):(\d+)`)
	imapLine  = regexp.MustCompile(`located at block (\d+), offset 0x([0-9a-f]+)`)
)

func debugfs(t *testing.T, img, request string) string {
	t.Helper()
	return run(t, "debugfs", "-R", request, img)
}

func TestExtMatchesDebugfs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		typ      string
		sizeMiB  int64
		args     []string
		treeKind string // what the fragmented file's tree blocks are called
	}{
		{"ext4-4k", "ext4", 64, []string{"-t", "ext4", "-b", "4096"}, "ETB"},
		{"ext4-1k", "ext4", 32, []string{"-t", "ext4", "-b", "1024"}, "ETB"},
		{"ext3-1k", "ext3", 32, []string{"-t", "ext3", "-b", "1024"}, "IND"},
		{"ext2-2k", "ext2", 16, []string{"-t", "ext2", "-b", "2048"}, "IND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := extImage(t, tc.sizeMiB, tc.args...)
			m := buildFile(t, img)
			if m.Type != tc.typ || m.Size != tc.sizeMiB<<20 || len(m.Warnings) != 0 {
				t.Fatalf("type %s, size %d, warnings %v", m.Type, m.Size, m.Warnings)
			}
			entries := fls(t, img)
			names := map[uint64][]string{}
			for _, e := range entries {
				names[e.id] = append(names[e.id], e.path)
			}
			files := 0
			for _, o := range m.Owners() {
				if o.Kind == KindStructure || o.Name == "/" {
					continue
				}
				files++
				if len(names[o.ID]) == 0 {
					t.Errorf("%s (inode %d) is not among fls's names", o.Name, o.ID)
				}
			}
			if want := len(names); files != want {
				t.Errorf("%d files mapped, fls lists %d inodes", files, want)
			}
			sawTree := false
			for id, paths := range names {
				owner, o := ownerByID(t, m, id)
				if !contains(paths, o.Name) {
					t.Errorf("inode %d named %q, fls says %v", id, o.Name, paths)
				}
				p := paths[0]
				if strings.HasPrefix(p, "/frag/f") && p != "/frag/f01" {
					continue // 29 more of the same: one is enough for debugfs
				}
				stat := debugfs(t, img, "stat "+p)
				// The inode's record is the owner's metadata.
				loc := imapLine.FindStringSubmatch(debugfs(t, img, "imap "+p))
				if loc == nil {
					t.Fatalf("imap %s: no location", p)
				}
				blk, _ := strconv.ParseInt(loc[1], 10, 64)
				off, _ := strconv.ParseInt(loc[2], 16, 64)
				recOff := blk*m.Unit + off
				if !covers(m, owner, Metadata, recOff, 40) || !covers(m, owner, Metadata, recOff+100, 28) {
					t.Errorf("%s: inode record at %d is not its metadata: %+v", p, recOff, m.Lookup(recOff, 256))
				}
				// Extent-tree and indirect blocks are its metadata.
				want := numbers(debugfs(t, img, "blocks "+p)) // data and tree blocks
				for _, mb := range metaBlock.FindAllStringSubmatch(stat, -1) {
					n, _ := strconv.ParseInt(mb[2], 10, 64)
					if !covers(m, owner, Metadata, n*m.Unit, m.Unit) {
						t.Errorf("%s: %s block %d is not its metadata", p, mb[1], n)
					}
					delete(want, n)
					sawTree = sawTree || strings.HasPrefix(mb[1], tc.treeKind)
				}
				if o.Kind == KindSymlink && !strings.Contains(stat, "EXTENTS:") && !strings.Contains(stat, "BLOCKS:") {
					continue // a fast symlink: its target is in the inode
				}
				// Its data blocks, and nothing else, are its data (for
				// directories: its metadata).
				role := Data
				if o.Kind == KindDir {
					role = Metadata
				}
				got := units(m, owner, role)
				if role == Data && !sameSet(got, want) {
					t.Errorf("%s: %d data blocks, debugfs lists %d", p, len(got), len(want))
				}
				for b := range want {
					if !got[b] {
						t.Errorf("%s: block %d is not its %v", p, b, role)
						break
					}
				}
			}
			if !sawTree {
				t.Errorf("no %s block in the fixture: the tree walk went untested", tc.treeKind)
			}

			// Inline data: a fast symlink's target lives in its inode.
			_, link := ownerByID(t, m, inodeOf(t, img, "/link"))
			if link.Kind != KindSymlink || link.Name != "/link" {
				t.Errorf("fast symlink: %+v", link)
			}

			// Structures: the superblock, and the journal's blocks.
			if e := m.Lookup(1024, 1024); len(e) != 1 || m.Owner(e[0].Owner).Name != tc.typ+":superblock" {
				t.Errorf("superblock: %+v", e)
			}
			if tc.typ != "ext2" {
				j, ok := m.Find(tc.typ + ":journal")
				if !ok || !sameSet(wholeUnits(m, j, Metadata), numbers(debugfs(t, img, "blocks <8>"))) {
					t.Errorf("journal blocks differ from debugfs's")
				}
			}
		})
	}
}

func inodeOf(t *testing.T, img, path string) uint64 {
	t.Helper()
	m := regexp.MustCompile(`Inode: (\d+)`).FindStringSubmatch(debugfs(t, img, "stat "+path))
	if m == nil {
		t.Fatalf("no inode for %s", path)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestExtDeletedFiles checks that a deleted file leaves the map: its
// inode record returns to the inode table and its name is gone.
func TestExtDeletedFiles(t *testing.T) {
	img := extImage(t, 32, "-t", "ext4", "-b", "4096")
	before := buildFile(t, img)
	id := inodeOf(t, img, "/d/sub/deep.txt")
	if _, ok := before.Find("/d/sub/deep.txt"); !ok {
		t.Fatal("deep.txt not mapped")
	}
	if _, ok := before.Find("/frag/f00"); ok {
		t.Fatal("a file debugfs removed is still mapped")
	}
	run(t, "debugfs", "-w", "-R", "rm /d/sub/deep.txt", img)
	after := buildFile(t, img)
	if _, ok := after.Find("/d/sub/deep.txt"); ok {
		t.Fatal("deleted file still mapped")
	}
	for _, o := range after.Owners() {
		if o.ID == id && o.Kind != KindStructure {
			t.Fatalf("deleted inode %d still owned: %+v", id, o)
		}
	}
	it, _ := after.Find("ext4:inode table")
	i, _ := before.Find("/d/sub/deep.txt")
	rec := before.ExtentsOf(i)[0]
	if !covers(after, it, Metadata, rec.Off, 256) {
		t.Fatalf("the freed inode record at %d is not the inode table's: %+v", rec.Off, after.Lookup(rec.Off, 256))
	}
}

// TestExtKeep maps one data block of a file in a subdirectory: only that
// file is mapped, and still named by its full path.
func TestExtKeep(t *testing.T) {
	img := extImage(t, 32, "-t", "ext4", "-b", "4096")
	full := buildFile(t, img)
	i, ok := full.Find("/d/big.bin")
	if !ok {
		t.Fatal("big.bin not mapped")
	}
	var data Extent
	for _, e := range full.ExtentsOf(i) {
		if e.Role == Data {
			data = e
		}
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Build(f, full.Size, Options{Keep: []Range{{data.Off + 4096, 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Owners()) != 1 || m.Owner(0).Name != "/d/big.bin" || m.Owner(0).Record != full.Owner(i).Record {
		t.Fatalf("owners %+v", m.Owners())
	}
	if got := m.Lookup(0, m.Size); len(got) != 1 || got[0] != (Extent{data.Off + 4096, 100, 0, Data}) {
		t.Fatalf("extents %+v", got)
	}
}
