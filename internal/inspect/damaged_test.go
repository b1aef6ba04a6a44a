package inspect_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// smallGPT is an 8 MiB GPT disk with two partitions, made by sfdisk.
func smallGPT(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gpt.raw")
	buildDisk(t, path, 8<<20, `label: gpt
label-id: 7E57D15C-0000-4000-8000-00000000000A
start=2048, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=7E57D15C-0001-4000-8000-00000000000A, name="one"
start=6144, size=8192, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, uuid=7E57D15C-0002-4000-8000-00000000000A, name="two"
`)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func inspectBytes(t *testing.T, raw []byte) *inspect.Layout {
	t.Helper()
	l, err := inspect.Inspect(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type span struct {
	number     int
	start, end int64
	name, typ  string
}

func spans(l *inspect.Layout) []span {
	var out []span
	for _, p := range l.Partitions {
		out = append(out, span{p.Number, p.StartSector, p.EndSector, p.Name, p.Type})
	}
	return out
}

// resealGPT recomputes the entry-array and header CRC32s of the header at
// byte offset hdr, as a partitioner would after editing.
func resealGPT(raw []byte, hdr int) {
	h := raw[hdr : hdr+512]
	lba := binary.LittleEndian.Uint64(h[72:])
	n := int(binary.LittleEndian.Uint32(h[80:]) * binary.LittleEndian.Uint32(h[84:]))
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(raw[lba*512:lba*512+uint64(n)]))
	size := binary.LittleEndian.Uint32(h[12:])
	clear(h[16:20])
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:size]))
}

func TestGPTBackupFallback(t *testing.T) {
	intact := smallGPT(t)
	want := []span{
		{1, 2048, 6143, "one", "0fc63daf-8483-4772-8e79-3d69d8477de4"},
		{2, 6144, 14335, "two", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"},
	}
	l := inspectBytes(t, intact)
	if got := spans(l); !slices.Equal(got, want) || l.GPT.Header != "primary" || len(l.Warnings) != 0 {
		t.Fatalf("intact disk: %+v header %s warnings %q", got, l.GPT.Header, l.Warnings)
	}
	lastLBA := len(intact)/512 - 1
	backupHdr := lastLBA * 512

	cases := []struct {
		name        string
		damage      func(raw []byte)
		header      string
		primary     bool
		backup      bool
		warningHave string
	}{
		{"primary header CRC", func(raw []byte) { raw[512+56] ^= 0xFF }, "backup", false, true, "GPT primary header invalid (header CRC32"},
		{"primary entries CRC", func(raw []byte) { raw[1024+56] ^= 0xFF }, "backup", false, true, "GPT primary header invalid (entry array CRC32"},
		{"primary wiped", func(raw []byte) { clear(raw[512 : 34*512]) }, "backup", false, true, "no EFI PART signature"},
		{"backup header CRC", func(raw []byte) { raw[backupHdr+56] ^= 0xFF }, "primary", true, false, "GPT backup header at LBA 16383 invalid (header CRC32"},
		{"backup entries differ", func(raw []byte) {
			// A consistent backup whose second entry starts one sector later.
			e := (lastLBA-32)*512 + 128
			binary.LittleEndian.PutUint64(raw[e+32:], 6145)
			resealGPT(raw, backupHdr)
		}, "primary", true, true, "GPT primary and backup entry arrays differ"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := bytes.Clone(intact)
			c.damage(raw)
			l := inspectBytes(t, raw)
			if l.Table != inspect.TableGPT || l.GPT.Header != c.header || l.GPT.PrimaryValid != c.primary || l.GPT.BackupValid != c.backup {
				t.Fatalf("table %s %+v, want entries from the %s header", l.Table, l.GPT, c.header)
			}
			if got := spans(l); !slices.Equal(got, want) {
				t.Errorf("partitions %+v, want %+v", got, want)
			}
			if len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0], c.warningHave) {
				t.Errorf("warnings %q, want one containing %q", l.Warnings, c.warningHave)
			}
		})
	}

	t.Run("MBR wiped", func(t *testing.T) {
		raw := bytes.Clone(intact)
		clear(raw[:512])
		l := inspectBytes(t, raw)
		if l.Table != inspect.TableGPT || l.GPT.Header != "primary" || l.GPT.HybridMBR {
			t.Fatalf("table %s %+v", l.Table, l.GPT)
		}
		if got := spans(l); !slices.Equal(got, want) {
			t.Errorf("partitions %+v, want %+v", got, want)
		}
		if !slices.Equal(l.Warnings, []string{"GPT found without a protective MBR"}) {
			t.Errorf("warnings %q", l.Warnings)
		}
	})

	t.Run("both headers damaged", func(t *testing.T) {
		raw := bytes.Clone(intact)
		raw[512+56] ^= 0xFF
		raw[backupHdr+56] ^= 0xFF
		l := inspectBytes(t, raw)
		if l.Table != inspect.TableMBR || len(l.Partitions) != 1 || l.Partitions[0].Type != "0xee" || l.Partitions[0].TypeName != "GPT" {
			t.Fatalf("table %s partitions %+v, want the protective MBR entry", l.Table, l.Partitions)
		}
		if l.Partitions[0].StartSector != 1 || l.Partitions[0].Sectors != int64(lastLBA) {
			t.Errorf("protective entry %+v", l.Partitions[0])
		}
		if len(l.Warnings) != 3 || !strings.Contains(l.Warnings[2], "protective MBR but no valid GPT") {
			t.Errorf("warnings %q", l.Warnings)
		}
	})
}

