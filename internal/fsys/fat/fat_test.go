package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/fstest"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

func openImage(t testing.TB, img string) (*FS, *os.File) {
	t.Helper()
	return fstest.OpenImage(t, img, Open)
}

// ours is one file as the reader shows it.
type ours struct {
	entry fsys.DirEntry
	stat  fsys.Stat
}

func walkAll(t testing.TB, fs *FS) map[string]ours {
	t.Helper()
	got := map[string]ours{}
	err := fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
		st, err := fs.Stat(e.ID)
		if err != nil {
			return err
		}
		if st.ID != e.ID || st.Type != e.Type || st.Addr != fmt.Sprint(uint64(e.ID)) {
			return fmt.Errorf("%s: entry %+v, stat %+v", p, e, st)
		}
		if _, dup := got[p]; dup {
			return fmt.Errorf("%s listed twice", p)
		}
		got[p] = ours{e, st}
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	return got
}

func readAll(t testing.TB, fs *FS, id fsys.ID) ([]byte, fsys.File) {
	t.Helper()
	f, err := fs.Open(id, "")
	if err != nil {
		t.Fatalf("Open(%d): %v", id, err)
	}
	b := make([]byte, f.Size())
	if n, err := f.ReadAt(b, 0); n != len(b) || (err != nil && err != io.EOF) {
		t.Fatalf("file %d: read %d of %d bytes: %v", id, n, len(b), err)
	}
	// One byte past the end reads nothing, with io.EOF.
	if n, err := f.ReadAt(make([]byte, 1), f.Size()); n != 0 || err != io.EOF {
		t.Fatalf("file %d: read at its size: %d, %v", id, n, err)
	}
	return b, f
}

// tskFile is one line of Sleuth Kit's fls -r -p and fls -r -m.
type tskFile struct {
	typ  string // "r/r", "d/d"
	id   uint64
	body []string // the fls -m fields
}

// sleuthkit lists an image's allocated files as fls shows them, without
// what fls adds to a FAT listing that is not a file: its virtual files
// ($MBR, $FAT1, $FAT2, $OrphanFiles), the volume label entry and the
// exFAT allocation bitmap and up-case table entries.
func sleuthkit(t testing.TB, img string) map[string]tskFile {
	t.Helper()
	testenv.RequireTool(t, "fls", "icat")
	skip := func(p string) bool {
		return strings.HasSuffix(p, "(Volume Label Entry)") || p == "$ALLOC_BITMAP" || p == "$UPCASE_TABLE" ||
			p == "$MBR" || p == "$FAT1" || p == "$FAT2" || strings.HasPrefix(p, "$OrphanFiles")
	}
	out := map[string]tskFile{}
	for _, line := range strings.Split(strings.TrimSpace(string(run(t, "fls", "-r", "-p", img))), "\n") {
		meta, p, ok := strings.Cut(line, ":\t")
		if !ok {
			t.Fatalf("fls line %q", line)
		}
		fields := strings.Fields(meta)
		if len(fields) != 2 || skip(p) { // deleted entries carry a third field, "*"
			continue
		}
		id, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			t.Fatalf("fls line %q: %v", line, err)
		}
		out["/"+p] = tskFile{typ: fields[0], id: id}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(run(t, "fls", "-r", "-m", "/", img))), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 11 {
			t.Fatalf("fls -m line %q", line)
		}
		if e, ok := out[f[1]]; ok && fmt.Sprint(e.id) == f[2] {
			e.body = f
			out[f[1]] = e
		}
	}
	return out
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func modeString(st fsys.Stat) string {
	s := "r/r"
	if st.Type == fsys.TypeDir {
		s = "d/d"
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if st.Mode&(1<<(8-i)) != 0 {
			s += string(rwx[i])
		} else {
			s += "-"
		}
	}
	return s
}

