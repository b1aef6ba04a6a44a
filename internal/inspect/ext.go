package inspect

import (
	"github.com/ebsimager/ebsimager/internal/ondisk"

	"fmt"
	"strings"
)

// ext2/3/4 superblock, from the kernel's fs/ext4/ext4.h (struct
// ext4_super_block): it starts 1024 bytes into the volume; offsets below
// are within it.
const (
	extSuperOffset = 1024
	extSuperSize   = 1024
	extMagic       = 0xEF53
)

// Feature bits, named as e2fsprogs' lib/e2p/feature.c prints them.
var (
	extCompat = []string{
		0: "dir_prealloc", 1: "imagic_inodes", 2: "has_journal", 3: "ext_attr",
		4: "resize_inode", 5: "dir_index", 6: "lazy_bg", 7: "snapshot_bitmap",
		8: "exclude_bitmap", 9: "sparse_super2", 10: "fast_commit",
		11: "stable_inodes", 12: "orphan_file",
	}
	extIncompat = []string{
		0: "compression", 1: "filetype", 2: "needs_recovery", 3: "journal_dev",
		4: "meta_bg", 6: "extent", 7: "64bit", 8: "mmp", 9: "flex_bg",
		10: "ea_inode", 12: "dirdata", 13: "metadata_csum_seed",
		14: "large_dir", 15: "inline_data", 16: "encrypt", 17: "casefold",
	}
	extROCompat = []string{
		0: "sparse_super", 1: "large_file", 2: "btree_dir", 3: "huge_file",
		4: "uninit_bg", 5: "dir_nlink", 6: "extra_isize", 7: "snapshot",
		8: "quota", 9: "bigalloc", 10: "metadata_csum", 11: "replica",
		12: "read-only", 13: "project", 14: "shared_blocks", 15: "verity",
		16: "orphan_present",
	}
)

const (
	extCompatHasJournal    = 1 << 2
	extIncompatFiletype    = 1 << 1
	extIncompatRecover     = 1 << 2
	extIncompatJournalDev  = 1 << 3
	extIncompatMetaBG      = 1 << 4
	extIncompat64Bit       = 1 << 7
	extROCompatSparseSuper = 1 << 0
	extROCompatLargeFile   = 1 << 1
	extROCompatBtreeDir    = 1 << 2

	// What ext2 and ext3 drivers understand; anything more makes the file
	// system ext4 (libblkid's ext probe draws the line the same way).
	ext3IncompatSupported = extIncompatFiletype | extIncompatRecover | extIncompatMetaBG
	ext2IncompatSupported = extIncompatFiletype | extIncompatMetaBG
	ext2ROCompatSupported = extROCompatSparseSuper | extROCompatLargeFile | extROCompatBtreeDir
)

func extFeatures(bits uint32, names []string) []string {
	out := []string{}
	for bit := range 32 {
		if bits&(1<<bit) == 0 {
			continue
		}
		if bit < len(names) && names[bit] != "" {
			out = append(out, names[bit])
		} else {
			out = append(out, fmt.Sprintf("FEATURE_%d", bit))
		}
	}
	return out
}

