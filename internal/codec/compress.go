package codec

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// ErrTooLarge is returned when a stored block expands beyond block.Size
// bytes: no EBS block is larger, so more output means a corrupt or hostile
// file (a decompression bomb).
var ErrTooLarge = fmt.Errorf("stored block expands beyond %d bytes", block.Size)

// errClosed is returned by writes to a layer that was already closed.
var errClosed = errors.New("write to a closed compressor")

// zstdLevel is the encoder level for stored blocks. SpeedFastest (about
// zstd level 1) is the fastest level, and acquisition must store ~500 MB/s
// on two cores while it also hashes; on disk content it still compresses
// better than gzip -9 (bench/codec has the figures).
const zstdLevel = zstd.SpeedFastest

// gzipLevel is the gzip level for stored blocks. Level 1 (BestSpeed) runs
// several times faster than level 6 and stores about a tenth more on disk
// content; bench/codec compares it with 6 and with the original tool's 9
// (Python's gzip.open default).
const gzipLevel = gzip.BestSpeed

// zstdMaxWindow caps the window a stored zstd frame may ask the decoder to
// allocate. RFC 8878 section 3.1.1.1.2 recommends that decoders support
// windows of at least 8 MB; the zstd CLI never needs more below level 20,
// and our own encoder uses a block-sized window.
const zstdMaxWindow = 8 << 20

// Encoders and decoders carry hundreds of KiB of tables and history, so
// they are pooled: acquisition compresses about a thousand blocks a
// second and must not rebuild them per block.
var (
	zstdEncoders sync.Pool // *zstd.Encoder
	zstdDecoders sync.Pool // *zstd.Decoder
	gzipWriters  sync.Pool // *gzip.Writer
	gzipReaders  sync.Pool // *gzip.Reader
)

