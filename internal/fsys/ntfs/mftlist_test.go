package ntfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// rawAttrs returns the raw attributes of a fixed-up record, in order.
func rawAttrs(t *testing.T, rec []byte) [][]byte {
	var out [][]byte
	for off := int(ondisk.U16(rec, recFirstAttr)); ondisk.U32(rec, off) != attrEnd; {
		n := int(ondisk.U32(rec, off+4))
		if n == 0 || off+n > len(rec) {
			t.Fatalf("attribute at %d of length %d", off, n)
		}
		out = append(out, rec[off:off+n])
		off += n
	}
	return out
}

// nonResident builds a non-resident attribute from hdr's first 0x40
// bytes holding VCNs [start, last] mapped by runs.
func nonResident(hdr []byte, start, last int64, runs []run, id uint16) []byte {
	a := bytes.Clone(hdr[:attrNonResLen])
	binary.LittleEndian.PutUint16(a[0x0E:], id)
	binary.LittleEndian.PutUint64(a[0x10:], uint64(start))
	binary.LittleEndian.PutUint64(a[0x18:], uint64(last))
	binary.LittleEndian.PutUint16(a[0x20:], attrNonResLen)
	if start != 0 {
		clear(a[0x28:0x40]) // sizes are kept in the piece at VCN 0
	}
	a = append(a, encodeRuns(runs)...)
	for len(a)%8 != 0 {
		a = append(a, 0)
	}
	binary.LittleEndian.PutUint32(a[4:], uint32(len(a)))
	return a
}

