package inspect

import (
	"fmt"
	"time"
)

// File system type names, as blkid's TYPE= spells them.
const (
	TypeUnknown = "unknown"
	TypeExt2    = "ext2"
	TypeExt3    = "ext3"
	TypeExt4    = "ext4"
	TypeJBD     = "jbd" // an external ext3/4 journal device
	TypeXFS     = "xfs"
	TypeNTFS    = "ntfs"
	TypeFAT12   = "fat12"
	TypeFAT16   = "fat16"
	TypeFAT32   = "fat32"
	TypeExFAT   = "exfat"
	TypeBtrfs   = "btrfs"
	TypeLVM2    = "lvm2_pv"
	TypeLUKS1   = "luks1"
	TypeLUKS2   = "luks2"
	// TypeBitLocker is a BitLocker-encrypted volume (blkid's "BitLocker").
	TypeBitLocker = "BitLocker"
	TypeSwap      = "swap"
	TypeISO9660   = "iso9660"
)

// FileSystem identifies what a partition (or a bare image) holds. The
// common fields are filled for every type that has them; the type's own
// facts are in the one sub-struct that matches Type.
type FileSystem struct {
	Type   string `json:"type"`
	Label  string `json:"label,omitempty"`
	UUID   string `json:"uuid,omitempty"`
	Serial string `json:"serial,omitempty"` // NTFS, FAT and exFAT volume serial numbers
	// BlockSize is the allocation unit of ext, XFS and Btrfs (its sector
	// size); ClusterSize that of NTFS, FAT and exFAT.
	BlockSize   int64 `json:"block_size,omitempty"`
	ClusterSize int64 `json:"cluster_size,omitempty"`
	SectorSize  int64 `json:"sector_size,omitempty"` // the file system's own sector size
	// Size is how many bytes the file system says it spans.
	Size int64 `json:"size,omitempty"`

	Ext     *Ext     `json:"ext,omitempty"`
	XFS     *XFS     `json:"xfs,omitempty"`
	NTFS    *NTFS    `json:"ntfs,omitempty"`
	FAT     *FAT     `json:"fat,omitempty"`
	ExFAT   *ExFAT   `json:"exfat,omitempty"`
	Btrfs   *Btrfs   `json:"btrfs,omitempty"`
	LVM2    *LVM2    `json:"lvm2,omitempty"`
	LUKS    *LUKS    `json:"luks,omitempty"`
	Swap    *Swap    `json:"swap,omitempty"`
	ISO9660 *ISO9660 `json:"iso9660,omitempty"`

	Warnings []string `json:"warnings,omitempty"`
}

// Ext holds the ext2/3/4 superblock facts.
type Ext struct {
	Revision         string    `json:"revision"` // "1.0": major.minor
	State            string    `json:"state"`    // "clean" or "not clean", plus "with errors"/"orphans being recovered"
	ErrorBehavior    string    `json:"error_behavior"`
	CreatorOS        string    `json:"creator_os"`
	BlockCount       uint64    `json:"block_count"`
	FreeBlocks       uint64    `json:"free_blocks"`
	ReservedBlocks   uint64    `json:"reserved_blocks"`
	InodeCount       uint32    `json:"inode_count"`
	FreeInodes       uint32    `json:"free_inodes"`
	InodeSize        int       `json:"inode_size"`
	FirstDataBlock   uint32    `json:"first_data_block"`
	BlocksPerGroup   uint32    `json:"blocks_per_group"`
	InodesPerGroup   uint32    `json:"inodes_per_group"`
	Created          time.Time `json:"created,omitzero"`
	LastMount        time.Time `json:"last_mount,omitzero"`
	LastWrite        time.Time `json:"last_write,omitzero"`
	LastCheck        time.Time `json:"last_check,omitzero"`
	LastMountedOn    string    `json:"last_mounted_on,omitempty"`
	MountCount       int       `json:"mount_count"`
	MaxMountCount    int       `json:"max_mount_count"`
	JournalInode     uint32    `json:"journal_inode,omitempty"`
	JournalUUID      string    `json:"journal_uuid,omitempty"` // external journal device
	FeaturesCompat   []string  `json:"features_compat"`
	FeaturesIncompat []string  `json:"features_incompat"`
	FeaturesROCompat []string  `json:"features_ro_compat"`
}

// XFS holds the XFS superblock facts.
type XFS struct {
	Version    int    `json:"version"`
	BlockCount uint64 `json:"block_count"`
	FreeBlocks uint64 `json:"free_blocks"`
	AGCount    uint32 `json:"ag_count"`
	AGBlocks   uint32 `json:"ag_blocks"`
	InodeSize  int    `json:"inode_size"`
	InodeCount uint64 `json:"inode_count"`
	FreeInodes uint64 `json:"free_inodes"`
	LogBlocks  uint32 `json:"log_blocks"`
	RootInode  uint64 `json:"root_inode"`
}

