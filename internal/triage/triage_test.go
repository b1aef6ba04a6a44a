package triage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// memVolume is a volume in memory that counts its reads.
type memVolume struct {
	data []byte
}

func (m *memVolume) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (m *memVolume) Size() int64 { return int64(len(m.data)) }
func (m *memVolume) Ranges() ([]volume.Range, error) {
	return []volume.Range{{Off: 0, Len: int64(len(m.data))}}, nil
}
func (m *memVolume) Close() error { return nil }

// prefetching is a memVolume with a Prefetch that records what it was
// asked.
type prefetching struct {
	memVolume
	asked [][]volume.Range
}

func (p *prefetching) Prefetch(_ context.Context, rs []volume.Range) error {
	p.asked = append(p.asked, rs)
	return nil
}
func (p *prefetching) CacheBlocks() int { return 4 }

const partOff = 1 << 20 // the fake partition starts 1 MiB into the volume

// fakeDisk is a volume with one fake Linux file system at partOff; want
// maps each path to the bytes it holds.
type fakeDisk struct {
	vol  []byte
	want map[string][]byte
	fs   func(r io.ReaderAt) *fakeFS
}

func newFakeDisk() *fakeDisk {
	d := &fakeDisk{vol: make([]byte, 8<<20), want: map[string][]byte{}}
	type file struct {
		path string
		typ  fsys.Type
		data string
		tgt  string
	}
	files := []file{
		{"/etc/passwd", fsys.TypeRegular, "root:x:0:0::/root:/bin/sh\nsvc:x:998:998::/var/lib/svc:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n", ""},
		{"/var/lib/svc/.bash_history", fsys.TypeRegular, "curl x | sh\n", ""},
		{"/etc/shadow", fsys.TypeRegular, "root:*:19000::::::\n", ""},
		{"/etc/sudoers.d/90-u", fsys.TypeRegular, "u ALL=(ALL) NOPASSWD:ALL\n", ""},
		{"/etc/localtime", fsys.TypeSymlink, "", "/usr/share/zoneinfo/UTC"},
		{"/etc/hosts", fsys.TypeRegular, "127.0.0.1 localhost\n", ""},
		{"/var/log/auth.log", fsys.TypeRegular, strings.Repeat("sshd: accepted\n", 70000), ""}, // 1 MiB+: spans blocks
		{"/var/log/nested/deep/x.log", fsys.TypeRegular, "deep\n", ""},
		{"/var/log/weird\nname:%", fsys.TypeRegular, "weird\n", ""},
		{"/home/u/.bash_history", fsys.TypeRegular, "ls\nid\n", ""},
		{"/home/u/.ssh/authorized_keys", fsys.TypeRegular, "ssh-ed25519 AAAA u@h\n", ""},
		{"/home/u/.ssh/id_ed25519", fsys.TypeRegular, "-----BEGIN OPENSSH PRIVATE KEY-----\nxxx\n-----END OPENSSH PRIVATE KEY-----\n", ""},
		{"/home/u/.ssh/config", fsys.TypeRegular, "-----BEGIN RSA PRIVATE KEY-----\nhidden in a config\n", ""},
		{"/tmp/dropper", fsys.TypeRegular, "MZ", ""},
		{"/tmp/.x/y", fsys.TypeRegular, "y", ""},
		{"/var/lib/dpkg/status", fsys.TypeRegular, "Package: bash\n", ""},
	}
	off := int64(4096)
	type placed struct {
		file
		off int64
	}
	var all []placed
	for _, f := range files {
		all = append(all, placed{f, off})
		copy(d.vol[partOff+off:], f.data)
		if f.typ == fsys.TypeRegular {
			d.want[f.path] = []byte(f.data)
		}
		off += (int64(len(f.data))/4096 + 1) * 4096
	}
	d.fs = func(r io.ReaderAt) *fakeFS {
		fs := newFake("ext4", r)
		for _, f := range all {
			fs.add(f.path, f.typ, f.off, int64(len(f.data)), f.tgt)
		}
		return fs
	}
	return d
}

