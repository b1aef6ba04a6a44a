package inspect

import (
	"github.com/ebsimager/ebsimager/internal/ondisk"

	"bytes"
	"fmt"
	"hash/crc32"
	"math"
)

// GPT header and entry layout, from the UEFI Specification 2.10 §5.3.
const (
	gptSignature     = "EFI PART"
	gptMinHeaderSize = 92  // the defined header fields
	gptMinEntrySize  = 128 // "SizeOfPartitionEntry ... 128 × 2^n"
	// gptMaxEntries bounds the entry array at 1 MiB, far above the 16 KiB
	// every partitioner writes, so garbage cannot ask for gigabytes.
	gptMaxEntryBytes = 1 << 20
	gptNameBytes     = 72 // 36 UTF-16LE code units
)

type gptHeader struct {
	revision   uint32
	myLBA      uint64
	altLBA     uint64
	firstUsed  uint64
	lastUsed   uint64
	diskGUID   []byte
	entriesLBA uint64
	count      uint32
	entrySize  uint32
	entriesCRC uint32
}

// parseGPTHeader checks the signature, size and CRC32 of a header read
// from lba and returns why it is invalid otherwise.
func parseGPTHeader(sector []byte, lba uint64, sectorSize int) (gptHeader, string) {
	var h gptHeader
	if !hasAt(sector, 0, gptSignature) {
		return h, "no EFI PART signature"
	}
	size := ondisk.U32(sector, 12)
	if size < gptMinHeaderSize || int(size) > sectorSize || int(size) > len(sector) {
		return h, fmt.Sprintf("header size %d out of range", size)
	}
	stored := ondisk.U32(sector, 16)
	hdr := bytes.Clone(sector[:size])
	clear(hdr[16:20])
	if got := crc32.ChecksumIEEE(hdr); got != stored {
		return h, fmt.Sprintf("header CRC32 0x%08x, stored 0x%08x", got, stored)
	}
	h = gptHeader{
		revision:   ondisk.U32(sector, 8),
		myLBA:      ondisk.U64(sector, 24),
		altLBA:     ondisk.U64(sector, 32),
		firstUsed:  ondisk.U64(sector, 40),
		lastUsed:   ondisk.U64(sector, 48),
		diskGUID:   field(sector, 56, 16),
		entriesLBA: ondisk.U64(sector, 72),
		count:      ondisk.U32(sector, 80),
		entrySize:  ondisk.U32(sector, 84),
		entriesCRC: ondisk.U32(sector, 88),
	}
	if h.myLBA != lba {
		return h, fmt.Sprintf("header says it is at LBA %d, found at LBA %d", h.myLBA, lba)
	}
	if h.entrySize < gptMinEntrySize || h.entrySize%8 != 0 || uint64(h.count)*uint64(h.entrySize) > gptMaxEntryBytes {
		return h, fmt.Sprintf("%d entries of %d bytes out of range", h.count, h.entrySize)
	}
	return h, ""
}

// readGPTCopy reads and checks the header at lba and its entry array.
func readGPTCopy(d *disk, lba uint64, sectorSize int) (gptHeader, []byte, string, error) {
	if lba > uint64(math.MaxInt64)/uint64(sectorSize) {
		return gptHeader{}, nil, "header LBA out of range", nil
	}
	sector, err := d.read(int64(lba)*int64(sectorSize), sectorSize)
	if err != nil {
		return gptHeader{}, nil, "", err
	}
	h, why := parseGPTHeader(sector, lba, sectorSize)
	if why != "" {
		return h, nil, why, nil
	}
	n := int(h.count) * int(h.entrySize)
	if h.entriesLBA > uint64(d.size)/uint64(sectorSize) {
		return h, nil, fmt.Sprintf("entry array at LBA %d is past the end of the image", h.entriesLBA), nil
	}
	entries, err := d.read(int64(h.entriesLBA)*int64(sectorSize), n)
	if err != nil {
		return h, nil, "", err
	}
	if len(entries) < n {
		return h, nil, fmt.Sprintf("entry array truncated: %d of %d bytes", len(entries), n), nil
	}
	if got := crc32.ChecksumIEEE(entries); got != h.entriesCRC {
		return h, nil, fmt.Sprintf("entry array CRC32 0x%08x, stored 0x%08x", got, h.entriesCRC), nil
	}
	return h, entries, "", nil
}

