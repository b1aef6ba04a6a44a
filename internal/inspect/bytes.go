package inspect

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

// The accessors below read fixed-offset fields from on-disk structures.
// Out-of-range reads give zero values instead of panicking, so a parser
// that checked a signature can read the rest without a bounds check per
// field; truncated input then fails its sanity checks.

// field returns b[off:off+n], or nil when that is out of range.
func field(b []byte, off, n int) []byte {
	if off < 0 || n < 0 || off+n > len(b) {
		return nil
	}
	return b[off : off+n]
}

// hasAt reports whether b holds sig at off.
func hasAt(b []byte, off int, sig string) bool {
	return bytes.Equal(field(b, off, len(sig)), []byte(sig))
}

// cstring decodes a NUL-padded byte string, replacing invalid UTF-8.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// padded decodes a space- or NUL-padded byte string (FAT, ISO9660 labels).
func padded(b []byte) string {
	return strings.TrimRight(cstring(b), " ")
}

// utf16le decodes a UTF-16LE string of len(b)/2 code units, stopping at
// the first NUL.
func utf16le(b []byte) string {
	units := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		units = append(units, c)
	}
	return string(utf16.Decode(units))
}

// uuidString formats 16 bytes in RFC 9562 order, lowercase, as blkid does
// for ext, XFS, Btrfs and swap UUIDs.
func uuidString(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// guidString formats a 16-byte GUID as stored by UEFI and Microsoft: the
// first three fields little-endian, the last two as bytes.
func guidString(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

// unixTime converts a Unix time in seconds, zero meaning never.
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// RFC 3339, and so encoding/json, can only write years 0000 to 9999.
var (
	firstJSONTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	lastJSONTime  = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// keepTime returns t if JSON can carry it; otherwise it adds a warning
// naming the field and returns the zero time.
func keepTime(fs *FileSystem, name string, t time.Time) time.Time {
	if t.IsZero() || (!t.Before(firstJSONTime) && !t.After(lastJSONTime)) {
		return t
	}
	fs.Warnings = append(fs.Warnings, fmt.Sprintf("%s %s is outside years 0-9999: left out", name, t.Format("2006-01-02T15:04:05Z07:00")))
	return time.Time{}
}

// isPow2 reports whether n is a power of two within [lo, hi].
func isPow2(n, lo, hi int64) bool {
	return n >= lo && n <= hi && n&(n-1) == 0
}
