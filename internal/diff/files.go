package diff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/fsmap"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// File change statuses.
const (
	FileAdded   = "added"   // not in the base snapshot
	FileDeleted = "deleted" // not in the new snapshot
	FileChanged = "changed" // in both
)

// FileChange is a file, directory or file-system structure whose bytes
// differ between the snapshots.
type FileChange struct {
	Partition  int    `json:"partition"` // 0: a volume without a partition table
	FileSystem string `json:"file_system"`
	Path       string `json:"path"` // or the structure's name
	Kind       string `json:"kind"` // file, dir, symlink, special or structure
	Status     string `json:"status"`
	// Data and Metadata say which of its bytes differ; the counts are
	// the bytes that differ, within the changed blocks.
	Data          bool  `json:"data"`
	Metadata      bool  `json:"metadata"`
	DataBytes     int64 `json:"data_bytes"`
	MetadataBytes int64 `json:"metadata_bytes"`
	// BaseID and NewID are a file's inode or MFT record number in each
	// snapshot that holds it; structures have neither.
	BaseID *uint64 `json:"base_id,omitempty"`
	NewID  *uint64 `json:"new_id,omitempty"`
}

// Progress reports MapFiles' work: Stage says what it does, Done and
// Total count changed blocks compared.
type Progress struct {
	Stage       string
	Done, Total int64
}

// mappable reports whether fsmap reads a file system type.
func mappable(fs string) bool {
	return strings.HasPrefix(fs, "ext") && fs != "jbd" || fs == inspect.TypeNTFS
}

// MapFiles names the files and file-system structures whose bytes differ
// between base and next (the new snapshot), for every ext2/3/4 and NTFS
// file system of the base's partition table. It maps both snapshots'
// file systems limited to the changed blocks, then compares, in each
// changed block, the bytes each owner holds. Only changed blocks of the
// new snapshot that some owner holds are read from next. Errors reading
// either snapshot stop it; a file system it cannot map is a warning.
func (d *Diff) MapFiles(ctx context.Context, baseVol, nextVol volume.Volume, progress func(Progress)) error {
	base, next := source{baseVol}, source{nextVol}
	if progress == nil {
		progress = func(Progress) {}
	}
	progress(Progress{Stage: "reading partition tables"})
	bl, err := inspect.Inspect(base, base.Size())
	if err != nil {
		return fmt.Errorf("inspecting the base snapshot: %w", err)
	}
	nl, err := inspect.Inspect(next, next.Size())
	if err != nil {
		return fmt.Errorf("inspecting %s: %w", d.Snapshot, err)
	}
	d.MapPartitions(bl)
	newParts := partitionsOf(nl)
	if !maps.Equal(partitionsOf(bl), newParts) {
		d.Warnings = append(d.Warnings, "the partition table differs between the snapshots: partitions are those of the base, file systems are mapped with each snapshot's own table")
	}
	var total int64
	for _, p := range d.Partitions {
		total += p.Blocks
	}
	c := &comparer{d: d, base: base, next: next, progress: progress, total: total, acc: map[fileKey]*FileChange{}}
	for i := range d.Partitions {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := &d.Partitions[i]
		np, ok := newParts[p.Number]
		if !ok {
			np = part{}
		}
		if err := c.partition(p, np); err != nil {
			return err
		}
	}
	d.Files = c.files()
	return nil
}

// part is a partition's place and file system, as one table gives it.
type part struct {
	off, n int64
	fs     string
}

func partitionsOf(l *inspect.Layout) map[int]part {
	out := map[int]part{}
	if l.Table == inspect.TableNone {
		p := part{n: l.Size}
		if l.FileSystem != nil {
			p.fs = l.FileSystem.Type
		}
		out[0] = p
	}
	for _, lp := range l.Partitions {
		if lp.Role == "extended" {
			continue
		}
		p := part{off: lp.Offset, n: lp.Length}
		if lp.FileSystem != nil {
			p.fs = lp.FileSystem.Type
		}
		out[lp.Number] = p
	}
	return out
}

