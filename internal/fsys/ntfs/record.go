package ntfs

import (
	"cmp"
	"errors"
	"fmt"
	"unicode/utf16"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// MFT record and attribute layout, from the Linux-NTFS project's
// documentation of the format (ntfs-3g's layout.h).
const (
	fixupStride = 512 // NTFS_BLOCK_SIZE: the update sequence guards the last 2 bytes of every 512

	recUSAOffset  = 0x04
	recUSACount   = 0x06
	recSequence   = 0x10
	recLinks      = 0x12
	recFirstAttr  = 0x14
	recFlags      = 0x16
	recBytesInUse = 0x18
	recBaseRef    = 0x20
	recHeaderLen  = 0x2A // the update sequence array starts here at the earliest (NTFS 1.2)

	recFlagInUse = 0x1
	recFlagDir   = 0x2 // the record holds a $I30 index: a directory

	refMask = 1<<48 - 1 // a file reference: a 48-bit record number and a 16-bit sequence number

	attrStandardInfo = 0x10
	attrAttrList     = 0x20
	attrData         = 0x80
	attrIndexRoot    = 0x90
	attrIndexAlloc   = 0xA0
	attrReparse      = 0xC0
	attrEnd          = 0xFFFFFFFF

	attrFlagCompressed = 0x00FF // ATTR_COMPRESSION_MASK
	attrFlagEncrypted  = 0x4000

	attrResidentLen = 0x18 // a resident attribute's header
	attrNonResLen   = 0x40 // a non-resident attribute's header, without the compressed size

	maxVCN = 1 << 48 // VCNs past this are corrupt: no stream holds 2^48 clusters
)

// run maps clusters [vcn, vcn+n) of an attribute to [lcn, lcn+n) on the
// volume; a sparse run has lcn -1.
type run struct {
	vcn, lcn, n int64
}

// attr is one attribute of an MFT record.
type attr struct {
	typ      uint32
	name     string
	flags    uint16
	id       uint16 // the attribute instance; from the attribute list for one in an extension record
	resident bool
	value    []byte // a resident attribute's value
	valOff   int    // where the value starts within the record

	// A non-resident attribute holds VCNs [startVCN, lastVCN] of its
	// stream; the sizes are those of the whole stream and are valid in
	// the piece that starts at VCN 0.
	startVCN, lastVCN             int64
	compUnit                      int // log2 of the clusters per compression unit
	allocSize, dataSize, initSize int64
	runs                          []run
}

// record is a parsed, fixed-up MFT record.
type record struct {
	num   uint64
	seq   uint16
	links uint16
	flags uint16
	base  uint64 // the base record's number, in an extension record
	ext   bool   // an extension record: its base reference is set
	attrs []attr
}

// corruptf makes an error about a damaged structure, wrapping
// fsys.ErrCorrupt; bad does the same for the inner parts of one, which
// their callers prefix.
func corruptf(format string, args ...any) error {
	return bad("ntfs: "+format, args...)
}

func bad(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, fsys.ErrCorrupt)...)
}

// fixup checks the update sequence of a multi-sector structure (an MFT
// or index record) and restores the bytes it guards, in place. what
// names the structure in errors.
func fixup(b []byte, what string) error {
	usa, count := int(ondisk.U16(b, recUSAOffset)), int(ondisk.U16(b, recUSACount))
	if len(b)%fixupStride != 0 || count != len(b)/fixupStride+1 || usa < 8 || usa%2 != 0 || usa+2*count > fixupStride-2 {
		return corruptf("%s: update sequence array of %d entries at byte %d for %d bytes", what, count, usa, len(b))
	}
	usn := ondisk.U16(b, usa)
	var err error
	for i := 1; i < count; i++ {
		pos := i*fixupStride - 2
		if ondisk.U16(b, pos) != usn && err == nil {
			err = corruptf("%s: update sequence mismatch in sector %d (a torn write)", what, i-1)
		}
		copy(b[pos:pos+2], b[usa+2*i:usa+2*i+2]) // restored even when torn, for ParseRecord
	}
	return err
}

