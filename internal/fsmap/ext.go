package fsmap

import (
	"github.com/ebsimager/ebsimager/internal/ondisk"

	"fmt"
	"path"
	"slices"
	"strings"
)

// ext2/3/4 on-disk layout, from the kernel's fs/ext4/ext4.h and
// fs/ext4/ext4_extents.h (offsets in bytes, within the superblock, group
// descriptor, inode, extent node or directory entry).
const (
	extSuperOff    = 1024   // the superblock starts 1024 bytes into the volume
	extMagic       = 0xEF53 // s_magic
	extRootIno     = 2      // EXT2_ROOT_INO
	extOldInode    = 128    // EXT2_GOOD_OLD_INODE_SIZE, revision 0
	extOldFirstIno = 11     // EXT2_GOOD_OLD_FIRST_INO, revision 0
	extMaxDepth    = 5      // EXT4_MAX_EXTENT_DEPTH
	extExtentMagic = 0xF30A // eh_magic
	extNodeHeader  = 12     // sizeof(struct ext4_extent_header), and of each entry
	extInitMaxLen  = 32768  // EXT_INIT_MAX_LEN: longer ee_len means unwritten
	extMaxLogBlock = 6      // 64 KiB blocks, the largest ext4 allows
	extPathDepth   = 4096   // deeper directory chains are loops in damaged volumes

	// Superblock.
	sInodesCount     = 0x00
	sBlocksCountLo   = 0x04
	sFirstDataBlock  = 0x14
	sLogBlockSize    = 0x18
	sBlocksPerGroup  = 0x20
	sInodesPerGroup  = 0x28
	sMagic           = 0x38
	sRevLevel        = 0x4C
	sFirstIno        = 0x54
	sInodeSize       = 0x58
	sFeatureCompat   = 0x5C
	sFeatureIncompat = 0x60
	sFeatureROCompat = 0x64
	sReservedGDT     = 0xCE
	sJournalInum     = 0xE0
	sDescSize        = 0xFE
	sFirstMetaBg     = 0x104
	sBlocksCountHi   = 0x150
	sUsrQuotaInum    = 0x240
	sGrpQuotaInum    = 0x244
	sBackupBgs       = 0x24C
	sPrjQuotaInum    = 0x26C
	sOrphanFileInum  = 0x280

	// Features.
	compatHasJournal    = 0x4
	compatSparseSuper2  = 0x200
	incompatFiletype    = 0x2
	incompatJournalDev  = 0x8
	incompatMetaBg      = 0x10
	incompatExtents     = 0x40
	incompat64Bit       = 0x80
	incompatFlexBg      = 0x200
	incompatInlineData  = 0x8000
	roSparseSuper       = 0x1
	roHugeFile          = 0x8
	roGDTCsum           = 0x10
	roDirNlink          = 0x20
	roExtraIsize        = 0x40
	roMetadataCsum      = 0x400
	descSizeOld         = 32 // EXT2_MIN_DESC_SIZE
	descSize64          = 64 // EXT2_MIN_DESC_SIZE_64BIT
	bgInodeUninit       = 0x1
	inodeFlagExtents    = 0x80000
	inodeFlagInlineData = 0x10000000

	// Group descriptor.
	bgBlockBitmapLo  = 0x00
	bgInodeBitmapLo  = 0x04
	bgInodeTableLo   = 0x08
	bgFlags          = 0x12
	bgItableUnusedLo = 0x1C
	bgBlockBitmapHi  = 0x20
	bgInodeBitmapHi  = 0x24
	bgInodeTableHi   = 0x28
	bgItableUnusedHi = 0x32

	// Inode.
	iMode      = 0x00
	iSizeLo    = 0x04
	iBlocksLo  = 0x1C
	iFlags     = 0x20
	iBlock     = 0x28
	iBlockLen  = 60
	iFileACLLo = 0x68
	iFileACLHi = 0x76

	// Mode types (S_IFMT).
	modeType    = 0xF000
	modeDir     = 0x4000
	modeRegular = 0x8000
	modeSymlink = 0xA000
)

func isExt(head []byte) bool {
	sb := head[extSuperOff:]
	return ondisk.U16(sb, sMagic) == extMagic && ondisk.U32(sb, sFeatureIncompat)&incompatJournalDev == 0
}

type extGroup struct {
	blockBitmap, inodeBitmap, inodeTable uint64
	flags                                uint16
	itableUnused                         uint32
}