// gptPart is an entry for makeGPT.
type gptPart struct {
	typ        [16]byte
	first, end uint64
	name       string
}

// makeGPT writes a protective MBR and both GPT copies for a disk of
// sectors sectors of ss bytes, for sector sizes sfdisk will not make.
func makeGPT(ss int, sectors uint64, parts []gptPart) []byte {
	raw := make([]byte, int(sectors)*ss)
	raw[446+4] = 0xEE
	binary.LittleEndian.PutUint32(raw[446+8:], 1)
	binary.LittleEndian.PutUint32(raw[446+12:], uint32(min(sectors-1, 0xFFFFFFFF)))
	raw[510], raw[511] = 0x55, 0xAA
	entries := make([]byte, 128*128)
	for i, p := range parts {
		e := entries[i*128:]
		copy(e, p.typ[:])
		e[16] = byte(i + 1) // unique GUID
		binary.LittleEndian.PutUint64(e[32:], p.first)
		binary.LittleEndian.PutUint64(e[40:], p.end)
		for j, r := range p.name {
			binary.LittleEndian.PutUint16(e[56+2*j:], uint16(r))
		}
	}
	entrySectors := uint64(len(entries) / ss)
	write := func(my, alt, entriesLBA uint64) {
		copy(raw[entriesLBA*uint64(ss):], entries)
		h := raw[my*uint64(ss):]
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], my)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], 2+entrySectors)
		binary.LittleEndian.PutUint64(h[48:], sectors-2-entrySectors)
		h[56] = 0x42 // disk GUID
		binary.LittleEndian.PutUint64(h[72:], entriesLBA)
		binary.LittleEndian.PutUint32(h[80:], 128)
		binary.LittleEndian.PutUint32(h[84:], 128)
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	}
	write(1, sectors-1, 2)
	write(sectors-1, 1, sectors-1-entrySectors)
	return raw
}

// TestGPT4Kn reads a GPT of 4096-byte sectors and checks it with mmls -b.
func TestGPT4Kn(t *testing.T) {
	linux := [16]byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}
	raw := makeGPT(4096, 2048, []gptPart{{linux, 256, 767, "four-k"}, {linux, 768, 2000, "second"}})
	path := filepath.Join(t.TempDir(), "4kn.raw")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	l := inspectFile(t, path)
	if l.Table != inspect.TableGPT || l.SectorSize != 4096 || len(l.Warnings) != 0 {
		t.Fatalf("table %s sector size %d warnings %q", l.Table, l.SectorSize, l.Warnings)
	}
	want := []span{{1, 256, 767, "four-k", "0fc63daf-8483-4772-8e79-3d69d8477de4"}, {2, 768, 2000, "second", "0fc63daf-8483-4772-8e79-3d69d8477de4"}}
	if got := spans(l); !slices.Equal(got, want) {
		t.Errorf("partitions %+v, want %+v", got, want)
	}
	if l.Partitions[0].Offset != 256*4096 || l.Partitions[1].Length != 1233*4096 {
		t.Errorf("byte offsets %d %d", l.Partitions[0].Offset, l.Partitions[1].Length)
	}
	var got []span
	mmlsPath := testenv.RequireTool(t, "mmls")[0]
	for _, line := range strings.Split(run(t, "", mmlsPath, "-b", "4096", path), "\n") {
		m := mmlsLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		if n, err := strconv.Atoi(m[1]); err == nil {
			a, _ := strconv.ParseInt(m[2], 10, 64)
			b, _ := strconv.ParseInt(m[3], 10, 64)
			got = append(got, span{n + 1, a, b, m[5], "0fc63daf-8483-4772-8e79-3d69d8477de4"})
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("mmls -b 4096: %+v, want %+v", got, want)
	}
}

