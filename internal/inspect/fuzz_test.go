package inspect

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"io"
	"testing"
)

// seedDisks are small images that reach each parser: a GPT, an MBR with
// an extended chain, and a signature of every file system at its offset.
func seedDisks() [][]byte {
	var seeds [][]byte

	gpt := make([]byte, 80*512)
	gpt[446+4] = 0xEE
	binary.LittleEndian.PutUint32(gpt[446+8:], 1)
	binary.LittleEndian.PutUint32(gpt[446+12:], 79)
	gpt[510], gpt[511] = 0x55, 0xAA
	entries := gpt[1024 : 1024+128*128]
	entries[0] = 0xAF // a partition of any type
	binary.LittleEndian.PutUint64(entries[32:], 40)
	binary.LittleEndian.PutUint64(entries[40:], 44)
	h := gpt[512:1024]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[32:], 79)
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], 45)
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	seeds = append(seeds, gpt)

	mbr := make([]byte, 64*512)
	entry := func(sector []byte, slot int, typ byte, start, n uint32) {
		e := sector[446+16*slot:]
		e[4] = typ
		binary.LittleEndian.PutUint32(e[8:], start)
		binary.LittleEndian.PutUint32(e[12:], n)
		sector[510], sector[511] = 0x55, 0xAA
	}
	entry(mbr, 0, 0x83, 1, 3)
	entry(mbr, 1, 0x05, 8, 56)
	entry(mbr[8*512:], 0, 0x07, 2, 10)
	entry(mbr[8*512:], 1, 0x05, 20, 30)
	entry(mbr[28*512:], 0, 0x0b, 2, 20)
	seeds = append(seeds, mbr)

	sig := func(size int, at int, s string) []byte {
		b := make([]byte, size)
		copy(b[at:], s)
		return b
	}
	ext := sig(4096, 1024+0x38, "\x53\xef")
	ext[1024+0x18] = 2
	ext[1024+0x60] = 0x40 // extents: ext4
	xfs := sig(4096, 0, "XFSB\x00\x00\x10\x00")
	xfs[102] = 0x02 // 512-byte sectors
	btrfs := sig(72*1024, 65536+0x40, "_BHRfS_M")
	btrfs[65536+0x91] = 0x10 // 4096-byte sectors
	seeds = append(seeds,
		ext,
		xfs,
		sig(4096, 0, "LUKS\xba\xbe\x00\x02"),
		sig(4096, 512, "LABELONE\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20\x00\x00\x00LVM2 001"+
			"0123456789abcdefghijklmnopqrstuv"),
		sig(8192, 4086, "SWAPSPACE2"),
		sig(36*1024, 32768, "\x01CD001\x01"),
		btrfs,
		fragmentedNTFS(),
	)
	fat := make([]byte, 16*1024)
	copy(fat, []byte{0xEB, 0x3C, 0x90})
	binary.LittleEndian.PutUint16(fat[0x0B:], 512)
	fat[0x0D], fat[0x0E], fat[0x10], fat[0x11], fat[0x13], fat[0x15], fat[0x16] = 1, 1, 2, 16, 128, 0xF8, 1
	fat[0x26] = 0x29
	fat[510], fat[511] = 0x55, 0xAA
	seeds = append(seeds, fat)
	exfat := make([]byte, 16*1024)
	copy(exfat[3:], "EXFAT   ")
	exfat[0x6C], exfat[0x6D] = 9, 0
	binary.LittleEndian.PutUint32(exfat[0x50:], 24)
	binary.LittleEndian.PutUint32(exfat[0x58:], 32)
	binary.LittleEndian.PutUint32(exfat[0x5C:], 64)
	binary.LittleEndian.PutUint32(exfat[0x60:], 4)
	exfat[510], exfat[511] = 0x55, 0xAA
	seeds = append(seeds, exfat)
	return seeds
}

// shortReader serves data and then EOF, for images that claim to be
// longer than what can be read.
type shortReader struct{ data []byte }

func (s shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	n := copy(p, s.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// FuzzInspect feeds garbage disks, some claiming more bytes than they
// hold: Inspect must not panic or fail, and its result must render.
func FuzzInspect(f *testing.F) {
	for _, s := range seedDisks() {
		f.Add(s, uint16(0))
		f.Add(s, uint16(4096))
	}
	f.Fuzz(func(t *testing.T, data []byte, extra uint16) {
		l, err := Inspect(shortReader{data}, int64(len(data))+int64(extra))
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if _, err := json.Marshal(l); err != nil {
			t.Fatalf("json: %v", err)
		}
		var b bytes.Buffer
		l.Text(&b)
		if l.Table == TableNone && l.FileSystem == nil {
			t.Fatalf("no table and no file system")
		}
	})
}

// TestSeedsParse checks that the fuzz seeds reach the parsers they are
// meant for, so the fuzzer starts from useful inputs.
func TestSeedsParse(t *testing.T) {
	want := []string{"gpt", "mbr", TypeExt4, TypeXFS, TypeLUKS2, TypeLVM2, TypeSwap, TypeISO9660, TypeBtrfs, TypeNTFS, TypeFAT12, TypeExFAT}
	for i, s := range seedDisks() {
		l, err := Inspect(bytes.NewReader(s), int64(len(s)))
		if err != nil {
			t.Fatal(err)
		}
		got := l.Table
		if got == TableNone {
			got = l.FileSystem.Type
		}
		if got != want[i] {
			t.Errorf("seed %d: %s, want %s", i, got, want[i])
		}
	}
}