func (d *fakeDisk) options(out string) Options {
	return Options{
		Out: out,
		Partitions: func(r io.ReaderAt, size int64) ([]Part, error) {
			fs := d.fs(io.NewSectionReader(r, partOff, size-partOff))
			return []Part{{Name: "p1", Offset: partOff, Size: size - partOff, FS: fs}, {Name: "p2", Offset: 0, Size: partOff, Err: fsys.ErrEncrypted}}, nil
		},
		Bodyfile: func(w io.Writer, p Part) error {
			_, err := fmt.Fprintf(w, "0|%s|2|d/drwxr-xr-x|0|0|0|0|0|0|0\n", "/")
			return err
		},
		Tool: report.Tool{Version: "test", CommandLine: []string{"ebsimager", "triage"}},
	}
}

func TestRunFake(t *testing.T) {
	d := newFakeDisk()
	out := filepath.Join(t.TempDir(), "out")
	v := &prefetching{memVolume: memVolume{data: d.vol}}
	rec, err := Run(context.Background(), v, d.options(out))
	if err != nil {
		t.Fatal(err)
	}
	// Collected: the default profile (linux, chosen from /etc) but not
	// /etc/hosts, the private key, the config that holds a key, or /tmp.
	want := []string{"/etc/passwd", "/etc/shadow", "/etc/sudoers.d/90-u", "/var/log/auth.log", "/var/log/nested/deep/x.log",
		"/var/log/weird\nname:%", "/home/u/.bash_history", "/home/u/.ssh/authorized_keys", "/var/lib/dpkg/status", "/var/lib/svc/.bash_history"}
	var got []string
	for _, c := range rec.Collected {
		got = append(got, c.Path)
		data, err := os.ReadFile(filepath.Join(out, c.File))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, d.want[c.Path]) {
			t.Fatalf("%s: collected bytes differ", c.Path)
		}
		fi, _ := os.Stat(filepath.Join(out, c.File))
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v", c.File, fi.Mode())
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("collected\n%q\nwant\n%q", got, want)
	}
	if _, err := os.Stat(filepath.Join(out, "files/p1/var/log/weird%0Aname%3A%25")); err != nil {
		t.Fatalf("hostile name: %v", err)
	}
	withheld := map[string]string{}
	for _, w := range rec.Withheld {
		withheld[w.Path] = w.Reason
	}
	if len(withheld) != 2 || !strings.Contains(withheld["/home/u/.ssh/id_ed25519"], "--private-keys") ||
		!strings.Contains(withheld["/home/u/.ssh/config"], "content is a private key") {
		t.Fatalf("withheld %v", withheld)
	}
	if _, err := os.Stat(filepath.Join(out, "files/p1/home/u/.ssh/config")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("withheld file written: %v", err)
	}
	// Listing: /tmp's entries, and the symlink /etc/localtime? No:
	// /etc/localtime is matched by no rule of the linux profile.
	if rec.Listed != 3 { // /tmp/dropper, /tmp/.x, /tmp/.x/y
		t.Fatalf("listed %d", rec.Listed)
	}
	notFound := map[string]bool{}
	for _, n := range rec.NotFound {
		notFound[n.Rule] = true
	}
	if !notFound["/etc/crontab"] || !notFound["/var/spool/cron/**"] || notFound["/etc/passwd"] || notFound["~/.ssh/id_ed25519 private"] {
		t.Fatalf("not found %v", notFound)
	}
	if len(rec.Partitions) != 2 || rec.Partitions[1].Error != fsys.ErrEncrypted.Error() || rec.Partitions[0].Profiles[0] != "linux" {
		t.Fatalf("partitions %+v", rec.Partitions)
	}
	// sha256sum -c passes, and names every collected file and list.
	cmd := exec.Command("sha256sum", "-c", "--strict", SumsName)
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, b)
	}
	sums, _ := os.ReadFile(filepath.Join(out, SumsName))
	if n := strings.Count(string(sums), "\n"); n != len(want)+3 {
		t.Fatalf("SHA256SUMS has %d lines, want %d", n, len(want)+3)
	}
	// files.csv: a row per file, with the hashes of its bytes.
	f, _ := os.Open(filepath.Join(out, FilesCSV))
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want)+1 || strings.Join(rows[0], ",") != strings.Join(FilesHeader, ",") {
		t.Fatalf("files.csv: %d rows, header %v", len(rows), rows[0])
	}
	for _, r := range rows[1:] {
		data := d.want[r[1]]
		s := sha256.Sum256(data)
		if r[0] != "p1" || r[8] != hex.EncodeToString(s[:]) || r[5] != fmt.Sprint(len(data)) ||
			r[9] != "2024-05-06T07:08:09.123456789Z" || r[12] != "" || r[14] == "" {
			t.Fatalf("row %q", r)
		}
	}
	// auth.log lies in blocks 2-4 of the volume (1 MiB + 4 KiB + ... on).
	for _, r := range rows[1:] {
		if r[1] == "/var/log/auth.log" && r[13] != "2-4" {
			t.Fatalf("auth.log blocks %q", r[13])
		}
	}
	// Prefetch was asked in windows of CacheBlocks/2.
	if len(v.asked) == 0 {
		t.Fatal("no prefetch")
	}
	for _, rs := range v.asked {
		if len(rs) > 2 {
			t.Fatalf("a window of %d blocks", len(rs))
		}
	}
	js, _ := os.ReadFile(filepath.Join(out, report.JSONName))
	var back report.Triage
	if err := json.Unmarshal(js, &back); err != nil || back.Format != report.TriageFormat || back.Figures.Files != len(want) ||
		back.Blocks.ChecksumSource != report.ChecksumNone || len(back.Blocks.Blocks) == 0 || back.Outputs[SumsName] == "" {
		t.Fatalf("report.json: %v %+v", err, back.Figures)
	}
	for _, name := range []string{report.TextName, report.HTMLName, "bodyfile-p1.txt", ListingCSV} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Fatal(err)
		}
	}
	// A second run into the same directory is refused.
	if _, err := Run(context.Background(), v, d.options(out)); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("second run: %v", err)
	}
}

