package emulator

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
)

// MaxVolumeGiB is the largest VolumeSize accepted: 64 TiB, the largest EBS
// volume (io2 Block Express) and the StartSnapshot maximum.
const MaxVolumeGiB = 64 << 10

// SyntheticSpec describes a generated snapshot. Block i is listed when a
// hash of (Seed, i) falls below Fraction; its bytes are a SplitMix64 stream
// seeded from (Seed, i). Nothing is stored, so any size is cheap.
type SyntheticSpec struct {
	ID        string
	VolumeGiB int64
	Fraction  float64
	Seed      int64
}

// ParseSyntheticSpec reads "snap-ID=SIZE[,FRACTION[,SEED]]". SIZE is a
// whole number of GiB or TiB ("8GiB", "2TiB"), because VolumeSize is
// reported in GiB; FRACTION in [0, 1] is the share of slots listed
// (default 1); SEED is an integer (default 1).
func ParseSyntheticSpec(spec string) (SyntheticSpec, error) {
	id, rest, ok := strings.Cut(spec, "=")
	if !ok {
		return SyntheticSpec{}, fmt.Errorf("synthetic %q: want snap-ID=SIZE[,FRACTION[,SEED]]", spec)
	}
	if err := block.CheckSnapshotID(id); err != nil {
		return SyntheticSpec{}, fmt.Errorf("synthetic %q: %w", spec, err)
	}
	parts := strings.Split(rest, ",")
	if len(parts) > 3 {
		return SyntheticSpec{}, fmt.Errorf("synthetic %q: want snap-ID=SIZE[,FRACTION[,SEED]]", spec)
	}
	s := SyntheticSpec{ID: id, Fraction: 1, Seed: 1}
	var err error
	if s.VolumeGiB, err = ParseVolumeSize(parts[0]); err != nil {
		return SyntheticSpec{}, fmt.Errorf("synthetic %q: %w", spec, err)
	}
	if len(parts) > 1 {
		if s.Fraction, err = parseFraction(parts[1]); err != nil {
			return SyntheticSpec{}, fmt.Errorf("synthetic %q: %w", spec, err)
		}
	}
	if len(parts) > 2 {
		if s.Seed, err = strconv.ParseInt(parts[2], 10, 64); err != nil {
			return SyntheticSpec{}, fmt.Errorf("synthetic %q: bad seed %q", spec, parts[2])
		}
	}
	return s, nil
}

// ParseVolumeSize reads a size that is a whole number of GiB or TiB and
// returns it in GiB.
func ParseVolumeSize(s string) (int64, error) {
	num, mult := s, int64(0)
	switch {
	case strings.HasSuffix(s, "GiB"):
		num, mult = strings.TrimSuffix(s, "GiB"), 1
	case strings.HasSuffix(s, "TiB"):
		num, mult = strings.TrimSuffix(s, "TiB"), 1<<10
	default:
		return 0, fmt.Errorf("size %q: want a whole number of GiB or TiB, like 8GiB or 2TiB (EBS VolumeSize is in GiB)", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive whole number of GiB or TiB, like 8GiB or 2TiB (EBS VolumeSize is in GiB)", s)
	}
	if n > MaxVolumeGiB/mult {
		return 0, fmt.Errorf("size %q: larger than the 64 TiB EBS maximum", s)
	}
	return n * mult, nil
}

func parseFraction(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return 0, fmt.Errorf("fraction %q: want a number in [0, 1]", s)
	}
	return f, nil
}

// syntheticSource generates a snapshot from a seed.
type syntheticSource struct {
	slots int64
	seed  uint64
	thr   uint64 // threshold(fraction)
}

func (g *syntheticSource) has(i int64) bool {
	if g.thr == 1<<53 {
		return true
	}
	return hash4(domAlloc, g.seed, uint64(i), 0)>>11 < g.thr
}

func (g *syntheticSource) seek(from, to int64) (int64, bool) {
	to = min(to, g.slots)
	if g.thr == 0 {
		return 0, false
	}
	for i := max(from, 0); i < to; i++ {
		if g.has(i) {
			return i, true
		}
	}
	return 0, false
}

func (g *syntheticSource) version(i int64) (version, bool) {
	if i < 0 || i >= g.slots || !g.has(i) {
		return version{}, false
	}
	return version{owner: g, n: i}, true
}

func (g *syntheticSource) read(i int64, p []byte) error {
	fill(p, hash4(domContent, g.seed, uint64(i), 0))
	return nil
}

