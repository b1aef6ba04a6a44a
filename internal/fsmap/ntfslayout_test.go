package fsmap

import "github.com/ebsimager/ebsimager/internal/fsys/ntfs"

// The NTFS layout the crafted volumes of the tests are written with
// (ntfs-3g's layout.h). fsmap itself parses none of it: internal/fsys/ntfs
// does.
const (
	bpbBytesPerSector = 0x0B
	bpbSectorsPerClus = 0x0D
	bpbTotalSectors   = 0x28
	bpbMFTCluster     = 0x30
	bpbClustersPerRec = 0x40
	recUSAOffset      = 0x04
	recUSACount       = 0x06
	recSequence       = 0x10
	recFirstAttr      = 0x14
	recFlags          = 0x16
	recBytesInUse     = 0x18
	recBaseRef        = 0x20
	recFlagInUse      = 0x1
	recFlagDir        = 0x2
	attrAttributeList = ntfs.AttrAttributeList
	attrFileName      = ntfs.AttrFileName
	attrData          = ntfs.AttrData
	attrEnd           = 0xFFFFFFFF
)

// vrun is a decoded run as FuzzDecodeRuns checks it: a sparse run has
// no clusters.
type vrun struct {
	vcn, lcn, n int64
	sparse      bool
}

// decodeRuns decodes a run list from VCN vcn with the reader's decoder,
// the one every record fsmap maps goes through, for FuzzDecodeRuns.
func decodeRuns(b []byte, vcn int64) ([]vrun, error) {
	runs, err := ntfs.DecodeRuns(b, vcn, 1<<62)
	var out []vrun
	for _, r := range runs {
		out = append(out, vrun{vcn: r.VCN, lcn: max(r.LCN, 0), n: r.Len, sparse: r.LCN < 0})
	}
	return out, err
}