func TestRunPrivateKeysAndProfiles(t *testing.T) {
	d := newFakeDisk()
	out := filepath.Join(t.TempDir(), "out")
	o := d.options(out)
	o.PrivateKeys = true
	p, err := Parse("mine", []byte("/etc/hosts\n/home/**\n/var/log/** max=100\n/etc/localtime\n"))
	if err != nil {
		t.Fatal(err)
	}
	o.Profiles = []*Profile{p}
	rec, err := Run(context.Background(), &memVolume{data: d.vol}, o)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rec.Collected {
		got = append(got, c.Path)
	}
	sort.Strings(got)
	want := []string{"/etc/hosts", "/home/u/.bash_history", "/home/u/.ssh/authorized_keys", "/home/u/.ssh/config", "/home/u/.ssh/id_ed25519",
		"/var/log/nested/deep/x.log", "/var/log/weird\nname:%"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("collected %q", got)
	}
	if len(rec.Withheld) != 1 || rec.Withheld[0].Path != "/var/log/auth.log" {
		t.Fatalf("withheld %+v", rec.Withheld)
	}
	if rec.Listed != 1 { // the symlink
		t.Fatalf("listed %d", rec.Listed)
	}
	data, _ := os.ReadFile(filepath.Join(out, ListingCSV))
	if !strings.Contains(string(data), "p1,/etc/localtime,symlink,") || !strings.Contains(string(data), "/usr/share/zoneinfo/UTC,mine:4") {
		t.Fatalf("listing.csv:\n%s", data)
	}
	if rec.Figures.BlocksRead == 0 || rec.Figures.AllocatedBlocks != int64(len(d.vol))/block.Size {
		t.Fatalf("figures %+v", rec.Figures)
	}
}

// slowRanges is a volume whose Ranges takes until it is released.
type slowRanges struct {
	memVolume
	release chan struct{}
}

func (s *slowRanges) Ranges() ([]volume.Range, error) {
	<-s.release
	return s.memVolume.Ranges()
}

// A count of the allocated blocks that takes longer than AllocatedWait
// is left out, and the record says so; the collection is whole.
func TestAllocatedWait(t *testing.T) {
	d := newFakeDisk()
	v := &slowRanges{memVolume: memVolume{data: d.vol}, release: make(chan struct{})}
	defer close(v.release)
	o := d.options(filepath.Join(t.TempDir(), "out"))
	o.AllocatedWait = 10 * time.Millisecond
	rec, err := Run(context.Background(), v, o)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Figures.AllocatedBlocks != 0 || rec.Figures.Files != 10 || !strings.Contains(strings.Join(rec.Notes, " "), "not counted") {
		t.Fatalf("figures %+v, notes %q", rec.Figures, rec.Notes)
	}
}