// TestMBRChainLoop points the last extended boot record back at the first:
// the chain must end, listing each logical partition once.
func TestMBRChainLoop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loop.raw")
	buildDisk(t, path, 16<<20, `label: dos
start=2048, type=5
start=4096, size=2048, type=83
start=8192, size=2048, type=82
`)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	good := inspectBytes(t, raw)
	want := []span{{1, 2048, 32767, "", "0x05"}, {5, 4096, 6143, "", "0x83"}, {6, 8192, 10239, "", "0x82"}}
	if got := spans(good); !slices.Equal(got, want) || len(good.Warnings) != 0 {
		t.Fatalf("partitions %+v warnings %q, want %+v", got, good.Warnings, want)
	}
	// sfdisk put the second EBR at sector 6144, 2048 sectors before its
	// partition. Its link entry is empty (the end of the chain); make it
	// point at the second EBR itself, relative to the extended partition.
	second := 6144 * 512
	if raw[second+510] != 0x55 || raw[second+446+16+4] != 0 {
		t.Fatalf("unexpected layout: second EBR not at sector 6144")
	}
	raw[second+446+16+4] = 0x05
	binary.LittleEndian.PutUint32(raw[second+446+16+8:], 6144-2048)
	binary.LittleEndian.PutUint32(raw[second+446+16+12:], 4096)
	l := inspectBytes(t, raw)
	if got := spans(l); !slices.Equal(got, want) {
		t.Errorf("partitions %+v, want %+v", got, want)
	}
	if len(l.Warnings) != 1 || l.Warnings[0] != "extended partition chain loops back to sector 6144" {
		t.Errorf("warnings %q", l.Warnings)
	}
}

