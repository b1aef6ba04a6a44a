package ntfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// seeds holds structures cut from real volumes: a fresh mkntfs volume
// when mkntfs is installed, and one written through ntfs-3g (compressed
// data, a 200-entry index, an attribute list) when FUSE is there too.
type runSeed struct {
	list []byte
	vcns int64
}

type seeds struct {
	records [][]byte // raw MFT records, as on disk (not fixed up)
	runs    []runSeed
	units   [][]byte // stored clusters of compressed units
	indexes [][]byte // an $INDEX_ROOT value, then its allocation's bytes
}

var (
	seedsOnce sync.Once
	seedsMade seeds
)

// collectSeeds builds the seed volumes once for all the fuzz targets.
func collectSeeds(f *testing.F) seeds {
	seedsOnce.Do(func() { seedsMade = makeSeeds(f) })
	return seedsMade
}

func makeSeeds(f *testing.F) seeds {
	var s seeds
	if _, err := exec.LookPath("mkntfs"); err != nil {
		return s
	}
	s.add(f, mkntfs(f, 8, 4096))
	if _, err := exec.LookPath("ntfs-3g"); err == nil {
		if _, err := os.Stat("/dev/fuse"); err == nil {
			s.add(f, smallImage(f).path)
		}
	}
	return s
}

func (s *seeds) add(f *testing.F, path string) {
	vol, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	fs, err := Open(bytes.NewReader(vol), int64(len(vol)))
	if err != nil {
		f.Fatal(err)
	}
	for n := uint64(0); n < uint64(fs.records); n++ {
		raw := make([]byte, fs.recSize)
		fs.mft.ReadAt(raw, int64(n)*fs.recSize)
		rec, err := parseRecord(bytes.Clone(raw), n, fs.clusters)
		if err != nil || rec.flags&recFlagInUse == 0 {
			continue
		}
		s.records = append(s.records, raw)
		file, err := fs.load(fsys.ID(n))
		if err != nil {
			continue
		}
		for _, a := range file.attrs {
			if !a.resident && len(s.runs) < 40 {
				s.runs = append(s.runs, runSeed{encodeRuns(a.runs), a.lastVCN - a.startVCN + 1})
			}
		}
		if root, ok := findAttr(file.attrs, attrIndexRoot, "$I30"); ok {
			idx := append([]byte(nil), root.value...)
			idx = append(binary.LittleEndian.AppendUint16(nil, uint16(len(idx))), idx...)
			if pieces := dataPieces(file.attrs, attrIndexAlloc, "$I30"); len(pieces) > 0 {
				st, err := newStream(fs, "seed", pieces, false)
				if err == nil && st.size <= 64<<10 {
					b, _ := st.readAll(64 << 10)
					idx = append(idx, b...)
				}
			}
			s.indexes = append(s.indexes, idx)
		}
		for _, a := range dataPieces(file.attrs, attrData, "") {
			if a.flags&attrFlagCompressed == 0 || len(a.runs) == 0 || a.runs[0].lcn < 0 {
				continue
			}
			st, err := newStream(fs, "seed", []attr{a}, false)
			if err != nil {
				continue
			}
			src := make([]byte, 16*fs.cluster)
			if err := st.readStored(src, 0); err == nil {
				s.units = append(s.units, src)
			}
		}
	}
}

// encodeRuns writes a run list as NTFS does, for seeds.
func encodeRuns(runs []run) []byte {
	var out []byte
	prev := int64(0)
	for _, r := range runs {
		ln := minBytes(r.n, false)
		var ob []byte
		if r.lcn >= 0 {
			d := r.lcn - prev
			prev = r.lcn
			on := minBytes(d, true)
			ob = binary.LittleEndian.AppendUint64(nil, uint64(d))[:on]
		}
		out = append(out, byte(len(ob))<<4|byte(ln))
		out = append(out, binary.LittleEndian.AppendUint64(nil, uint64(r.n))[:ln]...)
		out = append(out, ob...)
	}
	return append(out, 0)
}

func minBytes(v int64, signed bool) int {
	for n := 1; n < 8; n++ {
		lo, hi := int64(0), int64(1)<<(8*n)
		if signed {
			lo, hi = -(int64(1) << (8*n - 1)), int64(1)<<(8*n-1)
		}
		if v >= lo && v < hi {
			return n
		}
	}
	return 8
}

// fuzzFS is a volume of 256 clusters of 4 KiB whose MFT is the volume
// itself, starting with the given bytes as record 0. Only the first
// 64 KiB (or head's clusters) are held: reads past them fail as a
// truncated image does.
func fuzzFS(head []byte, recSize int64) *FS {
	vol := make([]byte, max(64<<10, (len(head)+4095)&^4095))
	copy(vol, head)
	fs := &FS{r: bytes.NewReader(vol), size: 1 << 20, cluster: 4096, clusters: 256, recSize: recSize}
	fs.mft = &stream{fs: fs, what: "$MFT", size: int64(len(vol)), init: int64(len(vol)), runs: []run{{0, 0, int64(len(vol)) / 4096}}, vcns: int64(len(vol)) / 4096, cachedU: -1}
	fs.records = fs.mft.size / recSize
	return fs
}

func wantCorrupt(t *testing.T, err error, allowed ...error) {
	if err == nil || errors.Is(err, fsys.ErrCorrupt) {
		return
	}
	for _, a := range allowed {
		if errors.Is(err, a) {
			return
		}
	}
	t.Fatalf("an error that is not ErrCorrupt: %v", err)
}

