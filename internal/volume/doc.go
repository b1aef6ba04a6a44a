// Package volume is the read side of ebsimager: a snapshot's bytes,
// whatever holds them, as one Volume that can be read at any offset.
//
// A Volume is an evidence directory (plain, compressed or sealed), a raw
// or split raw image, an E01 set, or a live snapshot read lazily through
// the EBS direct APIs (package live). Open accepts every one of them by
// name. Every read of a stored block is verified: a block that does not
// match its recorded SHA-256 (or an E01 chunk its checksum) gives an error
// that wraps ErrCorrupt, never wrong bytes.
package volume