type extLink struct {
	dir  uint32
	name string
}

type extDir struct {
	ino    uint32
	runs   [][2]uint64 // physical block, count
	inline []byte
}

type extFS struct {
	b  *builder
	rd *reader

	typ                        string
	bs                         int64
	blocks                     uint64
	firstData                  uint64
	perGroup, inodesPerGroup   uint64
	inodes                     uint64
	groups                     uint64
	inodeSize                  int
	descSize                   int
	firstIno                   uint32
	compat, incompat, roCompat uint32
	reservedGDT                uint64
	firstMetaBg                uint64
	backupBgs                  [2]uint32
	specials                   map[uint32]string

	gd       []extGroup
	owners   map[uint32]int  // inodes of mapped files
	usedDirs map[uint32]bool // every directory in use, mapped or not
	dirs     []extDir
	parents  map[uint32][]extLink
	paths    map[uint32]string
}

func buildExt(rd *reader, keep []Range) (*Map, error) {
	sb, err := rd.read(extSuperOff, 1024)
	if err != nil {
		return nil, fmt.Errorf("reading the ext superblock: %w", err)
	}
	x := &extFS{rd: rd, owners: map[uint32]int{}, usedDirs: map[uint32]bool{}, parents: map[uint32][]extLink{}, paths: map[uint32]string{}}
	if err := x.superblock(sb, keep); err != nil {
		return nil, err
	}
	if err := x.descriptors(); err != nil {
		return nil, err
	}
	x.layout()
	if err := x.inodeTables(); err != nil {
		return nil, err
	}
	if err := x.directories(); err != nil {
		return nil, err
	}
	x.name()
	return x.b.finish()
}

func (x *extFS) superblock(sb []byte, keep []Range) error {
	log := ondisk.U32(sb, sLogBlockSize)
	if log > extMaxLogBlock {
		return fmt.Errorf("ext superblock: block size 2^%d KiB", log)
	}
	x.bs = 1024 << log
	x.blocks = uint64(ondisk.U32(sb, sBlocksCountLo))
	x.compat, x.incompat, x.roCompat = ondisk.U32(sb, sFeatureCompat), ondisk.U32(sb, sFeatureIncompat), ondisk.U32(sb, sFeatureROCompat)
	if x.incompat&incompat64Bit != 0 {
		x.blocks |= uint64(ondisk.U32(sb, sBlocksCountHi)) << 32
	}
	x.firstData = uint64(ondisk.U32(sb, sFirstDataBlock))
	x.perGroup = uint64(ondisk.U32(sb, sBlocksPerGroup))
	x.inodesPerGroup = uint64(ondisk.U32(sb, sInodesPerGroup))
	x.inodes = uint64(ondisk.U32(sb, sInodesCount))
	bits := uint64(8 * x.bs) // a group's bitmaps are one block each
	if x.perGroup == 0 || x.perGroup > bits || x.inodesPerGroup == 0 || x.inodesPerGroup > bits {
		return fmt.Errorf("ext superblock: %d blocks and %d inodes per group with %d-byte blocks", x.perGroup, x.inodesPerGroup, x.bs)
	}
	if x.blocks <= x.firstData || x.firstData > 1 {
		return fmt.Errorf("ext superblock: %d blocks, first data block %d", x.blocks, x.firstData)
	}
	x.inodeSize, x.firstIno = extOldInode, extOldFirstIno
	if ondisk.U32(sb, sRevLevel) >= 1 {
		x.inodeSize, x.firstIno = int(ondisk.U16(sb, sInodeSize)), ondisk.U32(sb, sFirstIno)
	}
	if x.inodeSize < extOldInode || x.inodeSize > int(x.bs) || x.inodeSize&(x.inodeSize-1) != 0 {
		return fmt.Errorf("ext superblock: inode size %d", x.inodeSize)
	}
	if x.firstIno <= extRootIno {
		x.firstIno = extOldFirstIno
	}
	x.descSize = descSizeOld
	if x.incompat&incompat64Bit != 0 {
		x.descSize = int(ondisk.U16(sb, sDescSize))
		if x.descSize < descSize64 || x.descSize > int(x.bs) || x.descSize&(x.descSize-1) != 0 {
			return fmt.Errorf("ext superblock: group descriptor size %d", x.descSize)
		}
	}
	x.reservedGDT = uint64(ondisk.U16(sb, sReservedGDT))
	x.firstMetaBg = uint64(ondisk.U32(sb, sFirstMetaBg))
	x.backupBgs = [2]uint32{ondisk.U32(sb, sBackupBgs), ondisk.U32(sb, sBackupBgs+4)}

	switch {
	case x.incompat&(incompatExtents|incompat64Bit|incompatFlexBg|incompatInlineData) != 0,
		x.roCompat&(roHugeFile|roGDTCsum|roDirNlink|roExtraIsize|roMetadataCsum) != 0:
		x.typ = "ext4"
	case x.compat&compatHasJournal != 0:
		x.typ = "ext3"
	default:
		x.typ = "ext2"
	}
	fsBytes := int64(min(x.blocks, uint64(1<<62)/uint64(x.bs))) * x.bs
	x.b = newBuilder(x.typ, min(fsBytes, x.rd.size), x.bs, keep)
	if fsBytes > x.rd.size {
		x.b.warnf("the file system says it spans %d bytes; the volume has %d: structures past the end are skipped", fsBytes, x.rd.size)
		x.blocks = uint64(x.rd.size / x.bs)
	}
	x.groups = (x.blocks - x.firstData + x.perGroup - 1) / x.perGroup
	if want := x.groups * x.inodesPerGroup; x.inodes > want || x.inodes == 0 {
		x.inodes = want
	}
	x.specials = map[uint32]string{
		1: "bad blocks inode", 3: "user quota", 4: "group quota", 5: "boot loader inode",
		6: "undelete directory", 7: "reserved GDT blocks", 8: "journal", 9: "exclude bitmap", 10: "replica inode",
	}
	for off, name := range map[int]string{sJournalInum: "journal", sUsrQuotaInum: "user quota", sGrpQuotaInum: "group quota",
		sPrjQuotaInum: "project quota", sOrphanFileInum: "orphan file"} {
		if ino := ondisk.U32(sb, off); ino != 0 && ino != extRootIno {
			x.specials[ino] = name
		}
	}
	return nil
}

