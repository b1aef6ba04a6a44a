package ewf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/adler32"
	"strings"
)

// Layout of an EWF-E01 segment file. Every number here comes from the
// "Expert Witness Compression Format (EWF)" specification (libyal/libewf,
// documentation/) unless its comment says otherwise.
const (
	// SectorSize is the bytes per sector the writer records.
	SectorSize = 512 // the spec's default sector size; EBS volumes use 512-byte sectors
	// SectorsPerChunk is the sectors per chunk the writer records.
	SectorsPerChunk = 64 // the spec's default (and EnCase's) 64 sectors per chunk
	// ChunkSize is the media bytes in one chunk.
	ChunkSize = SectorSize * SectorsPerChunk // 32 KiB

	// DefaultSegmentSize is ewfacquire's default segment file size, which
	// its help calls "1.4 GiB": LIBEWF_DEFAULT_SEGMENT_FILE_SIZE is
	// 1500 * 1024 * 1024 bytes in libewf's include/libewf/definitions.h.in.
	DefaultSegmentSize = 1500 << 20
	// MinSegmentSize is the smallest segment size accepted, the same
	// minimum ewfacquire enforces (EWFCOMMON_MINIMUM_SEGMENT_FILE_SIZE,
	// 1.0 MiB); it holds many chunks plus every section a segment needs.
	MinSegmentSize = 1 << 20

	// MaxSegments is the number of segment extensions that exist:
	// .E01-.E99 (99), then .EAA-.ZZZ (22 first letters E-Z, 26*26 each).
	MaxSegments = 99 + 22*26*26
)

const (
	fileHeaderSize  = 13   // "EVF\x09\x0d\x0a\xff\x00", 0x01, segment number (2), 0x0000
	descriptorSize  = 76   // section descriptor: type (16), next (8), size (8), padding (40), Adler-32 (4)
	volumeDataSize  = 1052 // EnCase 1-7 / FTK volume, disk and data section data
	smartVolumeSize = 94   // the original [ASR02] (SMART, EWF-S01) volume section data
	tableHeaderSize = 24   // count (4), padding (4), base offset (8), padding (4), Adler-32 (4)
	digestDataSize  = 80   // MD5 (16), SHA-1 (20), padding (40), Adler-32 (4)
	hashDataSize    = 36   // MD5 (16), unknown (16), Adler-32 (4)

	// maxTableEntries is the most chunks one table section lists: "As of
	// EnCase 6 the number of entries is no longer restricted to 16375
	// entries. The new limit seems to be 65534" (libewf's
	// LIBEWF_MAXIMUM_TABLE_ENTRIES_ENCASE6).
	maxTableEntries = 65534
	// maxChunkOffset is the largest chunk offset a table entry can hold
	// relative to its base: 31 bits, the top bit being the compressed flag.
	maxChunkOffset = 1<<31 - 1
	compressedFlag = 1 << 31

	// trailerReserve is the room kept free at the end of every segment for
	// the sections that close the last one: data (the volume's copy),
	// digest, hash and done. A segment that is not the last ends with
	// "next" only, which is smaller.
	trailerReserve = descriptorSize + volumeDataSize + descriptorSize + digestDataSize +
		descriptorSize + hashDataSize + descriptorSize

	// Volume section values the writer records (see the spec's "Media
	// type", "Media flags" and "Compression level" tables).
	mediaTypeFixed    = 0x01 // a fixed storage media device: an EBS volume is a disk
	mediaFlagImage    = 0x01 // "Is an image file": always set by EnCase and FTK Imager
	mediaFlagPhysical = 0x02 // a physical device, ewfacquire's default; EBS volumes are whole disks
)

// signature opens every EWF-E01 segment file.
var signature = [8]byte{'E', 'V', 'F', 0x09, 0x0d, 0x0a, 0xff, 0x00}

// Level is the zlib compression applied to chunks.
type Level int

// The compression levels ewfacquire offers. Every level stores an all-zero
// chunk as one small shared zlib stream (ewfacquire's "empty-block"
// compression), so sparse volumes stay small even with LevelNone.
const (
	LevelNone Level = iota // chunks stored as they are, with an Adler-32
	LevelFast              // zlib tuned for speed
	LevelBest              // zlib at its best compression
)

// String returns the name ParseLevel reads.
func (l Level) String() string {
	switch l {
	case LevelNone:
		return "none"
	case LevelFast:
		return "fast"
	case LevelBest:
		return "best"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// ParseLevel reads "none", "fast" or "best".
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "none":
		return LevelNone, nil
	case "fast":
		return LevelFast, nil
	case "best":
		return LevelBest, nil
	}
	return 0, fmt.Errorf("compression level %q: want none, fast or best", s)
}

