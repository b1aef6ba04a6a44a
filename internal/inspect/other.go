package inspect

import (
	"github.com/ebsimager/ebsimager/internal/ondisk"

	"fmt"
	"strconv"
	"strings"
	"time"
)

// Btrfs superblock (struct btrfs_super_block in the kernel's
// include/uapi/linux/btrfs_tree.h): the primary copy is at 64 KiB.
const (
	btrfsSuperOffset = 64 << 10
	btrfsSuperSize   = 4096
	btrfsMagic       = "_BHRfS_M"
	btrfsLabelOffset = 0x12B // after the 98-byte dev_item at 0xC9
	btrfsLabelSize   = 256
)

func probeBtrfs(v volume, _ []byte) (*FileSystem, error) {
	sb, err := v.read(btrfsSuperOffset, btrfsSuperSize)
	if err != nil {
		return nil, err
	}
	if !hasAt(sb, 0x40, btrfsMagic) {
		return nil, nil
	}
	sector := int64(ondisk.U32(sb, 0x90))
	if !isPow2(sector, 512, 65536) {
		return nil, nil
	}
	b := &Btrfs{
		NodeSize:   ondisk.U32(sb, 0x94),
		TotalBytes: ondisk.U64(sb, 0x70),
		BytesUsed:  ondisk.U64(sb, 0x78),
		Devices:    ondisk.U64(sb, 0x88),
		Generation: ondisk.U64(sb, 0x48),
		DeviceUUID: uuidString(field(sb, 0xC9+0x42, 16)), // dev_item.uuid
	}
	return &FileSystem{
		Type:      TypeBtrfs,
		Label:     cstring(field(sb, btrfsLabelOffset, btrfsLabelSize)),
		UUID:      uuidString(field(sb, 0x20, 16)),
		BlockSize: sector,
		Size:      clampMul(b.TotalBytes, 1),
		Btrfs:     b,
	}, nil
}

// LVM2 physical volume label (lib/label/label.h and
// lib/format_text/layout.h in LVM2): "LABELONE" in one of the first four
// sectors, followed by the PV header with the PV UUID as 32 characters.
const (
	lvmLabelID   = "LABELONE"
	lvmLabelType = "LVM2 001"
	lvmScanSects = 4
)

func probeLVM2(v volume, head []byte) (*FileSystem, error) {
	for s := range lvmScanSects {
		sec := field(head, s*512, 512)
		if !hasAt(sec, 0, lvmLabelID) || !hasAt(sec, 24, lvmLabelType) || ondisk.U64(sec, 8) != uint64(s) {
			continue
		}
		pv := int(ondisk.U32(sec, 20)) // offset of the PV header within the label sector
		id := field(sec, pv, 32)
		if id == nil {
			return nil, nil
		}
		raw := cstring(id)
		if len(raw) != 32 {
			return nil, nil
		}
		// LVM2 prints PV UUIDs in groups of 6-4-4-4-4-4-6 characters.
		uuid := strings.Join([]string{raw[0:6], raw[6:10], raw[10:14], raw[14:18], raw[18:22], raw[22:26], raw[26:32]}, "-")
		size := ondisk.U64(sec, pv+32)
		fs := &FileSystem{
			Type: TypeLVM2,
			UUID: uuid,
			Size: clampMul(size, 1),
			LVM2: &LVM2{LabelSector: s, DeviceSize: size},
		}
		if got, want := lvmCRC(sec[20:]), ondisk.U32(sec, 16); got != want {
			fs.Warnings = append(fs.Warnings, fmt.Sprintf("label CRC 0x%08x, stored 0x%08x", got, want))
		}
		return fs, nil
	}
	return nil, nil
}

