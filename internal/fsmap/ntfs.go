package fsmap

import (
	"github.com/ebsimager/ebsimager/internal/fsys/ntfs"

	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The NTFS half parses nothing itself: the boot sector, MFT records with
// their fixups and attributes, run lists and the $MFT's attribute list
// are internal/fsys/ntfs's, read through its record view (ParseBoot,
// ParseRecord, ParseAttrList), which goes on past damage so that it
// becomes a warning here. What is fsmap's own is where those records and
// runs lie on the volume and whom each byte belongs to.
const (
	ntfsOEM             = "NTFS    " // boot sector OEM ID at offset 3
	fixupStride         = 512        // the update sequence guards the last 2 bytes of every 512
	mftRecordMFT        = 0
	mftRecordBoot       = 7
	mftRecordRoot       = 5
	mftFirstUserRecord  = 16      // records 0-15 are reserved for the system files
	ntfsPathDepth       = 4096    // deeper parent chains are loops in damaged volumes
	maxAttrListBytes    = 1 << 20 // an $ATTRIBUTE_LIST far beyond any $MFT's
	maxBootstrapRecords = 64      // rounds of $MFT extension records followed; each maps more of the MFT
)

func isNTFS(head []byte) bool { return string(head[3:11]) == ntfsOEM }

type ntfsName struct {
	parent uint64
	pseq   uint16
	name   string
	dos    bool // in the DOS 8.3 namespace only
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

	cluster, recSize int64
	clusters         int64 // on the volume
	fsClusters       int64 // as the boot sector says, bounding run lists
	mft              []ntfs.Run
	records          int64
	info             map[uint64]*ntfsInfo
	paths            map[uint64]string
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
	g, err := ntfs.ParseBoot(boot)
	if err != nil {
		return fmt.Errorf("mapping NTFS: %w", err)
	}
	n.cluster, n.recSize, n.clusters, n.fsClusters = g.Cluster, g.RecordSize, g.Clusters, g.Clusters
	size := (g.Sectors + 1) * g.Sector // the backup boot sector follows the counted sectors
	n.b = newBuilder("ntfs", min(size, n.rd.size), n.cluster, keep)
	end := g.Sectors * g.Sector
	if end > n.rd.size {
		n.b.warnf("the file system says it spans %d bytes; the volume has %d: structures past the end are skipped", end, n.rd.size)
		n.clusters = n.rd.size / n.cluster
	}
	if g.MFTCluster >= uint64(n.clusters) {
		return fmt.Errorf("NTFS boot sector: $MFT at cluster %d of %d", g.MFTCluster, n.clusters)
	}
	n.mft = []ntfs.Run{{VCN: 0, LCN: int64(g.MFTCluster), Len: max(1, n.recSize/n.cluster)}} // enough to read record 0
	if end+g.Sector <= n.rd.size {
		n.b.add(end, g.Sector, Metadata, n.ownerOf(mftRecordBoot)) // the backup boot sector
	}
	return nil
}

// piece is a part of a virtual range: physical bytes, or a hole.
type piece struct {
	off, n int64
	hole   bool
}

// mapMFT maps bytes [v, v+size) of the $MFT's data to the volume.
func (n *ntfsFS) mapMFT(v, size int64) []piece {
	var out []piece
	i := sort.Search(len(n.mft), func(i int) bool { return (n.mft[i].VCN+n.mft[i].Len)*n.cluster > v })
	for ; size > 0 && i < len(n.mft); i++ {
		r := n.mft[i]
		start, end := r.VCN*n.cluster, (r.VCN+r.Len)*n.cluster
		if v < start {
			gap := min(start-v, size)
			out = append(out, piece{n: gap, hole: true})
			v, size = v+gap, size-gap
			if size == 0 {
				break
			}
		}
		take := min(end-v, size)
		out = append(out, piece{off: r.LCN*n.cluster + (v - start), n: take, hole: r.LCN < 0})
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

// parse parses MFT record r from its bytes, which it fixes up in place.
// It returns nil for bytes that are not a FILE record; damage becomes a
// warning and what parsed before it is kept.
func (n *ntfsFS) parse(r int64, b []byte) *ntfs.Record {
	rec, err := ntfs.ParseRecord(b, uint64(r), n.fsClusters)
	if rec != nil && err != nil {
		n.b.warnf("%v", err)
	}
	return rec
}

// readRecord reads and parses MFT record r; it is nil for a record that
// is not a FILE record.
func (n *ntfsFS) readRecord(r int64) (*ntfs.Record, error) {
	b, err := n.readMFT(r*n.recSize, n.recSize)
	if err != nil {
		return nil, err
	}
	return n.parse(r, b), nil
}

// bootstrap maps the $MFT's own data from record 0, following its
// $ATTRIBUTE_LIST into extension records when the MFT is fragmented.
func (n *ntfsFS) bootstrap() error {
	rec, err := n.readRecord(mftRecordMFT)
	if err != nil {
		return fmt.Errorf("reading $MFT record 0: %w", err)
	}
	if rec == nil {
		return errors.New("NTFS: $MFT record 0 is not a FILE record")
	}
	var (
		runs []ntfs.Run
		real int64
		list []byte
	)
	take := func(rec *ntfs.Record) {
		for _, a := range rec.Attrs {
			if a.Type == ntfs.AttrData && a.Name == "" && !a.Resident {
				runs = append(runs, a.Runs...)
				if a.StartVCN == 0 {
					real = a.DataSize
				}
			}
		}
	}
	take(rec)
	for _, a := range rec.Attrs {
		if a.Type != ntfs.AttrAttributeList {
			continue
		}
		if a.Resident {
			list = a.Value()
			continue
		}
		for _, r := range a.Runs {
			if r.LCN < 0 || r.Len*n.cluster > maxAttrListBytes-int64(len(list)) {
				continue
			}
			b, err := n.rd.read(r.LCN*n.cluster, int(r.Len*n.cluster))
			if fatal(err) {
				return fmt.Errorf("reading $MFT's attribute list: %w", err)
			}
			list = append(list, b...)
		}
		if a.StartVCN == 0 && a.DataSize < int64(len(list)) {
			list = list[:a.DataSize] // the rest of its last cluster is not the list's
		}
	}
	n.setMFT(runs)
	if len(list) > 0 {
		entries, err := ntfs.ParseAttrList(list, "$MFT")
		if err != nil {
			n.b.warnf("%v", err)
		}
		seen := map[uint64]bool{mftRecordMFT: true}
		for range maxBootstrapRecords {
			progress := false
			for _, e := range entries {
				if e.Type != ntfs.AttrData || e.Name != "" || seen[e.Record] {
					continue
				}
				if ext, err := n.readRecord(int64(e.Record)); err == nil && ext != nil {
					seen[e.Record], progress = true, true
					take(ext)
					n.setMFT(runs)
				} else if fatal(err) {
					return fmt.Errorf("reading $MFT extension record %d: %w", e.Record, err)
				}
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
	mapped := (last.VCN + last.Len) * n.cluster
	if real <= 0 || real > mapped {
		n.b.warnf("$MFT data size %d, %d bytes mapped", real, mapped)
		real = mapped
	}
	n.records = min(real, n.rd.size) / n.recSize
	return nil
}

// setMFT keeps the runs that lie on the volume, sorted by VCN.
func (n *ntfsFS) setMFT(runs []ntfs.Run) {
	n.mft = n.mft[:0]
	for _, r := range runs {
		if r.LCN < 0 || r.LCN+r.Len <= n.clusters {
			n.mft = append(n.mft, r)
		}
	}
	slices.SortFunc(n.mft, func(a, b ntfs.Run) int { return cmpInt64(a.VCN, b.VCN) })
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
	if end := (last.VCN + last.Len) * n.cluster; end > n.records*n.recSize {
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

func (n *ntfsFS) record(r int64, b []byte) error {
	v := r * n.recSize
	rec := n.parse(r, b)
	if rec == nil || !rec.InUse {
		n.addMFT(v, n.recSize, Metadata, n.ownerOf(mftRecordMFT)) // a free record
		return n.b.err
	}
	owner := n.ownerOf(rec.Base)
	// The record is its owner's metadata, except resident data; the
	// last two bytes of every 512 hold the update sequence on disk.
	pos := int64(0)
	for _, a := range rec.Attrs {
		switch {
		case a.Type == ntfs.AttrData && a.Resident && a.ValueLen > 0:
			start, end := int64(a.ValueOff), int64(a.ValueOff+a.ValueLen)
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
		case !a.Resident:
			if rec.Base == mftRecordMFT && a.Type == ntfs.AttrData && a.Name == "" {
				continue // the MFT's data: each record is mapped to its own file
			}
			role := Metadata
			if a.Type == ntfs.AttrData {
				role = Data
			}
			for _, run := range a.Runs {
				if run.LCN < 0 {
					continue
				}
				if run.LCN+run.Len > n.clusters {
					n.b.warnf("MFT record %d: run of %d clusters at %d is outside the volume", r, run.Len, run.LCN)
					continue
				}
				n.b.add(run.LCN*n.cluster, run.Len*n.cluster, role, owner)
			}
		}
	}
	n.addMFT(v+pos, n.recSize-pos, Metadata, owner)
	// Names are kept for mapped files and for every directory, which
	// may be on a mapped file's path.
	if !rec.Extension && (rec.Dir || n.info[rec.Base] != nil) {
		in := n.infoOf(rec.Base)
		in.inUse, in.dir, in.seq = true, rec.Dir, rec.Seq
		in.names = append(in.names, names(rec)...)
	}
	return n.b.err
}

// names returns the $FILE_NAME attributes of a record.
func names(rec *ntfs.Record) []ntfsName {
	var out []ntfsName
	for _, a := range rec.Attrs {
		if fn, ok := a.FileName(); ok {
			out = append(out, ntfsName{parent: fn.Parent, pseq: fn.ParentSeq, name: cleanName(fn.Name), dos: fn.DOS})
		}
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
		rec, err := n.readRecord(int64(r))
		if fatal(err) {
			return fmt.Errorf("reading MFT record %d: %w", r, err)
		}
		if rec == nil || !rec.InUse || rec.Extension {
			continue
		}
		in.inUse, in.dir, in.seq = true, rec.Dir, rec.Seq
		in.names = names(rec)
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
		if a.dos != b.dos {
			if a.dos {
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
