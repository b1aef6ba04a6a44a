package fsys

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// memFS is a small file system in memory for tests.
type memFS struct {
	stats map[ID]Stat
	dirs  map[ID][]DirEntry
	links map[ID]string
	data  map[string][]byte // "id:stream"
}

func (m *memFS) Type() string { return "ext4" }
func (m *memFS) Root() ID     { return 2 }
func (m *memFS) Stat(id ID) (Stat, error) {
	st, ok := m.stats[id]
	if !ok {
		return Stat{}, ErrNotFound
	}
	return st, nil
}
func (m *memFS) ReadDir(id ID) ([]DirEntry, error) {
	d, ok := m.dirs[id]
	if !ok {
		return nil, ErrNotDir
	}
	return d, nil
}
func (m *memFS) Open(id ID, stream string) (File, error) {
	b, ok := m.data[string(rune('0'+id))+":"+stream]
	if !ok {
		return nil, ErrNotFound
	}
	return memFile{bytes.NewReader(b)}, nil
}
func (m *memFS) Readlink(id ID) (string, error) { return m.links[id], nil }

type memFile struct{ *bytes.Reader }

func (f memFile) Runs() []Run    { return nil }
func (f memFile) Resident() bool { return true }
func (f memFile) Addr() string   { return "5-128-4" }
func (f memFile) Size() int64    { return f.Reader.Size() }

var _ io.ReaderAt = memFile{}

func TestBodyfile(t *testing.T) {
	t0 := time.Unix(1700000000, 123)
	m := &memFS{
		stats: map[ID]Stat{
			2: {ID: 2, Addr: "2", Type: TypeDir, Mode: 0o755, Size: 4096, Mtime: t0},
			3: {ID: 3, Addr: "3", Type: TypeDir, Mode: 0o1777, Size: 1024, Atime: t0, Mtime: t0.Add(1e9), Ctime: t0.Add(2e9), Crtime: t0.Add(3e9)},
			4: {ID: 4, Addr: "4", Type: TypeRegular, Mode: 0o4755, UID: 1000, GID: 100, Size: 12, Atime: t0, Mtime: t0, Ctime: t0},
			5: {ID: 5, Addr: "5-128-1", Type: TypeRegular, Mode: 0o644, Size: 3, Streams: []string{"Zone.Identifier"}},
			6: {ID: 6, Addr: "6", Type: TypeSymlink, Mode: 0o777, Size: 5},
			7: {ID: 7, Addr: "7", Type: TypeFIFO, Mode: 0o2640},
		},
		dirs: map[ID][]DirEntry{
			2: {{Name: "tmp", ID: 3, Type: TypeDir}, {Name: "link", ID: 6, Type: TypeSymlink}, {Name: "ads.txt", ID: 5}},
			3: {{Name: "su|id\nx", ID: 4, Type: TypeRegular}, {Name: "fifo", ID: 7, Type: TypeFIFO}},
		},
		links: map[ID]string{6: "a|b\tc"},
		data:  map[string][]byte{"5:Zone.Identifier": []byte("[ZoneTransfer]")},
	}
	var b bytes.Buffer
	if err := WriteBodyfile(&b, m, "1:"); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"0|1:/tmp|3|d/drwxrwxrwt|0|0|1024|1700000000|1700000001|1700000002|1700000003",
		"0|1:/tmp/su^id^x|4|r/rrwsr-xr-x|1000|100|12|1700000000|1700000000|1700000000|0",
		"0|1:/tmp/fifo|7|p/prw-r-S---|0|0|0|0|0|0|0",
		"0|1:/link -> a^b^c|6|l/lrwxrwxrwx|0|0|5|0|0|0|0",
		"0|1:/ads.txt|5-128-1|r/rrw-r--r--|0|0|3|0|0|0|0",
		"0|1:/ads.txt:Zone.Identifier|5-128-4|r/rrw-r--r--|0|0|14|0|0|0|0",
	}, "\n") + "\n"
	if b.String() != want {
		t.Fatalf("bodyfile:\n%s\nwant:\n%s", b.String(), want)
	}
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if n := strings.Count(line, "|"); n != 10 {
			t.Errorf("%q has %d separators", line, n)
		}
	}

	// A directory that cannot be read ends the bodyfile with an error
	// naming it.
	m.dirs[3] = nil
	delete(m.dirs, 3)
	b.Reset()
	if err := WriteBodyfile(&b, m, ""); err == nil || !strings.Contains(err.Error(), "/tmp") {
		t.Fatalf("unreadable directory: %v", err)
	}
}

func TestModeString(t *testing.T) {
	for _, c := range []struct {
		t    Type
		mode uint32
		want string
	}{
		{TypeRegular, 0o644, "rrw-r--r--"},
		{TypeDir, 0o755, "drwxr-xr-x"},
		{TypeSymlink, 0o777, "lrwxrwxrwx"},
		{TypeRegular, 0o6755, "rrwsr-sr-x"},
		{TypeRegular, 0o7644, "rrwSr-Sr-T"},
		{TypeCharDev, 0o620, "crw--w----"},
		{TypeBlockDev, 0o660, "brw-rw----"},
		{TypeSocket, 0o777, "srwxrwxrwx"},
		{TypeUnknown, 0, "----------"},
	} {
		if got := ModeString(c.t, c.mode); got != c.want {
			t.Errorf("ModeString(%v, %o) = %q, want %q", c.t, c.mode, got, c.want)
		}
	}
}