// ~/ rules apply in /root, /home/* and the homes /etc/passwd names, whose
// names match only themselves.
func TestHomeRules(t *testing.T) {
	vol := make([]byte, 1<<20)
	passwd := "root:x:0:0::/root:/bin/sh\nodd:x:1:1::/srv/a*b:/bin/sh\nshort:x\nrel:x:2:2::srv/rel:/bin/sh\nu:x:3:3::/home/u:/bin/sh\n"
	copy(vol, passwd)
	fs := newFake("ext4", bytes.NewReader(vol))
	fs.add("/etc/passwd", fsys.TypeRegular, 0, int64(len(passwd)), "")
	for _, p := range []string{"/srv/a*b/.bash_history", "/srv/aXb/.bash_history", "/root/.bash_history", "/home/u/.bash_history", "/srv/rel/.bash_history"} {
		fs.add(p, fsys.TypeRegular, 4096, 10, "")
	}
	homes := HomeDirs(fs)
	if fmt.Sprint(homes) != `[[root] [home *] [srv a\*b]]` {
		t.Fatalf("homes %q", homes)
	}
	p, err := Parse("t", []byte("~/.bash_history\n~/.nothing\n"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Resolve(fs, p.Rules)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range res.Matches {
		got = append(got, m.Path)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "/home/u/.bash_history /root/.bash_history /srv/a*b/.bash_history" || res.Found[0] != 3 || res.Found[1] != 0 {
		t.Fatalf("matched %q, found %v", got, res.Found)
	}
}

// A file mostly holes is collected with its holes kept, up to MaxSparse
// beyond its partition's size; a longer one is withheld; one whose runs
// claim more than the partition holds is an error; a name of 250 bytes
// is written.
func TestSparseAndLongNames(t *testing.T) {
	vol := make([]byte, 2<<20)
	copy(vol[4096:], "head of a sparse file")
	long := strings.Repeat("n", 246) + ".log"
	fs := newFake("ext4", bytes.NewReader(vol))
	fs.nodes[fs.add("/var/log/lastlog", fsys.TypeRegular, 4096, 20<<20, "")].data = 21
	fs.nodes[fs.add("/var/log/huge", fsys.TypeRegular, 4096, MaxSparse+1, "")].data = 21
	fs.add("/var/log/liar", fsys.TypeRegular, 4096, 4<<20, "")
	fs.add("/var/log/"+long, fsys.TypeRegular, 4096, 4, "")
	p, _ := Parse("t", []byte("/var/log/**\n"))
	out := filepath.Join(t.TempDir(), "out")
	rec, err := Run(context.Background(), &memVolume{data: vol}, Options{Out: out, Profiles: []*Profile{p},
		Partitions: func(r io.ReaderAt, size int64) ([]Part, error) {
			return []Part{{Name: "p1", Size: 1 << 20, FS: fs}}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Figures.Files != 2 || len(rec.Withheld) != 1 || rec.Withheld[0].Path != "/var/log/huge" ||
		len(rec.Errors) != 1 || rec.Errors[0].Path != "/var/log/liar" || !strings.Contains(rec.Errors[0].Error, "more than its partition") {
		t.Fatalf("files %d, withheld %+v, errors %+v", rec.Figures.Files, rec.Withheld, rec.Errors)
	}
	want := make([]byte, 20<<20)
	copy(want, "head of a sparse file")
	got, err := os.ReadFile(filepath.Join(out, "files/p1/var/log/lastlog"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("sparse file: %d bytes, %v", len(got), err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(out, "files/p1/var/log/lastlog"), &st); err != nil || st.Blocks*512 > 1<<20 {
		t.Fatalf("sparse file takes %d bytes on disk (%v)", st.Blocks*512, err)
	}
	sum := sha256.Sum256(want)
	if rec.Collected[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("sparse file hash %s", rec.Collected[0].SHA256)
	}
	if _, err := os.Stat(filepath.Join(out, "files/p1/var/log", long)); err != nil {
		t.Fatal(err)
	}
}
