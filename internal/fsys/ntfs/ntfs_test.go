package ntfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/fstest"
)

func openImage(t testing.TB, img string) (*FS, *os.File) {
	t.Helper()
	return fstest.OpenImage(t, img, Open)
}

func readAll(t testing.TB, f fsys.File) []byte {
	t.Helper()
	b := make([]byte, f.Size())
	n, err := f.ReadAt(b, 0)
	if n != len(b) || (err != nil && !errors.Is(err, io.EOF)) {
		t.Fatalf("reading %d bytes: %d, %v", len(b), n, err)
	}
	// A read that reaches the end says io.EOF.
	if f.Size() > 0 {
		if n, err := f.ReadAt(make([]byte, 2), f.Size()-1); n != 1 || err != io.EOF {
			t.Fatalf("read across the end: %d, %v", n, err)
		}
	}
	return b
}

// fromRuns reassembles a stream from its runs, holes as zeros.
func fromRuns(t testing.TB, vol *os.File, f fsys.File) []byte {
	t.Helper()
	b := make([]byte, f.Size())
	next := int64(0)
	for _, r := range f.Runs() {
		if r.Logical != next || r.Length <= 0 || r.Logical+r.Length > f.Size() {
			t.Fatalf("runs %+v: run %+v after %d", f.Runs(), r, next)
		}
		if !r.Sparse() {
			if _, err := vol.ReadAt(b[r.Logical:r.Logical+r.Length], r.Physical); err != nil {
				t.Fatal(err)
			}
		}
		next += r.Length
	}
	if next != f.Size() && !f.Resident() {
		t.Fatalf("runs end at %d of %d", next, f.Size())
	}
	return b
}

type walked struct {
	entry fsys.DirEntry
	stat  fsys.Stat
}

func walk(t testing.TB, fs *FS) map[string]walked {
	t.Helper()
	out := map[string]walked{}
	err := fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
		st, err := fs.Stat(e.ID)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if st.Type != e.Type {
			t.Errorf("%s: directory entry says %s, the record %s", p, e.Type, st.Type)
		}
		out[p] = walked{e, st}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	flsLine  = regexp.MustCompile(`^(\S)/(\S) (\d+-\d+-\d+|\d+):\t(.*)$`)
	tskZero  = int64(3373865674) // what fls -m prints for an NTFS time of 0
	addrType = regexp.MustCompile(`^\d+-(\d+)-\d+$`)
)

// flsEntries returns fls -r -p's allocated names: path → address.
func flsEntries(t testing.TB, img string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(tool(t, "fls", "-r", "-p", img)), "\n") {
		m := flsLine.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(m[4], "$OrphanFiles") {
			continue
		}
		out["/"+m[4]] = m[3]
	}
	return out
}

// splitStream splits "/dir/name:stream".
func splitStream(p string) (string, string) {
	if i := strings.LastIndex(p, ":"); i > strings.LastIndex(p, "/") {
		return p[:i], p[i+1:]
	}
	return p, ""
}

func modeString(m uint32) string {
	const rwx = "rwxrwxrwx"
	b := []byte("---------")
	for i := range b {
		if m&(1<<(8-i)) != 0 {
			b[i] = rwx[i]
		}
	}
	return string(b)
}

func TestMatchesSleuthKit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sizeMiB int64
		cluster int
		entries int
		icatAll bool // icat every stream but those sampled; else metafiles and the sample
	}{
		{"4k-clusters", 64, 4096, 1000, true},
		{"512-byte-clusters", 32, 512, 300, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // most of the time is spent waiting for ntfs-3g and icat
			im := buildImage(t, tc.sizeMiB, tc.cluster, tc.entries)
			checkImage(t, im, tc.entries, tc.icatAll)
		})
	}
}

