// Package block holds the nouns every other package shares: the fixed
// 512 KiB EBS block, its index on the volume, its SHA-256, the reference
// (index plus token) a listing hands out, and the original tool's block
// file name. It does no I/O and imports nothing of ours.
//
// Glossary:
//
//   - Snapshot: a point-in-time copy of an EBS volume, named snap-<hex>.
//   - Block: a 524,288-byte slice of the volume at offset Index × Size.
//     Only blocks that were ever written are listed; the rest read as zeros.
//   - Token: the opaque, expiring string a listing gives for each block and
//     that GetSnapshotBlock requires.
//   - Sum: the SHA-256 of a block's bytes as AWS served them. AWS sends it
//     base64-encoded in x-amz-Checksum; file names carry it in hex.
package block