// TestUnknownAndTruncated: zeros, noise and a truncated image give
// "unknown" file systems, never errors or panics.
func TestUnknownAndTruncated(t *testing.T) {
	zeros := make([]byte, 1<<20)
	l := inspectBytes(t, zeros)
	if l.Table != inspect.TableNone || l.FileSystem == nil || l.FileSystem.Type != inspect.TypeUnknown || len(l.Partitions) != 0 {
		t.Errorf("zeros: %+v", l)
	}
	noise := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	if l := inspectBytes(t, noise); l.Table != inspect.TableNone || l.FileSystem.Type != inspect.TypeUnknown {
		t.Errorf("noise: table %s fs %+v", l.Table, l.FileSystem)
	}
	empty, err := inspect.Inspect(bytes.NewReader(nil), 0)
	if err != nil || empty.Table != inspect.TableNone || empty.FileSystem.Type != inspect.TypeUnknown {
		t.Errorf("empty image: %+v, %v", empty, err)
	}

	// The GPT disk cut after its first MiB: the table is read from the
	// primary copy, the partitions extend past the end and hold nothing.
	raw := smallGPT(t)
	cut, err := inspect.Inspect(bytes.NewReader(raw[:1<<20]), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if cut.Table != inspect.TableGPT || cut.GPT.BackupValid || len(cut.Partitions) != 2 {
		t.Fatalf("truncated: %+v", cut)
	}
	for _, p := range cut.Partitions {
		if p.FileSystem.Type != inspect.TypeUnknown {
			t.Errorf("partition %d: %q", p.Number, p.FileSystem.Type)
		}
	}

	if _, err := inspect.Inspect(bytes.NewReader(nil), -1); err == nil {
		t.Errorf("negative size accepted")
	}
}

type failingReader struct {
	r    io.ReaderAt
	from int64
	err  error
}

func (f failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.from {
		return 0, f.err
	}
	return f.r.ReadAt(p, off)
}

// TestReadError: an I/O error other than EOF stops Inspect and is wrapped.
func TestReadError(t *testing.T) {
	raw := smallGPT(t)
	fire := errors.New("evidence block 15 unreadable")
	for _, from := range []int64{0, 2 << 20} {
		_, err := inspect.Inspect(failingReader{bytes.NewReader(raw), from, fire}, int64(len(raw)))
		if !errors.Is(err, fire) {
			t.Errorf("error from offset %d: %v, want it to wrap %v", from, err, fire)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "reading partition table: ") && !strings.HasPrefix(err.Error(), "probing partition") {
			t.Errorf("error %q does not say what was being read", err)
		}
	}
}

// TestBareVolumeReads: a file system without a table costs one read at
// the start of the image, none at its end.
func TestBareVolumeReads(t *testing.T) {
	f, err := os.Open(extImage(t, "ext4"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cr := &countingReader{r: f}
	l, err := inspect.Inspect(cr, 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	if l.FileSystem.Type != inspect.TypeExt4 || !slices.Equal(cr.offsets, []int64{0}) {
		t.Errorf("%s with reads at %v, want ext4 with one read at 0", l.FileSystem.Type, cr.offsets)
	}
}

// TestISOUUIDFromModificationDate: blkid takes an ISO 9660 UUID from the
// modification date, falling back to the creation date.
func TestISOUUIDFromModificationDate(t *testing.T) {
	iso, err := os.ReadFile(isoImage(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dated.iso")
	for _, c := range []struct{ modified, want string }{
		{"2001020304050600", "2001-02-03-04-05-06-00"},
		{"0000000000000000", ""}, // then the creation date, from genisoimage's clock
	} {
		copy(iso[32768+830:], c.modified)
		if err := os.WriteFile(path, iso, 0o600); err != nil {
			t.Fatal(err)
		}
		fs := inspectFile(t, path).FileSystem
		want := c.want
		if want == "" {
			want = fs.ISO9660.Created.Format("2006-01-02-15-04-05") + "-00"
		}
		if b := blkid(t, path, 0, 0); fs.UUID != want || b["UUID"] != want {
			t.Errorf("modified %s: uuid %q, blkid %q, want %q", c.modified, fs.UUID, b["UUID"], want)
		}
	}
}

// TestText renders an MBR layout and a bare file system.
func TestText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "text.raw")
	buildDisk(t, path, 16<<20, `label: dos
label-id: 0x0badf00d
start=2048, size=4096, type=83, bootable
start=6144, type=5
start=8192, size=2048, type=82
`)
	var b bytes.Buffer
	inspectFile(t, path).Text(&b)
	want := `MBR disk, 16777216 bytes, 512-byte sectors, disk signature 0x0badf00d
No.  Start       End         Length      Type                                 Name
  1  0000002048  0000006143  0000004096  Linux (0x83)                         [bootable]
  2  0000006144  0000032767  0000026624  Extended (0x05) extended
  5  0000008192  0000010239  0000002048  Linux swap / Solaris (0x82) logical
  1: unknown
  5: unknown
`
	if b.String() != want {
		t.Errorf("Text:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	inspectFile(t, swapImage(t)).Text(&b)
	want = fmt.Sprintf("No partition table, 4194304 bytes\nFile system: swap, label \"evswap\", uuid %s, size 4194304\n", swapUUID)
	if b.String() != want {
		t.Errorf("Text:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestFATRootLabelWins: when the root directory's label entry and the boot
// sector disagree, the root directory's is the volume label (as Windows,
// blkid and fsstat's "Root Directory" line have it).
func TestFATRootLabelWins(t *testing.T) {
	raw, err := os.ReadFile(fatImage(t, 16))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw[512:], []byte("EVFAT16    \x08"))
	if i < 0 {
		t.Fatal("no volume-label entry in the root directory")
	}
	copy(raw[512+i:], "ROOTLABEL  ")
	path := filepath.Join(t.TempDir(), "fat16.img")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	fs := inspectFile(t, path).FileSystem
	if fs.Label != "ROOTLABEL" || fs.FAT.BootLabel != "EVFAT16" {
		t.Errorf("label %q boot label %q", fs.Label, fs.FAT.BootLabel)
	}
	fsCheck(t, path, 0, 0, fs, inspect.TypeFAT16, path)
	if b := blkid(t, path, 0, 0); b["LABEL_FATBOOT"] != "EVFAT16" {
		t.Errorf("blkid LABEL_FATBOOT %q", b["LABEL_FATBOOT"])
	}
}
