// Package ntfs reads NTFS volumes for the fsys shape: the boot sector, the
// MFT (found through its own run list, so a fragmented MFT is read whole)
// with update sequence fixups and attribute lists, resident and
// non-resident attributes with their run lists, sparse and
// LZNT1-compressed data, alternate data streams, $I30 directory indexes
// and reparse-point symbolic links and junctions. Metafiles ($MFT,
// $LogFile, $Secure:$SDS, $Extend\$UsnJrnl:$J) read like any file.
//
// It reads what is on disk and nothing else: $LogFile is never replayed
// and nothing is written. Every number taken from disk is bounded before
// it sizes an allocation or a loop, attribute lists and index trees are
// followed with visited sets and depth bounds, and a damaged structure
// gives an error that names it and wraps fsys.ErrCorrupt.
//
// Stat follows Sleuth Kit's conventions so that bodyfiles match fls -m:
// Addr is "record-type-id" of the unnamed $DATA (or of a directory's
// $I30 $INDEX_ROOT, whose size is a directory's Size), the mode is
// derived from the read-only and hidden flags, and the times are those
// of $STANDARD_INFORMATION. An FS and the Files it opens are safe for
// concurrent use.
//
// For a caller that maps a volume's bytes to their owners rather than
// reads files (internal/fsmap), ParseBoot, ParseRecord, ParseAttrList and
// DecodeRuns give a read-only view of the same parse that goes on past
// damage: what parsed before it, with the first error.
package ntfs
