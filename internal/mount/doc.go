// Package mount serves a volume as a read-only FUSE file system, so that
// every tool that reads files (the Sleuth Kit, mount -o ro,loop,
// bulk_extractor, grep) works on a snapshot, an evidence directory or an
// image at once. The directory holds disk.raw, the whole volume, and
// pN.raw for each partition the partition table lists (p1, p2, … as Linux
// numbers them; MBR logical partitions from p5; the extended container is
// not one). Every read is a ReadAt of the volume, so a live snapshot
// fetches only the blocks a tool reads, each verified; a read that fails
// verification is EIO, never wrong bytes. Nothing can be written: the
// mount is "ro", and opening for writing, creating or changing attributes
// is refused with EROFS.
package mount
