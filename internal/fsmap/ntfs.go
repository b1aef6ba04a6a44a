package fsmap

import (
	"github.com/ebsimager/ebsimager/internal/ondisk"

	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// NTFS on-disk layout, from the Linux-NTFS project's documentation of
// the format (ntfs-3g's layout.h): the boot sector's BIOS parameter block,
// MFT records, attribute headers and run lists.
const (
	ntfsOEM             = "NTFS    " // boot sector OEM ID at offset 3
	bpbBytesPerSector   = 0x0B
	bpbSectorsPerClus   = 0x0D
	bpbTotalSectors     = 0x28
	bpbMFTCluster       = 0x30
	bpbClustersPerRec   = 0x40
	fixupStride         = 512 // NTFS_BLOCK_SIZE: the update sequence guards every 512 bytes
	recUSAOffset        = 0x04
	recUSACount         = 0x06
	recSequence         = 0x10
	recFirstAttr        = 0x14
	recFlags            = 0x16
	recBytesInUse       = 0x18
	recBaseRef          = 0x20
	recFlagInUse        = 0x1
	recFlagDir          = 0x2
	attrAttributeList   = 0x20
	attrFileName        = 0x30
	attrData            = 0x80
	attrEnd             = 0xFFFFFFFF
	attrResidentHeader  = 0x18 // a resident attribute's header is 24 bytes
	attrNonResHeader    = 0x40 // a non-resident attribute's header is at least 64 bytes
	fnParent            = 0x00
	fnNameLength        = 0x40
	fnNamespace         = 0x41
	fnName              = 0x42
	nsDOS               = 2         // a FILE_NAME in the DOS 8.3 namespace only
	refRecordMask       = 1<<48 - 1 // a file reference: 48-bit record number, 16-bit sequence number
	mftRecordMFT        = 0
	mftRecordBoot       = 7
	mftRecordRoot       = 5
	mftFirstUserRecord  = 16      // records 0-15 are reserved for the system files
	ntfsPathDepth       = 4096    // deeper parent chains are loops in damaged volumes
	maxAttrListBytes    = 1 << 20 // an $ATTRIBUTE_LIST far beyond any $MFT's
	maxBootstrapRecords = 64      // rounds of $MFT extension records followed; each maps more of the MFT
)

func isNTFS(head []byte) bool { return string(head[3:11]) == ntfsOEM }

// vrun maps clusters [vcn, vcn+n) of an attribute to [lcn, lcn+n) on
// the volume; a sparse run has no clusters.
type vrun struct {
	vcn, lcn, n int64
	sparse      bool
}

type ntfsAttr struct {
	typ            uint32
	off, length    int // within the record
	nonResident    bool
	named          bool
	valOff, valLen int // resident value, within the record
	startVCN       int64
	realSize       int64
	runs           []vrun
}

type ntfsName struct {
	parent uint64
	pseq   uint16
	name   string
	ns     uint8
}

type ntfsInfo struct {
	owner int
	inUse bool
	dir   bool
	seq   uint16
	names []ntfsName
}

type ntfsFS struct {
	b  *builder
	rd *reader

	sector, cluster, recSize int64
	clusters                 int64
	mft                      []vrun
	records                  int64
	info                     map[uint64]*ntfsInfo
	paths                    map[uint64]string
}

func buildNTFS(rd *reader, keep []Range) (*Map, error) {
	boot, err := rd.read(0, 512)
	if err != nil {
		return nil, fmt.Errorf("reading the NTFS boot sector: %w", err)
	}
	n := &ntfsFS{rd: rd, info: map[uint64]*ntfsInfo{}, paths: map[uint64]string{}}
	if err := n.bootSector(boot, keep); err != nil {
		return nil, err
	}
	if err := n.bootstrap(); err != nil {
		return nil, err
	}
	if err := n.walk(); err != nil {
		return nil, err
	}
	if err := n.fillNames(); err != nil {
		return nil, err
	}
	n.roles()
	n.name()
	return n.b.finish()
}

func (n *ntfsFS) bootSector(boot []byte, keep []Range) error {
	n.sector = int64(ondisk.U16(boot, bpbBytesPerSector))
	if n.sector < 256 || n.sector > 4096 || n.sector&(n.sector-1) != 0 {
		return fmt.Errorf("NTFS boot sector: %d bytes per sector", n.sector)
	}
	spc := int64(boot[bpbSectorsPerClus])
	if spc > 0x80 {
		spc = 1 << (256 - spc) // values above 128 are negative powers of two
	}
	n.cluster = n.sector * spc
	if spc == 0 || n.cluster > 2<<20 || spc&(spc-1) != 0 { // clusters reach 2 MiB at most
		return fmt.Errorf("NTFS boot sector: %d sectors per cluster", spc)
	}
	if c := int8(boot[bpbClustersPerRec]); c > 0 {
		n.recSize = int64(c) * n.cluster
	} else if c > -31 {
		n.recSize = 1 << -c
	}
	if n.recSize < fixupStride || n.recSize > 64<<10 || n.recSize&(n.recSize-1) != 0 {
		return fmt.Errorf("NTFS boot sector: MFT record size %d", n.recSize)
	}
	total := int64(ondisk.U64(boot, bpbTotalSectors))
	if total <= 0 || total > (1<<62)/n.sector {
		return fmt.Errorf("NTFS boot sector: %d sectors", total)
	}
	n.clusters = total / spc
	size := (total + 1) * n.sector // the backup boot sector follows the counted sectors
	n.b = newBuilder("ntfs", min(size, n.rd.size), n.cluster, keep)
	if total*n.sector > n.rd.size {
		n.b.warnf("the file system says it spans %d bytes; the volume has %d: structures past the end are skipped", total*n.sector, n.rd.size)
		n.clusters = n.rd.size / n.cluster
	}
	mftLCN := ondisk.U64(boot, bpbMFTCluster)
	if mftLCN >= uint64(n.clusters) {
		return fmt.Errorf("NTFS boot sector: $MFT at cluster %d of %d", mftLCN, n.clusters)
	}
	n.mft = []vrun{{vcn: 0, lcn: int64(mftLCN), n: max(1, n.recSize/n.cluster)}} // enough to read record 0
	if total*n.sector+n.sector <= n.rd.size {
		n.b.add(total*n.sector, n.sector, Metadata, n.ownerOf(mftRecordBoot)) // the backup boot sector
	}
	return nil
}

// fixup checks and undoes the update sequence of a record in place.
func fixup(rec []byte) error {
	usa, count := int(ondisk.U16(rec, recUSAOffset)), int(ondisk.U16(rec, recUSACount))
	if count < 2 || usa < 8 || usa+2*count > len(rec) || (count-1)*fixupStride > len(rec) {
		return errors.New("malformed update sequence array")
	}
	usn := ondisk.U16(rec, usa)
	var bad bool
	for i := 1; i < count; i++ {
		pos := i*fixupStride - 2
		if ondisk.U16(rec, pos) != usn {
			bad = true
		}
		copy(rec[pos:pos+2], rec[usa+2*i:usa+2*i+2])
	}
	if bad {
		return errors.New("update sequence mismatch: torn write")
	}
	return nil
}

// attrs parses the attributes of a fixed-up record.
func (n *ntfsFS) attrs(recNo int64, rec []byte) []ntfsAttr {
	used := min(int(ondisk.U32(rec, recBytesInUse)), len(rec))
	var out []ntfsAttr
	for off := int(ondisk.U16(rec, recFirstAttr)); off+8 <= used; {
		typ := ondisk.U32(rec, off)
		if typ == attrEnd {
			break
		}
		alen := int(ondisk.U32(rec, off+4))
		if alen < 16 || alen > used-off {
			n.b.warnf("MFT record %d: attribute at byte %d has length %d", recNo, off, alen)
			break
		}
		a := ntfsAttr{typ: typ, off: off, length: alen, nonResident: rec[off+8] != 0, named: rec[off+9] != 0}
		body := rec[off : off+alen]
		if !a.nonResident {
			a.valLen, a.valOff = int(ondisk.U32(body, 0x10)), int(ondisk.U16(body, 0x14))
			if alen < attrResidentHeader || a.valOff > alen || a.valLen > alen-a.valOff {
				n.b.warnf("MFT record %d: resident attribute 0x%x overruns its %d bytes", recNo, typ, alen)
				break
			}
			a.valOff += off
		} else {
			runOff := int(ondisk.U16(body, 0x20))
			if alen < attrNonResHeader || runOff > alen {
				n.b.warnf("MFT record %d: non-resident attribute 0x%x is malformed", recNo, typ)
				break
			}
			a.startVCN = int64(ondisk.U64(body, 0x10))
			a.realSize = int64(ondisk.U64(body, 0x30))
			runs, err := decodeRuns(body[runOff:], a.startVCN)
			if err != nil {
				n.b.warnf("MFT record %d: attribute 0x%x: %v", recNo, typ, err)
			}
			a.runs = runs
		}
		out = append(out, a)
		off += alen
	}
	return out
}

// decodeRuns decodes a run list: a header byte whose low nibble is the
// size of the run length and high nibble the size of the signed LCN
// delta (0 for a sparse run), ending with a 0 byte. It returns the runs
// decoded before any error.
func decodeRuns(b []byte, vcn int64) ([]vrun, error) {
	var (
		out []vrun
		lcn int64
	)
	if vcn < 0 {
		return nil, fmt.Errorf("run list starts at VCN %d", vcn)
	}
	for i := 0; i < len(b) && b[i] != 0; {
		ln, on := int(b[i]&0xF), int(b[i]>>4)
		if ln == 0 || ln > 8 || on > 8 || i+1+ln+on > len(b) {
			return out, fmt.Errorf("malformed run list at byte %d", i)
		}
		var length uint64
		for k := ln - 1; k >= 0; k-- {
			length = length<<8 | uint64(b[i+1+k])
		}
		if length == 0 || length > 1<<48 {
			return out, fmt.Errorf("run of %d clusters", length)
		}
		r := vrun{vcn: vcn, n: int64(length), sparse: on == 0}
		if on > 0 {
			var delta int64
			for k := on - 1; k >= 0; k-- {
				delta = delta<<8 | int64(b[i+1+ln+k])
			}
			delta <<= 64 - 8*on // sign-extend
			delta >>= 64 - 8*on
			lcn += delta
			if lcn < 0 {
				return out, fmt.Errorf("run at negative cluster %d", lcn)
			}
			r.lcn = lcn
		}
		out = append(out, r)
		vcn += r.n
		if vcn < 0 {
			return out, errors.New("run list overflows")
		}
		i += 1 + ln + on
	}
	return out, nil
}

// piece is a part of a virtual range: physical bytes, or a hole.
type piece struct {
	off, n int64
	hole   bool
}

// mapMFT maps bytes [v, v+size) of the $MFT's data to the volume.
func (n *ntfsFS) mapMFT(v, size int64) []piece {
	var out []piece
	i := sort.Search(len(n.mft), func(i int) bool { return (n.mft[i].vcn+n.mft[i].n)*n.cluster > v })
	for ; size > 0 && i < len(n.mft); i++ {
		r := n.mft[i]
		start, end := r.vcn*n.cluster, (r.vcn+r.n)*n.cluster
		if v < start {
			gap := min(start-v, size)
			out = append(out, piece{n: gap, hole: true})
			v, size = v+gap, size-gap
			if size == 0 {
				break
			}
		}
		take := min(end-v, size)
		out = append(out, piece{off: r.lcn*n.cluster + (v - start), n: take, hole: r.sparse})
		v, size = v+take, size-take
	}
	if size > 0 {
		out = append(out, piece{n: size, hole: true})
	}
	return out
}

// readMFT reads bytes [v, v+size) of the $MFT; holes read as zeros.
func (n *ntfsFS) readMFT(v, size int64) ([]byte, error) {
	buf := make([]byte, 0, size)
	for _, p := range n.mapMFT(v, size) {
		if p.hole {
			buf = append(buf, make([]byte, p.n)...)
			continue
		}
		b, err := n.rd.read(p.off, int(p.n))
		if err != nil {
			return nil, err
		}
		buf = append(buf, b...)
	}
	return buf, nil
}

// addMFT records that owner holds bytes [v, v+size) of the $MFT's data.
func (n *ntfsFS) addMFT(v, size int64, role Role, owner func() int) {
	for _, p := range n.mapMFT(v, size) {
		if !p.hole {
			n.b.add(p.off, p.n, role, owner)
		}
	}
}

// readRecord reads and fixes up MFT record r; ok is false for a record
// that is not a FILE record.
func (n *ntfsFS) readRecord(r int64) (rec []byte, ok bool, err error) {
	rec, err = n.readMFT(r*n.recSize, n.recSize)
	if err != nil {
		return nil, false, err
	}
	if string(rec[:4]) != "FILE" {
		return rec, false, nil
	}
	if err := fixup(rec); err != nil {
		n.b.warnf("MFT record %d: %v", r, err)
	}
	return rec, true, nil
}

// bootstrap maps the $MFT's own data from record 0, following its
// $ATTRIBUTE_LIST into extension records when the MFT is fragmented.
func (n *ntfsFS) bootstrap() error {
	rec, ok, err := n.readRecord(mftRecordMFT)
	if err != nil {
		return fmt.Errorf("reading $MFT record 0: %w", err)
	}
	if !ok {
		return errors.New("NTFS: $MFT record 0 is not a FILE record")
	}
	var (
		runs []vrun
		real int64
		list []byte
	)
	take := func(attrs []ntfsAttr) {
		for _, a := range attrs {
			if a.typ == attrData && !a.named && a.nonResident {
				runs = append(runs, a.runs...)
				if a.startVCN == 0 {
					real = a.realSize
				}
			}
		}
	}
	attrs := n.attrs(mftRecordMFT, rec)
	take(attrs)
	for _, a := range attrs {
		if a.typ != attrAttributeList {
			continue
		}
		if !a.nonResident {
			list = rec[a.valOff : a.valOff+a.valLen]
			continue
		}
		for _, r := range a.runs {
			if r.sparse || r.n*n.cluster > maxAttrListBytes-int64(len(list)) {
				continue
			}
			b, err := n.rd.read(r.lcn*n.cluster, int(r.n*n.cluster))
			if fatal(err) {
				return fmt.Errorf("reading $MFT's attribute list: %w", err)
			}
			list = append(list, b...)
		}
	}
	n.setMFT(runs)
	if len(list) > 0 {
		seen := map[uint64]bool{mftRecordMFT: true}
		for range maxBootstrapRecords {
			progress := false
			for off := 0; off+0x1A <= len(list); {
				typ, l := ondisk.U32(list, off), int(ondisk.U16(list, off+4))
				if l < 0x1A || off+l > len(list) {
					break
				}
				ref := ondisk.U64(list, off+0x10) & refRecordMask
				if typ == attrData && list[off+6] == 0 && !seen[ref] {
					if ext, ok, err := n.readRecord(int64(ref)); err == nil && ok {
						seen[ref], progress = true, true
						take(n.attrs(int64(ref), ext))
						n.setMFT(runs)
					} else if fatal(err) {
						return fmt.Errorf("reading $MFT extension record %d: %w", ref, err)
					}
				}
				off += l
			}
			if !progress {
				break
			}
		}
	}
	if len(n.mft) == 0 {
		return errors.New("NTFS: $MFT has no data runs")
	}
	last := n.mft[len(n.mft)-1]
	mapped := (last.vcn + last.n) * n.cluster
	if real <= 0 || real > mapped {
		n.b.warnf("$MFT data size %d, %d bytes mapped", real, mapped)
		real = mapped
	}
	n.records = min(real, n.rd.size) / n.recSize
	return nil
}

// setMFT keeps the runs that lie on the volume, sorted by VCN.
func (n *ntfsFS) setMFT(runs []vrun) {
	n.mft = n.mft[:0]
	for _, r := range runs {
		if r.sparse || r.lcn+r.n <= n.clusters {
			n.mft = append(n.mft, r)
		}
	}
	slices.SortFunc(n.mft, func(a, b vrun) int { return cmpInt64(a.vcn, b.vcn) })
}

// ownerOf returns a maker of base record r's owner, which is added on
// first use.
func (n *ntfsFS) ownerOf(r uint64) func() int {
	return func() int {
		in := n.infoOf(r)
		if in.owner < 0 {
			rec := Range{}
			if p := n.mapMFT(int64(r)*n.recSize, n.recSize); len(p) > 0 && !p[0].hole {
				rec = Range{p[0].off, p[0].n}
			}
			in.owner = n.b.owner(Owner{ID: r, Kind: KindFile, Record: rec})
		}
		return in.owner
	}
}

// infoOf returns what is known of base record r, adding an entry.
func (n *ntfsFS) infoOf(r uint64) *ntfsInfo {
	in := n.info[r]
	if in == nil {
		in = &ntfsInfo{owner: -1}
		n.info[r] = in
	}
	return in
}

// walk reads every MFT record and adds its extents.
func (n *ntfsFS) walk() error {
	const chunk = 1 << 20 // read the MFT a MiB at a time
	per := max(chunk/n.recSize, 1)
	for first := int64(0); first < n.records; first += per {
		count := min(per, n.records-first)
		buf, err := n.readMFT(first*n.recSize, count*n.recSize)
		if err != nil {
			if fatal(err) {
				return fmt.Errorf("reading the MFT: %w", err)
			}
			n.b.warnf("MFT records %d-%d: %v", first, first+count-1, err)
			continue
		}
		for k := range count {
			if err := n.record(first+k, buf[k*n.recSize:(k+1)*n.recSize]); err != nil {
				return err
			}
		}
	}
	// The MFT's allocation past its last record is the $MFT's own.
	last := n.mft[len(n.mft)-1]
	if end := (last.vcn + last.n) * n.cluster; end > n.records*n.recSize {
		n.addMFT(n.records*n.recSize, end-n.records*n.recSize, Metadata, n.ownerOf(mftRecordMFT))
	}
	return nil
}

// roles makes everything system files and the $Extend tree hold
// metadata, whatever the attribute.
func (n *ntfsFS) roles() {
	structure := map[int]bool{}
	for r, in := range n.info {
		if in.owner >= 0 && n.isStructure(r) {
			structure[in.owner] = true
		}
	}
	for i := range n.b.m.extents {
		if e := &n.b.m.extents[i]; structure[e.Owner] {
			e.Role = Metadata
		}
	}
}

func (n *ntfsFS) record(r int64, rec []byte) error {
	v := r * n.recSize
	if string(rec[:4]) != "FILE" {
		n.addMFT(v, n.recSize, Metadata, n.ownerOf(mftRecordMFT)) // a free record
		return n.b.err
	}
	if err := fixup(rec); err != nil {
		n.b.warnf("MFT record %d: %v", r, err)
	}
	flags := ondisk.U16(rec, recFlags)
	if flags&recFlagInUse == 0 {
		n.addMFT(v, n.recSize, Metadata, n.ownerOf(mftRecordMFT))
		return n.b.err
	}
	ref := ondisk.U64(rec, recBaseRef) // zero in a base record; else the base's reference
	base, isBase := ref&refRecordMask, ref == 0
	if isBase {
		base = uint64(r)
	}
	owner := n.ownerOf(base)
	attrs := n.attrs(r, rec)
	// The record is its owner's metadata, except resident data; the
	// last two bytes of every 512 hold the update sequence on disk.
	pos := int64(0)
	for _, a := range attrs {
		switch {
		case a.typ == attrData && !a.nonResident && a.valLen > 0:
			start, end := int64(a.valOff), int64(a.valOff+a.valLen)
			n.addMFT(v+pos, start-pos, Metadata, owner)
			for s := start; s < end; {
				slot := (s/fixupStride+1)*fixupStride - 2
				e := min(end, slot)
				n.addMFT(v+s, e-s, Data, owner)
				if e == slot {
					n.addMFT(v+slot, min(2, end-slot), Metadata, owner)
				}
				s = min(end, slot+2)
			}
			pos = end
		case a.nonResident:
			if base == mftRecordMFT && a.typ == attrData && !a.named {
				continue // the MFT's data: each record is mapped to its own file
			}
			role := Metadata
			if a.typ == attrData {
				role = Data
			}
			for _, run := range a.runs {
				if run.sparse {
					continue
				}
				if run.lcn+run.n > n.clusters {
					n.b.warnf("MFT record %d: run of %d clusters at %d is outside the volume", r, run.n, run.lcn)
					continue
				}
				n.b.add(run.lcn*n.cluster, run.n*n.cluster, role, owner)
			}
		}
	}
	n.addMFT(v+pos, n.recSize-pos, Metadata, owner)
	// Names are kept for mapped files and for every directory, which
	// may be on a mapped file's path.
	dir := flags&recFlagDir != 0
	if isBase && (dir || n.info[base] != nil) {
		in := n.infoOf(base)
		in.inUse, in.dir, in.seq = true, dir, ondisk.U16(rec, recSequence)
		in.names = append(in.names, n.names(attrs, rec)...)
	}
	return n.b.err
}

// names returns the $FILE_NAME attributes of a record.
func (n *ntfsFS) names(attrs []ntfsAttr, rec []byte) []ntfsName {
	var out []ntfsName
	for _, a := range attrs {
		if a.typ != attrFileName || a.nonResident || a.valLen < fnName {
			continue
		}
		val := rec[a.valOff : a.valOff+a.valLen]
		ref := ondisk.U64(val, fnParent)
		out = append(out, ntfsName{
			parent: ref & refRecordMask, pseq: uint16(ref >> 48),
			name: utf16Name(val[fnName:], int(val[fnNameLength])), ns: val[fnNamespace],
		})
	}
	return out
}

// fillNames reads the base records of mapped files whose base record was
// read before anything of theirs was found to be mapped.
func (n *ntfsFS) fillNames() error {
	for r, in := range n.info {
		if in.owner < 0 || in.inUse || r == mftRecordMFT {
			continue
		}
		rec, ok, err := n.readRecord(int64(r))
		if fatal(err) {
			return fmt.Errorf("reading MFT record %d: %w", r, err)
		}
		if !ok || ondisk.U16(rec, recFlags)&recFlagInUse == 0 || ondisk.U64(rec, recBaseRef) != 0 {
			continue
		}
		flags := ondisk.U16(rec, recFlags)
		in.inUse, in.dir, in.seq = true, flags&recFlagDir != 0, ondisk.U16(rec, recSequence)
		in.names = n.names(n.attrs(int64(r), rec), rec)
	}
	return nil
}

func (n *ntfsFS) isStructure(r uint64) bool {
	if r == mftRecordRoot {
		return false
	}
	if r < mftFirstUserRecord {
		return true
	}
	p, _ := n.path(r, 0, map[uint64]bool{})
	return strings.HasPrefix(p, "/$Extend/")
}

// best returns the name to show: a Win32 or POSIX name before a DOS one,
// then the lowest parent and name, so the choice is stable.
func (in *ntfsInfo) best() (ntfsName, bool) {
	if in == nil || len(in.names) == 0 {
		return ntfsName{}, false
	}
	names := slices.Clone(in.names)
	slices.SortFunc(names, func(a, b ntfsName) int {
		if (a.ns == nsDOS) != (b.ns == nsDOS) {
			if a.ns == nsDOS {
				return 1
			}
			return -1
		}
		if a.parent != b.parent {
			return cmpInt64(int64(a.parent), int64(b.parent))
		}
		return strings.Compare(a.name, b.name)
	})
	return names[0], true
}

func (n *ntfsFS) path(r uint64, depth int, visiting map[uint64]bool) (string, bool) {
	if r == mftRecordRoot {
		return "/", true
	}
	if p, ok := n.paths[r]; ok {
		return p, p != ""
	}
	nm, ok := n.best(r)
	if !ok || depth > ntfsPathDepth || visiting[r] || nm.name == "" || nm.name == "." || nm.name == ".." {
		return "", false
	}
	visiting[r] = true
	defer delete(visiting, r)
	orphan := fmt.Sprintf("<orphan %d>/%s", nm.parent, nm.name)
	parent := n.info[nm.parent]
	if nm.parent == r || parent == nil || !parent.inUse || (nm.pseq != 0 && parent.seq != nm.pseq) {
		n.paths[r] = orphan
		return orphan, true
	}
	pp, ok := n.path(nm.parent, depth+1, visiting)
	if !ok {
		return orphan, true
	}
	p := pp + "/" + nm.name
	if pp == "/" {
		p = "/" + nm.name
	}
	n.paths[r] = p
	return p, true
}

func (n *ntfsFS) best(r uint64) (ntfsName, bool) { return n.info[r].best() }

// name gives every owner its path or structure name and kind.
func (n *ntfsFS) name() {
	for r, in := range n.info {
		if in.owner < 0 {
			continue
		}
		o := &n.b.m.owners[in.owner]
		p, ok := n.path(r, 0, map[uint64]bool{})
		switch {
		case r == mftRecordMFT:
			o.Name, o.Kind = "$MFT", KindStructure
		case n.isStructure(r):
			o.Kind = KindStructure
			o.Name = strings.TrimPrefix(p, "/")
			if !ok {
				o.Name = fmt.Sprintf("$MFT record %d", r)
			}
		case !ok:
			o.Name = fmt.Sprintf("<record %d>", r)
		default:
			o.Name = p
		}
		if o.Kind != KindStructure && in.dir {
			o.Kind = KindDir
		}
	}
}