// crossCheck compares everything the reader shows of img with what
// Sleuth Kit shows and with the files the test wrote: the same paths,
// addresses and types as fls -r -p; the sizes, modes and times of
// fls -r -m; the bytes of icat and of the files written; and the runs,
// which read from the image give the same bytes again.
func crossCheck(t *testing.T, img string, want tree) {
	fs, raw := openImage(t, img)
	got := walkAll(t, fs)
	tsk := sleuthkit(t, img)
	if len(got) != len(tsk) {
		t.Errorf("%d files, fls lists %d", len(got), len(tsk))
	}
	// Every address read afresh, not through a listing (exFAT entry sets
	// that cross into the next cluster among them), says the same.
	fresh, _ := openImage(t, img)
	for p, o := range got {
		st, err := fresh.Stat(o.entry.ID)
		if err != nil || fmt.Sprint(st) != fmt.Sprint(o.stat) {
			t.Errorf("%s: Stat after a listing %+v, afresh %+v, %v", p, o.stat, st, err)
		}
	}
	readOnly := 0
	for p, k := range tsk {
		o, ok := got[p]
		if !ok {
			t.Errorf("%s (%s %d in fls): missing", p, k.typ, k.id)
			continue
		}
		if uint64(o.entry.ID) != k.id || modeString(o.stat)[:3] != k.typ {
			t.Errorf("%s: %d %s, fls says %d %s", p, o.entry.ID, modeString(o.stat)[:3], k.id, k.typ)
		}
		if k.body == nil {
			t.Errorf("%s: not in fls -m", p)
			continue
		}
		b := k.body
		mode := modeString(o.stat)
		n := fs.nodes[o.entry.ID]
		if n.attr&attrReadOnly != 0 {
			// Sleuth Kit 4.11 drops the read bits of a read-only file
			// ("r/r-wx-wx-wx"); the reader drops the write bits.
			readOnly++
			if want := mode[:3] + "-wx-wx-wx"; b[3] != want {
				t.Errorf("%s: fls mode %s, want %s for a read-only file", p, b[3], want)
			}
			if mode[3:] != "r-xr-xr-x" {
				t.Errorf("%s: read-only mode %s", p, mode)
			}
		} else if b[3] != mode {
			t.Errorf("%s: mode %s, fls %s", p, mode, b[3])
		}
		// Sleuth Kit 4.11 leaves out exFAT's 10 ms increments, which
		// can add a second; the test reads them from the image.
		var crCarry, mCarry int64
		tskSize := b[6]
		if fs.g.kind == exfat {
			off, err := fs.offsetOf(o.entry.ID)
			if err != nil {
				t.Fatal(err)
			}
			e := make([]byte, entrySize)
			if _, err := raw.ReadAt(e, off); err != nil {
				t.Fatal(err)
			}
			crCarry, mCarry = int64(e[20]/100), int64(e[21]/100)
			// Sleuth Kit 4.11 reads an entry set that crosses into the
			// next cluster of its directory from the next cluster on disk,
			// not the one the FAT names: then its size is another entry's.
			// The size the test wrote is the authority there.
			inCluster := (off - fs.g.heapOffset) % fs.g.clusterSize
			if content, wrote := want[p]; wrote && inCluster+int64(e[1]+1)*entrySize > fs.g.clusterSize &&
				b[6] != fmt.Sprint(o.stat.Size) && o.stat.Size == int64(len(content)) {
				t.Logf("%s: entry set crosses a cluster boundary; fls reads size %s there, the file written has %d bytes", p, b[6], len(content))
				tskSize = fmt.Sprint(o.stat.Size)
			}
		}
		tskTimes := func(i int, carry int64) string {
			v, _ := strconv.ParseInt(b[i], 10, 64)
			return fmt.Sprint(v + carry)
		}
		wantBody := []string{tskSize, b[7], tskTimes(8, mCarry), b[9], tskTimes(10, crCarry)}
		gotBody := []string{fmt.Sprint(o.stat.Size), fmt.Sprint(unix(o.stat.Atime)), fmt.Sprint(unix(o.stat.Mtime)), fmt.Sprint(unix(o.stat.Ctime)), fmt.Sprint(unix(o.stat.Crtime))}
		if fmt.Sprint(gotBody) != fmt.Sprint(wantBody) {
			t.Errorf("%s: size|atime|mtime|ctime|crtime %v, fls -m %v", p, gotBody, wantBody)
		}
		if o.stat.UID != 0 || o.stat.GID != 0 || b[4] != "0" || b[5] != "0" {
			t.Errorf("%s: uid/gid %d/%d, fls %s/%s", p, o.stat.UID, o.stat.GID, b[4], b[5])
		}
	}
	if readOnly == 0 && fs.g.kind != exfat {
		t.Errorf("no read-only file checked")
	}
	files := 0
	for p, b := range want {
		o, ok := got[p]
		if !ok {
			t.Errorf("%s: written, not found", p)
			continue
		}
		data, f := readAll(t, fs, o.entry.ID)
		if !bytes.Equal(data, b) {
			t.Errorf("%s: %d bytes differ from the %d written", p, len(data), len(b))
		}
		// icat every file but most of the 600 in /many (one process each).
		if !strings.HasPrefix(p, "/many/") || strings.Contains(p, " 000 ") || strings.Contains(p, " 599 ") {
			if ic := run(t, "icat", img, fmt.Sprint(uint64(o.entry.ID))); !bytes.Equal(ic, data) {
				t.Errorf("%s: %d bytes, icat gives %d different ones", p, len(data), len(ic))
			}
		}
		var fromRuns []byte
		var next int64
		for _, r := range f.Runs() {
			if r.Logical != next || r.Length <= 0 {
				t.Fatalf("%s: runs %v out of order", p, f.Runs())
			}
			next += r.Length
			chunk := make([]byte, r.Length)
			if !r.Sparse() {
				if _, err := raw.ReadAt(chunk, r.Physical); err != nil {
					t.Fatal(err)
				}
			}
			fromRuns = append(fromRuns, chunk...)
		}
		if !bytes.Equal(fromRuns, b) {
			t.Errorf("%s: the runs %v read %d bytes that differ", p, f.Runs(), len(fromRuns))
		}
		files++
	}
	t.Logf("%s: %d files and directories match fls; %d files read", fs.Variant(), len(tsk), files)
}

