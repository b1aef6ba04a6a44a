package inspect

import (
	"bytes"
	"strings"
	"testing"
)

// TestBitLocker identifies a BitLocker volume by its boot sector's
// "-FVE-FS-" OEM identifier, which also carries a FAT-like BPB and the
// 0x55AA signature, bare and inside an MBR partition, and shows it.
func TestBitLocker(t *testing.T) {
	vol := make([]byte, 64<<10)
	copy(vol, "\xeb\x58\x90-FVE-FS-\x00\x02\x08\x00\x00\x00\x00\x00\x00\xf8")
	vol[510], vol[511] = 0x55, 0xAA
	l, err := Inspect(bytes.NewReader(vol), int64(len(vol)))
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	l.Text(&text)
	if l.FileSystem == nil || l.FileSystem.Type != TypeBitLocker || !strings.Contains(text.String(), "File system: BitLocker\n") {
		t.Fatalf("bare BitLocker volume: %+v\n%s", l.FileSystem, text.String())
	}

	disk := make([]byte, 1<<20)
	copy(disk[256*512:], vol) // at sector 256
	entry := disk[446:]
	entry[4] = 0x07 // HPFS/NTFS/exFAT, as Windows marks BitLocker volumes
	putLE32(entry[8:], 256)
	putLE32(entry[12:], 128)
	disk[510], disk[511] = 0x55, 0xAA
	l, err = Inspect(bytes.NewReader(disk), int64(len(disk)))
	if err != nil {
		t.Fatal(err)
	}
	text.Reset()
	l.Text(&text)
	if len(l.Partitions) != 1 || l.Partitions[0].FileSystem.Type != TypeBitLocker || !strings.Contains(text.String(), "  1: BitLocker\n") {
		t.Fatalf("BitLocker partition: %+v\n%s", l.Partitions, text.String())
	}
}

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
