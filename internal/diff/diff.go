package diff

import (
	"fmt"
	"sort"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Kind says how a block differs between the base and the new snapshot.
type Kind string

// The kinds ListChangedBlocks implies: AWS names the block's token in the
// first snapshot, the second, or both.
const (
	Added   Kind = "added"   // only the new snapshot lists it: SecondBlockToken only
	Changed Kind = "changed" // both list it, written again: both tokens
	Removed Kind = "removed" // only the base lists it: FirstBlockToken only
)

// Change is one changed block.
type Change struct {
	Index         int64
	InBase, InNew bool // which snapshots list the block
}

// Kind returns the change's kind.
func (c Change) Kind() Kind {
	switch {
	case c.InBase && c.InNew:
		return Changed
	case c.InNew:
		return Added
	}
	return Removed
}

// Run is a maximal sequence of consecutive changed blocks of one kind.
type Run struct {
	StartBlock int64 `json:"start_block"`
	Blocks     int64 `json:"blocks"`
	Offset     int64 `json:"offset"` // bytes: StartBlock × block.Size
	Length     int64 `json:"length"` // bytes: Blocks × block.Size
	Kind       Kind  `json:"kind"`
	// Partitions are the numbers of the partitions the run overlaps
	// (0: a volume without a partition table); set by MapPartitions.
	Partitions []int `json:"partitions,omitempty"`
}

// End returns the index just past the run.
func (r Run) End() int64 { return r.StartBlock + r.Blocks }

// Totals count the changes.
type Totals struct {
	Runs    int   `json:"runs"`
	Blocks  int64 `json:"blocks"`
	Bytes   int64 `json:"bytes"`
	Added   int64 `json:"added"`
	Changed int64 `json:"changed"`
	Removed int64 `json:"removed"`
}

// Diff is what changed between two snapshots of a lineage.
type Diff struct {
	Base      string `json:"base_snapshot"`
	Snapshot  string `json:"snapshot"`
	VolumeGiB int64  `json:"volume_size_gib"`
	BlockSize int    `json:"block_size"`
	// ListCalls and GetCalls are the billed requests the diff made:
	// listing the changes, and fetching blocks to name files.
	ListCalls int64  `json:"list_calls"`
	GetCalls  int64  `json:"get_calls"`
	Totals    Totals `json:"totals"`
	Runs      []Run  `json:"runs"`
	// Partitions and Outside are set by MapPartitions, Files by MapFiles.
	Partitions []PartitionChange `json:"partitions,omitempty"`
	Outside    *Extent           `json:"outside_partitions,omitempty"`
	Files      []FileChange      `json:"files,omitempty"`
	Warnings   []string          `json:"warnings,omitempty"`
}

// Extent counts changed blocks and the bytes of them in some region.
type Extent struct {
	Blocks int64 `json:"blocks"`
	Bytes  int64 `json:"bytes"`
}

// Builder collects changes, in ascending index order, into a Diff.
type Builder struct {
	d    Diff
	last int64
}

// NewBuilder starts the diff from base to snapshot.
func NewBuilder(base, snapshot string) *Builder {
	return &Builder{d: Diff{Base: base, Snapshot: snapshot, BlockSize: block.Size, Runs: []Run{}}, last: -1}
}

// SetVolume records the new snapshot's volume size.
func (b *Builder) SetVolume(gib int64) { b.d.VolumeGiB = gib }

// Add appends a change; indexes must ascend.
func (b *Builder) Add(c Change) error {
	if c.Index <= b.last {
		return fmt.Errorf("change %d after %d: changes must ascend", c.Index, b.last)
	}
	if !c.InBase && !c.InNew {
		return fmt.Errorf("change %d is in neither snapshot", c.Index)
	}
	b.last = c.Index
	k := c.Kind()
	t := &b.d.Totals
	t.Blocks++
	t.Bytes += block.Size
	switch k {
	case Added:
		t.Added++
	case Changed:
		t.Changed++
	case Removed:
		t.Removed++
	}
	if n := len(b.d.Runs); n > 0 {
		if r := &b.d.Runs[n-1]; r.End() == c.Index && r.Kind == k {
			r.Blocks++
			r.Length += block.Size
			return nil
		}
	}
	b.d.Runs = append(b.d.Runs, Run{StartBlock: c.Index, Blocks: 1, Offset: c.Index * block.Size, Length: block.Size, Kind: k})
	t.Runs++
	return nil
}

// Diff returns the diff built so far.
func (b *Builder) Diff() *Diff {
	d := b.d
	return &d
}

// KindAt returns the kind of block index, or "" when it did not change.
func (d *Diff) KindAt(index int64) Kind {
	i := sort.Search(len(d.Runs), func(i int) bool { return d.Runs[i].End() > index })
	if i < len(d.Runs) && d.Runs[i].StartBlock <= index {
		return d.Runs[i].Kind
	}
	return ""
}

// changedIn returns whether any block overlapping bytes [off, off+n)
// of the volume changed.
func (d *Diff) changedIn(off, n int64) bool {
	if n <= 0 {
		return false
	}
	first, last := off/block.Size, (off+n-1)/block.Size
	i := sort.Search(len(d.Runs), func(i int) bool { return d.Runs[i].End() > first })
	return i < len(d.Runs) && d.Runs[i].StartBlock <= last
}
