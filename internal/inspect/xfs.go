package inspect

// XFS superblock (struct xfs_dsb in the kernel's fs/xfs/libxfs/
// xfs_format.h): big-endian, at the start of the volume.
const xfsMagic = "XFSB"

func probeXFS(v volume, head []byte) (*FileSystem, error) {
	sb := head
	if !hasAt(sb, 0, xfsMagic) {
		return nil, nil
	}
	blockSize := int64(be32(sb, 4))
	sectSize := int64(be16(sb, 102))
	if !isPow2(blockSize, 512, 65536) || !isPow2(sectSize, 512, 32768) { // xfs_format.h XFS_MIN/MAX_BLOCKSIZE, SECTORSIZE
		return nil, nil
	}
	dblocks := be64(sb, 8)
	fs := &FileSystem{
		Type:       TypeXFS,
		Label:      cstring(field(sb, 108, 12)),
		UUID:       uuidString(field(sb, 32, 16)),
		BlockSize:  blockSize,
		SectorSize: sectSize,
		Size:       clampMul(dblocks, blockSize),
		XFS: &XFS{
			Version:    int(be16(sb, 100) & 0xF), // XFS_SB_VERSION_NUMBITS
			BlockCount: dblocks,
			FreeBlocks: be64(sb, 144),
			AGCount:    be32(sb, 88),
			AGBlocks:   be32(sb, 84),
			InodeSize:  int(be16(sb, 104)),
			InodeCount: be64(sb, 128),
			FreeInodes: be64(sb, 136),
			LogBlocks:  be32(sb, 96),
			RootInode:  be64(sb, 56),
		},
	}
	return fs, nil
}