func TestFATVolumes(t *testing.T) {
	for _, c := range []struct {
		name, kind string
		sizeMiB    int
		big, many  int
		args       []string
	}{
		{"FAT12", "FAT12", 4, 300 << 10, 600, []string{"-F", "12"}},
		// mtools writes 4 KiB sectors slowly: no 600-entry directory.
		{"FAT12 4K sectors", "FAT12", 32, 300 << 10, 0, []string{"-F", "12", "-S", "4096"}},
		{"FAT16", "FAT16", 32, 3 << 20, 600, []string{"-F", "16"}},
		{"FAT32", "FAT32", 64, 5 << 20, 600, []string{"-F", "32", "-S", "512", "-s", "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, files := fatImage(t, c.sizeMiB, sampleTree(c.big, c.many), c.args...)
			fs, _ := openImage(t, img)
			if fs.Variant() != c.kind || fs.Type() != "vfat" {
				t.Fatalf("variant %s, type %s; want %s, vfat", fs.Variant(), fs.Type(), c.kind)
			}
			crossCheck(t, img, files)

			// /frag.bin was written into the gaps of deleted files.
			id, err := fsys.Lookup(fs, "/frag.bin")
			if err != nil {
				t.Fatal(err)
			}
			f, err := fs.Open(id, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Runs()) < 2 {
				t.Errorf("/frag.bin in %d run(s), want a fragmented file: %v", len(f.Runs()), f.Runs())
			}
			if c.many == 0 {
				return
			}
			// The 600-entry directory spans clusters.
			id, err = fsys.Lookup(fs, "/MANY")
			if err != nil {
				t.Fatal(err)
			}
			entries, err := fs.ReadDir(id)
			if err != nil || len(entries) != 600 {
				t.Fatalf("/many: %d entries, %v", len(entries), err)
			}
			st, _ := fs.Stat(id)
			if st.Size <= fs.g.clusterSize {
				t.Errorf("/many: %d bytes, not more than a cluster of %d", st.Size, fs.g.clusterSize)
			}
		})
	}
}