// NTFS holds the NTFS boot sector and $Volume facts.
type NTFS struct {
	Version         string   `json:"version,omitempty"` // "3.1", from $VOLUME_INFORMATION
	VolumeFlags     []string `json:"volume_flags,omitempty"`
	TotalSectors    uint64   `json:"total_sectors"`
	MFTCluster      uint64   `json:"mft_cluster"`
	MFTOffset       int64    `json:"mft_offset"` // bytes from the start of the volume
	MFTMirrCluster  uint64   `json:"mftmirr_cluster"`
	MFTRecordSize   int64    `json:"mft_record_size"`
	IndexRecordSize int64    `json:"index_record_size"`
	HiddenSectors   uint32   `json:"hidden_sectors"` // the partition start the boot sector records
}

// FAT holds the FAT12/16/32 boot sector facts.
type FAT struct {
	OEMName         string `json:"oem_name"`
	BootLabel       string `json:"boot_label,omitempty"` // the label in the boot sector
	FSTypeLabel     string `json:"fs_type_label,omitempty"`
	ReservedSectors int    `json:"reserved_sectors"`
	FATCount        int    `json:"fat_count"`
	FATSectors      uint32 `json:"fat_sectors"`
	RootEntries     int    `json:"root_entries,omitempty"`
	RootCluster     uint32 `json:"root_cluster,omitempty"`
	TotalSectors    uint32 `json:"total_sectors"`
	Clusters        uint32 `json:"clusters"`
	MediaDescriptor string `json:"media_descriptor"`
	HiddenSectors   uint32 `json:"hidden_sectors"`
}

// ExFAT holds the exFAT boot sector facts.
type ExFAT struct {
	Revision          string `json:"revision"`
	VolumeLength      uint64 `json:"volume_length"` // sectors
	PartitionOffset   uint64 `json:"partition_offset"`
	FATOffset         uint32 `json:"fat_offset"`          // sectors
	ClusterHeapOffset uint32 `json:"cluster_heap_offset"` // sectors
	ClusterCount      uint32 `json:"cluster_count"`
	RootCluster       uint32 `json:"root_cluster"`
	FATCount          int    `json:"fat_count"`
	VolumeFlags       uint16 `json:"volume_flags"`
}

// Btrfs holds the Btrfs superblock facts.
type Btrfs struct {
	NodeSize   uint32 `json:"node_size"`
	TotalBytes uint64 `json:"total_bytes"`
	BytesUsed  uint64 `json:"bytes_used"`
	Devices    uint64 `json:"devices"`
	Generation uint64 `json:"generation"`
	DeviceUUID string `json:"device_uuid"`
}

// LVM2 holds the LVM2 physical volume label facts.
type LVM2 struct {
	LabelSector int    `json:"label_sector"`
	DeviceSize  uint64 `json:"device_size"`
}

// LUKS holds the LUKS header facts.
type LUKS struct {
	Version       int    `json:"version"`
	Cipher        string `json:"cipher,omitempty"` // LUKS1: name-mode
	Hash          string `json:"hash,omitempty"`   // LUKS1
	PayloadOffset int64  `json:"payload_offset,omitempty"`
	KeyBytes      uint32 `json:"key_bytes,omitempty"`
	HeaderSize    uint64 `json:"header_size,omitempty"` // LUKS2
	Subsystem     string `json:"subsystem,omitempty"`   // LUKS2
}

// Swap holds the Linux swap header facts.
type Swap struct {
	Version  uint32 `json:"version"`
	PageSize int    `json:"page_size"`
	Pages    uint32 `json:"pages"`
	BadPages uint32 `json:"bad_pages"`
	// Signature is "SWAPSPACE2", or a hibernation image's signature such as
	// "S1SUSPEND".
	Signature string `json:"signature"`
}

// ISO9660 holds the primary volume descriptor facts.
type ISO9660 struct {
	SystemID    string    `json:"system_id,omitempty"`
	VolumeSetID string    `json:"volume_set_id,omitempty"`
	PublisherID string    `json:"publisher_id,omitempty"`
	Blocks      uint32    `json:"blocks"`
	BlockSize   int       `json:"block_size"`
	Created     time.Time `json:"created,omitzero"`
	Modified    time.Time `json:"modified,omitzero"`
}

// headSize is how much of a volume is read before probing: it covers the
// boot sectors, the ext superblock (1024-2047), the LVM2 label sectors
// (0-3), and swap signatures for 4 and 8 KiB pages.
const headSize = 8 << 10

// probers are tried in order; the first to recognise the volume wins.
// Signatures at fixed offsets with long magic come first, FAT (a boot
// sector heuristic) last, as blkid orders them.
var probers = []func(v volume, head []byte) (*FileSystem, error){
	probeLUKS,
	probeBitLocker,
	probeXFS,
	probeNTFS,
	probeExFAT,
	probeExt,
	probeBtrfs,
	probeLVM2,
	probeSwap,
	probeISO9660,
	probeFAT,
}

// probe identifies the file system of v, "unknown" when none matches.
func probe(v volume) (*FileSystem, error) {
	head, err := v.read(0, headSize)
	if err != nil {
		return nil, err
	}
	for _, p := range probers {
		fs, err := p(v, head)
		if err != nil {
			return nil, err
		}
		if fs != nil {
			if fs.Size > v.size {
				fs.Warnings = append(fs.Warnings, fmt.Sprintf("file system spans %d bytes, more than the %d available", fs.Size, v.size))
			}
			return fs, nil
		}
	}
	return &FileSystem{Type: TypeUnknown}, nil
}
