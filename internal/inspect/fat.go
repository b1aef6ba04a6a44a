package inspect

import (
	"github.com/ebsimager/ebsimager/internal/ondisk"

	"fmt"
	"unicode/utf16"
)

// FAT boot sector (BPB) fields and the FAT12/16/32 decision, from
// Microsoft's "FAT: General Overview of On-Disk Format" (fatgen103), and
// the exFAT boot sector from Microsoft's "exFAT file system specification".
const (
	fatDirEntrySize = 32
	fatAttrVolumeID = 0x08
	fatAttrLFN      = 0x0F
	// fatMaxDirScan bounds how much of a root directory is searched for
	// the volume label entry (mkfs and Windows put it first).
	fatMaxDirScan = 64 << 10
	// fatMaxChain bounds the clusters followed in a directory chain.
	fatMaxChain = 64
	// fatgen103: fewer than 4085 clusters is FAT12, fewer than 65525 FAT16.
	fat12MaxClusters = 4085
	fat16MaxClusters = 65525
)

func probeFAT(v volume, head []byte) (*FileSystem, error) {
	bs := field(head, 0, 512)
	if bs == nil || bs[510] != 0x55 || bs[511] != 0xAA {
		return nil, nil
	}
	if !(bs[0] == 0xEB && bs[2] == 0x90) && bs[0] != 0xE9 { // fatgen103: a short or near jump
		return nil, nil
	}
	bps := int64(ondisk.U16(bs, 0x0B))
	spc := int64(ondisk.U8(bs, 0x0D))
	reserved := int64(ondisk.U16(bs, 0x0E))
	fats := int64(ondisk.U8(bs, 0x10))
	rootEntries := int64(ondisk.U16(bs, 0x11))
	media := ondisk.U8(bs, 0x15)
	// fatgen103's valid BPB values; more than 4 FATs is never written but
	// tolerated by some drivers, so it is the bound used here.
	if !isPow2(bps, 512, 4096) || !isPow2(spc, 1, 128) || reserved == 0 || fats == 0 || fats > 4 ||
		(media != 0xF0 && media < 0xF8) {
		return nil, nil
	}
	total := int64(ondisk.U16(bs, 0x13))
	if total == 0 {
		total = int64(ondisk.U32(bs, 0x20))
	}
	fatSize := int64(ondisk.U16(bs, 0x16))
	if fatSize == 0 {
		fatSize = int64(ondisk.U32(bs, 0x24))
	}
	if total == 0 || fatSize == 0 {
		return nil, nil
	}
	rootSectors := (rootEntries*fatDirEntrySize + bps - 1) / bps
	firstData := reserved + fats*fatSize + rootSectors
	if firstData >= total {
		return nil, nil
	}
	clusters := (total - firstData) / spc
	typ := TypeFAT32
	switch {
	case clusters < fat12MaxClusters:
		typ = TypeFAT12
	case clusters < fat16MaxClusters:
		typ = TypeFAT16
	}
	f := &FAT{
		OEMName:         padded(field(bs, 3, 8)),
		ReservedSectors: int(reserved),
		FATCount:        int(fats),
		FATSectors:      uint32(fatSize),
		RootEntries:     int(rootEntries),
		TotalSectors:    uint32(total),
		Clusters:        uint32(clusters),
		MediaDescriptor: fmt.Sprintf("0x%02x", media),
		HiddenSectors:   ondisk.U32(bs, 0x1C),
	}
	ebpb := 0x24 // FAT12/16 extended BPB
	if typ == TypeFAT32 {
		ebpb = 0x40
		f.RootCluster = ondisk.U32(bs, 0x2C)
	}
	fs := &FileSystem{
		Type:        typ,
		ClusterSize: bps * spc,
		SectorSize:  bps,
		Size:        total * bps,
		FAT:         f,
	}
	// Signature 0x29 says the serial, label and type string follow; 0x28
	// has the serial only.
	if sig := ondisk.U8(bs, ebpb+2); sig == 0x29 || sig == 0x28 {
		fs.Serial = fatSerial(ondisk.U32(bs, ebpb+3))
		if sig == 0x29 {
			f.BootLabel = padded(field(bs, ebpb+7, 11))
			f.FSTypeLabel = padded(field(bs, ebpb+18, 8))
		}
	}

	// The root directory's volume-label entry is the label Windows shows;
	// the boot sector's copy is a fallback ("NO NAME" means none).
	var dir []byte
	var err error
	if typ == TypeFAT32 {
		dir, err = fatChain(v, bs, f.RootCluster, reserved*bps, firstData*bps, bps*spc, uint32(clusters))
	} else {
		dir, err = v.read((reserved+fats*fatSize)*bps, int(min(rootSectors*bps, fatMaxDirScan)))
	}
	if err != nil {
		return nil, err
	}
	if label, ok := fatRootLabel(dir); ok {
		fs.Label = label
	} else if f.BootLabel != "NO NAME" {
		fs.Label = f.BootLabel
	}
	return fs, nil
}

