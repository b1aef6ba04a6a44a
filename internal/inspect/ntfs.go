package inspect

import (
	"github.com/ebsimager/ebsimager/internal/ondisk"

	"fmt"
)

// NTFS boot sector fields and MFT record layout, as documented in the
// Linux-NTFS project's "NTFS Documentation" (Richard Russon) and the
// kernel's fs/ntfs3/ntfs.h.
const (
	ntfsOEM            = "NTFS    "
	ntfsVolumeRecord   = 3    // $Volume is MFT record 3
	ntfsFixupStride    = 512  // update sequence arrays protect every 512 bytes
	ntfsAttrData       = 0x80 // $DATA
	ntfsAttrVolumeName = 0x60 // $VOLUME_NAME
	ntfsAttrVolumeInfo = 0x70 // $VOLUME_INFORMATION
	ntfsAttrEnd        = 0xFFFFFFFF
	ntfsMaxRecordSize  = 64 << 10 // larger records do not exist; bounds garbage
)

// ntfsSize decodes the signed "clusters per record" byte: positive counts
// clusters, negative n means 2^-n bytes.
func ntfsSize(b byte, clusterSize int64) int64 {
	if int8(b) < 0 {
		shift := -int(int8(b))
		if shift > 31 { // beyond any real record size; garbage
			return 0
		}
		return 1 << shift
	}
	return int64(b) * clusterSize
}

func probeNTFS(v volume, head []byte) (*FileSystem, error) {
	if !hasAt(head, 3, ntfsOEM) {
		return nil, nil
	}
	bps := int64(ondisk.U16(head, 0x0B))
	spcByte := ondisk.U8(head, 0x0D)
	spc := int64(spcByte)
	if spcByte > 0x80 { // cluster sizes over 64 KiB store 256 - log2(sectors per cluster)
		shift := 256 - int(spcByte)
		if shift > 20 { // 2^20 sectors per cluster is past NTFS's 2 MiB cluster limit
			return nil, nil
		}
		spc = 1 << shift
	}
	if !isPow2(bps, 256, 4096) || !isPow2(spc, 1, 1<<20) {
		return nil, nil
	}
	cluster := bps * spc
	total := ondisk.U64(head, 0x28)
	n := &NTFS{
		TotalSectors:    total,
		MFTCluster:      ondisk.U64(head, 0x30),
		MFTMirrCluster:  ondisk.U64(head, 0x38),
		MFTRecordSize:   ntfsSize(ondisk.U8(head, 0x40), cluster),
		IndexRecordSize: ntfsSize(ondisk.U8(head, 0x44), cluster),
		HiddenSectors:   ondisk.U32(head, 0x1C),
	}
	n.MFTOffset = clampMul(n.MFTCluster, cluster)
	fs := &FileSystem{
		Type:        TypeNTFS,
		Serial:      fmt.Sprintf("%016X", ondisk.U64(head, 0x48)),
		ClusterSize: cluster,
		SectorSize:  bps,
		Size:        clampMul(total, bps),
		NTFS:        n,
	}
	if err := ntfsVolume(v, fs, cluster); err != nil {
		return nil, err
	}
	return fs, nil
}

// ntfsVolume reads $Volume (MFT record 3) for the label, version and
// flags. It finds the record through $MFT's own $DATA run list, since the
// MFT may be fragmented, and records a warning when anything is damaged.
func ntfsVolume(v volume, fs *FileSystem, cluster int64) error {
	n := fs.NTFS
	size := n.MFTRecordSize
	if !isPow2(size, ntfsFixupStride, ntfsMaxRecordSize) {
		fs.Warnings = append(fs.Warnings, fmt.Sprintf("MFT record size %d out of range", size))
		return nil
	}
	rec0, err := v.read(n.MFTOffset, int(size))
	if err != nil {
		return err
	}
	if why := ntfsFixup(rec0); why != "" {
		fs.Warnings = append(fs.Warnings, "MFT record 0 ($MFT): "+why)
		return nil
	}
	off := n.MFTOffset + ntfsVolumeRecord*size
	if runs, ok := ntfsDataRuns(rec0); ok {
		vcnByte := ntfsVolumeRecord * size
		if lcn, ok := mapVCN(runs, vcnByte/cluster); ok {
			off = clampMul(lcn, cluster) + vcnByte%cluster
		} else {
			fs.Warnings = append(fs.Warnings, "$MFT run list does not map record 3: assuming a contiguous MFT")
		}
	} else {
		fs.Warnings = append(fs.Warnings, "$MFT has no readable $DATA run list: assuming a contiguous MFT")
	}
	rec3, err := v.read(off, int(size))
	if err != nil {
		return err
	}
	if why := ntfsFixup(rec3); why != "" {
		fs.Warnings = append(fs.Warnings, "MFT record 3 ($Volume): "+why)
		return nil
	}
	ntfsAttrs(rec3, func(typ uint32, a []byte) {
		if ondisk.U8(a, 8) != 0 { // non-resident: $Volume's attributes are always resident
			return
		}
		val := field(a, int(ondisk.U16(a, 20)), int(ondisk.U32(a, 16)))
		switch typ {
		case ntfsAttrVolumeName:
			fs.Label = utf16le(val)
		case ntfsAttrVolumeInfo:
			if len(val) >= 12 {
				n.Version = fmt.Sprintf("%d.%d", val[8], val[9])
				n.VolumeFlags = ntfsVolumeFlags(ondisk.U16(val, 10))
			}
		}
	})
	return nil
}

