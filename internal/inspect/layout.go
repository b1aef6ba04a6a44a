package inspect

import (
	"errors"
	"fmt"
	"io"
)

// SectorSize is the logical sector size assumed for MBR disks and tried
// first for GPT: EBS volumes present 512-byte sectors.
const SectorSize = 512

// Table values name the partitioning scheme found.
const (
	TableNone = "none"
	TableMBR  = "mbr"
	TableGPT  = "gpt"
)

// Layout is what Inspect found on a disk image. Its JSON form goes into
// report.json: field names are stable.
type Layout struct {
	Size       int64       `json:"size"`        // bytes inspected
	SectorSize int         `json:"sector_size"` // bytes per logical sector
	Table      string      `json:"table"`       // "gpt", "mbr" or "none"
	DiskID     string      `json:"disk_id,omitempty"`
	GPT        *GPT        `json:"gpt,omitempty"`
	Partitions []Partition `json:"partitions"`
	// FileSystem is the file system of the whole image when it has no
	// partition table.
	FileSystem *FileSystem `json:"file_system,omitempty"`
	Warnings   []string    `json:"warnings,omitempty"`
}

// GPT describes the GUID partition table headers.
type GPT struct {
	Header         string `json:"header"` // "primary" or "backup": where the entries were read
	PrimaryValid   bool   `json:"primary_valid"`
	BackupValid    bool   `json:"backup_valid"`
	Revision       string `json:"revision"`
	PrimaryLBA     int64  `json:"primary_lba"`
	BackupLBA      int64  `json:"backup_lba"`
	FirstUsableLBA int64  `json:"first_usable_lba"`
	LastUsableLBA  int64  `json:"last_usable_lba"`
	EntriesLBA     int64  `json:"entries_lba"`
	EntryCount     int    `json:"entry_count"`
	EntrySize      int    `json:"entry_size"`
	HybridMBR      bool   `json:"hybrid_mbr,omitempty"`
}

// Partition is one entry of the partition table.
type Partition struct {
	// Number is the partition's number as Linux names it: the GPT entry
	// index plus one; MBR slots 1-4 and logical partitions from 5.
	Number int    `json:"number"`
	Scheme string `json:"scheme"` // "gpt" or "mbr"
	// Role is "primary", "extended" or "logical" for MBR entries.
	Role string `json:"role,omitempty"`
	// Type is the GPT type GUID, or the MBR type byte as "0x83".
	Type        string   `json:"type"`
	TypeName    string   `json:"type_name"`
	GUID        string   `json:"guid,omitempty"` // GPT unique partition GUID
	Name        string   `json:"name,omitempty"` // GPT partition name
	StartSector int64    `json:"start_sector"`
	EndSector   int64    `json:"end_sector"` // inclusive
	Sectors     int64    `json:"sectors"`
	Offset      int64    `json:"offset"` // bytes
	Length      int64    `json:"length"` // bytes
	Attributes  string   `json:"attributes,omitempty"`
	Flags       []string `json:"flags,omitempty"`
	// FileSystem is absent for an MBR extended partition, which only
	// holds the chain of logical partitions.
	FileSystem *FileSystem `json:"file_system,omitempty"`
	Warnings   []string    `json:"warnings,omitempty"`
}

// Inspect reads the partition table of the image r of size bytes and
// identifies the file system of each partition, or of the whole image when
// there is no table. Damaged or truncated structures become warnings and
// "unknown" file systems; only read errors other than EOF are returned.
func Inspect(r io.ReaderAt, size int64) (*Layout, error) {
	if r == nil {
		return nil, errors.New("inspecting image: nil reader")
	}
	if size < 0 {
		return nil, fmt.Errorf("inspecting image: negative size %d", size)
	}
	d := &disk{r: r, size: size}
	l := &Layout{Size: size, SectorSize: SectorSize, Table: TableNone, Partitions: []Partition{}}
	if err := readTable(d, l); err != nil {
		return nil, fmt.Errorf("reading partition table: %w", err)
	}
	if l.Table == TableNone {
		fs, err := probe(volume{d: d, offset: 0, size: size})
		if err != nil {
			return nil, fmt.Errorf("probing file system: %w", err)
		}
		l.FileSystem = fs
		return l, nil
	}
	for i := range l.Partitions {
		p := &l.Partitions[i]
		if p.Role == "extended" {
			continue
		}
		v := volume{d: d, offset: p.Offset, size: p.Length}
		if end := p.Offset + p.Length; p.Offset >= size || end > size || end < p.Offset {
			p.Warnings = append(p.Warnings, fmt.Sprintf("extends past the end of the image (%d bytes)", size))
			v.size = max(0, size-p.Offset)
		}
		fs, err := probe(v)
		if err != nil {
			return nil, fmt.Errorf("probing partition %d at offset %d: %w", p.Number, p.Offset, err)
		}
		p.FileSystem = fs
	}
	return l, nil
}

// readTable fills in l's table and partitions; it leaves l.Table "none"
// when sector 0 holds no valid MBR and LBA 1 no GPT signature.
func readTable(d *disk, l *Layout) error {
	sector0, err := d.read(0, SectorSize)
	if err != nil {
		return err
	}
	m, ok := parseMBR(sector0)
	if !ok {
		// A wiped or damaged sector 0 does not erase the GPT behind it.
		found, err := readGPT(d, l, mbr{})
		if found {
			l.Warnings = append(l.Warnings, "GPT found without a protective MBR")
		}
		return err
	}
	if m.protective() {
		found, err := readGPT(d, l, m)
		if err != nil || found {
			return err
		}
		l.Warnings = append(l.Warnings, "protective MBR but no valid GPT header (primary or backup): listing the MBR entries")
	}
	return readMBR(d, l, m)
}
