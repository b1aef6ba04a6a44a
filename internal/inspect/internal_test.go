package inspect

import (
	"bytes"
	"encoding/binary"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// TestTypeNamesMatchSfdisk checks every GPT GUID and MBR byte in the name
// tables against util-linux's own list.
func TestTypeNamesMatchSfdisk(t *testing.T) {
	sfdisk := testenv.RequireTool(t, "sfdisk")[0]
	list := func(label string) string {
		out, err := exec.Command(sfdisk, "--list-types", "--label", label).Output()
		if err != nil {
			t.Fatalf("sfdisk --list-types --label %s: %v", label, err)
		}
		return string(out)
	}
	gpt := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*([0-9A-F-]{36})\s+(.+)$`).FindAllStringSubmatch(list("gpt"), -1) {
		gpt[strings.ToLower(m[1])] = strings.TrimSpace(m[2])
	}
	for guid, name := range gptTypes {
		if gpt[guid] != name {
			t.Errorf("GPT type %s: %q, sfdisk says %q", guid, name, gpt[guid])
		}
	}
	dos := map[byte]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*([0-9a-f]{1,2})\s+(.+)$`).FindAllStringSubmatch(list("dos"), -1) {
		n, _ := strconv.ParseUint(m[1], 16, 8)
		dos[byte(n)] = strings.TrimSpace(m[2])
	}
	for b, name := range mbrTypes {
		if dos[b] != name {
			t.Errorf("MBR type 0x%02x: %q, sfdisk says %q", b, name, dos[b])
		}
	}
	if len(gpt) < 100 || len(dos) < 50 {
		t.Errorf("sfdisk listed only %d GPT and %d MBR types", len(gpt), len(dos))
	}
}

