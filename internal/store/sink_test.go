package store

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/sink/sinktest"
)

// The evidence directory, as a sink, passes the sink suite: it resumes,
// and its blocks read back through the store's own verified reader.
func TestSinkStore(t *testing.T) {
	open := func(t *testing.T, dir string, size int64) sink.Sink {
		st, err := Create(dir, Meta{SnapshotID: "snap-0123456789abcdef0", Region: "us-east-1",
			VolumeSizeGiB: size >> 30, BlockSize: block.Size}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st.Sink()
	}
	sinktest.Run(t, sinktest.Target{
		Size:   1 << 30, // an evidence directory's volume is whole GiB
		Open:   open,
		Reopen: open,
		Read: func(t *testing.T, dir string, res sink.Result) io.ReaderAt {
			ev, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			v := &blockMap{size: res.Size, blocks: map[int64][]byte{}}
			err = ev.Blocks(context.Background(), nil, func(e manifest.Entry, data []byte) error {
				v.blocks[e.Index] = append([]byte(nil), data...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return v
		},
		Finals: func(dir string) []string {
			return []string{filepath.Join(dir, ManifestName), filepath.Join(dir, ManifestSumName)}
		},
	})
}

// blockMap reads a volume from its blocks, holes as zeros.
type blockMap struct {
	size   int64
	blocks map[int64][]byte
}

func (m *blockMap) ReadAt(p []byte, off int64) (int, error) {
	if off >= m.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < m.size {
		i, in := off/block.Size, off%block.Size
		k := int(min(int64(len(p)-n), block.Size-in, m.size-off))
		if b, ok := m.blocks[i]; ok {
			copy(p[n:n+k], b[in:])
		} else {
			clear(p[n : n+k])
		}
		n, off = n+k, off+int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