func (x *extFS) structure(what string) func() int { return x.b.named(x.typ + ":" + what) }

// groupFirst returns the first block of group g.
func (x *extFS) groupFirst(g uint64) uint64 { return x.firstData + g*x.perGroup }

// hasSuper reports whether group g holds a superblock backup.
func (x *extFS) hasSuper(g uint64) bool {
	switch {
	case g == 0:
		return true
	case x.compat&compatSparseSuper2 != 0:
		return g == uint64(x.backupBgs[0]) || g == uint64(x.backupBgs[1])
	case x.roCompat&roSparseSuper == 0:
		return true
	case g == 1:
		return true
	}
	for _, base := range []uint64{3, 5, 7} { // sparse_super: powers of 3, 5 and 7
		n := base
		for n < g {
			n *= base
		}
		if n == g {
			return true
		}
	}
	return false
}

func (x *extFS) descPerBlock() uint64 { return uint64(x.bs) / uint64(x.descSize) }

// descBlock returns the block that holds descriptor block i (as
// ext2fs_descriptor_block_loc2 finds it for the primary copy).
func (x *extFS) descBlock(i uint64) uint64 {
	if x.incompat&incompatMetaBg == 0 || i < x.firstMetaBg {
		return x.firstData + 1 + i
	}
	g := i * x.descPerBlock()
	loc := x.groupFirst(g)
	if x.hasSuper(g) {
		loc++
	}
	return loc
}

func (x *extFS) validBlock(blk, n uint64) bool {
	return blk >= x.firstData && n > 0 && blk < x.blocks && n <= x.blocks-blk
}

