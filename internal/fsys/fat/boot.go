package fat

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// kind is the FAT variant of a volume.
type kind uint8

const (
	fat12 kind = iota + 1
	fat16
	fat32
	exfat
)

func (k kind) String() string {
	switch k {
	case fat12:
		return "FAT12"
	case fat16:
		return "FAT16"
	case fat32:
		return "FAT32"
	case exfat:
		return "exFAT"
	}
	return "unknown"
}

// Cluster-count limits that decide the FAT variant: Microsoft's FAT
// specification (fatgen103, "FAT Type Determination") counts clusters and
// nothing else.
const (
	maxFAT12Clusters = 4084
	maxFAT16Clusters = 65524
	// maxFAT32Clusters is the most clusters 28-bit entries can address
	// (0x0FFFFFF5 is the highest data cluster number, 2 is the first).
	maxFAT32Clusters = 0x0FFFFFF5 - 1
	// maxExFATClusters is the exFAT specification's ClusterCount bound
	// (section 3.1.9: 2^32 - 11).
	maxExFATClusters = 1<<32 - 11
)

// geometry is what the boot sector says of the volume's layout, in bytes
// from the start of the volume.
type geometry struct {
	kind        kind
	sectorSize  int64
	clusterSize int64
	fatOffset   int64  // of the FAT in use
	fatBytes    int64  // length of one FAT
	rootOffset  int64  // FAT12/16: fixed root directory region
	rootBytes   int64  // FAT12/16: its length
	rootCluster uint32 // FAT32 and exFAT: the root directory's first cluster
	// dataOffset is where Sleuth Kit starts numbering directory entries
	// (its "first data sector"): the FAT12/16 root region, or the
	// cluster heap for FAT32 and exFAT.
	dataOffset int64
	heapOffset int64 // of cluster 2
	clusters   uint32
	volBytes   int64 // the volume's length as the boot sector declares it
}

// maxCluster is the highest valid data cluster number.
func (g *geometry) maxCluster() uint32 { return g.clusters + 1 }

func (g *geometry) clusterOffset(c uint32) int64 {
	return g.heapOffset + int64(c-2)*g.clusterSize
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), fsys.ErrCorrupt)
}

// parseBoot reads the boot sector (its first 512 bytes are enough for
// both layouts) of a volume of size bytes.
func parseBoot(b []byte, size int64) (*geometry, error) {
	if len(b) < 512 {
		return nil, corrupt("fat: boot sector: short")
	}
	if b[510] != 0x55 || b[511] != 0xAA {
		return nil, corrupt("fat: boot sector: no 0x55AA signature")
	}
	if string(b[3:11]) == "EXFAT   " {
		return parseExFATBoot(b, size)
	}
	return parseBPB(b, size)
}

// parseBPB reads a FAT12/16/32 BIOS parameter block (fatgen103 section 3).
func parseBPB(b []byte, size int64) (*geometry, error) {
	le := binary.LittleEndian
	bps := int64(le.Uint16(b[11:]))
	spc := int64(b[13])
	rsvd := int64(le.Uint16(b[14:]))
	nfats := int64(b[16])
	rootEnt := int64(le.Uint16(b[17:]))
	totSec := int64(le.Uint16(b[19:]))
	if totSec == 0 {
		totSec = int64(le.Uint32(b[32:]))
	}
	fatSz := int64(le.Uint16(b[22:]))
	if fatSz == 0 {
		fatSz = int64(le.Uint32(b[36:]))
	}
	switch bps {
	case 512, 1024, 2048, 4096:
	default:
		return nil, corrupt("fat: boot sector: %d bytes per sector", bps)
	}
	// The media descriptor is 0xF0 or 0xF8-0xFF (fatgen103, BPB_Media):
	// a cheap test that the sector is a BPB at all.
	if media := b[21]; media != 0xF0 && media < 0xF8 {
		return nil, corrupt("fat: boot sector: media descriptor 0x%02x", media)
	}
	if spc == 0 || bits.OnesCount64(uint64(spc)) != 1 {
		return nil, corrupt("fat: boot sector: %d sectors per cluster", spc)
	}
	if rsvd == 0 || nfats == 0 || fatSz == 0 || totSec == 0 {
		return nil, corrupt("fat: boot sector: reserved %d, FATs %d, FAT size %d, sectors %d", rsvd, nfats, fatSz, totSec)
	}
	rootSecs := (rootEnt*32 + bps - 1) / bps
	dataSec := rsvd + nfats*fatSz + rootSecs
	if dataSec >= totSec {
		return nil, corrupt("fat: boot sector: data area starts at sector %d of %d", dataSec, totSec)
	}
	count := (totSec - dataSec) / spc
	g := &geometry{
		sectorSize:  bps,
		clusterSize: bps * spc,
		fatOffset:   rsvd * bps,
		fatBytes:    fatSz * bps,
		dataOffset:  (rsvd + nfats*fatSz) * bps,
		heapOffset:  dataSec * bps,
		volBytes:    totSec * bps,
	}
	switch {
	case count < 1:
		return nil, corrupt("fat: boot sector: no clusters")
	case count <= maxFAT12Clusters:
		g.kind = fat12
	case count <= maxFAT16Clusters:
		g.kind = fat16
	case count <= maxFAT32Clusters:
		g.kind = fat32
	default:
		return nil, corrupt("fat: boot sector: %d clusters", count)
	}
	g.clusters = uint32(count)
	// A FAT shorter than the clusters it must describe leaves the
	// clusters past its end unreachable: they are not part of the volume.
	entryBits := map[kind]int64{fat12: 12, fat16: 16, fat32: 32}[g.kind]
	if fit := g.fatBytes*8/entryBits - 2; fit < int64(g.clusters) {
		if fit < 1 {
			return nil, corrupt("fat: boot sector: a FAT of %d bytes holds no cluster", g.fatBytes)
		}
		g.clusters = uint32(fit)
	}
	if g.kind == fat32 {
		if rootEnt != 0 {
			return nil, corrupt("fat: boot sector: FAT32 with %d fixed root entries", rootEnt)
		}
		// With mirroring off (extended flags bit 7), bits 0-3 name the
		// one FAT in use (fatgen103, BPB_ExtFlags).
		if ext := le.Uint16(b[40:]); ext&0x80 != 0 {
			active := int64(ext & 0x0F)
			if active >= nfats {
				return nil, corrupt("fat: boot sector: active FAT %d of %d", active, nfats)
			}
			g.fatOffset += active * g.fatBytes
		}
		g.rootCluster = le.Uint32(b[44:]) & 0x0FFFFFFF
		if g.rootCluster < 2 || g.rootCluster > g.maxCluster() {
			return nil, corrupt("fat: boot sector: root directory cluster %d outside 2-%d", g.rootCluster, g.maxCluster())
		}
		g.dataOffset = g.heapOffset
	} else {
		if rootEnt == 0 {
			return nil, corrupt("fat: boot sector: %s with no root directory entries", g.kind)
		}
		g.rootOffset = g.dataOffset
		g.rootBytes = rootEnt * 32
	}
	if end := g.fatOffset + g.fatBytes; end > size {
		return nil, corrupt("fat: boot sector: the FAT ends at byte %d, past the volume's %d", end, size)
	}
	if end := g.rootOffset + g.rootBytes; end > size {
		return nil, corrupt("fat: boot sector: the root directory ends at byte %d, past the volume's %d", end, size)
	}
	return g, nil
}

