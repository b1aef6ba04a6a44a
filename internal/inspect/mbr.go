package inspect

import (
	"github.com/ebsimager/ebsimager/internal/ondisk"

	"fmt"
)

// MBR layout, from the IBM PC boot sector as every partitioner writes it:
// four 16-byte entries at byte 446, the 0x55 0xAA signature at 510, and
// the Windows disk signature at 440.
const (
	mbrEntries      = 446
	mbrEntrySize    = 16
	mbrSignatureOff = 510
	mbrDiskSigOff   = 440
	// maxLogical bounds the extended-partition chain; Linux stops at 256
	// partitions in all, and a loop in a damaged chain must end.
	maxLogical = 252
)

const mbrTypeProtective = 0xEE // UEFI spec 5.2.3: protective MBR partition

type mbrEntry struct {
	status  byte
	typ     byte
	start   uint32 // LBA
	sectors uint32
}

type mbr struct {
	diskSig uint32
	entries [4]mbrEntry
}

func parseMBREntries(sector []byte) (ents [4]mbrEntry) {
	for i := range ents {
		e := field(sector, mbrEntries+i*mbrEntrySize, mbrEntrySize)
		ents[i] = mbrEntry{status: ondisk.U8(e, 0), typ: ondisk.U8(e, 4), start: ondisk.U32(e, 8), sectors: ondisk.U32(e, 12)}
	}
	return ents
}

// parseMBR accepts sector 0 as a partition table when it has the boot
// signature, every status byte is 0x00 or 0x80 (the Linux kernel's test),
// at least one entry is in use, and it is not the boot sector of an NTFS
// or exFAT volume without a table.
func parseMBR(sector []byte) (mbr, bool) {
	var m mbr
	if len(sector) < SectorSize || sector[mbrSignatureOff] != 0x55 || sector[mbrSignatureOff+1] != 0xAA {
		return m, false
	}
	if hasAt(sector, 3, "NTFS    ") || hasAt(sector, 3, "EXFAT   ") {
		return m, false
	}
	m.diskSig = ondisk.U32(sector, mbrDiskSigOff)
	m.entries = parseMBREntries(sector)
	used := 0
	for _, e := range m.entries {
		if e.status != 0 && e.status != 0x80 {
			return m, false
		}
		if e.typ != 0 && e.sectors != 0 {
			used++
		}
	}
	return m, used > 0
}

func (m mbr) protective() bool {
	for _, e := range m.entries {
		if e.typ == mbrTypeProtective {
			return true
		}
	}
	return false
}

func isExtended(typ byte) bool {
	return typ == 0x05 || typ == 0x0F || typ == 0x85 // DOS, W95 (LBA) and Linux extended
}

// readMBR lists the primary entries and walks each extended partition's
// chain of extended boot records.
func readMBR(d *disk, l *Layout, m mbr) error {
	l.Table = TableMBR
	l.SectorSize = SectorSize
	l.DiskID = fmt.Sprintf("0x%08x", m.diskSig)
	var logical []Partition
	for i, e := range m.entries {
		if e.typ == 0 || e.sectors == 0 {
			continue
		}
		role := "primary"
		if isExtended(e.typ) {
			role = "extended"
		}
		p := mbrPartition(i+1, role, e, int64(e.start))
		if e.start == 0 {
			p.Warnings = append(p.Warnings, "starts at sector 0, over the MBR itself")
		}
		l.Partitions = append(l.Partitions, p)
		if role == "extended" {
			ls, err := readChain(d, l, int64(e.start), int64(e.sectors), 5+len(logical))
			if err != nil {
				return err
			}
			logical = append(logical, ls...)
		}
	}
	l.Partitions = append(l.Partitions, logical...)
	return nil
}

func mbrPartition(number int, role string, e mbrEntry, start int64) Partition {
	p := Partition{
		Number:      number,
		Scheme:      TableMBR,
		Role:        role,
		Type:        fmt.Sprintf("0x%02x", e.typ),
		TypeName:    mbrTypeName(e.typ),
		StartSector: start,
		Sectors:     int64(e.sectors),
		EndSector:   start + int64(e.sectors) - 1,
		Offset:      start * SectorSize,
		Length:      int64(e.sectors) * SectorSize,
	}
	if e.status == 0x80 {
		p.Flags = []string{"bootable"}
	}
	return p
}

// readChain follows the extended boot records of the extended partition
// at extStart. Each EBR's first entry is a logical partition relative to
// that EBR; its second points at the next EBR relative to extStart.
func readChain(d *disk, l *Layout, extStart, extSectors int64, number int) ([]Partition, error) {
	var out []Partition
	seen := map[int64]bool{}
	ebr := extStart
	for range maxLogical {
		if seen[ebr] {
			l.Warnings = append(l.Warnings, fmt.Sprintf("extended partition chain loops back to sector %d", ebr))
			break
		}
		seen[ebr] = true
		sector, err := d.read(ebr*SectorSize, SectorSize)
		if err != nil {
			return nil, fmt.Errorf("reading extended boot record at sector %d: %w", ebr, err)
		}
		if len(sector) < SectorSize || sector[mbrSignatureOff] != 0x55 || sector[mbrSignatureOff+1] != 0xAA {
			l.Warnings = append(l.Warnings, fmt.Sprintf("extended boot record at sector %d has no 0x55AA signature", ebr))
			break
		}
		ents := parseMBREntries(sector)
		if e := ents[0]; e.typ != 0 && e.sectors != 0 {
			p := mbrPartition(number, "logical", e, ebr+int64(e.start))
			if p.EndSector >= extStart+extSectors {
				p.Warnings = append(p.Warnings, "ends outside its extended partition")
			}
			out = append(out, p)
			number++
		}
		next := ents[1]
		if !isExtended(next.typ) || next.start == 0 {
			break
		}
		ebr = extStart + int64(next.start)
	}
	return out, nil
}
