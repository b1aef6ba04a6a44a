// Package incremental acquires a snapshot against the evidence of an
// earlier snapshot of the same volume (acquire --base). Only the blocks
// ListChangedBlocks reports between the two are fetched, through the
// acquire pipeline; every other block of the base is hard-linked (or
// copied) into the new evidence, and a base block that does not match
// the base's manifest is fetched from the snapshot instead. The result is
// a complete evidence directory of the new snapshot.
package incremental