type fileKey struct {
	part int
	name string
}

type comparer struct {
	d           *Diff
	base, next  source
	progress    func(Progress)
	done, total int64
	acc         map[fileKey]*FileChange
	bufA, bufB  []byte
}

// side is one snapshot's map of a partition.
type side struct {
	m   *fsmap.Map // nil when the file system could not be mapped
	off int64      // the partition's offset in this snapshot
}

// mapSide maps the file system of one snapshot's partition, limited to
// the changed blocks.
func (c *comparer) mapSide(v source, off, n int64, what string, p *PartitionChange) (side, error) {
	s := side{off: off}
	if n <= 0 {
		return s, nil
	}
	var keep []fsmap.Range
	for _, r := range c.d.Runs {
		lo, hi := max(r.Offset, off), min(r.Offset+r.Length, off+n)
		if lo < hi {
			keep = append(keep, fsmap.Range{Off: lo - off, Len: hi - lo})
		}
	}
	if len(keep) == 0 {
		return s, nil
	}
	c.progress(Progress{Stage: fmt.Sprintf("mapping the %s file system of %s", p.FileSystem, what), Done: c.done, Total: c.total})
	m, err := fsmap.Build(io.NewSectionReader(v, off, n), n, fsmap.Options{Keep: keep})
	var se *SourceError
	switch {
	case errors.As(err, &se):
		return s, fmt.Errorf("mapping partition %d of %s: %w", p.Number, what, err)
	case err != nil:
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s: %v", what, err))
		return s, nil
	}
	for _, w := range m.Warnings {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s: %s", what, w))
	}
	s.m = m
	return s, nil
}

func (c *comparer) partition(p *PartitionChange, np part) error {
	if p.Blocks == 0 {
		return nil
	}
	baseWhat, newWhat := "the base snapshot", c.d.Snapshot
	if !mappable(p.FileSystem) && !mappable(np.fs) {
		p.Unmapped = p.Bytes
		c.done += p.Blocks
		return nil
	}
	var bs, ns side
	var err error
	if mappable(p.FileSystem) {
		if bs, err = c.mapSide(c.base, p.Offset, p.Length, baseWhat, p); err != nil {
			return err
		}
	}
	if mappable(np.fs) {
		if ns, err = c.mapSide(c.next, np.off, np.n, newWhat, p); err != nil {
			return err
		}
	}
	if bs.m == nil && ns.m == nil {
		p.Unmapped = p.Bytes
		c.done += p.Blocks
		return nil
	}
	p.Mapped = true
	fsType := p.FileSystem
	if bs.m == nil {
		fsType = ns.m.Type
	} else {
		fsType = bs.m.Type
	}
	c.progress(Progress{Stage: fmt.Sprintf("comparing partition %d", p.Number), Done: c.done, Total: c.total})
	for _, r := range c.d.Runs {
		for idx := max(r.StartBlock, p.Offset/block.Size); idx < r.End() && idx*block.Size < p.end(); idx++ {
			lo, hi := max(idx*block.Size, p.Offset), min((idx+1)*block.Size, p.end())
			if err := c.compare(p, fsType, bs, ns, lo, hi); err != nil {
				return err
			}
			c.done++
			c.progress(Progress{Stage: fmt.Sprintf("comparing partition %d", p.Number), Done: c.done, Total: c.total})
		}
	}
	return nil
}

// hit is an extent of one side's map, in volume offsets.
type hit struct {
	fsmap.Extent
	m    *fsmap.Map
	next bool // of the new snapshot
}