func probeExt(v volume, head []byte) (*FileSystem, error) {
	sb := field(head, extSuperOffset, extSuperSize)
	if ondisk.U16(sb, 0x38) != extMagic {
		return nil, nil
	}
	logBlock := ondisk.U32(sb, 0x18)
	if logBlock > 6 { // 1024 << 6 = 64 KiB, the largest ext4 block
		return nil, nil
	}
	blockSize := int64(1024) << logBlock
	compat, incompat, roCompat := ondisk.U32(sb, 0x5C), ondisk.U32(sb, 0x60), ondisk.U32(sb, 0x64)

	typ := TypeExt4
	switch {
	case incompat&extIncompatJournalDev != 0:
		typ = TypeJBD
	case roCompat&^ext2ROCompatSupported != 0:
	case compat&extCompatHasJournal != 0 && incompat&^ext3IncompatSupported == 0:
		typ = TypeExt3
	case compat&extCompatHasJournal == 0 && incompat&^ext2IncompatSupported == 0:
		typ = TypeExt2
	}

	blocks := uint64(ondisk.U32(sb, 0x04))
	reserved := uint64(ondisk.U32(sb, 0x08))
	free := uint64(ondisk.U32(sb, 0x0C))
	if incompat&extIncompat64Bit != 0 {
		blocks |= uint64(ondisk.U32(sb, 0x150)) << 32
		reserved |= uint64(ondisk.U32(sb, 0x154)) << 32
		free |= uint64(ondisk.U32(sb, 0x158)) << 32
	}
	inodeSize := int(ondisk.U16(sb, 0x58))
	rev := ondisk.U32(sb, 0x4C)
	if rev == 0 {
		inodeSize = 128 // revision 0 has fixed 128-byte inodes
	}
	// Times are 32-bit seconds plus, since ext4's 2038 fix, a high byte
	// each at 0x274-0x277.
	tm := func(lo, hi int) int64 { return int64(ondisk.U32(sb, lo)) | int64(ondisk.U8(sb, hi))<<32 }

	e := &Ext{
		Revision:         fmt.Sprintf("%d.%d", rev, ondisk.U16(sb, 0x3E)),
		State:            extState(ondisk.U16(sb, 0x3A)),
		ErrorBehavior:    extErrors(ondisk.U16(sb, 0x3C)),
		CreatorOS:        extCreatorOS(ondisk.U32(sb, 0x48)),
		BlockCount:       blocks,
		FreeBlocks:       free,
		ReservedBlocks:   reserved,
		InodeCount:       ondisk.U32(sb, 0x00),
		FreeInodes:       ondisk.U32(sb, 0x10),
		InodeSize:        inodeSize,
		FirstDataBlock:   ondisk.U32(sb, 0x14),
		BlocksPerGroup:   ondisk.U32(sb, 0x20),
		InodesPerGroup:   ondisk.U32(sb, 0x28),
		Created:          unixTime(tm(0x108, 0x276)),
		LastMount:        unixTime(tm(0x2C, 0x275)),
		LastWrite:        unixTime(tm(0x30, 0x274)),
		LastCheck:        unixTime(tm(0x40, 0x277)),
		LastMountedOn:    cstring(field(sb, 0x88, 64)),
		MountCount:       int(ondisk.U16(sb, 0x34)),
		MaxMountCount:    int(int16(ondisk.U16(sb, 0x36))),
		JournalInode:     ondisk.U32(sb, 0xE0),
		FeaturesCompat:   extFeatures(compat, extCompat),
		FeaturesIncompat: extFeatures(incompat, extIncompat),
		FeaturesROCompat: extFeatures(roCompat, extROCompat),
	}
	if j := field(sb, 0xD0, 16); !isZeroBytes(j) {
		e.JournalUUID = uuidString(j)
	}
	fs := &FileSystem{
		Type:      typ,
		Label:     cstring(field(sb, 0x78, 16)),
		UUID:      uuidString(field(sb, 0x68, 16)),
		BlockSize: blockSize,
		Size:      clampMul(blocks, blockSize),
		Ext:       e,
	}
	e.Created = keepTime(fs, "creation time", e.Created)
	e.LastMount = keepTime(fs, "last mount time", e.LastMount)
	e.LastWrite = keepTime(fs, "last write time", e.LastWrite)
	e.LastCheck = keepTime(fs, "last check time", e.LastCheck)
	return fs, nil
}

func extState(s uint16) string {
	parts := []string{"not clean"}
	if s&0x1 != 0 { // EXT2_VALID_FS
		parts[0] = "clean"
	}
	if s&0x2 != 0 { // EXT2_ERROR_FS
		parts = append(parts, "with errors")
	}
	if s&0x4 != 0 { // EXT3_ORPHAN_FS
		parts = append(parts, "orphans being recovered")
	}
	return strings.Join(parts, " ")
}

func extErrors(e uint16) string {
	switch e {
	case 1:
		return "continue"
	case 2:
		return "remount-ro"
	case 3:
		return "panic"
	}
	return fmt.Sprintf("unknown (%d)", e)
}

func extCreatorOS(os uint32) string {
	switch os {
	case 0:
		return "Linux"
	case 1:
		return "Hurd"
	case 2:
		return "Masix"
	case 3:
		return "FreeBSD"
	case 4:
		return "Lites"
	}
	return fmt.Sprintf("unknown (%d)", os)
}

// clampMul returns n × size in bytes, saturating instead of overflowing.
func clampMul(n uint64, size int64) int64 {
	if size <= 0 {
		return 0
	}
	const maxInt64 = 1<<63 - 1
	if n > uint64(maxInt64/size) {
		return maxInt64
	}
	return int64(n) * size
}