func (x *extFS) descriptors() error {
	dpb := x.descPerBlock()
	nblocks := (x.groups + dpb - 1) / dpb
	x.gd = make([]extGroup, 0, min(x.groups, 1<<20))
	for i := uint64(0); i < nblocks; i++ {
		loc := x.descBlock(i)
		if !x.validBlock(loc, 1) {
			return fmt.Errorf("ext group descriptor block %d at block %d: outside the file system", i, loc)
		}
		blk, err := x.rd.read(int64(loc)*x.bs, int(x.bs))
		if err != nil {
			return fmt.Errorf("reading ext group descriptors: %w", err)
		}
		for k := uint64(0); k < dpb && uint64(len(x.gd)) < x.groups; k++ {
			d := blk[k*uint64(x.descSize):]
			g := extGroup{
				blockBitmap:  uint64(ondisk.U32(d, bgBlockBitmapLo)),
				inodeBitmap:  uint64(ondisk.U32(d, bgInodeBitmapLo)),
				inodeTable:   uint64(ondisk.U32(d, bgInodeTableLo)),
				flags:        ondisk.U16(d, bgFlags),
				itableUnused: uint32(ondisk.U16(d, bgItableUnusedLo)),
			}
			if x.descSize >= descSize64 {
				g.blockBitmap |= uint64(ondisk.U32(d, bgBlockBitmapHi)) << 32
				g.inodeBitmap |= uint64(ondisk.U32(d, bgInodeBitmapHi)) << 32
				g.inodeTable |= uint64(ondisk.U32(d, bgInodeTableHi)) << 32
				g.itableUnused |= uint32(ondisk.U16(d, bgItableUnusedHi)) << 16
			}
			x.gd = append(x.gd, g)
		}
	}
	return nil
}

// layout adds the superblocks, group descriptors and bitmaps.
func (x *extFS) layout() {
	sbOwner, gdOwner := x.structure("superblock"), x.structure("group descriptors")
	bbOwner, ibOwner := x.structure("block bitmap"), x.structure("inode bitmap")
	dpb := x.descPerBlock()
	gdtBlocks := (x.groups + dpb - 1) / dpb
	if x.incompat&incompatMetaBg != 0 {
		gdtBlocks = min(gdtBlocks, x.firstMetaBg)
	}
	for g := uint64(0); g < x.groups; g++ {
		if x.hasSuper(g) {
			first := x.groupFirst(g)
			if g == 0 {
				x.b.add(extSuperOff, 1024, Metadata, sbOwner)
				first = x.firstData
			} else {
				x.b.add(int64(first)*x.bs, x.bs, Metadata, sbOwner)
			}
			if x.validBlock(first+1, gdtBlocks) {
				x.b.add(int64(first+1)*x.bs, int64(gdtBlocks)*x.bs, Metadata, gdOwner)
			}
		}
		if x.incompat&incompatMetaBg != 0 {
			// META_BG keeps each meta group's descriptor block in the
			// group's first, second and last groups.
			if m := g / dpb; m >= x.firstMetaBg {
				if r := g % dpb; r == 0 || r == 1 || r == dpb-1 {
					loc := x.groupFirst(g)
					if x.hasSuper(g) {
						loc++
					}
					if x.validBlock(loc, 1) {
						x.b.add(int64(loc)*x.bs, x.bs, Metadata, gdOwner)
					}
				}
			}
		}
		gd := x.gd[g]
		if x.validBlock(gd.blockBitmap, 1) {
			x.b.add(int64(gd.blockBitmap)*x.bs, x.bs, Metadata, bbOwner)
		}
		if x.validBlock(gd.inodeBitmap, 1) {
			x.b.add(int64(gd.inodeBitmap)*x.bs, x.bs, Metadata, ibOwner)
		}
	}
}

// csumGroups reports whether descriptors carry INODE_UNINIT and
// itable_unused (uninit_bg or metadata_csum).
func (x *extFS) csumGroups() bool { return x.roCompat&(roGDTCsum|roMetadataCsum) != 0 }

