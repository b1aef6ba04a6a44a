package listing

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/disk"
	"github.com/ebsimager/ebsimager/internal/fsys/disk/disktest"
)

// hostile names: a newline, a pipe, a tab, an escape sequence.
var files = map[string]string{
	"etc/hostname":       "host\n",
	"d/new\nline":        "1",
	"d/pi|pe":            "22",
	"d/tab\there":        "333",
	"d/\x1b[31mred":      "4444",
	"d/plain.txt":        "55555",
	"d/link":             "->pi|pe",
	"d/sub/deeper/f.txt": "f",
}

func open(t *testing.T, path string) *disk.Disk { return openB(t, path) }

func openB(t testing.TB, path string) *disk.Disk {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	d, err := disk.New(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustPath(t *testing.T, s string) disk.Path {
	t.Helper()
	p, err := disk.ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestListing lists, reads and timelines a bare ext4 volume whose names
// are hostile: no name can forge a line of ls or of the bodyfile.
func TestListing(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	disktest.Tree(t, tree, files)
	img := filepath.Join(dir, "ext4.img")
	disktest.Ext4(t, img, 4*disktest.MiB, tree)
	d := open(t, img)

	l, err := List(d, mustPath(t, "/d"), false)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := l.Text(&text, false); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	want := map[string]bool{`"new\nline"`: true, "pi|pe": true, `"tab\there"`: true, `"\x1b[31mred"`: true, "plain.txt": true, "link -> pi|pe": true, "sub/": true}
	if len(got) != len(want) {
		t.Fatalf("ls /d:\n%s", text.String())
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("ls /d: unexpected line %q", g)
		}
	}

	text.Reset()
	l, err = List(d, mustPath(t, "/d"), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Text(&text, true); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^r/rrw-r--r-- +0 +0 +1 +20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ +\S+ +\S+ +\S+ +\d+ +/d/sub/deeper/f.txt$`).MatchString(text.String()) ||
		len(strings.Split(strings.TrimSpace(text.String()), "\n")) != 1+9 {
		t.Fatalf("ls -l -r /d:\n%s", text.String())
	}

	// JSON: one document, names exact.
	var js bytes.Buffer
	if err := l.JSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Listing
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.FSType != "ext4" || back.Part != "" || len(back.Entries) != 9 || !back.Recursive {
		t.Fatalf("JSON: %+v", back)
	}
	names := map[string]Entry{}
	for _, e := range back.Entries {
		names[e.Path] = e
	}
	if e := names["/d/new\nline"]; e.Size != 1 || e.Type != "file" || e.Perm != "0644" {
		t.Fatalf("JSON entry: %+v", e)
	}
	if e := names["/d/link"]; e.Target != "pi|pe" || e.Type != "symlink" {
		t.Fatalf("JSON link: %+v", e)
	}

	// One file listed by its path.
	l, err = List(d, mustPath(t, "/etc/hostname"), false)
	if err != nil || len(l.Entries) != 1 || l.Entries[0].Name != "hostname" || l.Entries[0].Size != 5 {
		t.Fatalf("ls /etc/hostname: %+v %v", l, err)
	}

	// cat.
	var out bytes.Buffer
	if n, err := Cat(d, mustPath(t, "/d/tab\there"), &out); err != nil || n != 3 || out.String() != "333" {
		t.Fatalf("cat: %d %q %v", n, out.String(), err)
	}
	if _, err := Cat(d, mustPath(t, "/d"), &out); !errors.Is(err, fsys.ErrIsDir) {
		t.Fatalf("cat of a directory: %v", err)
	}
	if _, err := Cat(d, mustPath(t, "/d/none"), &out); !errors.Is(err, fsys.ErrNotFound) || !strings.Contains(err.Error(), "the volume: /d/none") {
		t.Fatalf("cat of nothing: %v", err)
	}

	// The bodyfile: 11 fields a line whatever the names; a bare volume's
	// names are not prefixed, with or without N.
	for _, all := range []bool{false, true} {
		var body bytes.Buffer
		notes, err := Timeline(d, "", all, &body)
		if err != nil || len(notes) != 0 {
			t.Fatalf("timeline: %v %v", notes, err)
		}
		lines := strings.Split(strings.TrimSuffix(body.String(), "\n"), "\n")
		if len(lines) != 1+2+1+9 { // lost+found, etc and etc/hostname, d and the 9 under it
			t.Fatalf("timeline:\n%s", body.String())
		}
		for _, line := range lines {
			if strings.Count(line, "|") != 10 || !strings.HasPrefix(line, "0|/") {
				t.Errorf("bodyfile line %q", line)
			}
		}
		for _, want := range []string{"0|/d/new^line|", "0|/d/pi^pe|", "0|/d/tab^here|", "0|/d/^[31mred|", "0|/d/link -> pi^pe|"} {
			if !strings.Contains(body.String(), want) {
				t.Errorf("timeline lacks %q:\n%s", want, body.String())
			}
		}
	}
}
