package ntfs

import "github.com/ebsimager/ebsimager/internal/ondisk"

// lznt1Chunk is the bytes one LZNT1 chunk decompresses to at most; a
// compression unit is a run of chunks, each starting at the next 4 KiB.
const lznt1Chunk = 4096

// lznt1 decompresses one compression unit from src into dst, whose
// length is the unit's size. dst must be zeroed: a chunk that
// decompresses to fewer than 4096 bytes, and the chunks after the last
// one, leave zeros. The work is bounded by len(src) + len(dst).
func lznt1(dst, src []byte) error {
	out := 0
	for i := 0; i+2 <= len(src); {
		h := ondisk.U16(src, i)
		if h == 0 {
			break // the end of the unit's chunks
		}
		size := int(h&0x0FFF) + 1 // the chunk's bytes after its header
		if i+2+size > len(src) {
			return bad("lznt1: chunk of %d bytes at byte %d overruns the %d compressed bytes", size, i, len(src))
		}
		if out >= len(dst) {
			return bad("lznt1: chunk at byte %d is past the %d-byte unit", i, len(dst))
		}
		chunk, end := src[i+2:i+2+size], min(out+lznt1Chunk, len(dst))
		if h&0x8000 == 0 {
			copy(dst[out:end], chunk) // stored as is
		} else if err := lznt1Decode(dst[out:end], chunk); err != nil {
			return bad("lznt1: chunk at byte %d: %v", i, err)
		}
		out += lznt1Chunk
		i += 2 + size
	}
	return nil
}

type lznt1Error string

func (e lznt1Error) Error() string { return string(e) }

// lznt1Decode decompresses one compressed chunk into dst. Each flag byte
// announces 8 tokens: a literal byte (bit 0) or a 2-byte back-reference
// (bit 1) whose split between offset and length bits depends on how far
// into the chunk it is.
func lznt1Decode(dst, src []byte) error {
	pos := 0
	for j := 0; j < len(src); {
		flags := src[j]
		j++
		for bit := 0; bit < 8 && j < len(src); bit++ {
			if flags&(1<<bit) == 0 {
				if pos >= len(dst) {
					return lznt1Error("literal past the chunk's 4096 bytes")
				}
				dst[pos] = src[j]
				pos++
				j++
				continue
			}
			if j+2 > len(src) || pos == 0 {
				return lznt1Error("truncated or leading back-reference")
			}
			tok := int(ondisk.U16(src, j))
			j += 2
			lenBits := 12
			for k := pos - 1; k >= 0x10; k >>= 1 {
				lenBits--
			}
			back, n := tok>>lenBits+1, tok&(1<<lenBits-1)+3
			if back > pos || n > len(dst)-pos {
				return lznt1Error("back-reference outside the chunk")
			}
			for k := 0; k < n; k++ { // byte by byte: the source may overlap the copy
				dst[pos] = dst[pos-back]
				pos++
			}
		}
	}
	return nil
}
