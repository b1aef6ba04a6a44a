package main

import (
	"bytes"
	"encoding/csv"
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

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/testenv"
	"github.com/ebsimager/ebsimager/internal/triage"
)

// windowsFiles are the files of the Windows-like test disk: the ones the
// windows profile collects (a hive named in lower case, as the profile
// matches without case), and others it must leave.
var windowsFiles = map[string]bool{
	"/Windows/System32/config/SYSTEM":                           true,
	"/Windows/System32/config/SYSTEM.LOG1":                      true,
	"/Windows/System32/config/SYSTEM.LOG2":                      true,
	"/Windows/System32/config/software":                         true,
	"/Windows/System32/config/SAM":                              true,
	"/Windows/System32/config/SECURITY":                         true,
	"/Windows/System32/config/DEFAULT":                          true,
	"/Windows/System32/config/RegBack/SAM":                      true,
	"/Windows/System32/config/BBI":                              false,
	"/Users/alice/NTUSER.DAT":                                   true,
	"/Users/alice/ntuser.dat.LOG1":                              true,
	"/Users/alice/AppData/Local/Microsoft/Windows/UsrClass.dat": true,
	"/Users/alice/AppData/Roaming/Microsoft/Windows/PowerShell/PSReadLine/ConsoleHost_history.txt":                          true,
	"/Users/alice/AppData/Roaming/Microsoft/Windows/Recent/report.docx.lnk":                                                 true,
	"/Users/alice/AppData/Roaming/Microsoft/Windows/Recent/AutomaticDestinations/1b4dd67f29cb1962.automaticDestinations-ms": true,
	"/Users/alice/AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Startup/evil.bat":                                   true,
	"/ProgramData/Microsoft/Windows/Start Menu/Programs/StartUp/all.bat":                                                    true,
	"/Users/alice/Documents/secret.txt":                                                                                     false,
	"/Windows/System32/winevt/Logs/Security.evtx":                                                                           true,
	"/Windows/System32/winevt/Logs/System.evtx":                                                                             true,
	"/Windows/Prefetch/CMD.EXE-4A81B364.pf":                                                                                 true,
	"/Windows/AppCompat/Programs/Amcache.hve":                                                                               true,
	"/Windows/System32/sru/SRUDB.dat":                                                                                       true,
	"/Windows/System32/Tasks/Updater":                                                                                       true,
	"/$Recycle.Bin/S-1-5-21-1-2-3-1001/$IAB12CD.txt":                                                                        true,
	"/$Recycle.Bin/S-1-5-21-1-2-3-1001/$RAB12CD.txt":                                                                        false,
	"/Windows/INF/setupapi.dev.log":                                                                                         true,
	"/Windows/notepad.exe":                                                                                                  false,
}