// ntfsFixup checks a FILE record's magic and applies its update sequence
// array in place, returning why the record is unusable.
func ntfsFixup(rec []byte) string {
	if hasAt(rec, 0, "BAAD") {
		return "marked BAAD"
	}
	if !hasAt(rec, 0, "FILE") {
		return "no FILE signature"
	}
	usaOff, usaCount := int(ondisk.U16(rec, 4)), int(ondisk.U16(rec, 6))
	if usaCount < 2 || (usaCount-1)*ntfsFixupStride != len(rec) || usaOff+2*usaCount > ntfsFixupStride || usaOff < 8 {
		return fmt.Sprintf("update sequence array (offset %d, count %d) does not fit a %d-byte record", usaOff, usaCount, len(rec))
	}
	usn := rec[usaOff : usaOff+2]
	for i := 1; i < usaCount; i++ {
		end := i*ntfsFixupStride - 2
		if rec[end] != usn[0] || rec[end+1] != usn[1] {
			return fmt.Sprintf("torn write: sector %d does not end with the update sequence number", i-1)
		}
		copy(rec[end:end+2], rec[usaOff+2*i:usaOff+2*i+2])
	}
	return ""
}

// ntfsAttrs calls fn for each attribute of a fixed-up FILE record.
func ntfsAttrs(rec []byte, fn func(typ uint32, attr []byte)) {
	off := int(ondisk.U16(rec, 0x14))
	used := min(int(ondisk.U32(rec, 0x18)), len(rec))
	for off+16 <= used {
		typ := ondisk.U32(rec, off)
		if typ == ntfsAttrEnd {
			return
		}
		n := int(ondisk.U32(rec, off+4))
		if n < 16 || off+n > used {
			return
		}
		fn(typ, rec[off:off+n])
		off += n
	}
}

type run struct {
	vcn, lcn, length uint64
	sparse           bool
}

// ntfsDataRuns decodes the run list of the unnamed, non-resident $DATA
// attribute of $MFT's record.
func ntfsDataRuns(rec []byte) ([]run, bool) {
	var runs []run
	found := false
	ntfsAttrs(rec, func(typ uint32, a []byte) {
		if found || typ != ntfsAttrData || ondisk.U8(a, 8) == 0 || ondisk.U8(a, 9) != 0 {
			return
		}
		found = true
		runs = decodeRuns(a, ondisk.U64(a, 16))
	})
	return runs, found && len(runs) > 0
}

// decodeRuns parses a non-resident attribute's mapping pairs: a header
// byte whose low nibble sizes the run length and high nibble the signed
// LCN delta, then those little-endian fields; a zero header ends it.
func decodeRuns(a []byte, startVCN uint64) []run {
	var runs []run
	off := int(ondisk.U16(a, 32))
	vcn, lcn := startVCN, int64(0)
	for off >= 0 && off < len(a) && a[off] != 0 {
		lenBytes, offBytes := int(a[off]&0x0F), int(a[off]>>4)
		off++
		if lenBytes == 0 || lenBytes > 8 || offBytes > 8 || off+lenBytes+offBytes > len(a) {
			break
		}
		var length uint64
		for i := lenBytes - 1; i >= 0; i-- {
			length = length<<8 | uint64(a[off+i])
		}
		off += lenBytes
		r := run{vcn: vcn, length: length, sparse: offBytes == 0}
		if offBytes > 0 {
			var delta int64
			for i := offBytes - 1; i >= 0; i-- {
				delta = delta<<8 | int64(a[off+i])
			}
			if a[off+offBytes-1]&0x80 != 0 && offBytes < 8 { // sign-extend
				delta -= 1 << (8 * offBytes)
			}
			lcn += delta
			r.lcn = uint64(lcn)
		}
		off += offBytes
		runs = append(runs, r)
		vcn += length
	}
	return runs
}

func mapVCN(runs []run, vcn int64) (uint64, bool) {
	if vcn < 0 {
		return 0, false
	}
	for _, r := range runs {
		if uint64(vcn) >= r.vcn && uint64(vcn)-r.vcn < r.length {
			if r.sparse {
				return 0, false
			}
			return r.lcn + uint64(vcn) - r.vcn, true
		}
	}
	return 0, false
}

func ntfsVolumeFlags(f uint16) []string {
	names := []struct {
		bit  uint16
		name string
	}{
		{0x0001, "dirty"}, {0x0002, "resize_logfile"}, {0x0004, "upgrade_on_mount"},
		{0x0008, "mounted_on_nt4"}, {0x0010, "delete_usn_underway"},
		{0x0020, "repair_object_ids"}, {0x4000, "chkdsk_underway"},
		{0x8000, "modified_by_chkdsk"},
	}
	var out []string
	for _, n := range names {
		if f&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}
