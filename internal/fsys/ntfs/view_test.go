package ntfs

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// TestRecordView checks the exported view against the reader's own parse
// of every record of a fresh volume, and its leniency on damage.
func TestRecordView(t *testing.T) {
	img := mkntfs(t, 8, 4096)
	fs, _ := openImage(t, img)
	vol, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseBoot(vol[:512])
	if err != nil {
		t.Fatal(err)
	}
	want := Boot{Sector: 512, Cluster: 4096, RecordSize: 1024, Sectors: 8<<20/512 - 1, Clusters: (8<<20/512 - 1) / 8, MFTCluster: uint64(fs.mft.runs[0].lcn)}
	if g != want {
		t.Fatalf("ParseBoot: %+v, want %+v", g, want)
	}
	raw := func(n uint64) []byte {
		b := make([]byte, fs.recSize)
		if _, err := fs.mft.ReadAt(b, int64(n)*fs.recSize); err != nil {
			t.Fatal(err)
		}
		return b
	}
	parsed := 0
	for n := range uint64(fs.records) {
		b := raw(n)
		in, ierr := parseRecord(bytes.Clone(b), n, fs.clusters)
		v, verr := ParseRecord(b, n, fs.clusters)
		if ierr != nil {
			if ondisk.U32(b, 0) != 0 && string(b[:4]) == "FILE" {
				t.Fatalf("record %d: the reader fails: %v", n, ierr)
			}
			if v != nil || !errors.Is(verr, ErrNotRecord) || !errors.Is(verr, fsys.ErrCorrupt) {
				t.Fatalf("record %d: %+v, %v for a record the reader rejects (%v)", n, v, verr, ierr)
			}
			continue
		}
		if verr != nil || v.Num != n || v.Seq != in.seq || v.InUse != (in.flags&recFlagInUse != 0) || v.Dir != (in.flags&recFlagDir != 0) || v.Extension != in.ext || len(v.Attrs) != len(in.attrs) {
			t.Fatalf("record %d: view %+v, %v; reader %+v", n, v, verr, in)
		}
		for i, a := range in.attrs {
			va := v.Attrs[i]
			if va.Type != a.typ || va.Name != a.name || va.Resident != a.resident || va.StartVCN != a.startVCN || va.DataSize != a.dataSize || len(va.Runs) != len(a.runs) {
				t.Fatalf("record %d attribute %d: %+v, reader %+v", n, i, va, a)
			}
			if a.resident && !bytes.Equal(b[va.ValueOff:va.ValueOff+va.ValueLen], a.value) {
				t.Fatalf("record %d attribute %d: value at %d+%d is not the reader's", n, i, va.ValueOff, va.ValueLen)
			}
			for k, r := range a.runs {
				if va.Runs[k] != (Run{VCN: r.vcn, LCN: r.lcn, Len: r.n}) {
					t.Fatalf("record %d attribute %d run %d: %+v, reader %+v", n, i, k, va.Runs[k], r)
				}
			}
		}
		parsed++
	}
	if parsed < 16 {
		t.Fatalf("%d records parsed", parsed)
	}

	// The root: a directory named "." in itself; the $MFT's data.
	root, err := ParseRecord(raw(recordRoot), recordRoot, fs.clusters)
	if err != nil || !root.Dir || !root.InUse || root.Base != recordRoot {
		t.Fatalf("root: %+v, %v", root, err)
	}
	var names []FileName
	for _, a := range root.Attrs {
		if fn, ok := a.FileName(); ok {
			names = append(names, fn)
		}
	}
	if len(names) != 1 || names[0] != (FileName{Parent: recordRoot, ParentSeq: recordRoot, Name: "."}) {
		t.Fatalf("root's names: %+v", names)
	}
	mft, _ := ParseRecord(raw(recordMFT), recordMFT, fs.clusters)
	var runs []Run
	for _, a := range mft.Attrs {
		if a.Type == AttrData && a.Name == "" {
			runs = append(runs, a.Runs...)
			if a.DataSize != fs.mft.size {
				t.Fatalf("$MFT data size %d, the reader's %d", a.DataSize, fs.mft.size)
			}
		}
	}
	if !reflect.DeepEqual(runs, exportRuns(fs.mft.runs)) {
		t.Fatalf("$MFT runs %+v, the reader's %+v", runs, fs.mft.runs)
	}

	// A torn record: the reader rejects it, the view keeps all of it.
	torn := raw(recordRoot)
	torn[2*fixupStride-1] ^= 0xFF
	if _, err := parseRecord(bytes.Clone(torn), recordRoot, fs.clusters); err == nil {
		t.Fatal("the reader takes a torn record")
	}
	v, err := ParseRecord(torn, recordRoot, fs.clusters)
	if !errors.Is(err, fsys.ErrCorrupt) || !strings.Contains(err.Error(), "MFT record 5: update sequence mismatch in sector 1") {
		t.Fatalf("torn record: %v", err)
	}
	if v == nil || !reflect.DeepEqual(v.Attrs, root.Attrs) || !v.Dir {
		t.Fatalf("torn record: %+v, want the attributes of %+v", v, root)
	}

	// A damaged attribute: those before it are kept.
	b := raw(recordRoot)
	second := int(ondisk.U16(b, recFirstAttr)) + int(ondisk.U32(b, int(ondisk.U16(b, recFirstAttr))+4))
	b[second+4], b[second+5], b[second+6], b[second+7] = 3, 0, 0, 0 // a length of 3
	v, err = ParseRecord(b, recordRoot, fs.clusters)
	if !errors.Is(err, fsys.ErrCorrupt) || !strings.Contains(err.Error(), "attribute at byte") || v == nil || len(v.Attrs) != 1 || v.Attrs[0].Type != attrStandardInfo {
		t.Fatalf("damaged second attribute: %+v, %v", v, err)
	}
}