// lvmCRC is LVM2's label checksum (lib/misc/crc.c): the reflected CRC-32
// polynomial 0xEDB88320, started from 0xf597a6cf, with no final inversion.
func lvmCRC(b []byte) uint32 {
	crc := uint32(0xf597a6cf)
	for _, c := range b {
		crc ^= uint32(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xEDB88320
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// LUKS headers, from cryptsetup's "LUKS On-Disk Format Specification"
// (version 1.2.3) and "LUKS2 On-Disk Format Specification": big-endian,
// at the start of the volume, the UUID at byte 168 in both versions.
const luksMagic = "LUKS\xba\xbe"

func probeLUKS(v volume, head []byte) (*FileSystem, error) {
	if !hasAt(head, 0, luksMagic) {
		return nil, nil
	}
	fs := &FileSystem{UUID: cstring(field(head, 168, 40))}
	switch ver := ondisk.BE16(head, 6); ver {
	case 1:
		fs.Type = TypeLUKS1
		fs.LUKS = &LUKS{
			Version:       1,
			Cipher:        cstring(field(head, 8, 32)) + "-" + cstring(field(head, 40, 32)),
			Hash:          cstring(field(head, 72, 32)),
			PayloadOffset: int64(ondisk.BE32(head, 104)) * 512, // in 512-byte sectors
			KeyBytes:      ondisk.BE32(head, 108),
		}
	case 2:
		fs.Type = TypeLUKS2
		fs.Label = cstring(field(head, 24, 48))
		fs.LUKS = &LUKS{
			Version:    2,
			HeaderSize: ondisk.BE64(head, 8),
			Subsystem:  cstring(field(head, 208, 48)),
		}
	default:
		fs.Type = fmt.Sprintf("luks%d", ver)
		fs.Warnings = append(fs.Warnings, fmt.Sprintf("unknown LUKS version %d", ver))
		fs.LUKS = &LUKS{Version: int(ver)}
	}
	return fs, nil
}

// BitLocker volumes (Windows Vista and later, "Full Volume Encryption")
// keep a boot sector whose OEM identifier at byte 3 is "-FVE-FS-" where
// NTFS has "NTFS    ", as blkid's libblkid/src/superblocks/bitlocker.c
// checks. Nothing behind it can be read without the key.
const bitlockerOEM = "-FVE-FS-"

func probeBitLocker(v volume, head []byte) (*FileSystem, error) {
	if !hasAt(head, 3, bitlockerOEM) {
		return nil, nil
	}
	return &FileSystem{Type: TypeBitLocker}, nil
}

// Linux swap header (include/linux/swap.h, union swap_header): the
// signature ends the first page; the version 1 header sits at 1024.
var swapPageSizes = []int{4096, 8192, 16384, 32768, 65536}

var swapSignatures = []string{"SWAPSPACE2", "SWAP-SPACE", "S1SUSPEND", "S2SUSPEND", "ULSUSPEND", "LINHIB0001"}

func probeSwap(v volume, head []byte) (*FileSystem, error) {
	for _, page := range swapPageSizes {
		tail := field(head, page-10, 10)
		if tail == nil {
			var err error
			if tail, err = v.read(int64(page-10), 10); err != nil {
				return nil, err
			}
		}
		for _, sig := range swapSignatures {
			if !hasAt(tail, 10-len(sig), sig) {
				continue
			}
			s := &Swap{PageSize: page, Signature: sig}
			fs := &FileSystem{Type: TypeSwap, Swap: s}
			if sig == "SWAP-SPACE" { // version 0 has no header fields
				return fs, nil
			}
			ver := ondisk.U32(head, 1024)
			get := ondisk.U32
			if ver != 1 && ondisk.BE32(head, 1024) == 1 { // written by a big-endian kernel
				get, ver = ondisk.BE32, 1
			}
			s.Version = ver
			s.Pages = get(head, 1028)
			s.BadPages = get(head, 1032)
			if u := field(head, 1036, 16); !isZeroBytes(u) {
				fs.UUID = uuidString(u)
			}
			fs.Label = cstring(field(head, 1052, 16))
			fs.Size = clampMul(uint64(s.Pages)+1, int64(page))
			return fs, nil
		}
	}
	return nil, nil
}

// ISO 9660 (ECMA-119): volume descriptors start at logical sector 16 of
// 2048 bytes; the primary one (type 1) names the volume.
const (
	isoSector       = 2048
	isoFirstVD      = 16
	isoMaxVDs       = 32 // a disc has a handful; bounds a garbage chain
	isoMagic        = "CD001"
	isoTypePrimary  = 1
	isoTypeTerminal = 255
)

func probeISO9660(v volume, _ []byte) (*FileSystem, error) {
	for i := range isoMaxVDs {
		vd, err := v.read(int64(isoFirstVD+i)*isoSector, isoSector)
		if err != nil {
			return nil, err
		}
		if !hasAt(vd, 1, isoMagic) {
			return nil, nil
		}
		switch vd[0] {
		case isoTypeTerminal:
			return nil, nil
		case isoTypePrimary:
		default:
			continue
		}
		blockSize := int(ondisk.U16(vd, 128)) // both-endian field: the LE half first
		iso := &ISO9660{
			SystemID:    padded(field(vd, 8, 32)),
			VolumeSetID: padded(field(vd, 190, 128)),
			PublisherID: padded(field(vd, 318, 128)),
			Blocks:      ondisk.U32(vd, 80),
			BlockSize:   blockSize,
			Created:     isoTime(field(vd, 813, 17)),
			Modified:    isoTime(field(vd, 830, 17)),
		}
		fs := &FileSystem{
			Type:      TypeISO9660,
			Label:     padded(field(vd, 40, 32)),
			BlockSize: int64(blockSize),
			Size:      clampMul(uint64(iso.Blocks), int64(blockSize)),
			ISO9660:   iso,
		}
		iso.Created = keepTime(fs, "creation time", iso.Created)
		iso.Modified = keepTime(fs, "modification time", iso.Modified)
		// blkid's UUID for ISO 9660 is the modification (else creation)
		// date-time digits, grouped as YYYY-MM-DD-HH-MM-SS-CC.
		for _, d := range [][]byte{field(vd, 830, 16), field(vd, 813, 16)} {
			if isoDigits(d) {
				s := string(d)
				fs.UUID = fmt.Sprintf("%s-%s-%s-%s-%s-%s-%s", s[0:4], s[4:6], s[6:8], s[8:10], s[10:12], s[12:14], s[14:16])
				break
			}
		}
		return fs, nil
	}
	return nil, nil
}

func isoDigits(d []byte) bool {
	if len(d) != 16 {
		return false
	}
	nonZero := false
	for _, c := range d {
		if c < '0' || c > '9' {
			return false
		}
		if c != '0' {
			nonZero = true
		}
	}
	return nonZero
}

// isoTime decodes a 17-byte ECMA-119 8.4.26.1 date: 16 ASCII digits
// (YYYYMMDDHHMMSScc) and a signed offset from GMT in 15-minute units.
func isoTime(d []byte) time.Time {
	if !isoDigits(field(d, 0, 16)) {
		return time.Time{}
	}
	n := func(i, j int) int { v, _ := strconv.Atoi(string(d[i:j])); return v }
	zone := time.FixedZone("", int(int8(d[16]))*15*60)
	return time.Date(n(0, 4), time.Month(n(4, 6)), n(6, 8), n(8, 10), n(10, 12), n(12, 14), n(14, 16)*10_000_000, zone).UTC()
}
