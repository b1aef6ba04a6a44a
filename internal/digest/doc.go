// Package digest owns the whole-image hashes: MD5, SHA-1 and SHA-256
// computed in one pass over an image, each algorithm in its own goroutine
// so that several hashes cost about as much wall time as the slowest one,
// with a fast path that feeds runs of zeros (holes) without allocating
// them. It also owns the checksum files written beside an image, in the
// coreutils format that md5sum -c, sha1sum -c and sha256sum -c check
// (FILE.md5, FILE.sha1, FILE.sha256), and their parser.
package digest