// FuzzRecord parses one MFT record, checks the exported view of it
// (checkView), and uses it through the FS: Stat, ReadDir, Open of every
// stream, reads, Readlink.
func FuzzRecord(f *testing.F) {
	s := collectSeeds(f)
	for _, r := range s.records {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < fixupStride || len(data) > 4096 {
			return
		}
		recSize := int64(fixupStride)
		for recSize*2 <= int64(len(data)) {
			recSize *= 2
		}
		rec, err := parseRecord(bytes.Clone(data[:recSize]), 0, 256)
		checkView(t, data[:recSize], 256, rec, err)
		if err != nil {
			wantCorrupt(t, err)
			return
		}
		for _, a := range rec.attrs {
			if a.resident {
				continue
			}
			total := int64(0)
			for _, r := range a.runs {
				if r.lcn >= 0 && (r.lcn+r.n > 256 || r.lcn < 0) {
					t.Fatalf("run %+v outside 256 clusters", r)
				}
				total += r.n
			}
			if total != a.lastVCN-a.startVCN+1 {
				t.Fatalf("runs cover %d clusters of VCNs %d-%d", total, a.startVCN, a.lastVCN)
			}
		}
		fs := fuzzFS(data[:recSize], recSize)
		st, err := fs.Stat(0)
		if err != nil {
			wantCorrupt(t, err, fsys.ErrNotFound, fsys.ErrUnsupported)
			return
		}
		_, err = fs.ReadDir(0)
		wantCorrupt(t, err, fsys.ErrNotDir)
		_, err = fs.Readlink(0)
		wantCorrupt(t, err, fsys.ErrUnsupported)
		for _, name := range append([]string{""}, st.Streams...) {
			file, err := fs.Open(0, name)
			if err != nil {
				wantCorrupt(t, err, fsys.ErrIsDir, fsys.ErrNotFound, fsys.ErrUnsupported)
				continue
			}
			file.Runs()
			buf := make([]byte, 8192)
			for _, off := range []int64{0, file.Size() / 2, file.Size() - 100} {
				if _, err := file.ReadAt(buf, max(off, 0)); err != nil && err != io.EOF {
					wantCorrupt(t, err, io.ErrUnexpectedEOF)
				}
			}
		}
	})
}

// FuzzRunList decodes run lists over a volume of 2^20 clusters.
func FuzzRunList(f *testing.F) {
	s := collectSeeds(f)
	for _, r := range s.runs {
		f.Add(r.list, int64(0), r.vcns-1)
	}
	f.Add([]byte{0x21, 0x10, 0x00, 0x01, 0x01, 0x08, 0x11, 0x04, 0x20, 0}, int64(0), int64(0x1b))
	f.Fuzz(func(t *testing.T, data []byte, start, last int64) {
		if start < 0 || start > maxVCN || last < start-1 || last >= maxVCN {
			return
		}
		const clusters = 1 << 20
		runs, err := decodeRuns(data, start, last, clusters)
		if err != nil {
			wantCorrupt(t, err)
			return
		}
		vcn := start
		for _, r := range runs {
			if r.vcn != vcn || r.n <= 0 || (r.lcn >= 0 && r.lcn+r.n > clusters) || r.lcn < -1 {
				t.Fatalf("run %+v at VCN %d", r, vcn)
			}
			vcn += r.n
		}
		if vcn != last+1 {
			t.Fatalf("runs end at VCN %d, want %d", vcn, last+1)
		}
	})
}

// FuzzLZNT1 decompresses one 64 KiB compression unit.
func FuzzLZNT1(f *testing.F) {
	s := collectSeeds(f)
	for _, u := range s.units {
		f.Add(u)
	}
	f.Add(lznt1Sample)
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := make([]byte, 16*4096)
		if err := lznt1(dst, data); err != nil {
			wantCorrupt(t, err)
		}
	})
}

// lznt1Sample is one compressed chunk, "abc" and a back-reference of 6
// bytes 3 back: "abcabcabc".
var lznt1Sample = []byte{0x05, 0xB0, 0x08, 'a', 'b', 'c', 0x03, 0x20, 0, 0}

// FuzzIndex walks an index: the input is the $INDEX_ROOT value's length
// (2 bytes), the value, then the index allocation's bytes.
func FuzzIndex(f *testing.F) {
	s := collectSeeds(f)
	for _, x := range s.indexes {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		n := int(binary.LittleEndian.Uint16(data))
		if 2+n > len(data) || len(data) > 2+n+256<<10 {
			return
		}
		root := attr{typ: attrIndexRoot, resident: true, value: data[2 : 2+n]}
		fs := fuzzFS(data[2+n:], 1024)
		clusters := int64(len(data)-2-n) / fs.cluster
		var alloc []attr
		if clusters > 0 {
			alloc = []attr{{typ: attrIndexAlloc, lastVCN: clusters - 1, allocSize: clusters * 4096, dataSize: clusters * 4096, initSize: clusters * 4096, runs: []run{{0, 0, clusters}}}}
		}
		entries, err := fs.readIndex("fuzz", root, alloc)
		if err != nil {
			wantCorrupt(t, err)
			return
		}
		if len(entries) > fsys.MaxDirEntries {
			t.Fatalf("%d entries", len(entries))
		}
	})
}

func TestLZNT1Sample(t *testing.T) {
	dst := make([]byte, 8192)
	if err := lznt1(dst, lznt1Sample); err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("abcabcabc"), make([]byte, 8192-9)...); !bytes.Equal(dst, want) {
		t.Fatalf("got %q", dst[:16])
	}
	// A stored chunk: 4096 bytes as they are, after a header without the
	// compressed bit.
	raw := pattern(4096, 13)
	src := append([]byte{0xFF, 0x3F}, raw...)
	clear(dst)
	if err := lznt1(dst, src); err != nil || !bytes.Equal(dst[:4096], raw) || !bytes.Equal(dst[4096:], make([]byte, 4096)) {
		t.Fatalf("stored chunk: %v", err)
	}
}
