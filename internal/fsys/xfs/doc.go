// Package xfs reads XFS file systems read-only, as they lie on disk:
// version 5 (CRC-enabled, the default of Amazon Linux 2 and 2023 and of
// RHEL) and version 4. It reads the superblock, inodes in every
// allocation group, extent lists and extent B+trees, short-form, block,
// leaf, node and B+tree directories, and local and remote symbolic
// links. It never replays the log, so it shows what was written back to
// the file system's blocks and nothing that is only in the log. Every
// inode and metadata block is checked before it is used (its magic and,
// on v5, its CRC32C, owner, UUID and disk address), every on-disk number
// is bounded before it sizes an allocation or a loop, B+tree cycles are
// caught, each call reads a bounded number of metadata blocks, and a
// damaged structure is an error that names it and wraps fsys.ErrCorrupt.
// Realtime files and version 1 directories are fsys.ErrUnsupported.
package xfs
