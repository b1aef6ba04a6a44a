package ntfs

import (
	"errors"

	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// A read-only view of the on-disk structures, for a caller that maps a
// volume's bytes to their owners (internal/fsmap) rather than reads files
// through FS. Every parse here is the reader's own; unlike the reader it
// goes on past damage, returning what it could parse with the first error,
// so that the caller can warn and carry on.

// Attribute types the view's callers look for.
const (
	AttrAttributeList = attrAttrList
	AttrFileName      = 0x30
	AttrData          = attrData
)

// ErrNotRecord is wrapped by ParseRecord for bytes without the FILE
// signature: a record never used, or not a record at all.
var ErrNotRecord = errors.New("not an MFT record")

// Boot is the geometry a boot sector gives.
type Boot struct {
	Sector     int64  // bytes per sector
	Cluster    int64  // bytes per cluster
	RecordSize int64  // bytes per MFT record
	Sectors    int64  // sectors of the volume, without the backup boot sector after them
	Clusters   int64  // Sectors in clusters
	MFTCluster uint64 // where MFT record 0 lies (not checked against Clusters)
}

// ParseBoot checks and decodes a boot sector (at least 512 bytes).
func ParseBoot(boot []byte) (Boot, error) {
	if len(boot) < 512 || string(boot[3:11]) != bootOEM {
		return Boot{}, corruptf("boot sector: OEM ID %q, not %q", boot[3:min(11, len(boot))], bootOEM)
	}
	var g Boot
	g.Sector = int64(ondisk.U16(boot, bootBytesPerSector))
	if g.Sector < 256 || g.Sector > 4096 || g.Sector&(g.Sector-1) != 0 {
		return Boot{}, corruptf("boot sector: %d bytes per sector", g.Sector)
	}
	spc := int64(boot[bootSectorsPerClus])
	if spc > 0x80 {
		spc = 1 << -int(int8(boot[bootSectorsPerClus])) // clusters past 64 KiB: a negative power of two
	}
	g.Cluster = g.Sector * spc
	if spc == 0 || spc&(spc-1) != 0 || g.Cluster > maxCluster {
		return Boot{}, corruptf("boot sector: %d sectors per cluster", spc)
	}
	g.RecordSize = sizeCode(int8(boot[bootClustersPerRec]), g.Cluster)
	if g.RecordSize < fixupStride || g.RecordSize > maxRecordSize || g.RecordSize&(g.RecordSize-1) != 0 {
		return Boot{}, corruptf("boot sector: MFT record size %d", g.RecordSize)
	}
	g.Sectors = int64(ondisk.U64(boot, bootTotalSectors))
	if g.Sectors <= 0 || g.Sectors > maxSize/g.Sector {
		return Boot{}, corruptf("boot sector: %d sectors", g.Sectors)
	}
	g.Clusters = g.Sectors / spc
	g.MFTCluster = ondisk.U64(boot, bootMFTCluster)
	return g, nil
}

// Record is one MFT record as it lies on disk.
type Record struct {
	Num   uint64
	Seq   uint16 // the sequence number a reference to it must carry
	InUse bool
	Dir   bool // it holds a $I30 index
	// Base is the base record's number in an extension record (one whose
	// header names a base record); Num in a base record.
	Base      uint64
	Extension bool
	Attrs     []Attr // in record order
}

// Attr is one attribute of a record.
type Attr struct {
	Type     uint32
	Name     string // "" for an unnamed attribute
	Resident bool
	// ValueOff and ValueLen place a resident value within the record.
	ValueOff, ValueLen int
	// A non-resident attribute's piece maps VCNs from StartVCN with Runs;
	// DataSize is the stream's size, valid in the piece at VCN 0.
	StartVCN int64
	DataSize int64
	Runs     []Run

	value []byte
}

// Run maps clusters [VCN, VCN+Len) of an attribute to [LCN, LCN+Len) of
// the volume; a sparse run has LCN -1.
type Run struct{ VCN, LCN, Len int64 }

// FileName is what a $FILE_NAME attribute says.
type FileName struct {
	Parent    uint64 // the parent directory's record
	ParentSeq uint16 // and its sequence number
	Name      string // as stored, UTF-16 decoded (unpaired surrogates become U+FFFD)
	DOS       bool   // a name in the DOS 8.3 namespace only
}

// FileName decodes a resident $FILE_NAME attribute's value.
func (a Attr) FileName() (FileName, bool) {
	v := a.value
	if a.Type != AttrFileName || !a.Resident || len(v) < fnName {
		return FileName{}, false
	}
	ref := ondisk.U64(v, 0)
	n := min(2*int(v[fnNameLen]), len(v)-fnName)
	return FileName{Parent: ref & refMask, ParentSeq: uint16(ref >> 48), Name: utf16String(v[fnName : fnName+n]), DOS: v[fnNamespace] == nsDOS}, true
}

// ParseRecord fixes up b, the bytes of MFT record num, in place and
// parses it; clusters bounds the LCNs of its run lists. A record without
// the FILE signature gives nil and an error wrapping ErrNotRecord. Past
// that it always gives the record's header and the attributes before
// the first damaged one, with the first error: a torn or malformed
// update sequence, a bad header or a damaged attribute.
func ParseRecord(b []byte, num uint64, clusters int64) (*Record, error) {
	r, err := parsePartial(b, num, clusters)
	if r == nil {
		return nil, errors.Join(ErrNotRecord, err)
	}
	out := &Record{
		Num: r.num, Seq: r.seq, InUse: r.flags&recFlagInUse != 0, Dir: r.flags&recFlagDir != 0,
		Base: r.num, Extension: r.ext, Attrs: make([]Attr, 0, len(r.attrs)),
	}
	if r.ext {
		out.Base = r.base
	}
	for _, a := range r.attrs {
		v := Attr{Type: a.typ, Name: a.name, Resident: a.resident, StartVCN: a.startVCN, DataSize: a.dataSize, value: a.value}
		if a.resident {
			v.ValueOff, v.ValueLen = a.valOff, len(a.value)
		}
		v.Runs = exportRuns(a.runs)
		out.Attrs = append(out.Attrs, v)
	}
	return out, err
}

// ListEntry is one entry of an $ATTRIBUTE_LIST: the record that holds an
// attribute, or the piece of a non-resident one from StartVCN.
type ListEntry struct {
	Type     uint32
	Name     string
	StartVCN int64
	Record   uint64
	Seq      uint16 // the record's sequence number when the entry was written
}

// ParseAttrList parses an $ATTRIBUTE_LIST's value; what names its owner
// in errors. On damage it returns the entries before it with the error.
func ParseAttrList(b []byte, what string) ([]ListEntry, error) {
	es, err := parseAttrList(b, what)
	out := make([]ListEntry, 0, len(es))
	for _, e := range es {
		out = append(out, ListEntry{Type: e.typ, Name: e.name, StartVCN: e.startVCN, Record: e.ref, Seq: e.seq})
	}
	return out, err
}

// Value returns a resident attribute's value; it aliases the record's
// bytes.
func (a Attr) Value() []byte { return a.value }

// DecodeRuns decodes a run list from VCN start, with LCNs bounded by
// clusters: the decoder the record parse uses, without the last VCN an
// attribute header gives. On damage it returns the runs before it with
// the error.
func DecodeRuns(b []byte, start, clusters int64) ([]Run, error) {
	if start < 0 || start > maxVCN {
		return nil, bad("run list: starts at VCN %d", start)
	}
	rs, err := decodePartial(b, start, maxVCN-1, clusters)
	return exportRuns(rs), err
}

func exportRuns(rs []run) []Run {
	out := make([]Run, 0, len(rs))
	for _, r := range rs {
		out = append(out, Run{VCN: r.vcn, LCN: r.lcn, Len: r.n})
	}
	return out
}