// compare compares bytes [lo, hi) of the volume, inside partition p.
func (c *comparer) compare(p *PartitionChange, fsType string, bs, ns side, lo, hi int64) error {
	var hits []hit
	for _, s := range []struct {
		side
		next bool
	}{{bs, false}, {ns, true}} {
		if s.m == nil {
			continue
		}
		for _, e := range s.m.Lookup(lo-s.off, hi-lo) {
			e.Off += s.off
			hits = append(hits, hit{Extent: e, m: s.m, next: s.next})
		}
	}
	p.Unallocated += (hi - lo) - covered(hits, lo, hi)
	if len(hits) == 0 {
		return nil
	}
	if c.bufA == nil {
		c.bufA, c.bufB = make([]byte, block.Size), make([]byte, block.Size)
	}
	a, b := c.bufA[:hi-lo], c.bufB[:hi-lo]
	if err := readFull(c.base, a, lo); err != nil {
		return fmt.Errorf("reading the base snapshot at %d: %w", lo, err)
	}
	if err := readFull(c.next, b, lo); err != nil {
		return fmt.Errorf("reading %s at %d: %w", c.d.Snapshot, lo, err)
	}
	if bytes.Equal(a, b) {
		return nil
	}
	for _, h := range hits {
		x, y := a[h.Off-lo:h.End()-lo], b[h.Off-lo:h.End()-lo]
		n := differing(x, y)
		if n == 0 {
			continue
		}
		c.record(p, fsType, h, n, bs, ns)
	}
	return nil
}

// record counts n differing bytes against the owner of h.
func (c *comparer) record(p *PartitionChange, fsType string, h hit, n int64, bs, ns side) {
	o := h.m.Owner(h.Owner)
	key := fileKey{p.Number, o.Name}
	fc := c.acc[key]
	if fc == nil {
		fc = &FileChange{Partition: p.Number, FileSystem: fsType, Path: o.Name, Kind: o.Kind}
		c.acc[key] = fc
	}
	if o.Kind != fsmap.KindStructure { // a structure's name is its identity
		id := o.ID
		if h.next {
			fc.NewID = &id
		} else {
			fc.BaseID = &id
		}
	}
	if h.Role == fsmap.Data {
		fc.Data, fc.DataBytes = true, fc.DataBytes+n
	} else {
		fc.Metadata, fc.MetadataBytes = true, fc.MetadataBytes+n
	}
	// Does the owner exist in the other snapshot? It does when the other
	// map holds it too, or when its record lies in blocks that did not
	// change, which are then the same in both.
	other, own := ns, bs
	if h.next {
		other, own = bs, ns
	}
	exists := other.m != nil
	if exists && o.Kind != fsmap.KindStructure {
		_, found := other.m.Find(o.Name)
		exists = found || (o.Record.Len > 0 && !c.d.changedIn(own.off+o.Record.Off, o.Record.Len))
	}
	status := FileChanged
	switch {
	case !exists && h.next:
		status = FileAdded
	case !exists:
		status = FileDeleted
	}
	if fc.Status == "" || status == FileChanged {
		fc.Status = status
	}
}

func (c *comparer) files() []FileChange {
	out := make([]FileChange, 0, len(c.acc))
	for _, fc := range c.acc {
		out = append(out, *fc)
	}
	slices.SortFunc(out, func(a, b FileChange) int {
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out
}

// covered returns how many bytes of [lo, hi) the hits cover.
func covered(hits []hit, lo, hi int64) int64 {
	spans := make([][2]int64, 0, len(hits))
	for _, h := range hits {
		spans = append(spans, [2]int64{max(lo, h.Off), min(hi, h.End())})
	}
	slices.SortFunc(spans, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	var n, end int64 = 0, lo
	for _, s := range spans {
		if s[1] <= end {
			continue
		}
		n += s[1] - max(s[0], end)
		end = s[1]
	}
	return n
}

func differing(a, b []byte) int64 {
	if bytes.Equal(a, b) {
		return 0
	}
	var n int64
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

func readFull(v source, p []byte, off int64) error {
	n, err := v.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if errors.Is(err, io.EOF) {
		clear(p[n:]) // past the end of a shorter volume: zeros
		return nil
	}
	return err
}
