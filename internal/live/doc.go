// Package live reads a snapshot through the EBS direct APIs as a
// volume.Volume, with no acquisition: a read lists only the region it
// touches (ListSnapshotBlocks from a StartingBlockIndex) and fetches
// only the blocks it needs, each verified against the SHA-256 AWS served
// it with before a byte of it is returned.
//
// What the listing says is kept compactly: an allocation bitmap per
// listing chunk of 10,000 block slots, made on first use (a whole 64 TiB
// snapshot is at most 16 MiB of it, and an empty or fully allocated
// chunk costs one shared slice), and the block tokens of a bounded set
// of recently used chunks, evicted least recently used first and listed
// again when needed, expired or refused. Holes read as zeros without a
// request. Fetched blocks go into an LRU cache with a memory bound;
// concurrent misses of one block make one request; sequential reads
// start a bounded readahead of the allocated blocks that follow. With an
// evidence directory, every fetched block is also stored there, as an
// acquisition would store it, so a later acquisition of the directory
// fetches only the rest. A block that fails verification after every
// retry is an error wrapping volume.ErrCorrupt, never its bytes.
package live