func TestFATNames(t *testing.T) {
	img, _ := fatImage(t, 4, sampleTree(1000, 0), "-F", "12")
	fs, _ := openImage(t, img)
	entries, err := fs.ReadDir(fs.Root())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	// mtools stores "lower.txt" and "UPPER.TXT" as bare 8.3 entries
	// (lower case through the NT case flags) and the others with long
	// names; the label entry is not listed.
	want := "[A long name with ünïcode ✓.txt Sub UPPER.TXT empty frag frag.bin hello.txt lower.txt ro.txt]"
	if got := fmt.Sprint(sortedCopy(names)); got != want {
		t.Errorf("root: %s\nwant %s", got, want)
	}
	// Lookup folds case, as Windows does.
	if _, err := fsys.Lookup(fs, "/SUB/DEEP/DEEPER.BIN"); err != nil {
		t.Error(err)
	}
	if _, err := fsys.Lookup(fs, "/nope"); !errors.Is(err, fsys.ErrNotFound) {
		t.Errorf("lookup of a missing name: %v", err)
	}
	id, _ := fsys.Lookup(fs, "/hello.txt")
	if _, err := fs.ReadDir(id); !errors.Is(err, fsys.ErrNotDir) {
		t.Errorf("ReadDir of a file: %v", err)
	}
	if _, err := fs.Open(fs.Root(), ""); !errors.Is(err, fsys.ErrIsDir) {
		t.Errorf("Open of the root: %v", err)
	}
	if _, err := fs.Open(id, "ads"); !errors.Is(err, fsys.ErrNotFound) {
		t.Errorf("Open of a named stream: %v", err)
	}
	if _, err := fs.Readlink(id); !errors.Is(err, fsys.ErrUnsupported) {
		t.Errorf("Readlink: %v", err)
	}
	// An address read afresh (not through a listing) says the same.
	fresh, _ := openImage(t, img)
	a, _ := fs.Stat(id)
	b, err := fresh.Stat(id)
	if err != nil || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("Stat after a listing %+v, fresh %+v, %v", a, b, err)
	}
	if _, err := fresh.Stat(1); !errors.Is(err, fsys.ErrNotFound) {
		t.Errorf("Stat(1): %v", err)
	}
	if _, err := fresh.Stat(1 << 40); !errors.Is(err, fsys.ErrNotFound) {
		t.Errorf("Stat(1<<40): %v", err)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestDOSTime(t *testing.T) {
	for _, c := range []struct {
		date, tm uint16
		centis   uint8
		want     string
	}{
		{0x5d85, 0x6536, 0, "2026-12-05T12:41:44Z"},
		{0x5d85, 0x6536, 150, "2026-12-05T12:41:45.5Z"},
		{0x0021, 0, 0, "1980-01-01T00:00:00Z"},
		{0, 0, 0, "0001-01-01T00:00:00Z"},                  // no date
		{0x5d80, 0, 0, "0001-01-01T00:00:00Z"},             // day 0
		{0x5c00 | 13<<5 | 5, 0, 0, "0001-01-01T00:00:00Z"}, // month 13
		{0x5d85, 24 << 11, 0, "0001-01-01T00:00:00Z"},      // hour 24
		{0x5c5e, 0, 0, "0001-01-01T00:00:00Z"},             // February 30
	} {
		if got := dosTime(c.date, c.tm, c.centis, time.UTC).Format(time.RFC3339Nano); got != c.want {
			t.Errorf("dosTime(%#x, %#x, %d) = %s, want %s", c.date, c.tm, c.centis, got, c.want)
		}
	}
	// exFAT: 10 ms units and a UTC offset of -5:00 (-20 quarters).
	ts := uint32(0x5d85)<<16 | 0x6536
	if got := exfatTime(ts, 123, 0x80|uint8(-20&0x7F)).Format(time.RFC3339Nano); got != "2026-12-05T17:41:45.23Z" {
		t.Errorf("exfatTime at -5:00 = %s", got)
	}
	if got := exfatTime(ts, 0, 0x80|36).Format(time.RFC3339Nano); got != "2026-12-05T03:41:44Z" {
		t.Errorf("exfatTime at +9:00 = %s", got)
	}
	if got := exfatTime(ts, 0, 36).Format(time.RFC3339Nano); got != "2026-12-05T12:41:44Z" {
		t.Errorf("exfatTime with an offset not marked valid = %s", got)
	}
}

// TestLFNChecksum damages the short name under a long name: the long
// name's checksum no longer matches, so the short name is listed.
func TestLFNChecksum(t *testing.T) {
	img, _ := fatImage(t, 4, sampleTree(1000, 0), "-F", "12")
	fs, _ := openImage(t, img)
	id, err := fsys.Lookup(fs, "/Sub/a name that needs 3 entries")
	if err != nil {
		t.Fatal(err)
	}
	off, _ := fs.offsetOf(id)
	w, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	short := make([]byte, 11)
	w.ReadAt(short, off)
	short[0] = 'Z'
	if _, err := w.WriteAt(short[:1], off); err != nil {
		t.Fatal(err)
	}
	w.Close()
	fs, _ = openImage(t, img)
	sub, _ := fsys.Lookup(fs, "/Sub")
	entries, err := fs.ReadDir(sub)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
		if e.ID == id && e.Name != shortName(append(short, 0, 0)[:13]) {
			t.Errorf("entry %d: name %q, want the short name %q", id, e.Name, shortName(append(short, 0, 0)[:13]))
		}
	}
	if fmt.Sprint(names) != "[Deep "+shortName(append(short, 0, 0)[:13])+" big.bin]" {
		t.Errorf("/Sub: %q", names)
	}
}

