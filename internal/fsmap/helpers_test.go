package fsmap

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// run runs a tool and returns its standard output.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return string(testenv.Output(t, name, args...))
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pattern returns n deterministic, incompressible-looking bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func truncate(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func buildFile(t testing.TB, path string) *Map {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Build(f, st.Size(), Options{})
	if err != nil {
		t.Fatalf("Build(%s): %v", path, err)
	}
	return m
}

// flsEntry is one allocated name fls lists.
type flsEntry struct {
	kind string // fls's type letter: r, d, l, …
	id   uint64
	path string
}

var flsLine = regexp.MustCompile(`^(\S)/(\S) (\d+)(?:-\d+-\d+)?:\t(.+)$`)

// fls lists the allocated names of an image with the Sleuth Kit, without
// deleted entries, alternate data streams and its virtual $OrphanFiles.
func fls(t testing.TB, img string) []flsEntry {
	t.Helper()
	var out []flsEntry
	for _, line := range strings.Split(run(t, "fls", "-r", "-p", img), "\n") {
		m := flsLine.FindStringSubmatch(line)
		if m == nil || strings.Contains(m[4], ":") || strings.HasPrefix(m[4], "$OrphanFiles") {
			continue
		}
		id, _ := strconv.ParseUint(m[3], 10, 64)
		out = append(out, flsEntry{kind: m[2], id: id, path: "/" + m[4]})
	}
	if len(out) == 0 {
		t.Fatalf("fls %s listed nothing", img)
	}
	return out
}

// ownerByID returns the owner with the given ID, a file rather than a
// structure when both have it (ext structures have ID 0).
func ownerByID(t testing.TB, m *Map, id uint64) (int, Owner) {
	t.Helper()
	found := -1
	for i, o := range m.Owners() {
		if o.ID == id && (found < 0 || o.Kind != KindStructure) {
			found = i
		}
	}
	if found < 0 {
		t.Fatalf("no owner with id %d", id)
	}
	return found, m.Owner(found)
}

// units returns the allocation units an owner holds in role.
func units(m *Map, owner int, role Role) map[int64]bool {
	out := map[int64]bool{}
	for _, e := range m.ExtentsOf(owner) {
		if e.Role != role {
			continue
		}
		for u := e.Off / m.Unit; u*m.Unit < e.End(); u++ {
			out[u] = true
		}
	}
	return out
}

// wholeUnits is units without the partial ones (inode or MFT records).
func wholeUnits(m *Map, owner int, role Role) map[int64]bool {
	out := map[int64]bool{}
	for _, e := range m.ExtentsOf(owner) {
		if e.Role != role || e.Off%m.Unit != 0 || e.Len%m.Unit != 0 {
			continue
		}
		for u := e.Off / m.Unit; u*m.Unit < e.End(); u++ {
			out[u] = true
		}
	}
	return out
}

func numbers(s string) map[int64]bool {
	out := map[int64]bool{}
	for _, f := range strings.Fields(s) {
		if n, err := strconv.ParseInt(f, 10, 64); err == nil {
			out[n] = true
		}
	}
	return out
}

func sameSet(a, b map[int64]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// covers reports whether owner holds every byte of [off, off+n) in role.
func covers(m *Map, owner int, role Role, off, n int64) bool {
	got := int64(0)
	for _, e := range m.Lookup(off, n) {
		if e.Owner == owner && e.Role == role {
			got += e.Len
		}
	}
	return got == n
}
