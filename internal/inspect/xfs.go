package inspect

import "github.com/ebsimager/ebsimager/internal/ondisk"

// XFS superblock (struct xfs_dsb in the kernel's fs/xfs/libxfs/
// xfs_format.h): big-endian, at the start of the volume.
const xfsMagic = "XFSB"

func probeXFS(v volume, head []byte) (*FileSystem, error) {
	sb := head
	if !hasAt(sb, 0, xfsMagic) {
		return nil, nil
	}
	blockSize := int64(ondisk.BE32(sb, 4))
	sectSize := int64(ondisk.BE16(sb, 102))
	if !isPow2(blockSize, 512, 65536) || !isPow2(sectSize, 512, 32768) { // xfs_format.h XFS_MIN/MAX_BLOCKSIZE, SECTORSIZE
		return nil, nil
	}
	dblocks := ondisk.BE64(sb, 8)
	fs := &FileSystem{
		Type:       TypeXFS,
		Label:      cstring(field(sb, 108, 12)),
		UUID:       uuidString(field(sb, 32, 16)),
		BlockSize:  blockSize,
		SectorSize: sectSize,
		Size:       clampMul(dblocks, blockSize),
		XFS: &XFS{
			Version:    int(ondisk.BE16(sb, 100) & 0xF), // XFS_SB_VERSION_NUMBITS
			BlockCount: dblocks,
			FreeBlocks: ondisk.BE64(sb, 144),
			AGCount:    ondisk.BE32(sb, 88),
			AGBlocks:   ondisk.BE32(sb, 84),
			InodeSize:  int(ondisk.BE16(sb, 104)),
			InodeCount: ondisk.BE64(sb, 128),
			FreeInodes: ondisk.BE64(sb, 136),
			LogBlocks:  ondisk.BE32(sb, 96),
			RootInode:  ondisk.BE64(sb, 56),
		},
	}
	return fs, nil
}
