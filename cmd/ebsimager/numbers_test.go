package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
)

// detached runs ebsimager in a new session, so that it has no
// controlling terminal (no /dev/tty) and stdin is not a terminal: the way
// a script or a cron job runs it.
func (c *cli) detached(args ...string) result {
	c.t.Helper()
	return c.runAttr(&syscall.SysProcAttr{Setsid: true}, args...)
}

func (c *cli) detachedFails(code int, want string, args ...string) result {
	c.t.Helper()
	return c.expect(c.detached(args...), code, want, args)
}

// Case 4: evidence imported from the original tool's folder says so in
// evidence.json, the manifest, the record and verify's wording.
func TestImportProvenance(t *testing.T) {
	v := loadFernetVectors(t)
	c := newCLI(t, "")
	src, err := filepath.Abs(filepath.Join(vectorDir, v.Folders["plain"]))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "ev")
	c.ok("import-4n6ir", src, "--out", out, "--quiet")
	n := 0
	for _, b := range v.Blocks {
		if b.Plain {
			n++
		}
	}

	if m := metaOf(t, out); m.Provenance != store.ProvenanceImported || m.Source != src {
		t.Fatalf("evidence.json: provenance %q, source %q; want %q, %q", m.Provenance, m.Source, store.ProvenanceImported, src)
	}
	header := strings.SplitN(readFile(t, filepath.Join(out, store.ManifestName)), "\n", 2)[0]
	if want := fmt.Sprintf(`"provenance":%q,"source":%q`, store.ProvenanceImported, src); !strings.Contains(header, want) {
		t.Fatalf("manifest header %s lacks %s", header, want)
	}

	// The import is recorded like an acquisition, and says where its
	// hashes come from.
	rec, err := report.Load(out)
	if err != nil {
		t.Fatalf("import left no record: %v", err)
	}
	a := rec.Acquisition
	if a == nil || a.Import == nil || a.Import.Source != src || a.Import.Form != "plain" || a.Import.Provenance != store.ProvenanceImported ||
		a.Blocks != int64(n) || a.FetchedBlocks != 0 || a.Requests.ListCalls != 0 || a.ManifestSHA256 != sha256File(t, filepath.Join(out, store.ManifestName)) {
		t.Fatalf("record of the import: %+v", a)
	}
	if a.Import != nil && a.Import.ImportedBlocks != int64(n) {
		t.Fatalf("record of the import: %d blocks imported, want %d", a.Import.ImportedBlocks, n)
	}
	notes := strings.Join(rec.Notes, "\n")
	if !strings.Contains(notes, "hashes come from the original tool's file names") || !strings.Contains(notes, "no AWS checksum") ||
		strings.Contains(notes, "DescribeSnapshots") || strings.Contains(notes, "GetCallerIdentity") {
		t.Fatalf("notes of the import:\n%s", notes)
	}
	txt := readFile(t, filepath.Join(out, report.TextName))
	if !strings.Contains(txt, "imported from a folder of Snapshot 4n6ir Imager") || !strings.Contains(txt, src) {
		t.Fatalf("report.txt of the import:\n%s", txt)
	}
	if html := readFile(t, filepath.Join(out, report.HTMLName)); !strings.Contains(html, "imported from a folder of Snapshot 4n6ir Imager") {
		t.Fatal("report.html does not say the evidence was imported")
	}

	r := c.ok("verify", out)
	want := fmt.Sprintf("%d block contents matched the SHA-256 in the original tool's file names (no AWS checksum: imported)", n)
	if !strings.Contains(r.stdout, want) || strings.Contains(r.stdout, "AWS SHA-256") {
		t.Fatalf("verify of imported evidence:\n%s\nwant %q", r.stdout, want)
	}
	if rec, err := report.Load(out); err != nil || len(rec.Steps) != 1 || rec.Steps[0].Kind != report.StepVerify {
		t.Fatalf("verify did not append to the import's record: %v", err)
	}

	// A manifest header that disagrees with evidence.json about where the
	// evidence came from is damage.
	data := readFile(t, filepath.Join(out, store.MetaName))
	forged := strings.Replace(data, `"provenance": "`+store.ProvenanceImported+`",`, "", 1)
	if forged == data {
		t.Fatalf("evidence.json has no provenance line:\n%s", data)
	}
	os.WriteFile(filepath.Join(out, store.MetaName), []byte(forged), 0o600)
	c.fails(exitMismatch, "verification FAILED", "verify", out)
}

