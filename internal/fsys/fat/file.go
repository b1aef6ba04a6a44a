package fat

import (
	"fmt"
	"io"
	"sort"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// file is an open file's data: runs of clusters, then (exFAT, past the
// valid data length) a sparse run that reads as zeros.
type file struct {
	r    io.ReaderAt
	id   fsys.ID
	size int64
	runs []fsys.Run
}

func (f *file) Size() int64      { return f.size }
func (f *file) Runs() []fsys.Run { return append([]fsys.Run(nil), f.runs...) }
func (f *file) Resident() bool   { return false }

// ReadAt reads as io.ReaderAt does.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("fat: file %d: negative offset %d", f.id, off)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := p
	if rest := f.size - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	n := 0
	i := sort.Search(len(f.runs), func(i int) bool { return f.runs[i].Logical+f.runs[i].Length > off })
	for n < len(want) && i < len(f.runs) {
		run := f.runs[i]
		skip := off + int64(n) - run.Logical
		chunk := want[n:]
		if int64(len(chunk)) > run.Length-skip {
			chunk = chunk[:run.Length-skip]
		}
		if run.Sparse() {
			clear(chunk)
		} else if _, err := f.r.ReadAt(chunk, run.Physical+skip); err != nil {
			return n, fmt.Errorf("fat: file %d: reading byte %d of the volume: %w", f.id, run.Physical+skip, err)
		}
		n += len(chunk)
		i++
	}
	if n < len(want) {
		return n, corrupt("fat: file %d: no run holds byte %d", f.id, off+int64(n))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// runsOf places the first valid bytes of spans on the volume, and the
// bytes from valid to size as a sparse run.
func runsOf(g *geometry, spans []span, valid, size int64) []fsys.Run {
	var runs []fsys.Run
	var logical int64
	for _, s := range spans {
		if logical >= valid {
			break
		}
		n := min(int64(s.n)*g.clusterSize, valid-logical)
		phys := g.clusterOffset(s.first)
		if k := len(runs) - 1; k >= 0 && runs[k].Physical+runs[k].Length == phys {
			runs[k].Length += n
		} else {
			runs = append(runs, fsys.Run{Logical: logical, Physical: phys, Length: n})
		}
		logical += n
	}
	if logical < size {
		runs = append(runs, fsys.Run{Logical: logical, Physical: -1, Length: size - logical})
	}
	return runs
}
