// Package fsmap owns the map from a file system's bytes to their owners:
// for ext2/3/4 and NTFS it reads the structures that say where every file
// lives (the ext superblock, group descriptors, bitmaps, inode tables,
// extent trees and block maps, directories; the NTFS boot sector and MFT
// records with their fixups, run lists and resident values) and answers
// "which files or file-system structures own bytes [off, off+n), and as
// data or as metadata". It names files by their full paths, read from the
// directories (ext) or the $FILE_NAME attributes (NTFS). The NTFS
// structures are parsed by internal/fsys/ntfs, through its record view;
// fsmap adds where they lie and whom they belong to. It reads an
// io.ReaderAt of one volume and never walks file data: only metadata is
// read, within a budget proportional to the volume, and damaged or hostile
// structures become warnings, never panics. It knows nothing of EBS.
package fsmap