// BenchmarkFAT32 walks the FAT32 sample volume and reads every file.
func BenchmarkFAT32(b *testing.B) {
	img, _ := fatImage(b, 64, sampleTree(5<<20, 600), "-F", "32", "-S", "512", "-s", "1")
	raw, err := os.ReadFile(img)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var bytesRead int64
	for b.Loop() {
		fs, err := Open(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			b.Fatal(err)
		}
		bytesRead = 0
		err = fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
			if e.Type != fsys.TypeRegular {
				return nil
			}
			f, err := fs.Open(e.ID, "")
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, f.Size()))
			bytesRead += n
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(bytesRead)
}

func TestOpenRejects(t *testing.T) {
	zeros := make([]byte, 1<<20)
	if _, err := Open(bytes.NewReader(zeros), int64(len(zeros))); !errors.Is(err, fsys.ErrCorrupt) {
		t.Errorf("zeros: %v", err)
	}
	if _, err := Open(bytes.NewReader(zeros[:100]), 100); !errors.Is(err, fsys.ErrCorrupt) {
		t.Errorf("100 bytes: %v", err)
	}
	img, _ := fatImage(t, 4, tree{"/a": []byte("a")}, "-F", "12")
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// The volume cut before the end of its FAT.
	if _, err := Open(bytes.NewReader(raw), 1024); !errors.Is(err, fsys.ErrCorrupt) {
		t.Errorf("a volume cut short: %v", err)
	}
}

// TestConcurrent walks and reads one volume from several goroutines
// (run with -race).
func TestConcurrent(t *testing.T) {
	img, files := fatImage(t, 4, sampleTree(100<<10, 0), "-F", "12")
	fs, _ := openImage(t, img)
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			errs <- fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
				if e.Type != fsys.TypeRegular {
					return nil
				}
				f, err := fs.Open(e.ID, "")
				if err != nil {
					return err
				}
				b := make([]byte, f.Size())
				if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
					return err
				}
				if want, ok := files[p]; ok && !bytes.Equal(b, want) {
					return fmt.Errorf("%s: bytes differ", p)
				}
				return nil
			})
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestLFNParts feeds long-name entries in orders a damaged directory can
// hold them: only a complete sequence with the right checksum names the
// short entry.
func TestLFNParts(t *testing.T) {
	short := []byte("HELLO   TXT\x00\x00")
	part := func(ord byte, sum byte, text string) []byte {
		b := make([]byte, entrySize)
		b[0], b[11], b[13] = ord, attrLFN, sum
		u := append(utf16.Encode([]rune(text)), 0)
		for len(u) < 13 {
			u = append(u, 0xFFFF)
		}
		for i, at := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
			binary.LittleEndian.PutUint16(b[at:], u[i])
		}
		return b
	}
	sum := shortSum(short)
	for _, c := range []struct {
		name  string
		parts [][]byte
		want  string
	}{
		{"complete", [][]byte{part(0x42, sum, "ghijklm"), part(1, sum, "abcdefghijklm"[:13]+"")}, "abcdefghijklmghijklm"},
		{"one part", [][]byte{part(0x41, sum, "hi there.txt")}, "hi there.txt"},
		{"wrong checksum", [][]byte{part(0x41, sum+1, "hi there.txt")}, "HELLO.TXT"},
		{"missing part", [][]byte{part(0x42, sum, "x")}, "HELLO.TXT"},
		{"part after the last", [][]byte{part(0x41, sum, "a"), part(0, sum, "b")}, "HELLO.TXT"},
		{"out of order", [][]byte{part(0x43, sum, "c"), part(1, sum, "a"), part(2, sum, "b")}, "HELLO.TXT"},
		{"ordinal 0", [][]byte{part(0x40, sum, "a")}, "HELLO.TXT"},
		{"restarted", [][]byte{part(0x42, sum, "zz"), part(0x41, sum, "ok")}, "ok"},
	} {
		var l lfn
		for _, p := range c.parts {
			l.add(p)
		}
		got, ok := l.name(short)
		if !ok {
			got = shortName(short)
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
