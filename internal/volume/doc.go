// Package volume is the read side of ebsimager: a snapshot's bytes,
// whatever holds them, as one Volume that can be read at any offset.
//
// Open accepts every source by name: an evidence directory (plain,
// compressed or sealed), a raw or split raw image, an E01 set (told from a
// raw image by the EWF signature), or a snapshot ID, read lazily through
// the EBS direct APIs by the opener the caller injects (package live
// builds it; this package imports neither ebs nor the AWS SDK). S3
// evidence is read through Options.Bucket (ErrNotSupported without it). Overlay is a new
// snapshot made of its base's volume and the changed blocks, fetched on
// demand (diff reads it).
//
// Every read of a stored block is verified: an evidence block against its
// manifest entry, its stored SHA-256 and the SHA-256 AWS served it with,
// an E01 chunk against its checksum, a fetched block against AWS's. A
// block that fails gives an error wrapping ErrCorrupt, never wrong bytes.
// Ranges is exact where the source knows what is allocated (the blocks a
// manifest lists, the blocks a snapshot lists); a raw image reports the
// data extents its file system knows (its holes skipped), an E01 its whole
// media. Package volumetest is the conformance suite every Volume passes.
package volume
