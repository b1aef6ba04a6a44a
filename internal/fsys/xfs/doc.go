// Package xfs reads XFS v5 file systems (the default of Amazon Linux 2
// and 2023 and of RHEL) read-only, as they lie on disk: the superblock,
// inodes in every allocation group, extent lists and extent B+trees,
// short-form, block, leaf, node and B+tree directories, and local and
// remote symbolic links. It never replays the log, so it shows what was
// written back to the file system's blocks and nothing that is only in
// the log. Every inode and metadata block is checked (magic, CRC32C,
// owner, position) before it is used, every on-disk number is bounded
// before it sizes an allocation or a loop, and a damaged structure is an
// error that names it and wraps fsys.ErrCorrupt. Version 4 file systems
// and realtime files are fsys.ErrUnsupported.
package xfs
