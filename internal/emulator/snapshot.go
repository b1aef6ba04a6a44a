package emulator

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// source is where a snapshot's blocks come from. Every method must be safe
// for concurrent use once the snapshot is completed.
type source interface {
	// seek returns the first listed index in [from, to), and false when
	// there is none. Indexes at or past the source's own slot count are
	// never listed.
	seek(from, to int64) (int64, bool)
	// version identifies the content of block i, and reports whether i is
	// listed at all.
	version(i int64) (version, bool)
	// read fills p (block.Size bytes) with block i.
	read(i int64, p []byte) error
}

// version identifies who wrote a block. Equal versions mean equal bytes, so
// ListChangedBlocks can compare related snapshots without reading them. A
// version whose owner compares by content (a raw image, whose bytes nobody
// tracked writing) carries a fingerprint instead.
type version struct {
	owner any    // a pointer: the source that wrote the block, or the stored block itself
	n     int64  // the slot, when owner is a whole source
	fp    uint64 // content fingerprint, for owners that compare by content
	byFP  bool
}

// snapshot is one snapshot the server holds.
type snapshot struct {
	id        string
	volumeGiB int64
	parent    string // "" when it has none
	root      string // lineage: the id of its oldest ancestor
	depth     int64  // 0 for a root
	src       source

	completed atomic.Bool
	// gen counts listings; with InvalidateOnRelist a block token is valid
	// only for the newest one.
	gen atomic.Uint32

	// write API only
	written     *writtenSource
	started     time.Time
	description string
	tags        []tag
	kmsKeyArn   string
	encrypted   bool

	// EC2 side (ec2_*.go). made and readyAt are set before the snapshot
	// is registered, for snapshots made through EC2, and never change;
	// public is read on every request; the rest is guarded by
	// Server.ec2mu.
	made    *ec2Made
	readyAt time.Time    // when a snapshot made through EC2 completes
	public  atomic.Int32 // publicFromMeta, publicYes or publicNo
	ec2Tags []Tag        // tags set through EC2, over the metadata's
	users   []string     // createVolumePermission user ids
	lock    *snapLock
}

func (s *snapshot) slots() int64 { return block.Slots(s.volumeGiB) }

type tag struct {
	Key   string
	Value string
}

// registry holds the snapshots by id.
type registry struct {
	mu    sync.RWMutex
	snaps map[string]*snapshot
	// tokens maps a StartSnapshot ClientToken to the snapshot it made.
	tokens map[string]*snapshot
}

func (r *registry) get(id string) *snapshot {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.snaps[id]
}

// add registers s, which must carry a fresh id.
func (r *registry) add(s *snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.snaps[s.id]; ok {
		return fmt.Errorf("snapshot %s already exists", s.id)
	}
	r.snaps[s.id] = s
	return nil
}

// related reports whether a and b share a lineage, as ListChangedBlocks
// requires.
func related(a, b *snapshot) bool { return a.root == b.root }

// sameBlock reports whether block i holds the same bytes in a and b, both
// listing it. Versions decide when they can; blocks from raw images are
// compared by content.
func sameBlock(a, b *snapshot, i int64, bufA, bufB []byte) (bool, error) {
	va, _ := a.src.version(i)
	vb, _ := b.src.version(i)
	if va == vb {
		return true, nil
	}
	if va.byFP && vb.byFP {
		return va.fp == vb.fp, nil
	}
	if !va.byFP && !vb.byFP {
		return false, nil
	}
	if err := a.src.read(i, bufA); err != nil {
		return false, fmt.Errorf("reading block %d of %s: %w", i, a.id, err)
	}
	if err := b.src.read(i, bufB); err != nil {
		return false, fmt.Errorf("reading block %d of %s: %w", i, b.id, err)
	}
	return bytes.Equal(bufA, bufB), nil
}

// Hashing. mix64 is the SplitMix64 finaliser (Steele, Lea and Flood, "Fast
// splittable pseudorandom number generators", OOPSLA 2014); its two
// multipliers are the published constants.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// golden is 2^64 / φ, the SplitMix64 stream increment.
const golden = 0x9e3779b97f4a7c15

// hash4 mixes a domain tag and three values into one well-spread word.
func hash4(domain, a, b, c uint64) uint64 {
	return mix64(mix64(mix64(mix64(domain)^a)+b) ^ c)
}

// Domain tags keep the hashes for different purposes independent.
const (
	domAlloc uint64 = iota + 1
	domContent
	domDiff
	domSplit
	domFault
	domFaultDetail
	domJitter
	domListFault
	domSnapID
	domRequestID
	domVolumeID
	domEC2Fraction
)

// unit maps a hash to [0, 1) with 53 bits, the precision of a float64.
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// threshold turns a fraction in [0, 1] into a bound for h>>11, so that
// h>>11 < threshold holds for that fraction of hashes; 1 holds for all.
func threshold(f float64) uint64 {
	switch {
	case f <= 0:
		return 0
	case f >= 1:
		return 1 << 53
	}
	return uint64(f * (1 << 53))
}

// strHash hashes a string (FNV-1a, 64-bit: offset basis and prime from the
// FNV specification) for use in hash4.
func strHash(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}