// parseRecord fixes up and parses MFT record num; clusters bounds the
// LCNs of its run lists. It modifies b.
func parseRecord(b []byte, num uint64, clusters int64) (*record, error) {
	rec, err := parsePartial(b, num, clusters)
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// parsePartial is parseRecord that goes on past damage: it returns nil
// only for a record without the FILE signature; otherwise the header,
// the attributes before the first damaged one, and the first error (a
// torn update sequence is restored as far as it goes).
func parsePartial(b []byte, num uint64, clusters int64) (*record, error) {
	what := fmt.Sprintf("MFT record %d", num)
	if len(b) < fixupStride || string(b[:4]) != "FILE" {
		return nil, corruptf("%s: signature %q, not FILE", what, b[:min(4, len(b))])
	}
	ferr := fixup(b, what)
	rec := &record{
		num:   num,
		seq:   ondisk.U16(b, recSequence),
		links: ondisk.U16(b, recLinks),
		flags: ondisk.U16(b, recFlags),
		base:  ondisk.U64(b, recBaseRef) & refMask,
		ext:   ondisk.U64(b, recBaseRef) != 0, // the $MFT's extension records name record 0, sequence 1
	}
	used := int(ondisk.U32(b, recBytesInUse))
	off := int(ondisk.U16(b, recFirstAttr))
	if used > len(b) || off < recHeaderLen || off > used || off%8 != 0 {
		return rec, cmp.Or(ferr, corruptf("%s: first attribute at %d, %d bytes in use of %d", what, off, used, len(b)))
	}
	for off+4 <= used {
		typ := ondisk.U32(b, off)
		if typ == attrEnd {
			break
		}
		a, alen, err := parseAttr(b[off:used], clusters)
		if err != nil {
			return rec, cmp.Or(ferr, fmt.Errorf("ntfs: %s: attribute at byte %d: %w", what, off, err))
		}
		if a.resident {
			a.valOff += off
		}
		rec.attrs = append(rec.attrs, a)
		off += alen
	}
	return rec, ferr
}

// parseAttr parses the attribute at the start of b, which runs to the
// end of the record's bytes in use, and returns it with its length.
func parseAttr(b []byte, clusters int64) (attr, int, error) {
	a := attr{typ: ondisk.U32(b, 0)}
	alen := int(ondisk.U32(b, 4))
	if len(b) < 16 || alen < attrResidentLen || alen%8 != 0 || alen > len(b) {
		return a, 0, bad("type 0x%x: length %d of %d bytes left", a.typ, alen, len(b))
	}
	b = b[:alen]
	nameLen, nameOff := int(b[9]), int(ondisk.U16(b, 0x0A))
	if nameOff+2*nameLen > alen {
		return a, 0, bad("type 0x%x: name at %d overruns the attribute", a.typ, nameOff)
	}
	a.name = utf16String(b[nameOff : nameOff+2*nameLen])
	a.flags, a.id = ondisk.U16(b, 0x0C), ondisk.U16(b, 0x0E)
	if b[8] == 0 {
		a.resident = true
		vlen, voff := int(ondisk.U32(b, 0x10)), int(ondisk.U16(b, 0x14))
		if voff > alen || vlen > alen-voff {
			return a, 0, bad("type 0x%x: resident value of %d bytes at %d overruns %d", a.typ, vlen, voff, alen)
		}
		a.value, a.valOff = b[voff:voff+vlen], voff
		return a, alen, nil
	}
	if alen < attrNonResLen {
		return a, 0, bad("type 0x%x: non-resident header of %d bytes", a.typ, alen)
	}
	a.startVCN, a.lastVCN = int64(ondisk.U64(b, 0x10)), int64(ondisk.U64(b, 0x18))
	runOff, cu := int(ondisk.U16(b, 0x20)), int(ondisk.U16(b, 0x22))
	a.allocSize, a.dataSize, a.initSize = int64(ondisk.U64(b, 0x28)), int64(ondisk.U64(b, 0x30)), int64(ondisk.U64(b, 0x38))
	switch {
	case a.startVCN < 0 || a.startVCN > maxVCN || a.lastVCN < a.startVCN-1 || a.lastVCN >= maxVCN:
		return a, 0, bad("type 0x%x: VCNs %d-%d", a.typ, a.startVCN, a.lastVCN)
	case runOff < attrNonResLen || runOff > alen:
		return a, 0, bad("type 0x%x: run list at %d of %d bytes", a.typ, runOff, alen)
	case cu > 16: // 2^16 clusters: far beyond the 16 clusters NTFS uses
		return a, 0, bad("type 0x%x: compression unit of 2^%d clusters", a.typ, cu)
	case a.allocSize < 0 || a.dataSize < 0 || a.initSize < 0:
		return a, 0, bad("type 0x%x: negative sizes %d/%d/%d", a.typ, a.allocSize, a.dataSize, a.initSize)
	}
	a.compUnit = cu
	runs, err := decodeRuns(b[runOff:], a.startVCN, a.lastVCN, clusters)
	if err != nil {
		return a, 0, fmt.Errorf("type 0x%x: %w", a.typ, err)
	}
	a.runs = runs
	return a, alen, nil
}

// decodeRuns decodes a run list covering VCNs [start, last]: runs of a
// header byte whose low nibble is the size of the run's length and high
// nibble the size of its signed LCN delta (none for a sparse run), ended
// by a 0 byte. Every run must lie within the volume's clusters and the
// runs must cover exactly the VCNs the attribute header gives.
func decodeRuns(b []byte, start, last, clusters int64) ([]run, error) {
	out, err := decodePartial(b, start, last, clusters)
	if err != nil {
		return nil, err
	}
	if vcn := start + runsLen(out); vcn != last+1 {
		return nil, bad("run list: covers VCNs %d-%d, the header says %d-%d", start, vcn-1, start, last)
	}
	return out, nil
}

func runsLen(rs []run) int64 {
	var n int64
	for _, r := range rs {
		n += r.n
	}
	return n
}

// decodePartial decodes the runs of a run list from VCN start up to VCN
// last at most, returning those before any damage with the error.
func decodePartial(b []byte, start, last, clusters int64) ([]run, error) {
	var (
		out []run
		vcn = start
		lcn int64
	)
	for i := 0; i < len(b) && b[i] != 0; {
		ln, on := int(b[i]&0xF), int(b[i]>>4)
		if ln == 0 || ln > 8 || on > 8 || i+1+ln+on > len(b) {
			return out, bad("run list: malformed run header 0x%02x at byte %d", b[i], i)
		}
		var n uint64
		for k := ln - 1; k >= 0; k-- {
			n = n<<8 | uint64(b[i+1+k])
		}
		if n == 0 || n > uint64(last-vcn+1) {
			return out, bad("run list: run of %d clusters at VCN %d overruns the last VCN %d", n, vcn, last)
		}
		r := run{vcn: vcn, lcn: -1, n: int64(n)}
		if on > 0 {
			var delta int64
			for k := on - 1; k >= 0; k-- {
				delta = delta<<8 | int64(b[i+1+ln+k])
			}
			delta = delta << (64 - 8*on) >> (64 - 8*on) // sign-extend
			if delta > clusters || delta < -clusters {
				return out, bad("run list: LCN delta %d past the volume's %d clusters", delta, clusters)
			}
			lcn += delta
			if lcn < 0 || lcn > clusters-r.n {
				return out, bad("run list: clusters %d-%d past the volume's %d clusters", lcn, lcn+r.n-1, clusters)
			}
			r.lcn = lcn
		}
		out = append(out, r)
		vcn += r.n
		i += 1 + ln + on
	}
	return out, nil
}

// utf16String decodes little-endian UTF-16; an unpaired surrogate
// becomes U+FFFD.
func utf16String(b []byte) string {
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = ondisk.U16(b, 2*i)
	}
	return string(utf16.Decode(units))
}

// errNotInUse is wrapped for a record that holds no file.
var errNotInUse = errors.New("not in use")
