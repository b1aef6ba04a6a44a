package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ebsimager/ebsimager/internal/manifest"
)

// MaxCells bounds a block map: 32 rows of 128 cells, so that the largest
// volume, 64 TiB (134,217,728 slots of 512 KiB), draws as 4,096 cells of
// 32,768 blocks, and a 1 GiB volume as 2,048 cells of one block.
const MaxCells = 4096

// BlockMap says where a volume holds data: its block slots bucketed into
// at most MaxCells cells of SlotsPerCell consecutive slots (the last cell
// may hold fewer), each with the number of listed (allocated) blocks in
// it and, when a diff was made, of changed blocks. It is built in one
// pass from a stream of ascending indexes, so a map of any volume costs
// a few kilobytes.
type BlockMap struct {
	Slots           int64  `json:"slots"`
	SlotsPerCell    int64  `json:"slots_per_cell"`
	Cells           int    `json:"cells"`
	Allocated       Counts `json:"allocated"`
	AllocatedBlocks int64  `json:"allocated_blocks"`
	// ChangedBase is the snapshot the changed blocks are relative to.
	ChangedBase   string `json:"changed_base,omitempty"`
	Changed       Counts `json:"changed,omitempty"`
	ChangedBlocks int64  `json:"changed_blocks,omitempty"`

	nextAlloc, nextChanged int64 // the least index Add and AddChanged accept
}

// NewBlockMap returns an empty map of a volume of slots block slots.
func NewBlockMap(slots int64) *BlockMap {
	per := max(1, (slots+MaxCells-1)/MaxCells)
	cells := 0
	if slots > 0 {
		cells = int((slots + per - 1) / per)
	}
	return &BlockMap{Slots: slots, SlotsPerCell: per, Cells: cells, Allocated: make(Counts, cells)}
}

// Add counts an allocated block. Indexes must ascend, as the manifest
// and ListSnapshotBlocks give them, so that none is counted twice.
func (m *BlockMap) Add(index int64) error {
	if err := m.place(index, m.nextAlloc); err != nil {
		return err
	}
	m.nextAlloc = index + 1
	m.Allocated[index/m.SlotsPerCell]++
	m.AllocatedBlocks++
	return nil
}

// AddChanged counts a changed block (listed by ListChangedBlocks against
// ChangedBase). Indexes must ascend.
func (m *BlockMap) AddChanged(index int64) error {
	if err := m.place(index, m.nextChanged); err != nil {
		return err
	}
	if m.Changed == nil {
		m.Changed = make(Counts, m.Cells)
	}
	m.nextChanged = index + 1
	m.Changed[index/m.SlotsPerCell]++
	m.ChangedBlocks++
	return nil
}

func (m *BlockMap) place(index, least int64) error {
	if index < 0 || index >= m.Slots {
		return fmt.Errorf("block map: index %d outside the volume's %d slots", index, m.Slots)
	}
	if index < least {
		return fmt.Errorf("block map: index %d after %d: indexes must ascend", index, least-1)
	}
	return nil
}

// AddManifest counts every block of a manifest, streamed to its end (the
// reader checks its trailer).
func (m *BlockMap) AddManifest(r *manifest.Reader) error {
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := m.Add(e.Index); err != nil {
			return err
		}
	}
}

// CellSlots returns how many slots cell i covers.
func (m *BlockMap) CellSlots(i int) int64 {
	return min(m.SlotsPerCell, m.Slots-int64(i)*m.SlotsPerCell)
}

// Fill returns the allocated share of cell i, in [0, 1].
func (m *BlockMap) Fill(i int) float64 {
	return float64(m.Allocated[i]) / float64(m.CellSlots(i))
}

func (m *BlockMap) check() error {
	if m.Slots < 1 || m.SlotsPerCell < 1 {
		return fmt.Errorf("%d slots of %d per cell", m.Slots, m.SlotsPerCell)
	}
	if want := NewBlockMap(m.Slots); m.SlotsPerCell != want.SlotsPerCell || m.Cells != want.Cells {
		return fmt.Errorf("%d cells of %d slots, want %d of %d for %d slots", m.Cells, m.SlotsPerCell, want.Cells, want.SlotsPerCell, m.Slots)
	}
	for _, c := range []struct {
		name  string
		v     Counts
		total int64
	}{{"allocated", m.Allocated, m.AllocatedBlocks}, {"changed", m.Changed, m.ChangedBlocks}} {
		if c.v == nil && c.name == "changed" {
			if c.total != 0 {
				return fmt.Errorf("%d changed blocks but no changed cells", c.total)
			}
			continue
		}
		if len(c.v) != m.Cells {
			return fmt.Errorf("%s: %d cells, want %d", c.name, len(c.v), m.Cells)
		}
		var sum int64
		for i, n := range c.v {
			if n < 0 || n > m.CellSlots(i) {
				return fmt.Errorf("%s: cell %d counts %d of its %d slots", c.name, i, n, m.CellSlots(i))
			}
			sum += n
		}
		if sum != c.total {
			return fmt.Errorf("%s: cells add up to %d blocks, the total says %d", c.name, sum, c.total)
		}
	}
	return nil
}

// Counts are per-cell block counts. In JSON they are one string of
// space-separated tokens, "N" for one cell counting N and "N*R" for R
// cells in a row counting N each, so a map stays one short line: a
// half-used 1 GiB volume might read "1*512 0*1536".
type Counts []int64

// MarshalJSON writes the run-length string.
func (c Counts) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	for i := 0; i < len(c); {
		j := i + 1
		for j < len(c) && c[j] == c[i] {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatInt(c[i], 10))
		if j-i > 1 {
			b.WriteByte('*')
			b.WriteString(strconv.Itoa(j - i))
		}
		i = j
	}
	return json.Marshal(b.String())
}

// UnmarshalJSON reads the run-length string, refusing more than MaxCells
// cells.
func (c *Counts) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("block counts: %w", err)
	}
	out := Counts{}
	for _, tok := range strings.Fields(s) {
		val, rep, ok := strings.Cut(tok, "*")
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("block counts: bad count %q", tok)
		}
		r := 1
		if ok {
			if r, err = strconv.Atoi(rep); err != nil || r < 1 {
				return fmt.Errorf("block counts: bad repeat %q", tok)
			}
		}
		if r > MaxCells-len(out) {
			return fmt.Errorf("block counts: more than %d cells", MaxCells)
		}
		for range r {
			out = append(out, n)
		}
	}
	*c = out
	return nil
}