// Case 4: a name the importer would skip although it looks like a block
// file is an error naming it, not an "ignored" line.
func TestImportBlockLikeNames(t *testing.T) {
	v := loadFernetVectors(t)
	c := newCLI(t, "")
	plain := filepath.Join(vectorDir, v.Folders["plain"])
	entries, err := os.ReadDir(plain)
	if err != nil {
		t.Fatal(err)
	}
	good := entries[0].Name()
	fields := strings.Split(good, "_")
	upper := strings.Join([]string{fields[0], fields[1], strings.ToUpper(fields[2]), fields[3], fields[4]}, "_")
	eleven := "0" + good
	for _, tc := range []struct {
		name, entry string
		dir         bool
	}{
		{"upper-case hex", upper, false},
		{"11 digits", eleven, false},
		{"directory", strings.Replace(good, fields[0], "0000000009", 1), true},
		{"other snapshot", strings.Replace(good, fields[1], "snap-0bad", 1), false},
		{"gz in a plain folder", good + ".gz", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), v.Folders["plain"])
			copyDir(t, plain, src)
			p := filepath.Join(src, tc.entry)
			if tc.dir {
				err = os.Mkdir(p, 0o700)
			} else {
				err = os.WriteFile(p, []byte("x"), 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "ev")
			c.fails(exitInvalid, tc.entry, "import-4n6ir", src, "--out", out)
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("a refused import left %s: %v", out, err)
			}
		})
	}
	// Names that are not block-like stay a note.
	src := filepath.Join(t.TempDir(), v.Folders["plain"])
	copyDir(t, plain, src)
	os.WriteFile(filepath.Join(src, ".DS_Store"), []byte("x"), 0o600)
	r := c.ok("import-4n6ir", src, "--out", filepath.Join(t.TempDir(), "ev"))
	if !strings.Contains(r.stdout, "ignored    1 other entry in the folder: .DS_Store") &&
		!strings.Contains(r.stdout, "ignored    1 other entries in the folder: .DS_Store") {
		t.Fatalf("import with a stray file:\n%s", r.stdout)
	}
}