// Compress returns a WriteCloser that compresses what is written to it
// with c and writes the result to dst. Close flushes the stream and writes
// its trailer; it does not close dst. For None, writes pass straight
// through.
func Compress(dst io.Writer, c Codec) (io.WriteCloser, error) {
	switch c {
	case None:
		return nopCloser{dst}, nil
	case Zstd:
		enc, _ := zstdEncoders.Get().(*zstd.Encoder)
		if enc == nil {
			var err error
			// A single-threaded encoder compresses synchronously, so it
			// starts no goroutines and needs no Close to be released.
			// The window need not exceed one block.
			enc, err = zstd.NewWriter(nil,
				zstd.WithEncoderLevel(zstdLevel),
				zstd.WithEncoderConcurrency(1),
				zstd.WithWindowSize(block.Size))
			if err != nil {
				return nil, fmt.Errorf("creating zstd encoder: %w", err)
			}
		}
		enc.Reset(dst)
		return &zstdWriter{enc: enc}, nil
	case Gzip:
		gw, _ := gzipWriters.Get().(*gzip.Writer)
		if gw == nil {
			var err error
			gw, err = gzip.NewWriterLevel(dst, gzipLevel)
			if err != nil {
				return nil, fmt.Errorf("creating gzip writer: %w", err)
			}
		} else {
			gw.Reset(dst)
		}
		return &gzipWriter{gw: gw}, nil
	}
	return nil, c.check()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

type zstdWriter struct{ enc *zstd.Encoder }

func (w *zstdWriter) Write(p []byte) (int, error) {
	if w.enc == nil {
		return 0, errClosed
	}
	return w.enc.Write(p)
}

func (w *zstdWriter) Close() error {
	if w.enc == nil {
		return errClosed
	}
	err := w.enc.Close()
	// Drop the reference to dst before pooling; Reset allocates nothing
	// once the encoder has run.
	w.enc.Reset(nil)
	zstdEncoders.Put(w.enc)
	w.enc = nil
	if err != nil {
		return fmt.Errorf("closing zstd stream: %w", err)
	}
	return nil
}

type gzipWriter struct{ gw *gzip.Writer }

func (w *gzipWriter) Write(p []byte) (int, error) {
	if w.gw == nil {
		return 0, errClosed
	}
	return w.gw.Write(p)
}

func (w *gzipWriter) Close() error {
	if w.gw == nil {
		return errClosed
	}
	err := w.gw.Close()
	w.gw.Reset(io.Discard)
	gzipWriters.Put(w.gw)
	w.gw = nil
	if err != nil {
		return fmt.Errorf("closing gzip stream: %w", err)
	}
	return nil
}

// Decompress returns a Reader of the block that src holds compressed with
// c. It yields at most block.Size bytes: more is ErrTooLarge. A truncated
// stream is an error wrapping io.ErrUnexpectedEOF, and a corrupt one fails
// its checksum, but both only show when the stream is read to io.EOF, so
// read it to the end (ReadBlock does).
func Decompress(src io.Reader, c Codec) (io.Reader, error) {
	switch c {
	case None:
		return &boundedReader{r: src}, nil
	case Zstd:
		dec, _ := zstdDecoders.Get().(*zstd.Decoder)
		if dec == nil {
			var err error
			// One synchronous decoder per stream: blocks are decoded
			// concurrently by the callers, not inside one stream.
			dec, err = zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxWindow(zstdMaxWindow))
			if err != nil {
				return nil, fmt.Errorf("creating zstd decoder: %w", err)
			}
		}
		cr := &countingReader{r: src}
		if err := dec.Reset(cr); err != nil {
			return nil, fmt.Errorf("starting zstd stream: %w", err)
		}
		return &boundedReader{r: &zstdReader{dec: dec, src: cr}}, nil
	case Gzip:
		gr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if gr == nil {
			gr, err = gzip.NewReader(src)
		} else {
			err = gr.Reset(src)
		}
		if err != nil {
			if err == io.EOF {
				return nil, fmt.Errorf("reading gzip header: empty stream: %w", io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("reading gzip header: %w", err)
		}
		return &boundedReader{r: &gzipReader{gr: gr}}, nil
	}
	return nil, c.check()
}

// ReadBlock reads r to io.EOF, appending to dst[:0], and returns the
// result. It refuses more than block.Size bytes with ErrTooLarge. Reading
// to the end is what makes a decompressor check its trailer.
func ReadBlock(r io.Reader, dst []byte) ([]byte, error) {
	if cap(dst) < block.Size {
		dst = make([]byte, 0, block.Size)
	}
	buf := dst[:0:block.Size]
	for {
		if len(buf) == block.Size {
			// The buffer holds a whole block: only io.EOF may follow.
			var probe [1]byte
			n, err := io.ReadFull(r, probe[:])
			if n > 0 {
				return nil, ErrTooLarge
			}
			if err == io.EOF {
				return buf, nil
			}
			return nil, err
		}
		n, err := r.Read(buf[len(buf):block.Size])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// boundedReader passes at most block.Size bytes and fails with
// ErrTooLarge as soon as a byte beyond them appears.
type boundedReader struct {
	r   io.Reader
	n   int64
	err error
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Ask for one byte more than may still pass, to see an overflow.
	room := block.Size - b.n
	if int64(len(p)) > room+1 {
		p = p[:room+1]
	}
	n, err := b.r.Read(p)
	if int64(n) > room {
		b.n = block.Size
		b.err = ErrTooLarge
		return int(room), ErrTooLarge
	}
	b.n += int64(n)
	if err != nil {
		b.err = err
	}
	return n, err
}

// countingReader records whether its source produced any byte, so that an
// empty zstd stream is told apart from an empty block.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// zstdReader returns its decoder to the pool once the stream ends.
type zstdReader struct {
	dec *zstd.Decoder
	src *countingReader
	err error
}

func (z *zstdReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.dec.Read(p)
	if err == nil {
		return n, nil
	}
	switch {
	case err == io.EOF && z.src.n == 0:
		err = fmt.Errorf("reading zstd stream: empty stream: %w", io.ErrUnexpectedEOF)
	case err == io.EOF:
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("reading zstd stream: truncated: %w", err)
	default:
		err = fmt.Errorf("reading zstd stream: %w", err)
	}
	z.err = err
	z.dec.Reset(nil)
	zstdDecoders.Put(z.dec)
	z.dec = nil
	return n, err
}

// gzipReader returns its reader to the pool once the stream ends.
type gzipReader struct {
	gr  *gzip.Reader
	err error
}

func (g *gzipReader) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.gr.Read(p)
	if err == nil {
		return n, nil
	}
	if err != io.EOF {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("reading gzip stream: truncated: %w", err)
		} else {
			err = fmt.Errorf("reading gzip stream: %w", err)
		}
	}
	g.err = err
	gzipReaders.Put(g.gr)
	g.gr = nil
	return n, err
}