func (x *extFS) inodeTables() error {
	itOwner := x.structure("inode table")
	isz := int64(x.inodeSize)
	tableBlocks := (uint64(x.inodesPerGroup)*uint64(isz) + uint64(x.bs) - 1) / uint64(x.bs)
	for g := uint64(0); g < x.groups; g++ {
		gd := x.gd[g]
		if !x.validBlock(gd.inodeTable, tableBlocks) {
			x.b.warnf("group %d: inode table at block %d is outside the file system", g, gd.inodeTable)
			continue
		}
		tableOff := int64(gd.inodeTable) * x.bs
		used := x.inodesPerGroup
		if x.csumGroups() {
			if gd.flags&bgInodeUninit != 0 {
				used = 0
			} else {
				used -= min(uint64(gd.itableUnused), used)
			}
		}
		if first := g * x.inodesPerGroup; first+used > x.inodes {
			used = x.inodes - min(first, x.inodes)
		}
		if used < x.inodesPerGroup {
			x.b.add(tableOff+int64(used)*isz, int64(x.inodesPerGroup-used)*isz, Metadata, itOwner)
		}
		if used == 0 {
			continue
		}
		var bitmap []byte
		if x.validBlock(gd.inodeBitmap, 1) {
			var err error
			if bitmap, err = x.rd.read(int64(gd.inodeBitmap)*x.bs, int(x.bs)); fatal(err) {
				return fmt.Errorf("reading the inode bitmap of group %d: %w", g, err)
			}
		}
		if bitmap == nil {
			x.b.warnf("group %d: inode bitmap at block %d is unreadable; its inodes are skipped", g, gd.inodeBitmap)
			x.b.add(tableOff, int64(used)*isz, Metadata, itOwner)
			continue
		}
		const chunk = 1 << 20 // read inode tables a MiB at a time
		per := uint64(max(chunk/isz, 1))
		for j := uint64(0); j < used; j += per {
			n := min(per, used-j)
			buf, err := x.rd.read(tableOff+int64(j)*isz, int(int64(n)*isz))
			if fatal(err) {
				return fmt.Errorf("reading the inode table of group %d: %w", g, err)
			}
			if err != nil {
				x.b.warnf("group %d: inode table: %v", g, err)
				break
			}
			for k := uint64(0); k < n; k++ {
				idx := j + k
				ino := uint32(g*x.inodesPerGroup + idx + 1)
				rec := buf[int64(k)*isz : int64(k+1)*isz]
				recOff := tableOff + int64(idx)*isz
				if bitmap[idx/8]&(1<<(idx%8)) == 0 || !x.inUse(ino, rec) {
					x.b.add(recOff, isz, Metadata, itOwner)
					continue
				}
				if err := x.inode(ino, recOff, rec); err != nil {
					return err
				}
				if x.b.err != nil {
					return x.b.err
				}
			}
		}
	}
	return nil
}

func (x *extFS) inUse(ino uint32, rec []byte) bool {
	if ondisk.U16(rec, iMode) != 0 {
		return true
	}
	// Reserved inodes may have no mode yet own blocks (bad blocks, quota).
	return ino < x.firstIno && ondisk.U32(rec, iBlocksLo) != 0
}

func (x *extFS) inode(ino uint32, recOff int64, rec []byte) error {
	mode, flags := ondisk.U16(rec, iMode), ondisk.U32(rec, iFlags)
	size := uint64(ondisk.U32(rec, iSizeLo))
	kind := KindSpecial
	switch mode & modeType {
	case modeRegular:
		kind = KindFile
	case modeDir:
		kind = KindDir
	case modeSymlink:
		kind = KindSymlink
	}
	var owner func() int
	dataRole := Data
	if name, special := x.specials[ino]; special || (ino < x.firstIno && ino != extRootIno) {
		if !special {
			name = fmt.Sprintf("reserved inode %d", ino)
		}
		owner, dataRole = x.structure(name), Metadata
	} else {
		owner = func() int {
			if i, ok := x.owners[ino]; ok {
				return i
			}
			i := x.b.owner(Owner{ID: uint64(ino), Kind: kind, Record: Range{recOff, int64(len(rec))}})
			x.owners[ino] = i
			return i
		}
		if kind == KindDir {
			dataRole = Metadata // directory entries are metadata
			x.usedDirs[ino] = true
		}
	}
	inline := flags&inodeFlagInlineData != 0
	fastLink := kind == KindSymlink && flags&inodeFlagExtents == 0 && size < iBlockLen
	iblock := rec[iBlock : iBlock+iBlockLen]
	if inline || fastLink {
		// The data lives in i_block, inside the inode.
		x.b.add(recOff, iBlock, Metadata, owner)
		x.b.add(recOff+iBlock, iBlockLen, dataRole, owner)
		x.b.add(recOff+iBlock+iBlockLen, int64(len(rec))-iBlock-iBlockLen, Metadata, owner)
	} else {
		x.b.add(recOff, int64(len(rec)), Metadata, owner)
	}
	if acl := uint64(ondisk.U32(rec, iFileACLLo)) | uint64(ondisk.U16(rec, iFileACLHi))<<32; acl != 0 {
		if x.validBlock(acl, 1) {
			x.b.add(int64(acl)*x.bs, x.bs, Metadata, owner)
		} else {
			x.b.warnf("inode %d: extended attribute block %d is outside the file system", ino, acl)
		}
	}
	var dir *extDir
	if x.usedDirs[ino] {
		x.dirs = append(x.dirs, extDir{ino: ino})
		dir = &x.dirs[len(x.dirs)-1]
	}
	w := extWalk{x: x, ino: ino, owner: owner, emit: func(blk, n uint64) {
		x.b.add(int64(blk)*x.bs, int64(n)*x.bs, dataRole, owner)
		if dir != nil {
			if k := len(dir.runs); k > 0 && dir.runs[k-1][0]+dir.runs[k-1][1] == blk {
				dir.runs[k-1][1] += n
			} else {
				dir.runs = append(dir.runs, [2]uint64{blk, n})
			}
		}
	}}
	switch {
	case inline || fastLink:
		if dir != nil {
			dir.inline = slices.Clone(iblock)
		}
		return nil
	case flags&inodeFlagExtents != 0:
		return w.extentNode(iblock, -1)
	}
	return w.blockMap(iblock)
}

