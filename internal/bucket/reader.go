package bucket

import (
	"context"
	"fmt"
	"io"
)

// ReadChunk is how many bytes a Reader asks the store for at once.
const ReadChunk = 8 << 20

// NewReader reads key as a stream, ReadChunk bytes per ranged GET, so
// that an object too large to hold in memory (a manifest) can be read;
// an object larger than max bytes is refused before anything is read.
// Its size is the one the store answers to a HEAD first: a range past
// it, or a short answer, is an error, never a silent truncation.
func NewReader(ctx context.Context, b Bucket, key string, max int64) (io.Reader, error) {
	o, err := b.Head(ctx, key)
	if err != nil {
		return nil, err
	}
	if o.Size < 0 || o.Size > max {
		return nil, fmt.Errorf("%s holds %d bytes, more than %d: refused", key, o.Size, max)
	}
	return &rangeReader{ctx: ctx, b: b, key: key, size: o.Size}, nil
}

type rangeReader struct {
	ctx       context.Context
	b         Bucket
	key       string
	size, off int64
	buf       []byte
}

func (r *rangeReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if r.off >= r.size {
			return 0, io.EOF
		}
		n := min(ReadChunk, r.size-r.off)
		data, err := r.b.GetRange(r.ctx, r.key, r.off, n)
		if err != nil {
			return 0, err
		}
		if int64(len(data)) != n {
			return 0, fmt.Errorf("%s: %d bytes at %d, asked for %d: %w", r.key, len(data), r.off, n, io.ErrUnexpectedEOF)
		}
		r.buf, r.off = data, r.off+n
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