// checkNamesAndBytes compares the walk with fls -r -p and every stream's
// bytes with icat's and with what the test wrote.
func checkNamesAndBytes(t *testing.T, im *image, icatAll bool) (*FS, map[string]walked) {
	fs, vol := openImage(t, im.path)
	if fs.ClusterSize() != int64(im.cluster) || fs.Type() != "ntfs" || fs.Root() != 5 {
		t.Fatalf("cluster %d, type %s, root %d", fs.ClusterSize(), fs.Type(), fs.Root())
	}
	ours := walk(t, fs)
	fls := flsEntries(t, im.path)

	// Names and addresses: everything fls lists is found at its address.
	for p, addr := range fls {
		base, stream := splitStream(p)
		w, ok := ours[base]
		if !ok {
			t.Errorf("fls lists %s (%s); the walk did not find %s", p, addr, base)
			continue
		}
		switch m := addrType.FindStringSubmatch(addr); {
		case stream == "" && w.stat.Addr != addr:
			t.Errorf("%s: address %s, fls says %s", p, w.stat.Addr, addr)
		case stream != "" && m != nil && m[1] == "128":
			if !contains(w.stat.Streams, stream) {
				t.Errorf("%s: streams %q lack %q", base, w.stat.Streams, stream)
			}
		}
	}
	for p, w := range ours {
		_, listed := fls[p]
		if !listed && strings.Contains(w.stat.Addr, "-") {
			t.Errorf("%s (%s) found by the walk, not by fls", p, w.stat.Addr)
		}
		for _, s := range w.stat.Streams {
			if _, ok := fls[p+":"+s]; !ok {
				t.Errorf("%s: stream %s not listed by fls", p, s)
			}
		}
	}

	// Bytes: every stream equals icat's bytes and what the test wrote.
	icats := 0
	for p, addr := range fls {
		base, stream := splitStream(p)
		w, ok := ours[base]
		m := addrType.FindStringSubmatch(addr)
		if !ok || m == nil || m[1] != "128" || w.stat.Type == fsys.TypeSymlink {
			continue
		}
		f, err := fs.Open(w.entry.ID, stream)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if a := f.(interface{ Addr() string }).Addr(); a != addr {
			t.Errorf("%s: stream address %s, fls says %s", p, a, addr)
		}
		got := readAll(t, f)
		if want, ok := im.files[p]; ok && !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from the %d written", p, len(got), len(want))
		}
		if p == "/$BadClus:$Bad" {
			// icat prints nothing for this all-sparse stream the size of the volume.
			if int64(len(got)) != fs.clusters*fs.cluster || !bytes.Equal(got, make([]byte, len(got))) {
				t.Errorf("%s: %d bytes, not %d zeros", p, len(got), fs.clusters*fs.cluster)
			}
		} else if sampled(p) && (icatAll || strings.HasPrefix(p, "/$")) || w.entry.ID%97 == 0 {
			icats++
			if want := tool(t, "icat", im.path, addr); !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes differ from icat %s's %d", p, len(got), addr, len(want))
			}
		}
		if !f.Resident() && !compressed(fs, w.entry.ID, stream) && !bytes.Equal(fromRuns(t, vol, f), got) {
			t.Errorf("%s: the bytes its runs place differ from its bytes", p)
		}
	}
	for p := range im.files {
		base, _ := splitStream(p)
		if _, ok := ours[base]; !ok {
			t.Errorf("%s written, not found", p)
		}
	}
	t.Logf("%d names, %d streams compared with icat", len(ours), icats)

	return fs, ours
}

func checkImage(t *testing.T, im *image, entries int, icatAll bool) {
	fs, ours := checkNamesAndBytes(t, im, icatAll)
	if len(ours) < entries+20 {
		t.Errorf("the walk found %d names", len(ours))
	}
	checkBodyfile(t, im, fs, ours)
	checkSpecial(t, im, fs, ours, entries)
}

