package triage

import (
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// fakeFS is a small file system whose files' bytes lie on a volume, at
// the offsets given, so that runs, prefetch and the blocks read are
// real.
type fakeFS struct {
	typ   string
	r     io.ReaderAt
	nodes map[fsys.ID]*fakeNode
	next  fsys.ID
}

type fakeNode struct {
	st      fsys.Stat
	entries []fsys.DirEntry
	off     int64 // where the data lies on the volume
	target  string
	streams map[string]fakeStream
	// data, when set, is how many bytes at off the file holds: the rest
	// of its size is a hole.
	data int64
}

type fakeStream struct{ off, size int64 }

// newFake returns an empty file system of type typ over r.
func newFake(typ string, r io.ReaderAt) *fakeFS {
	f := &fakeFS{typ: typ, r: r, nodes: map[fsys.ID]*fakeNode{}, next: 2}
	f.nodes[2] = &fakeNode{st: fsys.Stat{ID: 2, Addr: "2", Type: fsys.TypeDir, Mode: 0o755}}
	return f
}

var fakeTime = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

// add makes the file at p (creating directories) with size bytes at volume
// offset off; typ is its type, target a symlink's.
func (f *fakeFS) add(p string, typ fsys.Type, off, size int64, target string) fsys.ID {
	dir := f.Root()
	names := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for k, n := range names {
		var found fsys.ID
		for _, e := range f.nodes[dir].entries {
			if e.Name == n {
				found = e.ID
			}
		}
		if found == 0 {
			f.next++
			found = f.next
			t := fsys.TypeDir
			if k == len(names)-1 {
				t = typ
			}
			f.nodes[found] = &fakeNode{st: fsys.Stat{ID: found, Addr: "x" + strings.Repeat("1", int(found%3)), Type: t, Mode: 0o640,
				UID: 1000, GID: 1000, Nlink: 1, Size: size, Atime: fakeTime, Mtime: fakeTime.Add(time.Second), Ctime: fakeTime.Add(2 * time.Second)},
				off: off, target: target}
			f.nodes[dir].entries = append(f.nodes[dir].entries, fsys.DirEntry{Name: n, ID: found, Type: t})
		}
		dir = found
	}
	return dir
}

func (f *fakeFS) Type() string  { return f.typ }
func (f *fakeFS) Root() fsys.ID { return 2 }
func (f *fakeFS) node(id fsys.ID) (*fakeNode, error) {
	n, ok := f.nodes[id]
	if !ok {
		return nil, fsys.ErrNotFound
	}
	return n, nil
}

func (f *fakeFS) Stat(id fsys.ID) (fsys.Stat, error) {
	n, err := f.node(id)
	if err != nil {
		return fsys.Stat{}, err
	}
	st := n.st
	for s := range n.streams {
		st.Streams = append(st.Streams, s)
	}
	sort.Strings(st.Streams)
	return st, nil
}

func (f *fakeFS) ReadDir(id fsys.ID) ([]fsys.DirEntry, error) {
	n, err := f.node(id)
	if err != nil {
		return nil, err
	}
	if n.st.Type != fsys.TypeDir {
		return nil, fsys.ErrNotDir
	}
	return n.entries, nil
}

func (f *fakeFS) Open(id fsys.ID, stream string) (fsys.File, error) {
	n, err := f.node(id)
	if err != nil {
		return nil, err
	}
	if stream != "" {
		s, ok := n.streams[stream]
		if !ok {
			return nil, fsys.ErrNotFound
		}
		return &fakeFile{r: f.r, off: s.off, size: s.size}, nil
	}
	if n.st.Type == fsys.TypeDir {
		return nil, fsys.ErrIsDir
	}
	return &fakeFile{r: f.r, off: n.off, size: n.st.Size, data: n.data}, nil
}

func (f *fakeFS) Readlink(id fsys.ID) (string, error) {
	n, err := f.node(id)
	if err != nil {
		return "", err
	}
	return n.target, nil
}

type fakeFile struct {
	r         io.ReaderAt
	off, size int64
	data      int64 // bytes held before a hole; 0: all of size
}

func (f *fakeFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > f.size-off {
		p, eof = p[:f.size-off], io.EOF
	}
	if f.data > 0 {
		clear(p)
		if off < f.data {
			if _, err := f.r.ReadAt(p[:min(int64(len(p)), f.data-off)], f.off+off); err != nil {
				return 0, err
			}
		}
		return len(p), eof
	}
	n, err := f.r.ReadAt(p, f.off+off)
	if err == nil {
		err = eof
	}
	return n, err
}

func (f *fakeFile) Size() int64 { return f.size }
func (f *fakeFile) Runs() []fsys.Run {
	if f.size == 0 {
		return nil
	}
	if f.data > 0 {
		return []fsys.Run{{Logical: 0, Physical: f.off, Length: f.data}, {Logical: f.data, Physical: -1, Length: f.size - f.data}}
	}
	return []fsys.Run{{Logical: 0, Physical: f.off, Length: f.size}}
}
func (f *fakeFile) Resident() bool { return false }