func TestAttrListView(t *testing.T) {
	entry := func(typ uint32, name string, vcn int64, ref uint64) []byte {
		e := make([]byte, 0x20+8)
		le := func(off int, v uint64, n int) {
			for i := range n {
				e[off+i] = byte(v >> (8 * i))
			}
		}
		le(0, uint64(typ), 4)
		le(4, uint64(len(e)), 2)
		e[6], e[7] = byte(len(name)), 0x1A
		le(8, uint64(vcn), 8)
		le(0x10, ref, 8)
		for i, c := range name {
			e[0x1A+2*i] = byte(c)
		}
		return e
	}
	list := append(entry(AttrData, "", 0, 0|1<<48), entry(AttrData, "ab", 32, 15|3<<48)...)
	es, err := ParseAttrList(list, "$MFT")
	want := []ListEntry{{Type: AttrData, StartVCN: 0, Record: 0, Seq: 1}, {Type: AttrData, Name: "ab", StartVCN: 32, Record: 15, Seq: 3}}
	if err != nil || !reflect.DeepEqual(es, want) {
		t.Fatalf("%+v, %v", es, err)
	}
	es, err = ParseAttrList(append(list, 0x80, 0, 0, 0, 4, 0), "$MFT")
	if !errors.Is(err, fsys.ErrCorrupt) || !strings.Contains(err.Error(), "$MFT $ATTRIBUTE_LIST: entry of 4 bytes at byte 80") || !reflect.DeepEqual(es, want) {
		t.Fatalf("damaged third entry: %+v, %v", es, err)
	}
}

func TestDecodeRunsView(t *testing.T) {
	b := []byte{0x21, 0x10, 0x00, 0x01, 0x01, 0x08, 0x00}
	runs, err := DecodeRuns(b, 4, 1000)
	want := []Run{{VCN: 4, LCN: 256, Len: 16}, {VCN: 20, LCN: -1, Len: 8}}
	if err != nil || !reflect.DeepEqual(runs, want) {
		t.Fatalf("%+v, %v", runs, err)
	}
	runs, err = DecodeRuns(append(b[:6:6], 0x09), 4, 1000)
	if !errors.Is(err, fsys.ErrCorrupt) || !reflect.DeepEqual(runs, want) {
		t.Fatalf("damaged third run: %+v, %v", runs, err)
	}
	if _, err := DecodeRuns(b, 4, 200); !errors.Is(err, fsys.ErrCorrupt) {
		t.Fatalf("a run past 200 clusters: %v", err)
	}
	if _, err := DecodeRuns(b, -1, 1000); !errors.Is(err, fsys.ErrCorrupt) {
		t.Fatalf("VCN -1: %v", err)
	}
}

// checkView checks the view of a record the fuzzer made: whatever it
// returns lies within the record and the volume's clusters, and a record
// the reader takes (in, with ierr nil) gives the same attributes and no
// error.
func checkView(t *testing.T, data []byte, clusters int64, in *record, ierr error) {
	v, err := ParseRecord(bytes.Clone(data), 0, clusters)
	if err != nil {
		wantCorrupt(t, err)
	}
	if v == nil {
		if err == nil || !errors.Is(err, ErrNotRecord) {
			t.Fatalf("no record and %v", err)
		}
		return
	}
	if ierr == nil && (err != nil || len(v.Attrs) != len(in.attrs)) {
		t.Fatalf("the reader takes the record; the view gives %d attributes and %v", len(v.Attrs), err)
	}
	for _, a := range v.Attrs {
		if a.ValueOff < 0 || a.ValueLen < 0 || a.ValueOff+a.ValueLen > len(data) {
			t.Fatalf("value at %d+%d of %d bytes", a.ValueOff, a.ValueLen, len(data))
		}
		a.FileName()
		for _, r := range a.Runs {
			if r.Len <= 0 || r.LCN < -1 || (r.LCN >= 0 && r.LCN+r.Len > clusters) {
				t.Fatalf("run %+v", r)
			}
		}
	}
}
