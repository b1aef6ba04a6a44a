package ntfs

import (
	"errors"
	"fmt"
	"io"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// Boot sector layout (the BIOS parameter block NTFS keeps).
const (
	bootOEM            = "NTFS    " // OEM ID at offset 3
	bootBytesPerSector = 0x0B
	bootSectorsPerClus = 0x0D
	bootTotalSectors   = 0x28
	bootMFTCluster     = 0x30
	bootClustersPerRec = 0x40

	maxCluster    = 2 << 20 // 2 MiB: the largest cluster Windows formats
	maxRecordSize = 64 << 10
	recordMFT     = 0
	recordRoot    = 5
	maxAttrList   = 1 << 20 // an $ATTRIBUTE_LIST is at most 256 KiB in practice; 1 MiB leaves room
)

// FS is an NTFS volume opened for reading.
type FS struct {
	r        io.ReaderAt
	size     int64
	cluster  int64
	clusters int64 // clusters the boot sector gives the volume
	recSize  int64
	mft      *stream // the $MFT's unnamed $DATA
	records  int64
}

var _ fsys.FS = (*FS)(nil)

// Open reads the boot sector of the NTFS volume r, of size bytes, and
// finds the MFT through record 0's own run lists (and its attribute
// list, when the MFT is too fragmented for one record).
func Open(r io.ReaderAt, size int64) (*FS, error) {
	boot := make([]byte, 512)
	if _, err := r.ReadAt(boot, 0); err != nil {
		return nil, fmt.Errorf("ntfs: reading the boot sector: %w", err)
	}
	fs := &FS{r: r, size: size}
	if err := fs.geometry(boot); err != nil {
		return nil, err
	}
	if err := fs.findMFT(ondisk.U64(boot, bootMFTCluster)); err != nil {
		return nil, err
	}
	return fs, nil
}

// sizeCode decodes the boot sector's clusters-per-record fields: a
// positive count of clusters, or a negative n for 2^-n bytes.
func sizeCode(c int8, cluster int64) int64 {
	if c > 0 {
		return int64(c) * cluster
	}
	if c > -31 {
		return 1 << -int(c)
	}
	return 0
}

func (fs *FS) geometry(boot []byte) error {
	g, err := ParseBoot(boot)
	if err != nil {
		return err
	}
	fs.cluster, fs.recSize, fs.clusters = g.Cluster, g.RecordSize, g.Clusters
	return nil
}

// readVolume reads len(p) bytes at off, all of them or an error.
func (fs *FS) readVolume(p []byte, off int64, what string) error {
	n, err := fs.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("ntfs: %s: reading %d bytes at %d: %w", what, len(p), off, err)
}

// findMFT reads record 0 at the boot sector's MFT cluster and builds the
// $MFT's data stream from its $DATA pieces. When the MFT needs an
// attribute list, the extension records holding later pieces are read
// through the pieces found so far, in VCN order, each once.
func (fs *FS) findMFT(lcn uint64) error {
	if lcn >= uint64(fs.clusters) {
		return corruptf("boot sector: $MFT at cluster %d of %d", lcn, fs.clusters)
	}
	buf := make([]byte, fs.recSize)
	if err := fs.readVolume(buf, int64(lcn)*fs.cluster, "$MFT record 0"); err != nil {
		return err
	}
	rec0, err := parseRecord(buf, recordMFT, fs.clusters)
	if err != nil {
		return err
	}
	pieces := dataPieces(rec0.attrs, attrData, "")
	if len(pieces) == 0 {
		return corruptf("MFT record 0: $MFT has no $DATA attribute")
	}
	fs.mft, err = newStream(fs, "$MFT", pieces, true)
	if err != nil {
		return err
	}
	if list, ok := findAttr(rec0.attrs, attrAttrList, ""); ok {
		entries, err := fs.attrList(list, "$MFT")
		if err != nil {
			return err
		}
		seen := map[uint64]bool{recordMFT: true}
		for _, e := range entries {
			if e.typ != attrData || e.name != "" || seen[e.ref] {
				continue
			}
			seen[e.ref] = true
			ext, err := fs.readRecord(e.ref)
			if err != nil {
				return fmt.Errorf("ntfs: $MFT's extension record: %w", err)
			}
			if !ext.ext || ext.base != recordMFT || ext.seq != e.seq {
				return corruptf("MFT record %d (sequence %d): named by $MFT's attribute list with sequence %d but its base is record %d", e.ref, ext.seq, e.seq, ext.base)
			}
			pieces = append(pieces, dataPieces(ext.attrs, attrData, "")...)
			if fs.mft, err = newStream(fs, "$MFT", pieces, true); err != nil {
				return err
			}
		}
	}
	mft, err := newStream(fs, "$MFT", pieces, false)
	if err != nil {
		return err
	}
	for _, r := range mft.runs {
		if r.lcn < 0 { // a sparse MFT would let a few bytes claim 2^48 records
			return corruptf("MFT record 0: $MFT has a sparse run at VCN %d", r.vcn)
		}
	}
	fs.mft, fs.records = mft, mft.size/fs.recSize
	return nil
}

// readRecord reads and parses MFT record num.
func (fs *FS) readRecord(num uint64) (*record, error) {
	if num >= uint64(fs.records) && fs.records > 0 || num > refMask {
		return nil, fmt.Errorf("ntfs: MFT record %d: past the MFT's %d records: %w", num, fs.records, fsys.ErrNotFound)
	}
	buf := make([]byte, fs.recSize)
	off := int64(num) * fs.recSize
	if off+fs.recSize > fs.mft.size {
		return nil, fmt.Errorf("ntfs: MFT record %d: past the $MFT data found so far: %w", num, fsys.ErrCorrupt)
	}
	if _, err := fs.mft.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("ntfs: reading MFT record %d: %w", num, err)
	}
	if ondisk.U32(buf, 0) == 0 {
		return nil, fmt.Errorf("ntfs: MFT record %d: %w: %w", num, errNotInUse, fsys.ErrNotFound)
	}
	return parseRecord(buf, num, fs.clusters)
}

