// Package ondisk reads fixed-offset fields of on-disk structures
// (partition tables, superblocks, MFT records) from byte slices. An
// out-of-range read gives zero instead of panicking, so a parser that
// checked a signature can read the rest without a bounds check per field;
// truncated or hostile input then fails the parser's sanity checks.
package ondisk

import "encoding/binary"

// U8 returns b[off], or 0 out of range.
func U8(b []byte, off int) uint8 {
	if off < 0 || off >= len(b) {
		return 0
	}
	return b[off]
}

// U16 reads a little-endian uint16 at off, or 0 out of range.
func U16(b []byte, off int) uint16 {
	if off < 0 || off+2 > len(b) {
		return 0
	}
	return binary.LittleEndian.Uint16(b[off:])
}

// U32 reads a little-endian uint32 at off, or 0 out of range.
func U32(b []byte, off int) uint32 {
	if off < 0 || off+4 > len(b) {
		return 0
	}
	return binary.LittleEndian.Uint32(b[off:])
}

// U64 reads a little-endian uint64 at off, or 0 out of range.
func U64(b []byte, off int) uint64 {
	if off < 0 || off+8 > len(b) {
		return 0
	}
	return binary.LittleEndian.Uint64(b[off:])
}

// BE16 reads a big-endian uint16 at off, or 0 out of range.
func BE16(b []byte, off int) uint16 {
	if off < 0 || off+2 > len(b) {
		return 0
	}
	return binary.BigEndian.Uint16(b[off:])
}

// BE32 reads a big-endian uint32 at off, or 0 out of range.
func BE32(b []byte, off int) uint32 {
	if off < 0 || off+4 > len(b) {
		return 0
	}
	return binary.BigEndian.Uint32(b[off:])
}

// BE64 reads a big-endian uint64 at off, or 0 out of range.
func BE64(b []byte, off int) uint64 {
	if off < 0 || off+8 > len(b) {
		return 0
	}
	return binary.BigEndian.Uint64(b[off:])
}
