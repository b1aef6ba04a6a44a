// Package inspect owns what a disk image says about itself before any file
// is read: its partition table (MBR with extended/logical chains, or GPT
// with both headers checked) and, for each partition or for a bare volume,
// the file system's identity and key facts from its superblock (ext2/3/4,
// XFS, NTFS, FAT12/16/32, exFAT, Btrfs, LVM2 PV, LUKS, Linux swap,
// ISO9660). It reads an io.ReaderAt through a small cache of 512 KiB
// blocks, so each EBS block is fetched at most once, never panics on
// garbage, and returns JSON-ready values plus an mmls-like text rendering.
package inspect