// parseExFATBoot reads an exFAT main boot sector (Microsoft's exFAT
// specification, section 3.1).
func parseExFATBoot(b []byte, size int64) (*geometry, error) {
	le := binary.LittleEndian
	for _, c := range b[11:64] {
		if c != 0 {
			return nil, corrupt("exfat: boot sector: MustBeZero field is not zero")
		}
	}
	volLen := le.Uint64(b[72:])
	fatOff := int64(le.Uint32(b[80:]))
	fatLen := int64(le.Uint32(b[84:]))
	heapOff := int64(le.Uint32(b[88:]))
	count := int64(le.Uint32(b[92:]))
	root := le.Uint32(b[96:])
	flags := le.Uint16(b[106:])
	bpsShift := uint(b[108])
	spcShift := uint(b[109])
	nfats := int64(b[110])
	if bpsShift < 9 || bpsShift > 12 {
		return nil, corrupt("exfat: boot sector: BytesPerSectorShift %d", bpsShift)
	}
	if spcShift > 25-bpsShift {
		return nil, corrupt("exfat: boot sector: SectorsPerClusterShift %d", spcShift)
	}
	if nfats != 1 && nfats != 2 {
		return nil, corrupt("exfat: boot sector: %d FATs", nfats)
	}
	if count < 1 || count > maxExFATClusters {
		return nil, corrupt("exfat: boot sector: ClusterCount %d", count)
	}
	if volLen > 1<<50 {
		return nil, corrupt("exfat: boot sector: VolumeLength %d sectors", volLen)
	}
	bps := int64(1) << bpsShift
	g := &geometry{
		kind:        exfat,
		sectorSize:  bps,
		clusterSize: bps << spcShift,
		fatOffset:   fatOff * bps,
		fatBytes:    fatLen * bps,
		heapOffset:  heapOff * bps,
		dataOffset:  heapOff * bps,
		clusters:    uint32(count),
		rootCluster: root,
		volBytes:    int64(volLen) * bps,
	}
	if fatOff < 24 || fatLen == 0 || heapOff < fatOff+fatLen*nfats {
		return nil, corrupt("exfat: boot sector: FatOffset %d, FatLength %d, ClusterHeapOffset %d", fatOff, fatLen, heapOff)
	}
	// With two FATs (TexFAT), VolumeFlags bit 0 names the active one.
	if nfats == 2 && flags&1 != 0 {
		g.fatOffset += g.fatBytes
	}
	if g.fatBytes/4-2 < count {
		return nil, corrupt("exfat: boot sector: a FAT of %d bytes for %d clusters", g.fatBytes, count)
	}
	if end := g.heapOffset + count*g.clusterSize; end > g.volBytes {
		return nil, corrupt("exfat: boot sector: the cluster heap ends at byte %d, past the volume's %d", end, g.volBytes)
	}
	if root < 2 || root > g.maxCluster() {
		return nil, corrupt("exfat: boot sector: root directory cluster %d outside 2-%d", root, g.maxCluster())
	}
	if end := g.fatOffset + g.fatBytes; end > size {
		return nil, corrupt("exfat: boot sector: the FAT ends at byte %d, past the volume's %d", end, size)
	}
	return g, nil
}