// extWalk walks one inode's block tree: data blocks go to emit, tree
// blocks are the owner's metadata.
type extWalk struct {
	x     *extFS
	ino   uint32
	owner func() int
	emit  func(blk, n uint64)
}

// node reads the tree block blk, the owner's metadata.
func (w extWalk) node(blk uint64, what string) ([]byte, error) {
	x := w.x
	if !x.validBlock(blk, 1) {
		x.b.warnf("inode %d: %s at block %d is outside the file system", w.ino, what, blk)
		return nil, nil
	}
	x.b.add(int64(blk)*x.bs, x.bs, Metadata, w.owner)
	buf, err := x.rd.read(int64(blk)*x.bs, int(x.bs))
	if err != nil {
		if fatal(err) {
			return nil, fmt.Errorf("reading inode %d's %s: %w", w.ino, what, err)
		}
		x.b.warnf("inode %d: %v", w.ino, err)
		return nil, nil
	}
	return buf, x.b.err
}

// extentNode walks one node of an extent tree: leaves name data blocks,
// index entries name child nodes.
func (w extWalk) extentNode(node []byte, want int) error {
	x := w.x
	if ondisk.U16(node, 0) != extExtentMagic {
		x.b.warnf("inode %d: extent node without its magic number", w.ino)
		return nil
	}
	entries, depth := int(ondisk.U16(node, 2)), int(ondisk.U16(node, 6))
	if depth > extMaxDepth || (want >= 0 && depth != want) {
		x.b.warnf("inode %d: extent node of depth %d (want %d)", w.ino, depth, want)
		return nil
	}
	if room := (len(node) - extNodeHeader) / extNodeHeader; entries > room {
		x.b.warnf("inode %d: extent node claims %d entries, has room for %d", w.ino, entries, room)
		entries = room
	}
	for k := range entries {
		e := node[extNodeHeader*(k+1):]
		if depth == 0 {
			n := uint64(ondisk.U16(e, 4))
			if n > extInitMaxLen {
				n -= extInitMaxLen // an unwritten extent: allocated all the same
			}
			start := uint64(ondisk.U16(e, 6))<<32 | uint64(ondisk.U32(e, 8))
			if n == 0 {
				continue
			}
			if !x.validBlock(start, n) {
				x.b.warnf("inode %d: extent of %d blocks at %d is outside the file system", w.ino, n, start)
				continue
			}
			w.emit(start, n)
			continue
		}
		blk, err := w.node(uint64(ondisk.U16(e, 8))<<32|uint64(ondisk.U32(e, 4)), "extent node")
		if err != nil {
			return err
		}
		if blk != nil {
			if err := w.extentNode(blk, depth-1); err != nil {
				return err
			}
		}
	}
	return x.b.err
}

// blockMap walks the ext2/3 block map: 12 direct pointers, then single,
// double and triple indirect blocks.
func (w extWalk) blockMap(iblock []byte) error {
	const direct = 12 // EXT2_NDIR_BLOCKS
	for k := range direct {
		if err := w.pointer(uint64(ondisk.U32(iblock, 4*k)), 0); err != nil {
			return err
		}
	}
	for level := 1; level <= 3; level++ {
		if err := w.pointer(uint64(ondisk.U32(iblock, 4*(direct+level-1))), level); err != nil {
			return err
		}
	}
	return nil
}