func fatSerial(s uint32) string {
	return fmt.Sprintf("%04X-%04X", s>>16, s&0xFFFF)
}

// fatChain reads a FAT32 directory by following its cluster chain, up to
// fatMaxDirScan bytes.
func fatChain(v volume, bs []byte, first uint32, fatOff, dataOff, clusterSize int64, clusters uint32) ([]byte, error) {
	var dir []byte
	c := first
	for range fatMaxChain {
		if c < 2 || c-2 >= clusters || int64(len(dir)) >= fatMaxDirScan {
			break
		}
		data, err := v.read(dataOff+int64(c-2)*clusterSize, int(min(clusterSize, fatMaxDirScan)))
		if err != nil {
			return nil, err
		}
		dir = append(dir, data...)
		next, err := v.read(fatOff+int64(c)*4, 4)
		if err != nil {
			return nil, err
		}
		c = ondisk.U32(next, 0) & 0x0FFFFFFF // FAT32 entries are 28 bits
	}
	return dir, nil
}

// fatRootLabel finds the volume-label entry of a directory.
func fatRootLabel(dir []byte) (string, bool) {
	for off := 0; off+fatDirEntrySize <= len(dir); off += fatDirEntrySize {
		e := dir[off : off+fatDirEntrySize]
		switch e[0] {
		case 0x00: // end of directory
			return "", false
		case 0xE5: // deleted
			continue
		}
		attr := e[11]
		if attr == fatAttrLFN || attr&fatAttrVolumeID == 0 {
			continue
		}
		name := append([]byte(nil), e[:11]...)
		if name[0] == 0x05 { // a leading 0xE5 byte is stored as 0x05
			name[0] = 0xE5
		}
		return padded(name), true
	}
	return "", false
}

const (
	exfatOEM        = "EXFAT   "
	exfatLabelEntry = 0x83
)

func probeExFAT(v volume, head []byte) (*FileSystem, error) {
	bs := field(head, 0, 512)
	if !hasAt(bs, 3, exfatOEM) || bs[510] != 0x55 || bs[511] != 0xAA {
		return nil, nil
	}
	if !isZeroBytes(field(bs, 11, 53)) { // exFAT spec 3.1.4: MustBeZero
		return nil, nil
	}
	bpsShift, spcShift := int(ondisk.U8(bs, 0x6C)), int(ondisk.U8(bs, 0x6D))
	if bpsShift < 9 || bpsShift > 12 || spcShift > 25-bpsShift { // spec 3.1.14-15
		return nil, nil
	}
	bps := int64(1) << bpsShift
	cluster := bps << spcShift
	rev := ondisk.U16(bs, 0x68)
	x := &ExFAT{
		Revision:          fmt.Sprintf("%d.%02d", rev>>8, rev&0xFF),
		PartitionOffset:   ondisk.U64(bs, 0x40),
		VolumeLength:      ondisk.U64(bs, 0x48),
		FATOffset:         ondisk.U32(bs, 0x50),
		ClusterHeapOffset: ondisk.U32(bs, 0x58),
		ClusterCount:      ondisk.U32(bs, 0x5C),
		RootCluster:       ondisk.U32(bs, 0x60),
		VolumeFlags:       ondisk.U16(bs, 0x6A),
		FATCount:          int(ondisk.U8(bs, 0x6E)),
	}
	fs := &FileSystem{
		Type:        TypeExFAT,
		Serial:      fatSerial(ondisk.U32(bs, 0x64)),
		ClusterSize: cluster,
		SectorSize:  bps,
		Size:        clampMul(x.VolumeLength, bps),
		ExFAT:       x,
	}
	// The root directory is a FAT chain of 32-bit entries; walk it for the
	// volume label entry.
	c := x.RootCluster
	scanned := int64(0)
	for range fatMaxChain {
		if c < 2 || c-2 >= x.ClusterCount || scanned >= fatMaxDirScan {
			break
		}
		off := (int64(x.ClusterHeapOffset) + int64(c-2)<<spcShift) * bps
		dir, err := v.read(off, int(min(cluster, fatMaxDirScan)))
		if err != nil {
			return nil, err
		}
		scanned += int64(len(dir))
		label, done := exfatLabel(dir)
		if done {
			fs.Label = label
			break
		}
		next, err := v.read(int64(x.FATOffset)*bps+int64(c)*4, 4)
		if err != nil {
			return nil, err
		}
		c = ondisk.U32(next, 0)
	}
	return fs, nil
}

// exfatLabel scans directory entries for the volume label; done is true
// when the label or the end of the directory was found.
func exfatLabel(dir []byte) (label string, done bool) {
	for off := 0; off+32 <= len(dir); off += 32 {
		switch dir[off] {
		case 0x00:
			return "", true
		case exfatLabelEntry:
			n := min(int(dir[off+1]), 11) // at most 11 UTF-16 characters
			units := make([]uint16, n)
			for i := range units {
				units[i] = ondisk.U16(dir, off+2+2*i)
			}
			return string(utf16.Decode(units)), true
		}
	}
	return "", false
}
