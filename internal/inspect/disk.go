package inspect

import (
	"errors"
	"fmt"
	"io"

	"github.com/ebsimager/ebsimager/internal/block"
)

// chunkSize is the unit the cache fetches: one EBS block, so that a caller
// whose ReaderAt serves 512 KiB blocks from an evidence directory fetches
// each block at most once however many sectors are probed in it.
const chunkSize = block.Size

// cacheChunks bounds the cache at 4 MiB. Probing is local (a table, then
// the first sectors of each partition), so a handful of chunks suffices.
const cacheChunks = 8

// disk reads an image through a small LRU cache of aligned chunks.
type disk struct {
	r      io.ReaderAt
	size   int64
	chunks []chunk // most recently used last
}

type chunk struct {
	index int64
	data  []byte // shorter than chunkSize at the end of the image
}

// read returns up to n bytes at off. Bytes past the image's size, or past
// the end of what the ReaderAt can supply, are left out: the result is
// short, and empty (nil error) when off is outside the image. Only I/O
// errors other than EOF are returned.
func (d *disk) read(off int64, n int) ([]byte, error) {
	if off < 0 || off >= d.size || n <= 0 {
		return nil, nil
	}
	if rest := d.size - off; int64(n) > rest {
		n = int(rest)
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		pos := off + int64(len(out))
		c, err := d.chunk(pos / chunkSize)
		if err != nil {
			return nil, err
		}
		in := int(pos % chunkSize)
		if in >= len(c) {
			break // the ReaderAt ended before the declared size
		}
		take := min(len(c)-in, n-len(out))
		out = append(out, c[in:in+take]...)
		if len(c) < chunkSize && in+take == len(c) {
			break // a short chunk is where the ReaderAt's data ends
		}
	}
	return out, nil
}

func (d *disk) chunk(index int64) ([]byte, error) {
	for i, c := range d.chunks {
		if c.index == index {
			d.chunks = append(append(d.chunks[:i:i], d.chunks[i+1:]...), c)
			return c.data, nil
		}
	}
	start := index * chunkSize
	size := int64(chunkSize)
	if rest := d.size - start; rest < size {
		size = rest
	}
	buf := make([]byte, size)
	n, err := d.r.ReadAt(buf, start)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("reading %d bytes at offset %d: %w", size, start, err)
	}
	buf = buf[:n]
	if len(d.chunks) == cacheChunks {
		d.chunks = d.chunks[1:]
	}
	d.chunks = append(d.chunks, chunk{index: index, data: buf})
	return buf, nil
}

// volume is a byte range of the disk: a partition, or the whole image.
type volume struct {
	d      *disk
	offset int64
	size   int64
}

// read returns up to n bytes at off within the volume, as disk.read does.
func (v volume) read(off int64, n int) ([]byte, error) {
	if off < 0 || off >= v.size || n <= 0 {
		return nil, nil
	}
	if rest := v.size - off; int64(n) > rest {
		n = int(rest)
	}
	return v.d.read(v.offset+off, n)
}