// volumeLevel is the level as the volume section records it: 0 none,
// 1 good (fast), 2 best.
func (l Level) volumeLevel() byte { return byte(l) }

// SegmentExt returns the extension of segment n (1-based), in the order
// libewf uses: .E01 to .E99, then .EAA, .EAB, … .EAZ, .EBA, … .EZZ, .FAA,
// … .ZZZ.
func SegmentExt(n int) (string, error) {
	if n < 1 || n > MaxSegments {
		return "", fmt.Errorf("segment %d: want 1 to %d", n, MaxSegments)
	}
	if n <= 99 {
		return fmt.Sprintf(".E%02d", n), nil
	}
	k := n - 100
	return string([]byte{'.', byte('E' + k/(26*26)), byte('A' + k/26%26), byte('A' + k%26)}), nil
}

// SegmentName returns the name of segment n (1-based) of an image whose
// path without extension is base.
func SegmentName(base string, n int) (string, error) {
	ext, err := SegmentExt(n)
	if err != nil {
		return "", err
	}
	return base + ext, nil
}

// SegmentNames returns the names of the first n segments of base, at most
// MaxSegments of them.
func SegmentNames(base string, n int) []string {
	n = min(n, MaxSegments)
	names := make([]string, 0, max(n, 0))
	for i := 1; i <= n; i++ {
		name, _ := SegmentName(base, i)
		names = append(names, name)
	}
	return names
}