// pointer follows block pointer p: a data block at level 0, else an
// indirect block of that level.
func (w extWalk) pointer(p uint64, level int) error {
	x := w.x
	switch {
	case p == 0:
		return nil
	case level == 0 && x.validBlock(p, 1):
		w.emit(p, 1)
		return nil
	case level == 0:
		x.b.warnf("inode %d: block %d is outside the file system", w.ino, p)
		return nil
	}
	blk, err := w.node(p, "indirect block")
	if err != nil || blk == nil {
		return err
	}
	for k := 0; k+4 <= len(blk); k += 4 {
		if err := w.pointer(uint64(ondisk.U32(blk, k)), level-1); err != nil {
			return err
		}
	}
	return x.b.err
}

// directories reads every directory's entries to learn the names.
func (x *extFS) directories() error {
	for _, d := range x.dirs {
		if d.inline != nil {
			// Inline directories keep the parent's inode number first,
			// then entries; "." and ".." are implied.
			x.entries(d.ino, d.inline[4:])
			continue
		}
		for _, r := range d.runs {
			for blk := r[0]; blk < r[0]+r[1]; blk++ {
				buf, err := x.rd.read(int64(blk)*x.bs, int(x.bs))
				if err != nil {
					if fatal(err) {
						return fmt.Errorf("reading directory inode %d: %w", d.ino, err)
					}
					x.b.warnf("directory inode %d: %v", d.ino, err)
					continue
				}
				x.entries(d.ino, buf)
			}
		}
	}
	return nil
}

// entries parses a block of linear directory entries. Hash-tree interior
// blocks and checksum tails hold entries with inode 0, which are skipped.
func (x *extFS) entries(dir uint32, buf []byte) {
	const header = 8 // inode, rec_len, name_len, file_type
	for off := 0; off+header <= len(buf); {
		ino := ondisk.U32(buf, off)
		recLen := int(ondisk.U16(buf, off+4))
		if x.bs >= 1<<16 && (recLen == 0xFFFF || recLen == 0) {
			recLen = int(x.bs) // EXT4_MAX_REC_LEN stands for a whole 64 KiB block
		} else {
			recLen = recLen&0xFFFC | (recLen&3)<<16
		}
		nameLen := int(buf[off+6])
		if x.incompat&incompatFiletype == 0 {
			nameLen = int(ondisk.U16(buf, off+6))
		}
		if recLen < header || recLen%4 != 0 || off+recLen > len(buf) || header+nameLen > recLen {
			x.b.warnf("directory inode %d: malformed entry at byte %d", dir, off)
			return
		}
		name := string(buf[off+header : off+header+nameLen])
		if ino != 0 && uint64(ino) <= x.inodes && name != "." && name != ".." && nameLen > 0 && x.wanted(ino) {
			x.parents[ino] = append(x.parents[ino], extLink{dir: dir, name: cleanName(name)})
		}
		off += recLen
	}
}

// wanted reports whether the name of inode ino is needed: it is mapped,
// or a directory that may be on a mapped file's path.
func (x *extFS) wanted(ino uint32) bool {
	_, mapped := x.owners[ino]
	return mapped || x.usedDirs[ino]
}

// name gives every file owner its path.
func (x *extFS) name() {
	for ino, owner := range x.owners {
		p, ok := x.path(ino, 0, map[uint32]bool{})
		if !ok {
			p = fmt.Sprintf("<inode %d>", ino)
		}
		x.b.m.owners[owner].Name = p
	}
}

func (x *extFS) path(ino uint32, depth int, visiting map[uint32]bool) (string, bool) {
	if ino == extRootIno {
		return "/", true
	}
	if p, ok := x.paths[ino]; ok {
		return p, p != ""
	}
	links := x.parents[ino]
	if len(links) == 0 || depth > extPathDepth || visiting[ino] {
		return "", false
	}
	visiting[ino] = true
	defer delete(visiting, ino)
	slices.SortFunc(links, func(a, b extLink) int {
		if a.dir != b.dir {
			return cmpInt64(int64(a.dir), int64(b.dir))
		}
		return strings.Compare(a.name, b.name)
	})
	for _, l := range links {
		if !x.usedDirs[l.dir] {
			continue // named by a directory that is not in use
		}
		if pp, ok := x.path(l.dir, depth+1, visiting); ok {
			p := path.Join(pp, l.name)
			x.paths[ino] = p
			return p, true
		}
	}
	if depth == 0 {
		x.paths[ino] = ""
	}
	return "", false
}
