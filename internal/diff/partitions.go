package diff

import (
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/inspect"
)

// PartitionChange is what changed in one partition, or in the whole
// volume when it has no partition table.
type PartitionChange struct {
	Number     int    `json:"number"` // 0: the whole volume, which has no partition table
	Name       string `json:"name,omitempty"`
	Type       string `json:"type,omitempty"` // the partition type's name
	FileSystem string `json:"file_system,omitempty"`
	Offset     int64  `json:"offset"`
	Length     int64  `json:"length"`
	Blocks     int64  `json:"blocks"` // changed blocks that overlap it
	Bytes      int64  `json:"bytes"`  // bytes of those blocks inside it
	// Mapped says MapFiles named the files of the partition's file
	// system. Unallocated is how many of its changed bytes no file or
	// structure holds in either snapshot (free space), and Unmapped how
	// many lie in a file system MapFiles could not map.
	Mapped      bool     `json:"mapped"`
	Unallocated int64    `json:"unallocated_bytes"`
	Unmapped    int64    `json:"unmapped_bytes"`
	Warnings    []string `json:"warnings,omitempty"`
}

func (p PartitionChange) end() int64 { return p.Offset + p.Length }

// MapPartitions sets which partitions of layout (the base snapshot's)
// each run overlaps, the changes per partition, and the changes outside
// every partition (the partition table itself, gaps).
func (d *Diff) MapPartitions(l *inspect.Layout) {
	d.Partitions = d.Partitions[:0]
	if l.Table == inspect.TableNone {
		p := PartitionChange{Number: 0, Offset: 0, Length: l.Size}
		if l.FileSystem != nil {
			p.FileSystem = l.FileSystem.Type
		}
		d.Partitions = append(d.Partitions, p)
	}
	for _, lp := range l.Partitions {
		if lp.Role == "extended" {
			continue // a container of logical partitions, which are listed too
		}
		p := PartitionChange{Number: lp.Number, Name: lp.Name, Type: lp.TypeName, Offset: lp.Offset, Length: lp.Length}
		if lp.FileSystem != nil {
			p.FileSystem = lp.FileSystem.Type
		}
		d.Partitions = append(d.Partitions, p)
	}
	var outside Extent
	for i := range d.Runs {
		r := &d.Runs[i]
		r.Partitions = nil
		for j := range d.Partitions {
			p := &d.Partitions[j]
			lo, hi := max(r.Offset, p.Offset), min(r.Offset+r.Length, p.end())
			if lo >= hi {
				continue
			}
			r.Partitions = append(r.Partitions, p.Number)
			p.Bytes += hi - lo
			p.Blocks += (hi-1)/block.Size - lo/block.Size + 1
		}
		for idx := r.StartBlock; idx < r.End(); idx++ {
			if n := d.uncovered(idx*block.Size, block.Size); n > 0 {
				outside.Blocks++
				outside.Bytes += n
			}
		}
	}
	d.Outside = nil
	if outside.Blocks > 0 {
		d.Outside = &outside
	}
}

// uncovered returns how many bytes of [off, off+n) no partition holds.
func (d *Diff) uncovered(off, n int64) int64 {
	var in int64
	for _, p := range d.Partitions {
		in += max(0, min(off+n, p.end())-max(off, p.Offset))
	}
	return max(0, n-in)
}