// parseSegmentExt reads an extension written by SegmentExt, in either
// case, and reports the segment number and whether it was lowercase.
func parseSegmentExt(ext string) (n int, lower bool, err error) {
	if len(ext) != 4 || ext[0] != '.' {
		return 0, false, fmt.Errorf("extension %q: want .E01, .E02, … .EAA, …", ext)
	}
	lower = ext[1] >= 'a' && ext[1] <= 'z'
	up := strings.ToUpper(ext[1:])
	switch {
	case up[0] == 'E' && isDigit(up[1]) && isDigit(up[2]):
		n = int(up[1]-'0')*10 + int(up[2]-'0')
		if n == 0 {
			return 0, false, fmt.Errorf("extension %q: segments start at .E01", ext)
		}
	case up[0] >= 'E' && up[0] <= 'Z' && isUpper(up[1]) && isUpper(up[2]):
		n = 100 + int(up[0]-'E')*26*26 + int(up[1]-'A')*26 + int(up[2]-'A')
	default:
		return 0, false, fmt.Errorf("extension %q: want .E01, .E02, … .EAA, …", ext)
	}
	return n, lower, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// fileHeader returns the 13 bytes that open segment n.
func fileHeader(n int) []byte {
	b := make([]byte, fileHeaderSize)
	copy(b, signature[:])
	b[8] = 0x01 // start of fields
	binary.LittleEndian.PutUint16(b[9:], uint16(n))
	return b // end of fields: 0x0000
}

// descriptor is a section descriptor.
type descriptor struct {
	Type string
	Next int64 // offset of the next section from the start of the file
	Size int64 // descriptor plus data; 0 for next and done
}

func (d descriptor) marshal() []byte {
	b := make([]byte, descriptorSize)
	copy(b[:16], d.Type)
	binary.LittleEndian.PutUint64(b[16:], uint64(d.Next))
	binary.LittleEndian.PutUint64(b[24:], uint64(d.Size))
	binary.LittleEndian.PutUint32(b[72:], adler32.Checksum(b[:72]))
	return b
}

var errChecksum = errors.New("checksum mismatch")

func parseDescriptor(b []byte) (descriptor, error) {
	var d descriptor
	if len(b) < descriptorSize {
		return d, fmt.Errorf("section descriptor: %d bytes, want %d", len(b), descriptorSize)
	}
	if got, want := adler32.Checksum(b[:72]), binary.LittleEndian.Uint32(b[72:]); got != want {
		return d, fmt.Errorf("section descriptor: adler-32 %08x, want %08x: %w", got, want, errChecksum)
	}
	name := b[:16]
	if i := strings.IndexByte(string(name), 0); i >= 0 {
		name = name[:i]
	}
	d.Type = string(name)
	next := binary.LittleEndian.Uint64(b[16:])
	size := binary.LittleEndian.Uint64(b[24:])
	if next > 1<<62 || size > 1<<62 {
		return d, fmt.Errorf("section %q: next %d, size %d out of range", d.Type, next, size)
	}
	d.Next, d.Size = int64(next), int64(size)
	return d, nil
}

// volume is what the volume, disk and data sections record.
type volume struct {
	MediaType       byte
	Chunks          uint32
	SectorsPerChunk uint32
	BytesPerSector  uint32
	Sectors         uint64
	MediaFlags      byte
	Compression     byte
	ErrorGranule    uint32
	GUID            [16]byte
}

// marshal returns the 1052 bytes of an EnCase volume section's data.
func (v volume) marshal() []byte {
	b := make([]byte, volumeDataSize)
	b[0] = v.MediaType
	binary.LittleEndian.PutUint32(b[4:], v.Chunks)
	binary.LittleEndian.PutUint32(b[8:], v.SectorsPerChunk)
	binary.LittleEndian.PutUint32(b[12:], v.BytesPerSector)
	binary.LittleEndian.PutUint64(b[16:], v.Sectors)
	// 24-35: cylinders, heads and sectors of the C:H:S value, left empty
	b[36] = v.MediaFlags
	// 40: PALM volume start sector and 48: SMART logs start sector, unused
	b[52] = v.Compression
	binary.LittleEndian.PutUint32(b[56:], v.ErrorGranule)
	copy(b[64:80], v.GUID[:])
	// 1043-1047: the five-byte "signature", zero in EnCase files
	binary.LittleEndian.PutUint32(b[1048:], adler32.Checksum(b[:1048]))
	return b
}

// parseVolume reads volume, disk or data section data in the EnCase layout
// (1052 bytes) or the original SMART layout (94 bytes).
func parseVolume(b []byte) (volume, error) {
	var v volume
	switch {
	case len(b) >= volumeDataSize:
		b = b[:volumeDataSize]
		if got, want := adler32.Checksum(b[:1048]), binary.LittleEndian.Uint32(b[1048:]); got != want {
			return v, fmt.Errorf("adler-32 %08x, want %08x: %w", got, want, errChecksum)
		}
		v.MediaType = b[0]
		v.Sectors = binary.LittleEndian.Uint64(b[16:])
		v.MediaFlags = b[36]
		v.Compression = b[52]
		v.ErrorGranule = binary.LittleEndian.Uint32(b[56:])
		copy(v.GUID[:], b[64:80])
	case len(b) >= smartVolumeSize:
		b = b[:smartVolumeSize]
		if got, want := adler32.Checksum(b[:90]), binary.LittleEndian.Uint32(b[90:]); got != want {
			return v, fmt.Errorf("adler-32 %08x, want %08x: %w", got, want, errChecksum)
		}
		v.MediaType = mediaTypeFixed
		v.Sectors = uint64(binary.LittleEndian.Uint32(b[16:]))
	default:
		return v, fmt.Errorf("%d bytes, want %d", len(b), volumeDataSize)
	}
	v.Chunks = binary.LittleEndian.Uint32(b[4:])
	v.SectorsPerChunk = binary.LittleEndian.Uint32(b[8:])
	v.BytesPerSector = binary.LittleEndian.Uint32(b[12:])
	return v, nil
}

// tableHeader returns the 24-byte header of a table or table2 section.
func tableHeader(count int, base int64) []byte {
	b := make([]byte, tableHeaderSize)
	binary.LittleEndian.PutUint32(b[0:], uint32(count))
	binary.LittleEndian.PutUint64(b[8:], uint64(base))
	binary.LittleEndian.PutUint32(b[20:], adler32.Checksum(b[:20]))
	return b
}

// tableSectionSize is the size of a table section listing n chunks:
// descriptor, header, entries and the footer's Adler-32.
func tableSectionSize(n int) int64 {
	return descriptorSize + tableHeaderSize + 4*int64(n) + 4
}

// digestData returns the digest section data: MD5 and SHA-1.
func digestData(md5 [16]byte, sha1 [20]byte) []byte {
	b := make([]byte, digestDataSize)
	copy(b, md5[:])
	copy(b[16:], sha1[:])
	binary.LittleEndian.PutUint32(b[76:], adler32.Checksum(b[:76]))
	return b
}

// hashData returns the hash section data: MD5 and 16 unused bytes.
func hashData(md5 [16]byte) []byte {
	b := make([]byte, hashDataSize)
	copy(b, md5[:])
	binary.LittleEndian.PutUint32(b[32:], adler32.Checksum(b[:32]))
	return b
}

// checkTrailer verifies the Adler-32 in the last 4 bytes of b over the
// bytes before it.
func checkTrailer(b []byte) error {
	n := len(b) - 4
	if got, want := adler32.Checksum(b[:n]), binary.LittleEndian.Uint32(b[n:]); got != want {
		return fmt.Errorf("adler-32 %08x, want %08x: %w", got, want, errChecksum)
	}
	return nil
}
