package sink

import (
	"errors"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Sink receives verified blocks. Has and Put are safe for concurrent use;
// Close and Abort are called once, after the last Put has returned.
type Sink interface {
	// Caps declares what the sink needs of whoever feeds it. It is read
	// once, before the first block.
	Caps() Caps
	// Has reports whether the sink already holds block index, from an
	// earlier run it resumed; such a block need not be put again.
	Has(index int64) bool
	// Put stores a verified block. The sink does not keep b.Data after
	// Put returns. An error stops the feeding.
	Put(b block.Block) error
	// Close finishes the sink: its files are complete, durable and under
	// their final names, and the Result says what they hold. A failed
	// Close leaves nothing new under a final name.
	Close() (Result, error)
	// Abort stops the sink and removes what it wrote under temporary
	// names; nothing is left under a final name that was not there
	// before. A sink that resumes keeps its verified blocks for the next
	// run. Put after Abort or Close fails.
	Abort() error
}

// Caps is what a sink needs of whoever feeds it.
type Caps struct {
	// Announce, when set, must be told every block that will be put, in
	// ascending index order, before the block can be put (before it is
	// fetched): the sink keeps the image in order, and a block that is
	// never announced is a hole. Puts may then come in any order.
	Announce func(index int64) error
	// Cancel, when set, wakes every Put waiting for blocks that will now
	// never come (a reordering window); they fail, as does every later
	// Put. A feeder calls it when it stops early.
	Cancel func()
	// FailFast says a block that failed cannot be put later (the sink is
	// a stream): the feeder stops at the first block that fails.
	FailFast bool
	// Resumes says Has may report blocks of an earlier run.
	Resumes bool
}

// Result is what a closed sink holds.
type Result struct {
	// Files are the final names of what holds the volume: an image's
	// segments, in order; an evidence directory's manifest.
	Files []string
	// HashFiles are the checksum files written beside them, in
	// md5sum/sha256sum -c form: an image's whole-volume hashes, the
	// manifest's SHA-256.
	HashFiles []string
	// Size is the volume's size in bytes.
	Size int64
	// Blocks is how many blocks the sink holds, put in this run or kept
	// from an earlier one.
	Blocks int64
	// Hashes maps each algorithm ("md5", "sha1", "sha256") to the
	// lowercase hex digest of the whole volume, as an image holds it
	// (holes as zeros). An evidence directory has none: its manifest
	// lists each block's SHA-256 instead.
	Hashes map[string]string
	// Manifest is the SHA-256 (hex) of an evidence directory's manifest.
	Manifest string
	// Unchanged says the sink already held exactly these blocks (an
	// evidence directory whose manifest was kept as it was).
	Unchanged bool
}

// ErrClosed is returned by Put after Close or Abort.
var ErrClosed = errors.New("sink already closed")
