// Package ext reads ext2, ext3 and ext4 file systems as an fsys.FS: the
// superblock and group descriptors (32- and 64-byte, flex_bg, meta_bg),
// inodes with their times, owners and sizes, extent trees and ext2/3
// block maps, inline data, sparse files, linear and hash-tree
// directories, and fast, slow and inline symbolic links. It reads what
// is on disk and nothing else: the journal is never replayed and nothing
// is written. With metadata_csum it checks the superblock, group
// descriptor, inode, extent block and directory block checksums (with
// uninit_bg, the descriptors' crc16); a mismatch makes the call that met
// it fail with an error naming the structure and wrapping
// fsys.ErrCorrupt, and other files stay readable (Options can read past
// mismatches, except the superblock's). Every number read from
// disk is bounded before it sizes an allocation or a loop, tree blocks
// are never visited twice in one call, and each call has a work budget,
// so a damaged or hostile volume gives an error, never a hang.
//
// Scan opens a volume for a walk of every structure instead of files by
// path (internal/fsmap maps which file owns which bytes with it): the
// fixed structures of each group, each inode table's records in use, and
// each inode's tree and data blocks. It is lenient where the reader is
// strict: no checksums, no refused features, and an inode's damaged tree
// blocks and extents are skipped and reported rather than fatal.
package ext
