package fat

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// The FAT is read in chunks of fatChunk bytes as chains reach them, and
// at most maxFATChunks chunks (64 MiB) are kept: a walk of a large FAT32
// volume does not hold its whole FAT.
const (
	fatChunk     = 64 << 10
	maxFATChunks = 1024
)

// table reads FAT entries.
type table struct {
	r      io.ReaderAt
	g      *geometry
	chunks map[int64][]byte
}

func newTable(r io.ReaderAt, g *geometry) *table {
	return &table{r: r, g: g, chunks: map[int64][]byte{}}
}

// bytes returns n (at most 4) bytes of the FAT from offset off.
func (t *table) bytes(off int64, n int) ([]byte, error) {
	if off < 0 || off+int64(n) > t.g.fatBytes {
		return nil, corrupt("%s: FAT entry at byte %d past the FAT's %d bytes", t.g.kind, off, t.g.fatBytes)
	}
	if first := off / fatChunk; first == (off+int64(n)-1)/fatChunk {
		chunk, err := t.chunk(first)
		if err != nil {
			return nil, err
		}
		return chunk[off%fatChunk : off%fatChunk+int64(n)], nil
	}
	out := make([]byte, 0, 4) // a FAT12 entry across two chunks
	for i := 0; i < n; i++ {
		pos := off + int64(i)
		chunk, err := t.chunk(pos / fatChunk)
		if err != nil {
			return nil, err
		}
		out = append(out, chunk[pos%fatChunk])
	}
	return out, nil
}

func (t *table) chunk(i int64) ([]byte, error) {
	if c, ok := t.chunks[i]; ok {
		return c, nil
	}
	if len(t.chunks) >= maxFATChunks {
		clear(t.chunks)
	}
	start := i * fatChunk
	n := min(int64(fatChunk), t.g.fatBytes-start)
	buf := make([]byte, n)
	if _, err := t.r.ReadAt(buf, t.g.fatOffset+start); err != nil {
		return nil, fmt.Errorf("reading the FAT at byte %d: %w", t.g.fatOffset+start, err)
	}
	t.chunks[i] = buf
	return buf, nil
}

// entry returns the FAT entry of cluster c, as stored.
func (t *table) entry(c uint32) (uint32, error) {
	le := binary.LittleEndian
	switch t.g.kind {
	case fat12:
		// Two 12-bit entries share three bytes (fatgen103, "FAT12"): an
		// even cluster takes the low 12 bits of its pair, an odd one the
		// high 12.
		b, err := t.bytes(int64(c)+int64(c/2), 2)
		if err != nil {
			return 0, err
		}
		v := uint32(le.Uint16(b))
		if c&1 == 1 {
			return v >> 4, nil
		}
		return v & 0x0FFF, nil
	case fat16:
		b, err := t.bytes(int64(c)*2, 2)
		if err != nil {
			return 0, err
		}
		return uint32(le.Uint16(b)), nil
	case fat32:
		b, err := t.bytes(int64(c)*4, 4)
		if err != nil {
			return 0, err
		}
		return le.Uint32(b) & 0x0FFFFFFF, nil // the top 4 bits are reserved
	default:
		b, err := t.bytes(int64(c)*4, 4)
		if err != nil {
			return 0, err
		}
		return le.Uint32(b), nil
	}
}

// endMark is the lowest entry value that ends a chain, and badMark the
// value of a bad cluster (fatgen103; exFAT specification section 4.1).
func (t *table) marks() (endMark, badMark uint32) {
	switch t.g.kind {
	case fat12:
		return 0xFF8, 0xFF7
	case fat16:
		return 0xFFF8, 0xFFF7
	case fat32:
		return 0x0FFFFFF8, 0x0FFFFFF7
	}
	return 0xFFFFFFF8, 0xFFFFFFF7
}

// span is a run of contiguous clusters.
type span struct {
	first uint32
	n     uint32
}

// chain returns the clusters of the chain that starts at first, as
// spans in chain order. With want > 0 it returns exactly want clusters,
// and a chain that ends sooner is corrupt; with want == 0 it follows the
// chain to its end mark, through at most max clusters. A chain that
// visits a cluster twice is a cycle, and corrupt. what names the chain's
// owner in errors.
func (t *table) chain(first uint32, want, max int64, what string) ([]span, error) {
	g := t.g
	if first < 2 || first > g.maxCluster() {
		return nil, corrupt("%s: first cluster %d outside 2-%d", what, first, g.maxCluster())
	}
	limit := want
	if want == 0 {
		limit = max
	}
	if limit > int64(g.clusters) {
		if want > 0 {
			return nil, corrupt("%s: needs %d clusters, the volume has %d", what, want, g.clusters)
		}
		limit = int64(g.clusters)
	}
	endMark, badMark := t.marks()
	var spans []span
	c := first
	for n := int64(1); ; n++ {
		if len(spans) > 0 && spans[len(spans)-1].first+spans[len(spans)-1].n == c {
			spans[len(spans)-1].n++
		} else {
			if len(spans) >= fsys.MaxRuns {
				return nil, corrupt("%s: FAT chain in more than %d fragments", what, fsys.MaxRuns)
			}
			spans = append(spans, span{c, 1})
		}
		if want > 0 && n == want {
			break
		}
		next, err := t.entry(c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		switch {
		case next >= endMark:
			if want > 0 {
				return nil, corrupt("%s: FAT chain ends after %d clusters, the size needs %d", what, n, want)
			}
			return spans, checkOverlap(spans, what)
		case next == badMark:
			return nil, corrupt("%s: FAT chain reaches bad cluster mark after cluster %d", what, c)
		case next < 2 || next > g.maxCluster():
			return nil, corrupt("%s: FAT chain: cluster %d points to cluster %d, outside 2-%d", what, c, next, g.maxCluster())
		case next == c:
			return nil, corrupt("%s: FAT chain: cluster %d points to itself (a cycle)", what, c)
		}
		if n >= limit {
			if want == 0 && limit == max {
				return nil, corrupt("%s: FAT chain longer than %d clusters (a cycle, or a directory too large)", what, max)
			}
			return nil, corrupt("%s: FAT chain longer than the volume's %d clusters (a cycle)", what, g.clusters)
		}
		c = next
	}
	return spans, checkOverlap(spans, what)
}

// checkOverlap reports a cluster that two spans share: the chain
// visited it twice, a cycle.
func checkOverlap(spans []span, what string) error {
	if len(spans) < 2 {
		return nil
	}
	s := slices.Clone(spans)
	slices.SortFunc(s, func(a, b span) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	for i := 1; i < len(s); i++ {
		if uint64(s[i-1].first)+uint64(s[i-1].n) > uint64(s[i].first) {
			return corrupt("%s: FAT chain visits cluster %d twice (a cycle)", what, s[i].first)
		}
	}
	return nil
}

// contiguous returns want clusters from first, for exFAT streams with
// the NoFatChain flag, whose clusters are consecutive and have no chain.
func (t *table) contiguous(first uint32, want int64, what string) ([]span, error) {
	g := t.g
	if first < 2 || first > g.maxCluster() {
		return nil, corrupt("%s: first cluster %d outside 2-%d", what, first, g.maxCluster())
	}
	if want > int64(g.maxCluster()-first)+1 {
		return nil, corrupt("%s: %d contiguous clusters from cluster %d pass the volume's last cluster %d", what, want, first, g.maxCluster())
	}
	return []span{{first, uint32(want)}}, nil
}
