package digest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

func TestMarshalExact(t *testing.T) {
	got, err := Marshal(
		Entry{Comment: "split image: cat disk.001 disk.002 | md5sum -c disk.md5"},
		Entry{Sum: "900150983cd24fb0d6963f7d28e17f72", Name: "-"},
		Entry{Sum: "9dd4e461268c8034f5c8564e155c67a6", Name: "disk.raw"},
		Entry{Sum: "9dd4e461268c8034f5c8564e155c67a6", Name: "we\\ird\nname\r"},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := "# split image: cat disk.001 disk.002 | md5sum -c disk.md5\n" +
		"900150983cd24fb0d6963f7d28e17f72  -\n" +
		"9dd4e461268c8034f5c8564e155c67a6  disk.raw\n" +
		"\\9dd4e461268c8034f5c8564e155c67a6  we\\\\ird\\nname\\r\n"
	if string(got) != want {
		t.Fatalf("Marshal =\n%q\nwant\n%q", got, want)
	}
}

func TestMarshalRejects(t *testing.T) {
	for _, e := range []Entry{
		{Sum: "", Name: "a"},
		{Sum: "ABCD", Name: "a"},
		{Sum: "abc", Name: "a"},
		{Sum: "zz", Name: "a"},
		{Sum: "abcd", Name: ""},
		{Comment: "two\nlines"},
	} {
		if _, err := Marshal(e); err == nil {
			t.Errorf("Marshal(%+v) succeeded", e)
		}
	}
}

func TestParse(t *testing.T) {
	in := "# a comment\r\n" +
		"\n" +
		"900150983CD24FB0D6963F7D28E17F72  -\r\n" +
		"9dd4e461268c8034f5c8564e155c67a6 *bin.raw\n" +
		"\\9dd4e461268c8034f5c8564e155c67a6  we\\\\ird\\nname\n" +
		"9dd4e461268c8034f5c8564e155c67a6  name with  spaces "
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Comment: "a comment"},
		{Sum: "900150983cd24fb0d6963f7d28e17f72", Name: "-"},
		{Sum: "9dd4e461268c8034f5c8564e155c67a6", Name: "bin.raw"},
		{Sum: "9dd4e461268c8034f5c8564e155c67a6", Name: "we\\ird\nname"},
		{Sum: "9dd4e461268c8034f5c8564e155c67a6", Name: "name with  spaces "},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse =\n%q\nwant\n%q", got, want)
	}
	for _, bad := range []string{
		"9dd4e461268c8034f5c8564e155c67a6",
		"9dd4e461268c8034f5c8564e155c67a6 x",
		"9dd4e461268c8034f5c8564e155c67a6  ",
		"xyz  name",
		"\\9dd4e461268c8034f5c8564e155c67a6  bad\\qescape",
		"\\9dd4e461268c8034f5c8564e155c67a6  trailing\\",
	} {
		if got, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", bad, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("900150983cd24fb0d6963f7d28e17f72  -\n"))
	f.Add([]byte("\\9dd4e461268c8034f5c8564e155c67a6  we\\\\ird\\nname\n# c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip through Marshal,
		// except comments holding a carriage return, which Marshal refuses.
		out, err := Marshal(entries...)
		if err != nil {
			for _, e := range entries {
				if e.Comment != "" && strings.ContainsRune(e.Comment, '\r') {
					return
				}
			}
			t.Fatalf("Marshal(Parse(%q)): %v", data, err)
		}
		again, err := Parse(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("Parse(Marshal(...)) of %q: %v", out, err)
		}
		if !reflect.DeepEqual(again, entries) {
			t.Fatalf("round trip changed entries:\n%q\n%q", entries, again)
		}
	})
}

// TestCoreutilsCheck writes one checksum file per algorithm with
// WriteHashFile and has md5sum -c, sha1sum -c and sha256sum -c check it:
// one plain name, one name coreutils must unescape, and a "-" entry for a
// split image read from standard input.
func TestCoreutilsCheck(t *testing.T) {
	tools := testenv.RequireTool(t, "md5sum", "sha1sum", "sha256sum")
	dir := t.TempDir()
	plain := []byte("evidence bytes\n")
	odd := []byte{0, 1, 2, 3}
	oddName := "odd\\name\nwith breaks"
	if err := os.WriteFile(filepath.Join(dir, "disk.raw"), plain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, oddName), odd, 0o600); err != nil {
		t.Fatal(err)
	}
	split := append(append([]byte(nil), plain...), odd...)
	for i, alg := range Algorithms() {
		plainSums := sumsOf(t, alg, plain)
		oddSums := sumsOf(t, alg, odd)
		splitSums := sumsOf(t, alg, split)
		path := FileName(filepath.Join(dir, "disk"), alg)
		err := WriteHashFile(path,
			Entry{Comment: "checked by " + filepath.Base(tools[i])},
			Entry{Sum: plainSums, Name: "disk.raw"},
			Entry{Sum: oddSums, Name: oddName},
			Entry{Sum: splitSums, Name: "-"},
		)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", path, fi.Mode().Perm())
		}
		cmd := exec.Command(tools[i], "-c", "--strict", filepath.Base(path))
		cmd.Dir = dir
		cmd.Stdin = bytes.NewReader(split)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s -c %s: %v\n%s", tools[i], path, err, out)
		}
		if got := strings.Count(string(out), ": OK"); got != 3 {
			t.Fatalf("%s -c: %d OK lines, want 3:\n%s", tools[i], got, out)
		}
		// A wrong digest must make the checker fail.
		if err := WriteHashFile(path, Entry{Sum: oddSums, Name: "disk.raw"}); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(tools[i], "-c", filepath.Base(path))
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("%s -c accepted a wrong digest:\n%s", tools[i], out)
		}
	}
	// No temporary file may be left behind.
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 5 {
		var all []string
		for _, n := range names {
			all = append(all, n.Name())
		}
		t.Fatalf("directory holds %q, want the two data files and three checksum files", all)
	}
}

func sumsOf(t *testing.T, alg string, data []byte) string {
	t.Helper()
	s, err := New(alg)
	if err != nil {
		t.Fatal(err)
	}
	s.Write(data)
	return s.Sums()[alg]
}

func TestWriteHashFileRefusesBadEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.md5")
	if err := WriteHashFile(path, Entry{Sum: "nothex", Name: "x"}); err == nil {
		t.Fatal("WriteHashFile accepted a bad digest")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a failed WriteHashFile left %s: %v", path, err)
	}
}