// buildWindowsDisk makes a GPT disk with one NTFS partition (mkntfs),
// filled through an ntfs-3g FUSE mount.
func buildWindowsDisk(t *testing.T) (disk, tree string) {
	t.Helper()
	testenv.RequireTool(t, "mkntfs", "ntfs-3g", "fusermount", "sfdisk")
	if _, err := os.Stat("/dev/fuse"); err != nil && testenv.CI() {
		t.Fatalf("FUSE: %v", err)
	} else if err != nil {
		t.Skipf("no FUSE: %v", err)
	}
	dir := t.TempDir()
	tree = filepath.Join(dir, "tree")
	rng := rand.New(rand.NewPCG(7, 7))
	for p := range windowsFiles {
		b := make([]byte, 100+rng.IntN(70000))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		full := filepath.Join(tree, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const partSectors = 64 << 20 / 512
	part := filepath.Join(dir, "part.img")
	f, _ := os.Create(part)
	f.Truncate(partSectors * 512)
	f.Close()
	run(t, "mkntfs", "-F", "-f", "-q", "-s", "512", "-c", "4096", "-p", strconv.Itoa(linuxPartStart), "-L", "WIN", part)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	run(t, "ntfs-3g", "-o", "rw", part, mnt)
	err := exec.Command("cp", "-a", tree+"/.", mnt+"/").Run()
	if uerr := exec.Command("fusermount", "-u", mnt).Run(); uerr != nil {
		t.Fatalf("fusermount -u: %v", uerr)
	}
	if err != nil {
		t.Fatalf("copying into the NTFS mount: %v", err)
	}
	disk = filepath.Join(dir, "win.raw")
	d, _ := os.Create(disk)
	d.Truncate(partSectors*512 + 2<<20)
	data, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	d.WriteAt(data, linuxPartStart*512)
	d.Close()
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: gpt\nstart=%d, size=%d, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=win\n", linuxPartStart, partSectors))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return disk, tree
}

// TestTriageWindows triages a Windows-like NTFS disk with the profile
// chosen from what it holds: the hives, logs and user artifacts put in,
// byte-exact, and the metafiles $MFT and $LogFile as icat reads them.
func TestTriageWindows(t *testing.T) {
	t.Parallel()
	testenv.RequireTool(t, "icat", "sha256sum")
	disk, tree := buildWindowsDisk(t)
	out := filepath.Join(t.TempDir(), "out")
	newCLI(t, "").ok("triage", disk, "--out", out)
	cmd := exec.Command("sha256sum", "-c", "--strict", triage.SumsName)
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, b)
	}
	f, err := os.Open(filepath.Join(out, triage.FilesCSV))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for p, collect := range windowsFiles {
		if collect {
			want = append(want, p)
		}
	}
	want = append(want, "/$MFT", "/$LogFile")
	sort.Strings(want)
	for _, r := range rows[1:] {
		got = append(got, r[1])
		written, err := os.ReadFile(filepath.Join(out, r[2]))
		if err != nil {
			t.Fatal(err)
		}
		if icat := run(t, "icat", "-o", strconv.Itoa(linuxPartStart), disk, r[3]); icat != string(written) {
			t.Fatalf("%s: differs from icat of record %s (%d and %d bytes)", r[1], r[3], len(written), len(icat))
		}
		if windowsFiles[r[1]] {
			data, _ := os.ReadFile(filepath.Join(tree, r[1]))
			if !bytes.Equal(data, written) {
				t.Fatalf("%s: differs from the file put in", r[1])
			}
		}
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("collected:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	js, _ := os.ReadFile(filepath.Join(out, report.JSONName))
	var rec report.Triage
	if err := json.Unmarshal(js, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Partitions) != 1 || rec.Partitions[0].FileSystem != "ntfs" || rec.Partitions[0].Profiles[0] != "windows" {
		t.Fatalf("partitions %+v", rec.Partitions)
	}
	notFound := map[string]bool{}
	for _, n := range rec.NotFound {
		notFound[n.Rule] = true
	}
	if !notFound["/$Extend/$UsnJrnl:$J"] { // mkntfs makes no USN journal
		t.Fatalf("not found: %+v", rec.NotFound)
	}

	// Read live from a snapshot of the disk, the same files come out.
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapWindows, disk, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	liveOut := filepath.Join(t.TempDir(), "live")
	newCLI(t, endpoint).ok("triage", snapWindows, "--out", liveOut)
	rawCSV, _ := os.ReadFile(filepath.Join(out, triage.FilesCSV))
	liveCSV, _ := os.ReadFile(filepath.Join(liveOut, triage.FilesCSV))
	if !bytes.Equal(rawCSV, liveCSV) {
		t.Fatalf("files.csv of the live snapshot differs from the raw image's:\n%s\n%s", liveCSV, rawCSV)
	}
	cmd = exec.Command("sha256sum", "-c", "--strict", triage.SumsName)
	cmd.Dir = liveOut
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, b)
	}
}

const snapWindows = "snap-0e0000000000000f2"
