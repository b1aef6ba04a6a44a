package fsmap

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unicode/utf16"
)

// A hand-made NTFS volume: 512-byte sectors and clusters, 1 KiB records,
// and an MFT in two runs whose second half is described by an extension
// record that record 0's $ATTRIBUTE_LIST points to. It exercises what
// mkntfs never produces on a small volume.
const (
	craftSize     = 256 << 10
	craftCluster  = 512
	craftRecord   = 1024
	craftMFT1     = 32  // LCN of MFT records 0-15
	craftMFT2     = 200 // LCN of MFT records 16-31
	craftFileData = 400 // LCN of /sub/file2's three clusters
)

func le16(b []byte, off int, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
func le32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func le64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

func pad8(b []byte) []byte {
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

func resident(typ uint32, name string, value []byte) []byte {
	n := utf16.Encode([]rune(name))
	h := make([]byte, 0x18+2*len(n))
	le32(h, 0, typ)
	h[9] = byte(len(n))
	le16(h, 10, 0x18)
	for i, u := range n {
		le16(h, 0x18+2*i, u)
	}
	h = pad8(h)
	le16(h, 0x14, uint16(len(h)))
	le32(h, 0x10, uint32(len(value)))
	a := pad8(append(h, value...))
	le32(a, 4, uint32(len(a)))
	return a
}

func nonResident(typ uint32, startVCN, lastVCN int64, realSize int64, runs []byte) []byte {
	h := make([]byte, 0x40)
	le32(h, 0, typ)
	h[8] = 1
	le64(h, 0x10, uint64(startVCN))
	le64(h, 0x18, uint64(lastVCN))
	le16(h, 0x20, 0x40)
	le64(h, 0x28, uint64((lastVCN+1)*craftCluster))
	le64(h, 0x30, uint64(realSize))
	le64(h, 0x38, uint64(realSize))
	a := pad8(append(h, runs...))
	le32(a, 4, uint32(len(a)))
	return a
}

// run encodes one run of n clusters at a signed LCN delta (both < 2^15).
func runOf(n, delta int64) []byte {
	return []byte{0x22, byte(n), byte(n >> 8), byte(delta), byte(delta >> 8)}
}

func fileName(parent uint64, seq uint16, name string) []byte {
	n := utf16.Encode([]rune(name))
	v := make([]byte, 0x42+2*len(n))
	le64(v, 0, parent|uint64(seq)<<48)
	v[0x40], v[0x41] = byte(len(n)), 1 // Win32 namespace
	for i, u := range n {
		le16(v, 0x42+2*i, u)
	}
	return resident(attrFileName, "", v)
}

// record lays out an MFT record with its update sequence applied.
func record(seq, flags uint16, base uint64, attrs ...[]byte) []byte {
	r := make([]byte, craftRecord)
	copy(r, "FILE")
	le16(r, recUSAOffset, 0x30)
	le16(r, recUSACount, craftRecord/fixupStride+1)
	le16(r, recSequence, seq)
	le16(r, recFirstAttr, 0x38)
	le16(r, recFlags, flags)
	le64(r, recBaseRef, base)
	off := 0x38
	for _, a := range attrs {
		off += copy(r[off:], a)
	}
	le32(r, off, attrEnd)
	le32(r, recBytesInUse, uint32(off+8))
	le32(r, 0x1C, craftRecord)
	const usn = 0x0101
	le16(r, 0x30, usn)
	for i := 1; i <= craftRecord/fixupStride; i++ {
		pos := i*fixupStride - 2
		copy(r[0x30+2*i:], r[pos:pos+2])
		le16(r, pos, usn)
	}
	return r
}

func attrListEntry(typ uint32, startVCN int64, rec uint64) []byte {
	e := make([]byte, 0x20)
	le32(e, 0, typ)
	le16(e, 4, 0x20)
	e[7] = 0x1A
	le64(e, 8, uint64(startVCN))
	le64(e, 0x10, rec)
	return e
}

// craftNTFS returns the volume and where its records lie.
func craftNTFS() []byte {
	v := make([]byte, craftSize)
	boot := v[:512]
	copy(boot[3:], ntfsOEM)
	le16(boot, bpbBytesPerSector, 512)
	boot[bpbSectorsPerClus] = 1
	le64(boot, bpbTotalSectors, craftSize/512-1)
	le64(boot, bpbMFTCluster, craftMFT1)
	boot[bpbClustersPerRec] = 0xF6 // -10: records of 2^10 bytes
	at := func(rec int) int {
		if rec < 16 {
			return craftMFT1*craftCluster + rec*craftRecord
		}
		return craftMFT2*craftCluster + (rec-16)*craftRecord
	}
	const inUse, dir = recFlagInUse, recFlagInUse | recFlagDir
	list := append(attrListEntry(attrData, 0, 0), attrListEntry(attrData, 32, 15)...)
	recs := map[int][]byte{
		0: record(1, inUse, 0, fileName(5, 5, "$MFT"), resident(attrAttributeList, "", list),
			nonResident(attrData, 0, 31, 32*craftRecord, runOf(32, craftMFT1))),
		5:  record(5, dir, 0, fileName(5, 5, ".")),
		15: record(1, inUse, 1<<48, nonResident(attrData, 32, 63, 0, runOf(32, craftMFT2))),
		20: record(3, inUse, 0, fileName(5, 5, "frag.txt"), resident(attrData, "", []byte("abc"))),
		21: record(1, inUse, 0, fileName(22, 2, "file2"), nonResident(attrData, 0, 2, 1500, runOf(3, craftFileData))),
		22: record(2, dir, 0, fileName(5, 5, "sub")),
		23: record(1, inUse, 21|1<<48, resident(attrData, "ads", []byte("stream"))),
		24: record(1, inUse, 0, fileName(30, 1, "lost.txt")),
	}
	for r, b := range recs {
		copy(v[at(r):], b)
	}
	return v
}

func TestNTFSCrafted(t *testing.T) {
	v := craftNTFS()
	m, err := Build(bytes.NewReader(v), int64(len(v)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Warnings) != 0 {
		t.Fatalf("warnings: %v", m.Warnings)
	}
	rec := func(r int64) int64 {
		if r < 16 {
			return craftMFT1*craftCluster + r*craftRecord
		}
		return craftMFT2*craftCluster + (r-16)*craftRecord
	}
	// A file in the MFT's second run, found only through the attribute list.
	f, ok := m.Find("/frag.txt")
	if !ok {
		t.Fatalf("frag.txt not mapped; owners %+v", m.Owners())
	}
	var data []Extent
	for _, e := range m.ExtentsOf(f) {
		if e.Role == Data {
			data = append(data, e)
		}
	}
	if len(data) != 1 || data[0].Len != 3 || data[0].Off < rec(20) || data[0].End() > rec(21) {
		t.Fatalf("frag.txt's resident data: %+v (record at %d)", data, rec(20))
	}
	// A file in a subdirectory, with a named stream in an extension record.
	f2, ok := m.Find("/sub/file2")
	if !ok {
		t.Fatalf("/sub/file2 not mapped: %+v", m.Owners())
	}
	if !covers(m, f2, Data, craftFileData*craftCluster, 3*craftCluster) {
		t.Fatalf("/sub/file2's clusters: %+v", m.ExtentsOf(f2))
	}
	if !covers(m, f2, Metadata, rec(23), 0x38) {
		t.Fatalf("the extension record is not /sub/file2's metadata: %+v", m.Lookup(rec(23), 64))
	}
	if _, ok := m.Find("/sub"); !ok {
		t.Fatal("/sub not mapped")
	}
	if _, ok := m.Find("<orphan 30>/lost.txt"); !ok {
		t.Fatalf("orphan not named: %+v", m.Owners())
	}
	// The $MFT owns its free records and the extension record of its data.
	mft, _ := m.Find("$MFT")
	for _, r := range []int64{1, 18, 31} {
		if !covers(m, mft, Metadata, rec(r), craftRecord) {
			t.Errorf("record %d is not the $MFT's: %+v", r, m.Lookup(rec(r), craftRecord))
		}
	}
	if !covers(m, mft, Metadata, rec(15), craftRecord) {
		t.Errorf("extension record 15 is not the $MFT's")
	}
}

// TestNTFSKeep maps only an extension record: its file is still named,
// from a second read of its base record, and nothing else is mapped.
func TestNTFSKeep(t *testing.T) {
	v := craftNTFS()
	ext := int64(craftMFT2*craftCluster + (23-16)*craftRecord)
	m, err := Build(bytes.NewReader(v), int64(len(v)), Options{Keep: []Range{{ext + 0x100, 16}, {ext, 8}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Owners()) != 1 || m.Owner(0).Name != "/sub/file2" || m.Owner(0).ID != 21 {
		t.Fatalf("owners %+v", m.Owners())
	}
	if got := m.Lookup(0, int64(len(v))); len(got) != 2 || got[0] != (Extent{ext, 8, 0, Metadata}) || got[1].Len != 16 {
		t.Fatalf("extents %+v", got)
	}
	// An empty (not nil) Keep maps nothing.
	if m, err := Build(bytes.NewReader(v), int64(len(v)), Options{Keep: []Range{}}); err != nil || m.Extents() != 0 || len(m.Owners()) != 0 {
		t.Fatalf("empty Keep: %v, %d extents", err, m.Extents())
	}
}