func TestDecodeRuns(t *testing.T) {
	// Run list at attribute offset 0x40: 4 clusters at LCN 100, a sparse
	// run of 2, then 3 clusters 50 back (LCN 50), then 1 at LCN 50+0x1234.
	a := make([]byte, 0x40)
	binary.LittleEndian.PutUint16(a[32:], 0x40)
	a = append(a, 0x21, 0x04, 0x64, 0x00, 0x01, 0x02, 0x11, 0x03, 0xCE, 0x21, 0x01, 0x34, 0x12, 0x00)
	got := decodeRuns(a, 0)
	want := []run{
		{vcn: 0, lcn: 100, length: 4},
		{vcn: 4, length: 2, sparse: true},
		{vcn: 6, lcn: 50, length: 3},
		{vcn: 9, lcn: 50 + 0x1234, length: 1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("decodeRuns = %+v, want %+v", got, want)
	}
	for _, c := range []struct {
		vcn int64
		lcn uint64
		ok  bool
	}{{0, 100, true}, {3, 103, true}, {4, 0, false}, {7, 51, true}, {9, 0x1266, true}, {10, 0, false}, {-1, 0, false}} {
		if lcn, ok := mapVCN(got, c.vcn); lcn != c.lcn || ok != c.ok {
			t.Errorf("mapVCN(%d) = %d, %v; want %d, %v", c.vcn, lcn, ok, c.lcn, c.ok)
		}
	}
	// A header promising more bytes than remain stops the list.
	if runs := decodeRuns(append(a[:0x40:0x40], 0x48, 1, 2), 0); runs != nil {
		t.Errorf("truncated run list decoded as %+v", runs)
	}
}

// ntfsRecord builds a 1024-byte FILE record holding attrs, protected by an
// update sequence array with sequence number usn.
func ntfsRecord(usn uint16, attrs ...[]byte) []byte {
	rec := make([]byte, 1024)
	copy(rec, "FILE")
	binary.LittleEndian.PutUint16(rec[4:], 0x30) // update sequence array offset
	binary.LittleEndian.PutUint16(rec[6:], 3)    // 1 + one entry per 512 bytes
	binary.LittleEndian.PutUint16(rec[0x14:], 0x38)
	off := 0x38
	for _, a := range attrs {
		off += copy(rec[off:], a)
	}
	binary.LittleEndian.PutUint32(rec[off:], 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(rec[0x18:], uint32(off+8)) // bytes in use
	binary.LittleEndian.PutUint32(rec[0x1C:], 1024)
	binary.LittleEndian.PutUint16(rec[0x30:], usn)
	for i := 1; i <= 2; i++ {
		end := i*512 - 2
		copy(rec[0x30+2*i:], rec[end:end+2])
		binary.LittleEndian.PutUint16(rec[end:], usn)
	}
	return rec
}

func resident(typ uint32, value []byte) []byte {
	n := (0x18 + len(value) + 7) &^ 7
	a := make([]byte, n)
	binary.LittleEndian.PutUint32(a[0:], typ)
	binary.LittleEndian.PutUint32(a[4:], uint32(n))
	binary.LittleEndian.PutUint32(a[16:], uint32(len(value)))
	binary.LittleEndian.PutUint16(a[20:], 0x18)
	copy(a[0x18:], value)
	return a
}

func utf16Bytes(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}

// fragmentedNTFS is a 16 KiB NTFS-shaped volume with 512-byte clusters
// whose MFT is in two fragments: VCNs 0-3 at LCN 20, VCNs 4-7 at LCN 10.
// $Volume (record 3, VCN 6-7) is therefore at LCN 12, and a decoy record
// sits where a contiguous MFT would put it.
func fragmentedNTFS() []byte {
	vol := make([]byte, 32*512)
	bs := vol[:512]
	copy(bs[3:], "NTFS    ")
	binary.LittleEndian.PutUint16(bs[0x0B:], 512)
	bs[0x0D] = 1
	binary.LittleEndian.PutUint64(bs[0x28:], 31)
	binary.LittleEndian.PutUint64(bs[0x30:], 20)
	binary.LittleEndian.PutUint64(bs[0x38:], 2)
	bs[0x40] = 0xF6 // 2^10 = 1024-byte records
	bs[0x44] = 0xF4 // 4096-byte index records
	binary.LittleEndian.PutUint64(bs[0x48:], 0x1122334455667788)
	bs[510], bs[511] = 0x55, 0xAA

	data := make([]byte, 0x48)
	binary.LittleEndian.PutUint32(data[0:], 0x80)
	binary.LittleEndian.PutUint32(data[4:], 0x48)
	data[8] = 1 // non-resident
	binary.LittleEndian.PutUint64(data[24:], 7)
	binary.LittleEndian.PutUint16(data[32:], 0x40)
	copy(data[0x40:], []byte{0x11, 0x04, 0x14, 0x11, 0x04, 0xF6, 0x00}) // +20, then -10
	copy(vol[20*512:], ntfsRecord(7, data))

	info := make([]byte, 12)
	info[8], info[9] = 3, 1
	binary.LittleEndian.PutUint16(info[10:], 0x0001) // dirty
	copy(vol[12*512:], ntfsRecord(9, resident(0x60, utf16Bytes("FRAGMENTED")), resident(0x70, info)))
	copy(vol[20*512+3*1024:], ntfsRecord(9, resident(0x60, utf16Bytes("CONTIGUOUS"))))
	return vol
}

func TestNTFSFragmentedMFT(t *testing.T) {
	vol := fragmentedNTFS()
	l, err := Inspect(bytes.NewReader(vol), int64(len(vol)))
	if err != nil {
		t.Fatal(err)
	}
	fs := l.FileSystem
	if fs.Type != TypeNTFS || fs.Label != "FRAGMENTED" || fs.Serial != "1122334455667788" || fs.ClusterSize != 512 ||
		fs.NTFS.Version != "3.1" || !slices.Equal(fs.NTFS.VolumeFlags, []string{"dirty"}) ||
		fs.NTFS.MFTRecordSize != 1024 || fs.NTFS.IndexRecordSize != 4096 || fs.NTFS.MFTOffset != 20*512 || len(fs.Warnings) != 0 {
		t.Errorf("fragmented NTFS: %+v %+v", fs, fs.NTFS)
	}

	// A torn write: the second sector of $Volume does not end with the
	// update sequence number.
	vol[12*512+1022] ^= 0xFF
	l, err = Inspect(bytes.NewReader(vol), int64(len(vol)))
	if err != nil {
		t.Fatal(err)
	}
	if fs := l.FileSystem; fs.Label != "" || len(fs.Warnings) != 1 ||
		fs.Warnings[0] != "MFT record 3 ($Volume): torn write: sector 1 does not end with the update sequence number" {
		t.Errorf("torn record: label %q warnings %q", fs.Label, fs.Warnings)
	}
}

func TestExtState(t *testing.T) {
	for state, want := range map[uint16]string{
		0: "not clean", 1: "clean", 2: "not clean with errors", 3: "clean with errors",
		5: "clean orphans being recovered",
	} {
		if got := extState(state); got != want {
			t.Errorf("extState(%d) = %q, want %q", state, got, want)
		}
	}
}

func TestGUIDs(t *testing.T) {
	// The EFI System type GUID as stored on disk (UEFI spec, Appendix A).
	raw := []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}
	if got := guidString(raw); got != "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" {
		t.Errorf("guidString = %s", got)
	}
	if got := uuidString(raw); got != "28732ac1-1ff8-d211-ba4b-00a0c93ec93b" {
		t.Errorf("uuidString = %s", got)
	}
	if guidString(raw[:15]) != "" || uuidString(nil) != "" {
		t.Errorf("short GUIDs formatted")
	}
}