// readGPT looks for a GPT with 512-byte sectors and then 4096-byte ones.
// It uses the primary header and entries when they are valid, else the
// backup copy at the last LBA (or where the primary header says it is).
// Behind a protective MBR a missing primary is looked for in the backup;
// without one, a GPT is only considered where the primary signature is
// present, so bare volumes cost no read at the end of the image. found is
// false when no valid copy exists.
func readGPT(d *disk, l *Layout, m mbr) (found bool, err error) {
	protective := m.protective()
	for _, ss := range []int{SectorSize, 4096} { // 4096: Advanced Format 4Kn disks
		if d.size < int64(2*ss) {
			return false, nil
		}
		sector, err := d.read(int64(ss), ss)
		if err != nil {
			return false, err
		}
		signed := hasAt(sector, 0, gptSignature)
		if !signed && (ss != SectorSize || !protective) {
			continue
		}
		last := uint64(d.size/int64(ss)) - 1
		prim, primEntries, primWhy, err := readGPTCopy(d, 1, ss)
		if err != nil {
			return false, err
		}
		backupLBA := last
		if primWhy == "" && prim.altLBA != 0 && prim.altLBA <= last {
			backupLBA = prim.altLBA
		}
		back, backEntries, backWhy, err := readGPTCopy(d, backupLBA, ss)
		if err != nil {
			return false, err
		}
		if primWhy != "" && backWhy != "" {
			if signed {
				l.Warnings = append(l.Warnings,
					fmt.Sprintf("GPT primary header invalid (%s)", primWhy),
					fmt.Sprintf("GPT backup header at LBA %d invalid (%s)", backupLBA, backWhy))
				return false, nil
			}
			continue
		}
		h, entries, which := prim, primEntries, "primary"
		if primWhy != "" {
			h, entries, which = back, backEntries, "backup"
			l.Warnings = append(l.Warnings, fmt.Sprintf("GPT primary header invalid (%s): using the backup at LBA %d", primWhy, backupLBA))
		}
		if backWhy != "" {
			l.Warnings = append(l.Warnings, fmt.Sprintf("GPT backup header at LBA %d invalid (%s)", backupLBA, backWhy))
		} else if primWhy == "" && !bytes.Equal(primEntries, backEntries) {
			l.Warnings = append(l.Warnings, "GPT primary and backup entry arrays differ: using the primary")
		}
		fillGPT(l, h, entries, ss, m)
		l.GPT.Header = which
		l.GPT.PrimaryValid = primWhy == ""
		l.GPT.BackupValid = backWhy == ""
		l.GPT.PrimaryLBA = 1
		l.GPT.BackupLBA = int64(backupLBA)
		return true, nil
	}
	return false, nil
}

func fillGPT(l *Layout, h gptHeader, entries []byte, ss int, m mbr) {
	l.Table = TableGPT
	l.SectorSize = ss
	l.DiskID = guidString(h.diskGUID)
	g := &GPT{
		Revision:       fmt.Sprintf("%d.%d", h.revision>>16, h.revision&0xffff),
		FirstUsableLBA: clampLBA(h.firstUsed),
		LastUsableLBA:  clampLBA(h.lastUsed),
		EntriesLBA:     clampLBA(h.entriesLBA),
		EntryCount:     int(h.count),
		EntrySize:      int(h.entrySize),
	}
	for _, e := range m.entries {
		if e.typ != 0 && e.typ != mbrTypeProtective {
			g.HybridMBR = true
		}
	}
	l.GPT = g
	maxSectors := uint64(math.MaxInt64) / uint64(ss)
	for i := 0; i < int(h.count); i++ {
		e := field(entries, i*int(h.entrySize), int(h.entrySize))
		typ := field(e, 0, 16)
		if len(typ) != 16 || isZeroBytes(typ) {
			continue
		}
		first, last := ondisk.U64(e, 32), ondisk.U64(e, 40)
		if last < first || last >= maxSectors {
			l.Warnings = append(l.Warnings, fmt.Sprintf("GPT entry %d: sectors %d-%d out of range, skipped", i+1, first, last))
			continue
		}
		typeGUID := guidString(typ)
		p := Partition{
			Number:      i + 1,
			Scheme:      TableGPT,
			Type:        typeGUID,
			TypeName:    gptTypeName(typeGUID),
			GUID:        guidString(field(e, 16, 16)),
			Name:        utf16le(field(e, 56, min(gptNameBytes, len(e)-56))),
			StartSector: int64(first),
			EndSector:   int64(last),
			Sectors:     int64(last - first + 1),
			Offset:      int64(first) * int64(ss),
			Length:      int64(last-first+1) * int64(ss),
		}
		if attrs := ondisk.U64(e, 48); attrs != 0 {
			p.Attributes = fmt.Sprintf("0x%016x", attrs)
			p.Flags = gptFlags(typeGUID, attrs)
		}
		if first < h.firstUsed || last > h.lastUsed {
			p.Warnings = append(p.Warnings, fmt.Sprintf("outside the usable sectors %d-%d", h.firstUsed, h.lastUsed))
		}
		l.Partitions = append(l.Partitions, p)
	}
}

func clampLBA(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

func isZeroBytes(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// gptFlags names the attribute bits: 0-2 from the UEFI spec for every
// type, 48-63 by the meaning the partition type gives them (Microsoft
// basic data, or the Linux Discoverable Partitions Specification).
func gptFlags(typeGUID string, attrs uint64) []string {
	var flags []string
	for bit := range 64 {
		if attrs&(1<<bit) == 0 {
			continue
		}
		flags = append(flags, gptFlagName(typeGUID, bit))
	}
	return flags
}

func gptFlagName(typeGUID string, bit int) string {
	switch bit {
	case 0:
		return "required"
	case 1:
		return "no_block_io"
	case 2:
		return "legacy_bios_bootable"
	}
	if bit >= 48 {
		if typeGUID == gptMicrosoftBasicData {
			switch bit {
			case 60:
				return "read_only"
			case 61:
				return "shadow_copy"
			case 62:
				return "hidden"
			case 63:
				return "no_drive_letter"
			}
		} else if gptLinuxTypes[typeGUID] {
			switch bit {
			case 59:
				return "grow_fs"
			case 60:
				return "read_only"
			case 63:
				return "no_auto"
			}
		}
		return fmt.Sprintf("type_bit_%d", bit)
	}
	return fmt.Sprintf("reserved_bit_%d", bit)
}