// sampled reports whether icat checks a path: the files of the big
// directories and the named streams of /streams are checked against what
// the test wrote, and icat reads one in 97 of them (icat takes a tenth of
// a second on a loaded machine).
func sampled(p string) bool {
	for _, pre := range []string{"/many/", "/holes/", "/streams:"} {
		if strings.HasPrefix(p, pre) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// compressed reports whether a stream is LZNT1-compressed.
func compressed(fs *FS, id fsys.ID, name string) bool {
	f, err := fs.Open(id, name)
	return err == nil && f.(*stream).unit != 0
}

// checkBodyfile compares Stat with fls -m: addresses, modes, sizes and
// the four times.
func checkBodyfile(t *testing.T, im *image, fs *FS, ours map[string]walked) {
	lines := 0
	for _, line := range strings.Split(string(tool(t, "fls", "-r", "-m", "/", im.path)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 11 || strings.HasSuffix(f[1], " ($FILE_NAME)") || strings.HasSuffix(f[1], " (deleted)") || strings.HasPrefix(f[1], "/$OrphanFiles") {
			continue
		}
		base, stream := splitStream(f[1])
		w, ok := ours[base]
		if !ok {
			t.Errorf("fls -m lists %s; the walk did not find it", f[1])
			continue
		}
		lines++
		st := w.stat
		size := st.Size
		if stream != "" {
			if addrType.FindStringSubmatch(f[2])[1] != "128" {
				continue
			}
			s, err := fs.Open(st.ID, stream)
			if err != nil {
				t.Errorf("%s: %v", f[1], err)
				continue
			}
			size = s.Size()
		} else if f[2] != st.Addr {
			t.Errorf("%s: address %s, fls -m says %s", f[1], st.Addr, f[2])
		}
		if st.Type != fsys.TypeSymlink && strconv.FormatInt(size, 10) != f[6] {
			t.Errorf("%s: size %d, fls -m says %s", f[1], size, f[6])
		}
		if got := modeString(st.Mode); !strings.HasSuffix(f[3], got) {
			t.Errorf("%s: mode %s, fls -m says %s", f[1], got, f[3])
		}
		for i, tm := range []int64{st.Atime.Unix(), st.Mtime.Unix(), st.Ctime.Unix(), st.Crtime.Unix()} {
			want, _ := strconv.ParseInt(f[7+i], 10, 64)
			if (tm != want && !(want == tskZero && tm < 0)) || tm == 0 {
				t.Errorf("%s: time %d is %d, fls -m says %d", f[1], i, tm, want)
			}
		}
	}
	if lines < len(ours) {
		t.Errorf("fls -m gave %d lines for %d names", lines, len(ours))
	}
}

// checkSpecial checks what each kind of file must show.
func checkSpecial(t *testing.T, im *image, fs *FS, ours map[string]walked, entries int) {
	for p, target := range im.links {
		w := ours[p]
		got, err := fs.Readlink(w.entry.ID)
		if err != nil || got != target || w.stat.Type != fsys.TypeSymlink || w.stat.Size != int64(len(target)) {
			t.Errorf("%s: %s -> %q (%v), size %d; want a symlink to %q", p, w.stat.Type, got, err, w.stat.Size, target)
		}
		if _, err := fs.ReadDir(w.entry.ID); !errors.Is(err, fsys.ErrNotDir) {
			t.Errorf("%s: ReadDir of a link: %v", p, err)
		}
	}
	if _, err := fs.Readlink(ours["/small.txt"].entry.ID); !errors.Is(err, fsys.ErrUnsupported) {
		t.Errorf("Readlink of a file: %v", err)
	}
	if w := ours["/interix"]; w.stat.Type != fsys.TypeRegular {
		t.Errorf("an Interix symbolic link is %s; Windows and Sleuth Kit read a file", w.stat.Type)
	}
	for _, pair := range im.hard {
		a, b := ours[pair[0]], ours[pair[1]]
		if a.entry.ID != b.entry.ID || a.stat.Nlink != 2 {
			t.Errorf("hard links %v: records %d and %d, %d links", pair, a.entry.ID, b.entry.ID, a.stat.Nlink)
		}
	}
	if _, ok := ours["/LONGFI~1.TXT"]; ok || ours["/Long File Name.txt"].entry.ID == 0 {
		t.Errorf("the DOS name is listed, or the long name is not")
	}
	if w := ours["/big.bin"]; !contains(w.stat.Streams, "bigads") || w.stat.Size != 300000 || w.stat.Mode != 0o777 {
		t.Errorf("/big.bin: %+v", w.stat)
	}
	many, err := fs.ReadDir(ours["/many"].entry.ID)
	if err != nil || len(many) != entries {
		t.Fatalf("/many: %d entries, %v", len(many), err)
	}
	for i, e := range many {
		if want := fmt.Sprintf("entry-%04d.txt", i); e.Name != want || e.Type != fsys.TypeRegular {
			t.Fatalf("/many entry %d: %+v, want %s in collation order", i, e, want)
		}
	}
	if _, err := fs.Open(ours["/many"].entry.ID, ""); !errors.Is(err, fsys.ErrIsDir) {
		t.Errorf("Open of a directory: %v", err)
	}
	if _, err := fs.ReadDir(ours["/small.txt"].entry.ID); !errors.Is(err, fsys.ErrNotDir) {
		t.Errorf("ReadDir of a file: %v", err)
	}
	if _, err := fs.Open(ours["/small.txt"].entry.ID, "nosuch"); !errors.Is(err, fsys.ErrNotFound) {
		t.Errorf("Open of a missing stream: %v", err)
	}
	if _, err := fs.Stat(fsys.ID(fs.Records() + 10)); !errors.Is(err, fsys.ErrNotFound) {
		t.Errorf("Stat past the MFT: %v", err)
	}

	// Structures the image must hold for the test to mean anything.
	f := mustLoad(t, fs, "/many", ours)
	if len(dataPieces(f.attrs, attrIndexAlloc, "$I30")) == 0 {
		t.Errorf("/many has no $INDEX_ALLOCATION")
	}
	f = mustLoad(t, fs, "/streams", ours)
	if _, ok := findAttr(f.rec.attrs, attrAttrList, ""); !ok || len(ours["/streams"].stat.Streams) != 60 {
		t.Errorf("/streams: attribute list %t, %d streams", ok, len(ours["/streams"].stat.Streams))
	}
	f = mustLoad(t, fs, "/fragmented", ours)
	if n := len(dataPieces(f.attrs, attrData, "")); n < 2 {
		t.Errorf("/fragmented: $DATA in %d pieces; the test wants it split over extension records", n)
	}
	for _, p := range []string{"/$MFT", "/$MFTMirr", "/$LogFile", "/$Secure", "/$Extend/$UsnJrnl", "/$Boot"} {
		id, err := fsys.Lookup(fs, p)
		if err != nil || id != ours[p].entry.ID {
			t.Errorf("Lookup(%s): %d, %v", p, id, err)
		}
	}
	if id, err := fsys.Lookup(fs, "/$extend/$usnjrnl"); err != nil || id != ours["/$Extend/$UsnJrnl"].entry.ID {
		t.Errorf("case-insensitive lookup: %d, %v", id, err)
	}
	holes := func(p, stream string) bool {
		f, err := fs.Open(ours[p].entry.ID, stream)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range f.Runs() {
			if r.Sparse() {
				return true
			}
		}
		return false
	}
	if !holes("/sparse", "") || !holes("/$Extend/$UsnJrnl", "$J") {
		t.Errorf("/sparse or $UsnJrnl:$J has no hole in its runs")
	}
	if im.cluster <= 4096 {
		text, _ := fs.Open(ours["/comp/text.txt"].entry.ID, "")
		stored := int64(0)
		for _, r := range text.Runs() {
			stored += r.Length
		}
		if !compressed(fs, ours["/comp/text.txt"].entry.ID, "") || stored*4 > text.Size() {
			t.Errorf("/comp/text.txt: %d bytes stored for %d", stored, text.Size())
		}
	}
}

func mustLoad(t *testing.T, fs *FS, p string, ours map[string]walked) *file {
	t.Helper()
	f, err := fs.load(ours[p].entry.ID)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return f
}