// fill writes a SplitMix64 stream started at state into p, eight bytes
// at a time; len(p) must be a multiple of 8. It runs several times faster
// than SHA-256 over the same bytes (see BenchmarkFill).
func fill(p []byte, state uint64) {
	for len(p) >= 32 {
		s0 := state + golden
		s1 := s0 + golden
		s2 := s1 + golden
		s3 := s2 + golden
		state = s3
		binary.LittleEndian.PutUint64(p[0:8], mix64(s0))
		binary.LittleEndian.PutUint64(p[8:16], mix64(s1))
		binary.LittleEndian.PutUint64(p[16:24], mix64(s2))
		binary.LittleEndian.PutUint64(p[24:32], mix64(s3))
		p = p[32:]
	}
	for len(p) >= 8 {
		state += golden
		binary.LittleEndian.PutUint64(p, mix64(state))
		p = p[8:]
	}
}

// ChildSpec describes a synthetic child of an existing snapshot. A slot
// differs from the parent when a hash of (Seed, index) falls below
// Fraction. A differing slot the parent lists is, by a second hash, either
// changed (new bytes; about half) or removed (not listed in the child); a
// differing slot the parent does not list is added (new bytes). Every
// other slot is the parent's block, shared.
//
// With parent fraction p, about Fraction·p/2 of the slots change,
// Fraction·p/2 are removed and Fraction·(1-p) are added.
type ChildSpec struct {
	ID       string
	Parent   string
	Fraction float64
	Seed     int64
}

// ParseChildSpec reads "snap-CHILD=child-of:snap-PARENT,FRACTION[,SEED]",
// for example "snap-0b=child-of:snap-0a,0.1,7". SEED defaults to 1.
func ParseChildSpec(spec string) (ChildSpec, error) {
	const form = "want snap-CHILD=child-of:snap-PARENT,FRACTION[,SEED]"
	id, rest, ok := strings.Cut(spec, "=")
	if !ok {
		return ChildSpec{}, fmt.Errorf("child %q: %s", spec, form)
	}
	if err := block.CheckSnapshotID(id); err != nil {
		return ChildSpec{}, fmt.Errorf("child %q: %w", spec, err)
	}
	rest, ok = strings.CutPrefix(rest, "child-of:")
	if !ok {
		return ChildSpec{}, fmt.Errorf("child %q: %s", spec, form)
	}
	parts := strings.Split(rest, ",")
	if len(parts) < 2 || len(parts) > 3 {
		return ChildSpec{}, fmt.Errorf("child %q: %s", spec, form)
	}
	c := ChildSpec{ID: id, Parent: parts[0], Seed: 1}
	if err := block.CheckSnapshotID(c.Parent); err != nil {
		return ChildSpec{}, fmt.Errorf("child %q: parent: %w", spec, err)
	}
	var err error
	if c.Fraction, err = parseFraction(parts[1]); err != nil {
		return ChildSpec{}, fmt.Errorf("child %q: %w", spec, err)
	}
	if len(parts) > 2 {
		if c.Seed, err = strconv.ParseInt(parts[2], 10, 64); err != nil {
			return ChildSpec{}, fmt.Errorf("child %q: bad seed %q", spec, parts[2])
		}
	}
	return c, nil
}

// childSource overlays generated differences on a parent snapshot.
type childSource struct {
	parent  source
	slots   int64
	seed    uint64
	content uint64 // content seed: includes the depth, so a grandchild never rewrites a slot with its parent's new bytes
	thr     uint64
}

// Slot states in a child relative to its parent.
const (
	slotSame = iota
	slotChanged
	slotAdded
	slotRemoved
)

func (c *childSource) state(i int64) int {
	if hash4(domDiff, c.seed, uint64(i), 0)>>11 >= c.thr {
		return slotSame
	}
	if _, ok := c.parent.version(i); !ok {
		return slotAdded
	}
	if hash4(domSplit, c.seed, uint64(i), 0)&1 == 0 {
		return slotChanged
	}
	return slotRemoved
}

func (c *childSource) seek(from, to int64) (int64, bool) {
	to = min(to, c.slots)
	for i := max(from, 0); i < to; i++ {
		if _, ok := c.version(i); ok {
			return i, true
		}
	}
	return 0, false
}

func (c *childSource) version(i int64) (version, bool) {
	if i < 0 || i >= c.slots {
		return version{}, false
	}
	switch c.state(i) {
	case slotSame:
		return c.parent.version(i)
	case slotRemoved:
		return version{}, false
	}
	return version{owner: c, n: i}, true
}

func (c *childSource) read(i int64, p []byte) error {
	if c.state(i) == slotSame {
		return c.parent.read(i, p)
	}
	fill(p, hash4(domContent, c.content, uint64(i), 0))
	return nil
}