// Case 11: sizes from outside are bounded before anything is allocated.
func TestImportHugeVolume(t *testing.T) {
	v := loadFernetVectors(t)
	c := newCLI(t, "")
	plain := filepath.Join(vectorDir, v.Folders["plain"])
	entries, err := os.ReadDir(plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, gib := range []string{"99999999999", "65537"} {
		src := filepath.Join(t.TempDir(), v.Folders["plain"])
		if err := os.Mkdir(src, 0o700); err != nil {
			t.Fatal(err)
		}
		name := strings.Replace(entries[0].Name(), "_1_524288", "_"+gib+"_524288", 1)
		os.WriteFile(filepath.Join(src, name), []byte(readFile(t, filepath.Join(plain, entries[0].Name()))), 0o600)
		out := filepath.Join(t.TempDir(), "ev")
		r := c.fails(exitInvalid, name, "import-4n6ir", src, "--out", out)
		if !strings.Contains(r.stderr, "EBS volumes are at most 64 TiB") {
			t.Fatalf("a %s GiB volume:\n%s", gib, r.stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("a refused import left %s: %v", out, err)
		}
	}
}

// Case 11: wrong sizes in evidence.json give one clear error, with one
// exit code, from every command that reads evidence.
func TestEvidenceJSONBadSizes(t *testing.T) {
	v := loadFernetVectors(t)
	c := newCLI(t, "")
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("import-4n6ir", filepath.Join(vectorDir, v.Folders["plain"]), "--out", ev, "--quiet")
	good := readFile(t, filepath.Join(ev, store.MetaName))
	for _, tc := range []struct{ from, to, want string }{
		{`"volume_size_gib": 1,`, `"volume_size_gib": -3306282043331051520,`, "volume size -3306282043331051520 GiB"},
		{`"volume_size_gib": 1,`, `"volume_size_gib": 99999999999,`, "volume size 99999999999 GiB"},
		{`"volume_size_gib": 1,`, `"volume_size_gib": 0,`, "volume size 0 GiB"},
		{`"block_size": 524288,`, `"block_size": -1,`, "block size -1"},
		{`"block_size": 524288,`, `"block_size": 4096,`, "block size 4096"},
	} {
		bad := strings.Replace(good, tc.from, tc.to, 1)
		if bad == good {
			t.Fatalf("evidence.json has no %s:\n%s", tc.from, good)
		}
		os.WriteFile(filepath.Join(ev, store.MetaName), []byte(bad), 0o600)
		img := filepath.Join(t.TempDir(), "img.raw")
		for _, args := range [][]string{
			{"verify", ev},
			{"export", ev, "--out", img},
			{"inspect", ev},
		} {
			r := c.fails(exitMismatch, "evidence.json: "+tc.want, args...)
			if strings.Contains(r.stderr, "negative") {
				t.Fatalf("%v: %s", args, r.stderr)
			}
		}
		if _, err := os.Stat(img); !os.IsNotExist(err) {
			t.Fatalf("export of bad evidence left %s", img)
		}
	}
}

// Case 12: a rate the limiter cannot honour is refused, not taken as no
// cap.
func TestMaxRateRefused(t *testing.T) {
	c := newCLI(t, "")
	out := filepath.Join(t.TempDir(), "ev")
	for _, rate := range []string{"NaN", "Inf", "+Inf", "-Inf", "1e-11", "1e-300", "-1"} {
		c.fails(exitUsage, "--max-rate", "acquire", snapA, "--out", out, "--max-rate", rate)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a refused acquire left %s", out)
	}
}

// Case 13: an index beyond the volume is refused before any request
// carries it.
func TestBlockIndexBeyondVolume(t *testing.T) {
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	for _, idx := range []string{"9223372036854775807", "4294967296", "2147483648", "2048"} {
		srv.ResetCounters()
		out := filepath.Join(t.TempDir(), "b.bin")
		c.fails(exitInvalid, "block "+idx+" is beyond the volume of 2048 blocks", "block", snapA, idx, "--out", out)
		ctr := srv.Counters()
		if n := ctr.Count(emulator.OpListSnapshotBlocks, "ValidationException"); n != 0 {
			t.Fatalf("block %s: %d List calls were refused as invalid: %v", idx, n, ctr)
		}
		if n := ctr.Total(emulator.OpGetSnapshotBlock); n != 0 {
			t.Fatalf("block %s: %d Get calls", idx, n)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("block %s wrote %s", idx, out)
		}
	}
}

// Case 14: budget reports the List calls the listing made.
func TestBudgetSparseListCalls(t *testing.T) {
	t.Parallel()
	const snap = "snap-0a00000000000b0d9"
	srv, endpoint := startEmulator(t, emulator.Options{}, snap+"=64TiB,0.00001,3")
	c := newCLI(t, endpoint)
	r := c.ok("budget", snap, "--json", "--quiet")
	var e struct {
		Blocks       int64   `json:"blocks"`
		ListRequests int64   `json:"list_requests"`
		ListCostUSD  float64 `json:"list_cost_usd"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil {
		t.Fatal(err)
	}
	made := srv.Counters().Total(emulator.OpListSnapshotBlocks)
	if made < 2 || e.ListRequests != made {
		t.Fatalf("budget says %d List calls; the emulator served %d", e.ListRequests, made)
	}
	if want := float64(made) * 0.0006 / 1000; abs(e.ListCostUSD-want) > 1e-15 {
		t.Fatalf("list cost %v, want %v for %d calls", e.ListCostUSD, want, made)
	}
	r = c.ok("budget", snap, "--quiet")
	if !strings.Contains(r.stdout, fmt.Sprintf("requests        %d List + %d Get", made, e.Blocks)) {
		t.Fatalf("budget:\n%s\nwant %d List calls", r.stdout, made)
	}
}

// A passphrase that is missing, with no terminal to ask on, or empty, is
// exit 10 like a wrong one.
func TestMissingPassphrase(t *testing.T) {
	t.Parallel()
	v := loadFernetVectors(t)
	c := newCLI(t, "")
	dir := t.TempDir()
	enc := filepath.Join(vectorDir, v.Folders["encrypted"])
	c.env = []string{"EBSIMAGER_PASSPHRASE=", "EBSIMAGER_SALT=" + v.Salt}
	c.detachedFails(exitWrongKey, "hint: give --passphrase-file FILE", "import-4n6ir", enc, "--out", filepath.Join(dir, "a"))
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	c.detachedFails(exitWrongKey, "empty", "import-4n6ir", enc, "--out", filepath.Join(dir, "b"), "--passphrase-file", empty)
	c.env = []string{"EBSIMAGER_PASSPHRASE=" + v.Password, "EBSIMAGER_SALT="}
	c.detachedFails(exitWrongKey, "hint: give --salt-file FILE", "import-4n6ir", enc, "--out", filepath.Join(dir, "c"))

	// Passphrase-encrypted evidence: export needs the passphrase.
	c.env = []string{"EBSIMAGER_PASSPHRASE=" + v.Password, "EBSIMAGER_SALT=" + v.Salt}
	ev := filepath.Join(dir, "ev")
	c.detached("import-4n6ir", filepath.Join(vectorDir, v.Folders["plain"]), "--out", ev, "--encrypt", "--quiet")
	c.env = []string{"EBSIMAGER_PASSPHRASE="}
	c.detachedFails(exitWrongKey, "hint: give --passphrase-file FILE", "export", ev, "--out", filepath.Join(dir, "img.raw"))
	c.detachedFails(exitWrongKey, "empty", "export", ev, "--out", filepath.Join(dir, "img.raw"), "--passphrase-file", empty)
}

// One altered Fernet token among good ones is tampering (exit 4, the block
// named), wherever it is; a password that opens no token is exit 10.
func TestFernetTamper(t *testing.T) {
	v := loadFernetVectors(t)
	c := newCLI(t, "")
	enc := filepath.Join(vectorDir, v.Folders["encrypted"])
	c.env = []string{"EBSIMAGER_PASSPHRASE=" + v.Password, "EBSIMAGER_SALT=" + v.Salt}
	for _, victim := range []int{0, len(v.Blocks) - 1} {
		b := v.Blocks[victim]
		src := filepath.Join(t.TempDir(), v.Folders["encrypted"])
		copyDir(t, enc, src)
		token := filepath.Join(src, b.Name+".gz.encrypted")
		data := []byte(readFile(t, token))
		if data[100] == 'A' {
			data[100] = 'B'
		} else {
			data[100] = 'A'
		}
		os.WriteFile(token, data, 0o600)
		out := filepath.Join(t.TempDir(), "ev")
		r := c.fails(exitMismatch, fmt.Sprintf("block %d (%s.gz.encrypted)", b.Index, b.Name), "import-4n6ir", src, "--out", out)
		if strings.Contains(r.stderr, "hint: check the password") {
			t.Fatalf("an altered token blamed the password:\n%s", r.stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("a failed import left %s: %v", out, err)
		}
	}
	c.env = []string{"EBSIMAGER_PASSPHRASE=wrong", "EBSIMAGER_SALT=" + v.Salt}
	c.fails(exitWrongKey, "hint: check the password and the salt", "import-4n6ir", enc, "--out", filepath.Join(t.TempDir(), "ev"))
}

// An import into a directory another process is writing is refused at
// once (exit 12) and leaves that directory alone.
func TestImportTakesTheLock(t *testing.T) {
	v := loadFernetVectors(t)
	c := newCLI(t, "")
	src, err := filepath.Abs(filepath.Join(vectorDir, v.Folders["plain"]))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "ev")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := dirlock.ForDir(out, "acquire")
	if err != nil {
		t.Fatal(err)
	}
	c.fails(exitBusy, fmt.Sprintf("PID %d, acquire", os.Getpid()), "import-4n6ir", src, "--out", out, "--quiet")
	if entries, _ := os.ReadDir(out); len(entries) != 1 || entries[0].Name() != dirlock.Name {
		t.Fatalf("the refused import wrote into %s: %v", out, entries)
	}
	l.Release()
	c.ok("import-4n6ir", src, "--out", out, "--quiet")
	if _, err := os.Stat(filepath.Join(out, dirlock.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file left after the import: %v", err)
	}
}