// TestMFTAttributeList moves the second half of the $MFT's run list into
// extension record 15, named by a new $ATTRIBUTE_LIST in record 0, as
// Windows does for a fragmented MFT, and reads the same volume.
func TestMFTAttributeList(t *testing.T) {
	im := smallImage(t)
	v := loadVolume(t, im.path)
	before := snapshot(t, v.fs)

	recSize := int(v.fs.recSize)
	off0 := v.recordOffset(0)
	rec0 := v.b[off0 : off0+int64(recSize)]
	parsed, err := parseRecord(bytes.Clone(rec0), 0, v.fs.clusters)
	if err != nil {
		t.Fatal(err)
	}
	if err := fixup(rec0, "record 0"); err != nil {
		t.Fatal(err)
	}
	seq0 := ondisk.U16(rec0, recSequence)
	data, _ := findAttr(parsed.attrs, attrData, "")
	split := int64(16*recSize) / v.fs.cluster // records 0-15 stay in the first piece
	if data.lastVCN < split {
		t.Fatalf("the $MFT has %d clusters; the test splits it at %d", data.lastVCN+1, split)
	}
	var first, second []run
	for _, r := range data.runs {
		switch {
		case r.vcn+r.n <= split:
			first = append(first, r)
		case r.vcn >= split:
			second = append(second, r)
		default:
			k := split - r.vcn
			first = append(first, run{r.vcn, r.lcn, k})
			second = append(second, run{split, r.lcn + k, r.n - k})
		}
	}

	// Record 15: an extension record of record 0 holding the second
	// piece.
	const ext = 15
	b := make([]byte, recSize)
	copy(b, "FILE")
	binary.LittleEndian.PutUint16(b[recUSAOffset:], 0x30)
	binary.LittleEndian.PutUint16(b[recUSACount:], uint16(recSize/fixupStride+1))
	binary.LittleEndian.PutUint16(b[0x30:], 7) // the update sequence number
	binary.LittleEndian.PutUint16(b[recSequence:], 1)
	binary.LittleEndian.PutUint16(b[recFirstAttr:], 0x38)
	binary.LittleEndian.PutUint16(b[recFlags:], recFlagInUse)
	binary.LittleEndian.PutUint32(b[0x1C:], uint32(recSize))
	binary.LittleEndian.PutUint64(b[recBaseRef:], uint64(seq0)<<48)
	var raws [][]byte
	for _, a := range rawAttrs(t, rec0) {
		raws = append(raws, bytes.Clone(a))
	}
	var dataRaw []byte
	for _, a := range raws {
		if ondisk.U32(a, 0) == attrData && a[9] == 0 {
			dataRaw = a
		}
	}
	pieceB := nonResident(dataRaw, split, data.lastVCN, second, 0)
	n := copy(b[0x38:], pieceB)
	binary.LittleEndian.PutUint32(b[0x38+n:], attrEnd)
	binary.LittleEndian.PutUint32(b[recBytesInUse:], uint32(0x38+n+8))
	off15 := v.recordOffset(ext)
	copy(v.b[off15:], b)
	protect(v.b[off15 : off15+int64(recSize)])

	// Record 0: the first piece, and an attribute list naming every
	// attribute, the second piece in record 15.
	pieceA := nonResident(dataRaw, 0, split-1, first, ondisk.U16(dataRaw, 0x0E))
	var list []byte
	entry := func(typ uint32, vcn int64, rec uint64, seq uint16, id uint16) {
		e := make([]byte, 0x20)
		binary.LittleEndian.PutUint32(e, typ)
		binary.LittleEndian.PutUint16(e[4:], 0x20)
		e[7] = 0x1A
		binary.LittleEndian.PutUint64(e[8:], uint64(vcn))
		binary.LittleEndian.PutUint64(e[0x10:], rec|uint64(seq)<<48)
		binary.LittleEndian.PutUint16(e[0x18:], id)
		list = append(list, e...)
	}
	var attrs [][]byte
	for _, a := range raws {
		typ, id := ondisk.U32(a, 0), ondisk.U16(a, 0x0E)
		if a[9] != 0 {
			t.Fatalf("record 0 has a named attribute 0x%x", typ)
		}
		if typ == attrData {
			entry(typ, 0, 0, seq0, id)
			entry(typ, split, ext, 1, 0)
			attrs = append(attrs, pieceA)
			continue
		}
		entry(typ, 0, 0, seq0, id)
		attrs = append(attrs, a)
	}
	listAttr := make([]byte, attrResidentLen, attrResidentLen+len(list))
	binary.LittleEndian.PutUint32(listAttr, attrAttrList)
	binary.LittleEndian.PutUint32(listAttr[4:], uint32(attrResidentLen+len(list)))
	binary.LittleEndian.PutUint16(listAttr[0x0E:], 99)
	binary.LittleEndian.PutUint32(listAttr[0x10:], uint32(len(list)))
	binary.LittleEndian.PutUint16(listAttr[0x14:], attrResidentLen)
	listAttr = append(listAttr, list...)
	attrs = slices.Insert(attrs, 1, listAttr) // after $STANDARD_INFORMATION: attributes sort by type
	pos := int(ondisk.U16(rec0, recFirstAttr))
	for _, a := range attrs {
		pos += copy(rec0[pos:], a)
	}
	binary.LittleEndian.PutUint32(rec0[pos:], attrEnd)
	if pos+8 > recSize-8 {
		t.Fatalf("record 0 would need %d bytes", pos+8)
	}
	binary.LittleEndian.PutUint32(rec0[recBytesInUse:], uint32(pos+8))
	protect(rec0)

	fs, err := Open(bytes.NewReader(v.b), int64(len(v.b)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.load(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := findAttr(f.rec.attrs, attrAttrList, ""); !ok || len(dataPieces(f.attrs, attrData, "")) != 2 || len(fs.mft.runs) != len(data.runs)+boolInt(len(first)+len(second) > len(data.runs)) {
		t.Fatalf("the crafted $MFT: %d pieces, %d runs", len(dataPieces(f.attrs, attrData, "")), len(fs.mft.runs))
	}
	after := snapshot(t, fs)
	delete(before, "/$MFT") // records 0 and 15 changed: icat checks it below
	delete(after, "/$MFT")
	if !maps.Equal(before, after) {
		t.Fatalf("the volume reads differently once the $MFT has an attribute list: %d names before, %d after", len(before), len(after))
	}
	// Sleuth Kit reads the crafted volume as the same tree.
	crafted := filepath.Join(t.TempDir(), "crafted.img")
	if err := os.WriteFile(crafted, v.b, 0o600); err != nil {
		t.Fatal(err)
	}
	if a, b := flsEntries(t, im.path), flsEntries(t, crafted); !maps.Equal(a, b) {
		t.Errorf("fls lists %d names on the crafted volume, %d before", len(b), len(a))
	}
	got, err := fs.Open(0, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := tool(t, "icat", crafted, "0-128-1"); !bytes.Equal(readAll(t, got), want) {
		t.Errorf("$MFT differs from icat's")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// snapshot returns every name of a volume with its stat and the SHA-256
// of each stream, as a comparable string.
func snapshot(t *testing.T, fs *FS) map[string]string {
	out := map[string]string{}
	err := fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
		st, err := fs.Stat(e.ID)
		if err != nil {
			return err
		}
		var sums []byte
		for _, s := range append([]string{""}, st.Streams...) {
			f, err := fs.Open(e.ID, s)
			if err != nil {
				continue
			}
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(f, 0, f.Size())); err != nil {
				return err
			}
			sums = h.Sum(sums)
		}
		st.Streams = append(st.Streams, string(sums))
		out[p] = fmt.Sprintf("%+v", st)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
