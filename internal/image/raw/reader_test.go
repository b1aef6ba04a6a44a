package raw

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReaderReadAt(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"d.01": "abcd", "d.02": "efgh", "d.03": "ij"})
	r, err := Open(filepath.Join(dir, "d"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != 10 {
		t.Fatalf("Size = %d, want 10", r.Size())
	}
	for _, tc := range []struct {
		off  int64
		n    int
		want string
		err  error
	}{
		{0, 10, "abcdefghij", nil},
		{3, 6, "defghi", nil},       // spans three segments
		{4, 4, "efgh", nil},         // exactly one segment
		{8, 4, "ij", io.EOF},        // short at the end
		{10, 1, "", io.EOF},         // at the end
		{12, 1, "", io.EOF},         // past the end
		{9, 1, "j", nil},            // last byte
		{0, 0, "", nil},             // nothing
		{2, 3, "cde", nil},          // across one boundary
		{7, 2, "hi", nil},           // across the last boundary
		{1, 9, "bcdefghij", nil},    // to the very end
		{6, 100, "ghij", io.EOF},    // far past the end
		{0, 4, "abcd", nil},         // first segment
		{5, 5, "fghij", nil},        // to the end exactly
		{3, 1, "d", nil},            // last byte of a segment
		{4, 1, "e", nil},            // first byte of a segment
		{8, 2, "ij", nil},           // the short last segment
		{-1, 1, "", errNegativeOff}, // invalid
	} {
		p := make([]byte, tc.n)
		n, err := r.ReadAt(p, tc.off)
		if string(p[:n]) != tc.want {
			t.Errorf("ReadAt(%d, %d) read %q, want %q", tc.off, tc.n, p[:n], tc.want)
		}
		switch {
		case tc.err == errNegativeOff:
			if err == nil {
				t.Errorf("ReadAt(%d) succeeded", tc.off)
			}
		case err != tc.err:
			t.Errorf("ReadAt(%d, %d) error %v, want %v", tc.off, tc.n, err, tc.err)
		}
	}
}

var errNegativeOff = errors.New("negative offset")

func TestOpenResolvesNames(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"split.001": "aaaa", "split.002": "bb",
		"vol.2024":  "single file whose name ends in digits",
		"plain.raw": "plain",
	})
	for _, tc := range []struct {
		open  string
		files []string
		data  string
	}{
		{"split", []string{"split.001", "split.002"}, "aaaabb"},
		{"split.001", []string{"split.001", "split.002"}, "aaaabb"},
		{"vol.2024", []string{"vol.2024"}, "single file whose name ends in digits"},
		{"plain.raw", []string{"plain.raw"}, "plain"},
	} {
		r, err := Open(filepath.Join(dir, tc.open))
		if err != nil {
			t.Fatalf("Open(%s): %v", tc.open, err)
		}
		var got []string
		for _, f := range r.Files() {
			got = append(got, filepath.Base(f))
		}
		data, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != strings.Join(tc.files, ",") || string(data) != tc.data {
			t.Errorf("Open(%s) = %q %q, want %q %q", tc.open, got, data, tc.files, tc.data)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		open  string
		want  string
	}{
		{"missing", nil, "d", "does not exist"},
		{"not first", map[string]string{"d.001": "aa", "d.002": "a"}, "d.002", "segment 002"},
		{"gap", map[string]string{"d.001": "aa", "d.002": "aa", "d.004": "a"}, "d", "without gaps"},
		{"unequal", map[string]string{"d.001": "aa", "d.002": "a", "d.003": "a"}, "d", "want 2"},
		{"long tail", map[string]string{"d.001": "aa", "d.002": "aaa"}, "d.001", "want 1 to 2"},
		{"empty tail", map[string]string{"d.001": "aa", "d.002": ""}, "d", "want 1 to 2"},
		{"empty head", map[string]string{"d.001": "", "d.002": ""}, "d", "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			r, err := Open(filepath.Join(dir, tc.open))
			if err == nil {
				r.Close()
				t.Fatalf("Open(%s) succeeded", tc.open)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%s) = %v, want an error mentioning %q", tc.open, err, tc.want)
			}
			if tc.files == nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Open of a missing image: %v, want fs.ErrNotExist", err)
			}
		})
	}
	dir := t.TempDir()
	if _, err := Open(dir); err == nil {
		t.Fatal("Open of a directory succeeded")
	}
}

func TestReaderShortSegment(t *testing.T) {
	// A segment that shrinks after Open makes reads fail rather than
	// return zeros or bytes from the wrong offset.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"d.001": "aaaa", "d.002": "bbbb"})
	r, err := Open(filepath.Join(dir, "d"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.Truncate(filepath.Join(dir, "d.001"), 2); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 8)
	n, err := r.ReadAt(p, 0)
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(p[:n], []byte("aa")) {
		t.Fatalf("ReadAt over a truncated segment = %d %q, %v", n, p[:n], err)
	}
}