// findAttr returns the first attribute of type typ named name.
func findAttr(attrs []attr, typ uint32, name string) (attr, bool) {
	for _, a := range attrs {
		if a.typ == typ && a.name == name {
			return a, true
		}
	}
	return attr{}, false
}

// dataPieces returns every attribute of type typ named name: the pieces
// of one stream.
func dataPieces(attrs []attr, typ uint32, name string) []attr {
	var out []attr
	for _, a := range attrs {
		if a.typ == typ && a.name == name {
			out = append(out, a)
		}
	}
	return out
}

// listEntry is one entry of an $ATTRIBUTE_LIST: where an attribute (or a
// piece of a non-resident one, from startVCN) lives.
type listEntry struct {
	typ      uint32
	name     string
	startVCN int64
	ref      uint64 // the record holding it
	seq      uint16 // that record's sequence number when the entry was written
	id       uint16
}

// attrList reads and parses an $ATTRIBUTE_LIST attribute.
func (fs *FS) attrList(a attr, what string) ([]listEntry, error) {
	b := a.value
	if !a.resident {
		s, err := newStream(fs, what+" $ATTRIBUTE_LIST", []attr{a}, false)
		if err != nil {
			return nil, err
		}
		if b, err = s.readAll(maxAttrList); err != nil {
			return nil, err
		}
	}
	return parseAttrList(b, what)
}

// parseAttrList parses an $ATTRIBUTE_LIST's value. On damage it returns
// the entries before it with the error.
func parseAttrList(b []byte, what string) ([]listEntry, error) {
	var out []listEntry
	for off := 0; off < len(b); {
		n := int(ondisk.U16(b, off+4))
		nameLen, nameOff := int(ondisk.U8(b, off+6)), int(ondisk.U8(b, off+7))
		if n < 0x1A || off+n > len(b) || nameOff+2*nameLen > n {
			return out, corruptf("%s $ATTRIBUTE_LIST: entry of %d bytes at byte %d", what, n, off)
		}
		e := listEntry{
			typ:      ondisk.U32(b, off),
			name:     utf16String(b[off+nameOff : off+nameOff+2*nameLen]),
			startVCN: int64(ondisk.U64(b, off+8)),
			ref:      ondisk.U64(b, off+0x10) & refMask,
			seq:      uint16(ondisk.U64(b, off+0x10) >> 48),
			id:       ondisk.U16(b, off+0x18),
		}
		out = append(out, e)
		off += (n + 7) &^ 7
	}
	return out, nil
}

// Type implements fsys.FS.
func (fs *FS) Type() string { return "ntfs" }

// Root implements fsys.FS: the root directory is MFT record 5.
func (fs *FS) Root() fsys.ID { return recordRoot }

// Records returns how many records the MFT holds (in use or not): the
// IDs a caller can ask for are below it.
func (fs *FS) Records() int64 { return fs.records }

// ClusterSize returns the volume's cluster size in bytes.
func (fs *FS) ClusterSize() int64 { return fs.cluster }
