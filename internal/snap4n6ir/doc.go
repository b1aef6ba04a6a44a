// Package snap4n6ir reads the block folders that Snapshot 4n6ir Imager,
// the Python tool ebsimager succeeds, left behind: SNAP/ with one raw file
// per 512 KiB block, SNAP_compressed/ with the same files gzipped, and
// SNAP_encrypted/ with each gzipped file wrapped in a Fernet token under
// a key derived from a password and salt (PBKDF2-HMAC-SHA256). It lists a
// folder's blocks in index order and returns each block's bytes only
// after checking them against the SHA-256 in the file name, so that they
// can enter an evidence directory like any freshly fetched block. It
// writes nothing.
package snap4n6ir
