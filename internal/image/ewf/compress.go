package ewf

import (
	"bytes"
	"encoding/binary"
	"hash/adler32"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/klauspost/compress/zlib"
)

// zlibLevel maps a Level to a klauspost/compress zlib level. LevelFast is
// level 4, not 1: on real files (/usr of a Debian system, 32 KiB chunks)
// klauspost's level 1 makes output a little larger than C zlib's level 1
// (ewfacquire's "fast": ratio 0.574 against 0.569) while level 4 makes it
// smaller (0.563) and is still about twice as fast per core. See
// BenchmarkCompressLevels and bench/e01. One kind of data goes the other
// way: bytes with a skewed distribution but no repeats, which klauspost's
// fast levels store while C zlib entropy-codes them.
func (l Level) zlibLevel() int {
	switch l {
	case LevelFast:
		return 4
	case LevelBest:
		return zlib.BestCompression
	}
	return zlib.NoCompression
}

// zeroChunk is the stored form of an all-zero chunk, shared by every such
// chunk at every level (ewfacquire's "empty-block" compression): the
// 52-byte zlib stream that C zlib (1.2.13, level 9) makes of 32 KiB of
// zeros, the same bytes libewf stores. klauspost/compress needs 53.
var zeroChunk = []byte{
	0x78, 0xda, 0xed, 0xc1, 0x01, 0x01, 0x00, 0x00, 0x00, 0x80, 0x90, 0xfe, 0xaf, 0xee, 0x08, 0x0a,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18,
	0x80, 0x00, 0x00, 0x01,
}

// compressUniform returns a zlib stream, at the best level, of n bytes
// all equal to c.
func compressUniform(c byte, n int) []byte {
	if c == 0 && n == ChunkSize {
		return zeroChunk
	}
	var buf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	zw.Write(bytes.Repeat([]byte{c}, n))
	zw.Close()
	return buf.Bytes()
}

// uniform reports whether every byte of p equals p[0].
func uniform(p []byte) bool {
	if block.IsZero(p) {
		return true
	}
	for _, c := range p[1:] {
		if c != p[0] {
			return false
		}
	}
	return true
}

// packer turns chunks into what a sectors section stores. Each compression
// worker owns one.
type packer struct {
	level Level
	zw    *zlib.Writer
	buf   bytes.Buffer
}

func newPacker(l Level) *packer {
	p := &packer{level: l}
	if l != LevelNone {
		p.zw, _ = zlib.NewWriterLevel(&p.buf, l.zlibLevel()) // the level is valid by construction
	}
	return p
}

// pack appends the stored form of chunk raw to dst and reports whether it
// is compressed. A chunk of one repeated byte (zeros above all) is always
// compressed, as libewf's empty-block compression does; other chunks
// compress when that makes them smaller, and otherwise are stored as they
// are followed by their Adler-32.
func (p *packer) pack(dst, raw []byte) ([]byte, bool) {
	if uniform(raw) {
		return append(dst, compressUniform(raw[0], len(raw))...), true
	}
	if p.zw != nil {
		p.buf.Reset()
		p.zw.Reset(&p.buf)
		p.zw.Write(raw) // writes to a bytes.Buffer cannot fail
		p.zw.Close()
		if p.buf.Len() < len(raw) {
			return append(dst, p.buf.Bytes()...), true
		}
	}
	dst = append(dst, raw...)
	return binary.LittleEndian.AppendUint32(dst, adler32.Checksum(raw)), false
}
