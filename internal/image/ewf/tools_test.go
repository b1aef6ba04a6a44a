package ewf

import (
	"bytes"
	"compress/zlib"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// Tests that libewf (ewf-tools) and the Sleuth Kit accept what the Writer
// produces.

type testMedia struct {
	name string
	data []byte
}

func allMedia(t *testing.T) []testMedia {
	return []testMedia{
		{"disk", buildDisk(t).data},
		{"random", randomMedia(3<<20+5*512, 1)},
		{"sparse", sparseMedia(5<<20 + 512)},
	}
}

func TestLibewfAcceptsImages(t *testing.T) {
	tools := testenv.RequireTool(t, "ewfverify", "ewfexport", "ewfinfo")
	for _, m := range allMedia(t) {
		for _, level := range []Level{LevelNone, LevelFast, LevelBest} {
			for _, seg := range []int64{0, MinSegmentSize} {
				t.Run(fmt.Sprintf("%s/%s/seg%d", m.name, level, seg), func(t *testing.T) {
					dir := t.TempDir()
					res := writeImage(t, dir, "img", m.data, Options{Level: level, SegmentSize: seg, Workers: 3, Meta: testMeta})
					if seg == 0 && len(res.Segments) != 1 {
						t.Fatalf("%d segments, want 1", len(res.Segments))
					}
					for i, s := range res.Segments {
						st, err := os.Stat(s)
						if err != nil {
							t.Fatal(err)
						}
						if seg != 0 && st.Size() > seg {
							t.Errorf("segment %s is %d bytes, more than %d", s, st.Size(), seg)
						}
						if st.Mode().Perm() != 0o600 {
							t.Errorf("segment %s has mode %v, want 0600", s, st.Mode().Perm())
						}
						if want, _ := SegmentName(filepath.Join(dir, "img"), i+1); s != want {
							t.Errorf("segment %d is %s, want %s", i+1, s, want)
						}
					}
					if seg != 0 && m.name == "random" && len(res.Segments) < 3 {
						t.Errorf("random media in 1 MiB segments: %d segments, want at least 3", len(res.Segments))
					}
					assertNoTemps(t, dir)
					ewfverify(t, tools[0], res.Segments[0], m.data)
					ewfexportMatches(t, tools[1], res.Segments[0], m.data)
					info := ewfinfo(t, tools[2], res.Segments[0])
					wantLevel := map[Level]string{LevelNone: "no compression", LevelFast: "good (fast) compression", LevelBest: "best compression"}[level]
					if info["Compression level"] != wantLevel {
						t.Errorf("ewfinfo compression level %q, want %q", info["Compression level"], wantLevel)
					}
					if want := fmt.Sprintf("(%d bytes)", len(m.data)); !strings.HasSuffix(info["Media size"], want) {
						t.Errorf("ewfinfo media size %q, want %s", info["Media size"], want)
					}
				})
			}
		}
	}
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// ewfverify runs ewfverify and checks it succeeds with the MD5 and SHA-1
// of data.
func ewfverify(t *testing.T, tool, path string, data []byte) {
	t.Helper()
	out := run(t, tool, "-q", "-d", "sha1", path)
	if !strings.Contains(out, "ewfverify: SUCCESS") {
		t.Fatalf("ewfverify did not succeed:\n%s", out)
	}
	md := fmt.Sprintf("%x", md5.Sum(data))
	for _, want := range []string{
		"MD5 hash stored in file:\t\t" + md,
		"MD5 hash calculated over data:\t\t" + md,
		fmt.Sprintf("SHA1 hash stored in file:\t\t%x", sha1.Sum(data)),
		fmt.Sprintf("SHA1 hash calculated over data:\t\t%x", sha1.Sum(data)),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ewfverify output lacks %q:\n%s", want, out)
		}
	}
}

// ewfexportMatches converts the image back to raw with ewfexport and
// compares the bytes.
func ewfexportMatches(t *testing.T, tool, path string, data []byte) {
	t.Helper()
	target := filepath.Join(t.TempDir(), "export")
	run(t, tool, "-q", "-u", "-f", "raw", "-t", target, path)
	got, err := os.ReadFile(target + ".raw")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("ewfexport gave %d bytes (sha256 %x), want %d bytes (sha256 %x)",
			len(got), sha256.Sum256(got), len(data), sha256.Sum256(data))
	}
}

var infoLine = regexp.MustCompile(`^\t([^:\t]+):\t+(.*)$`)

// ewfinfo runs ewfinfo (with TZ=UTC, so dates read the same everywhere)
// and returns its "name: value" lines.
func ewfinfo(t *testing.T, tool, path string) map[string]string {
	t.Helper()
	cmd := exec.Command(tool, path)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ewfinfo: %v\n%s", err, out)
	}
	info := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if m := infoLine.FindStringSubmatch(line); m != nil {
			info[m[1]] = m[2]
		}
	}
	return info
}

func TestEwfinfoShowsMetadata(t *testing.T) {
	tools := testenv.RequireTool(t, "ewfinfo")
	data := sparseMedia(5<<20 + 512)
	dir := t.TempDir()
	res := writeImage(t, dir, "img", data, Options{Level: LevelBest, SegmentSize: MinSegmentSize, Meta: testMeta})
	info := ewfinfo(t, tools[0], res.Segments[0])
	want := map[string]string{
		"Case number":           testMeta.CaseNumber,
		"Description":           testMeta.Description,
		"Examiner name":         testMeta.Examiner,
		"Evidence number":       testMeta.EvidenceNumber,
		"Notes":                 testMeta.Notes,
		"Acquisition date":      "Mon May  6 07:08:09 2024",
		"System date":           "Mon May  6 07:08:10 2024",
		"Operating system used": testMeta.OS,
		"Software version used": testMeta.ToolVersion,
		"Password":              "N/A",
		"Model":                 testMeta.Model,
		"Serial number":         testMeta.SerialNumber,
		"File format":           "EnCase 6",
		"Sectors per chunk":     "64",
		"Error granularity":     "64",
		"Compression method":    "deflate",
		"Compression level":     "best compression",
		"Media type":            "fixed disk",
		"Is physical":           "yes",
		"Bytes per sector":      "512",
		"Number of sectors":     strconv.Itoa(len(data) / 512),
		"MD5":                   fmt.Sprintf("%x", md5.Sum(data)),
		"SHA1":                  fmt.Sprintf("%x", sha1.Sum(data)),
	}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("ewfinfo %s = %q, want %q", k, info[k], v)
		}
	}
	if id := info["Set identifier"]; !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("ewfinfo set identifier %q, want a version 5 UUID", id)
	}
}

func TestSleuthKitReadsImage(t *testing.T) {
	tools := testenv.RequireTool(t, "mmls", "fls", "icat")
	d := buildDisk(t)
	for _, seg := range []int64{0, MinSegmentSize} {
		t.Run(fmt.Sprintf("seg%d", seg), func(t *testing.T) {
			dir := t.TempDir()
			res := writeImage(t, dir, "disk", d.data, Options{Level: LevelFast, SegmentSize: seg, Meta: testMeta})
			if seg != 0 && len(res.Segments) < 2 {
				t.Fatalf("%d segments, want several", len(res.Segments))
			}
			img := res.Segments[0]
			mm := run(t, tools[0], "-i", "ewf", img)
			found := false
			for _, line := range strings.Split(mm, "\n") {
				f := strings.Fields(line)
				if len(f) >= 5 && f[1] == "000" {
					start, _ := strconv.ParseInt(f[2], 10, 64)
					length, _ := strconv.ParseInt(f[4], 10, 64)
					if start != d.partLBA || length != partSectors {
						t.Errorf("mmls partition at %d, %d sectors; want %d, %d", start, length, d.partLBA, partSectors)
					}
					found = true
				}
			}
			if !found {
				t.Fatalf("mmls shows no partition 000:\n%s", mm)
			}
			off := strconv.FormatInt(d.partLBA, 10)
			listing := run(t, tools[1], "-i", "ewf", "-o", off, "-r", "-p", img)
			inodes := map[string]string{}
			for _, line := range strings.Split(listing, "\n") {
				// "r/r 12:\tdocs/notes.txt"
				if m := regexp.MustCompile(`^r/r (\d+):\t(.+)$`).FindStringSubmatch(line); m != nil {
					inodes[m[2]] = m[1]
				}
			}
			for _, name := range d.fileList {
				ino, ok := inodes[name]
				if !ok {
					t.Errorf("fls does not list %s:\n%s", name, listing)
					continue
				}
				got, err := exec.Command(tools[2], "-i", "ewf", "-o", off, img, ino).Output()
				if err != nil {
					t.Fatalf("icat %s: %v", name, err)
				}
				if !bytes.Equal(got, d.files[name]) {
					t.Errorf("icat %s: %d bytes (sha256 %x), want %d bytes (sha256 %x)",
						name, len(got), sha256.Sum256(got), len(d.files[name]), sha256.Sum256(d.files[name]))
				}
			}
		})
	}
}

// TestLibewfAcceptsSplitTables lowers the per-section limits so that
// segments hold many sectors/table/table2 runs, as images with more than
// 65534 chunks per segment or 2 GiB of chunk data per section do.
func TestLibewfAcceptsSplitTables(t *testing.T) {
	tools := testenv.RequireTool(t, "ewfverify", "ewfexport")
	data := append(randomMedia(2<<20, 3), sparseMedia(3<<20+512)...)
	for _, lim := range []limits{
		{maxEntries: 5, maxOffset: maxChunkOffset, minSegment: MinSegmentSize},
		{maxEntries: maxTableEntries, maxOffset: 100_000, minSegment: MinSegmentSize},
		{maxEntries: 1, maxOffset: 0, minSegment: MinSegmentSize},
	} {
		t.Run(fmt.Sprintf("entries%d/offset%d", lim.maxEntries, lim.maxOffset), func(t *testing.T) {
			dir := t.TempDir()
			res := writeImageLimits(t, dir, "img", data, Options{Level: LevelFast, SegmentSize: MinSegmentSize}, lim)
			tables := 0
			for _, s := range res.Segments {
				b, err := os.ReadFile(s)
				if err != nil {
					t.Fatal(err)
				}
				tables += bytes.Count(b, []byte("table2\x00"))
			}
			if tables < 10 {
				t.Errorf("%d table2 sections, want the tables split", tables)
			}
			ewfverify(t, tools[0], res.Segments[0], data)
			ewfexportMatches(t, tools[1], res.Segments[0], data)
			r := openImage(t, res.Segments[0])
			readAllMatches(t, r, data)
		})
	}
}

// TestLibewfReadsManySegments goes past .E99 to .EAA, .EAB, …
func TestLibewfReadsManySegments(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MiB")
	}
	tools := testenv.RequireTool(t, "ewfverify")
	data := randomMedia(104<<20+512, 5)
	dir := t.TempDir()
	res := writeImage(t, dir, "many", data, Options{Level: LevelNone, SegmentSize: MinSegmentSize})
	if len(res.Segments) <= 100 {
		t.Fatalf("%d segments, want more than 100", len(res.Segments))
	}
	for _, n := range []int{99, 100, 101} {
		if want := filepath.Join(dir, "many"+[]string{".E99", ".EAA", ".EAB"}[n-99]); res.Segments[n-1] != want {
			t.Errorf("segment %d is %s, want %s", n, res.Segments[n-1], want)
		}
	}
	ewfverify(t, tools[0], res.Segments[0], data)
	r := openImage(t, filepath.Join(dir, "many.EAB"))
	if len(r.Segments()) != len(res.Segments) {
		t.Errorf("Reader found %d segments, want %d", len(r.Segments()), len(res.Segments))
	}
	vr, err := r.Verify(nil)
	if err != nil || !vr.MD5OK || !vr.SHA1OK || vr.SHA256 != res.SHA256 {
		t.Errorf("Verify = %+v, %v", vr, err)
	}
}

func TestCorruptChunkIsCaught(t *testing.T) {
	tools := testenv.RequireTool(t, "ewfverify")
	d := buildDisk(t)
	for _, level := range []Level{LevelNone, LevelFast} {
		t.Run(level.String(), func(t *testing.T) {
			dir := t.TempDir()
			res := writeImage(t, dir, "img", d.data, Options{Level: level, Meta: testMeta})
			// Chunk 32 starts the ext4 partition (its boot block and
			// superblock): it is neither zero nor random.
			const chunk = partStart * 512 / ChunkSize
			r := openImage(t, res.Segments[0])
			at, stored := chunkLocation(t, r, chunk)
			r.Close()
			b, err := os.ReadFile(res.Segments[0])
			if err != nil {
				t.Fatal(err)
			}
			site := at + stored/2
			if level != LevelNone {
				// Not every bit of a deflate stream matters (padding,
				// unused code lengths), and the disk differs from run to
				// run (mkfs's UUIDs): flip one that zlib itself says
				// changes the chunk.
				site = at + damagingFlip(t, b[at:at+stored], d.data[chunk*ChunkSize:(chunk+1)*ChunkSize])
			}
			b[site] ^= 0x40
			if err := os.WriteFile(res.Segments[0], b, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(tools[0], "-q", res.Segments[0]).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "FAILURE") {
				t.Errorf("ewfverify accepted a flipped byte in chunk %d: %v\n%s", chunk, err, out)
			}

			r = openImage(t, res.Segments[0])
			buf := make([]byte, 4096)
			_, err = r.ReadAt(buf, chunk*ChunkSize+100)
			assertChunkError(t, err, chunk, res.Segments[0], at)
			// The chunks around it still read.
			if _, err := r.ReadAt(buf, (chunk-1)*ChunkSize); err != nil {
				t.Errorf("reading chunk %d: %v", chunk-1, err)
			}
			if _, err := r.ReadAt(buf, (chunk+1)*ChunkSize); err != nil {
				t.Errorf("reading chunk %d: %v", chunk+1, err)
			}
			_, err = r.Verify(nil)
			assertChunkError(t, err, chunk, res.Segments[0], at)
		})
	}
}

func assertChunkError(t *testing.T, err error, chunk int64, seg string, at int64) {
	t.Helper()
	ce, ok := err.(*ChunkError)
	if !ok {
		t.Fatalf("error %v (%T), want a *ChunkError", err, err)
	}
	if ce.Chunk != chunk || ce.Offset != chunk*ChunkSize || ce.Segment != seg || ce.FileOffset != at {
		t.Errorf("ChunkError{%d, %d, %s, %d}, want {%d, %d, %s, %d}", ce.Chunk, ce.Offset, ce.Segment, ce.FileOffset,
			chunk, chunk*ChunkSize, seg, at)
	}
	want := fmt.Sprintf("chunk %d (media offset %d) in %s at offset %d: ", chunk, chunk*ChunkSize, seg, at)
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
}

// TestLargeImage writes a real image past the format's limits: one
// segment larger than 2 GiB, so sectors sections split at the 31-bit chunk
// offset, with more than 65534 chunks, so tables split at their maximum.
// The media must not compress (the writer stores zero chunks compressed
// even at LevelNone, and a segment of compressed chunks stays far below
// 2 GiB), so it is one random 4 MiB piece, made once, with every chunk's
// offset written at its start: cheap to make, and a misplaced chunk
// still shows. Writing and reading 2.2 GiB takes time: -short skips it.
func TestLargeImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: writes and reads a 2.2 GiB image")
	}
	tools := testenv.RequireTool(t, "ewfverify")
	const size = 2<<30 + 200<<20 + 512
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "big"), size, Options{Level: LevelNone, SegmentSize: 3 << 30})
	if err != nil {
		t.Fatal(err)
	}
	s256 := sha256.New()
	piece := randomMedia(4<<20, 1)
	for off := int64(0); off < size; off += int64(len(piece)) {
		for c := 0; c < len(piece); c += ChunkSize {
			binary.LittleEndian.PutUint64(piece[c:], uint64(off)+uint64(c))
		}
		p := piece[:min(int64(len(piece)), size-off)]
		s256.Write(p)
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	// MD5 and SHA-1 are checked below by Verify and ewfverify.
	if res.SHA256 != [32]byte(s256.Sum(nil)) {
		t.Fatalf("result SHA-256 differs from the media's")
	}
	if len(res.Segments) != 1 {
		t.Fatalf("%d segments, want 1", len(res.Segments))
	}
	st, err := os.Stat(res.Segments[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() <= 1<<31 {
		t.Fatalf("segment is %d bytes, want more than 2 GiB", st.Size())
	}
	r := openImage(t, res.Segments[0])
	// Stored chunks of 32772 bytes reach the 31-bit offset limit before
	// the 65534-entry one: the first sectors section holds as many as fit.
	if want := (maxChunkOffset-descriptorSize)/(ChunkSize+4) + 1; len(r.tables) != 2 || r.tables[0].count != want {
		t.Errorf("%d tables, the first with %d chunks; want 2, the first with %d", len(r.tables), r.tables[0].count, want)
	}
	for _, tb := range r.tables {
		if tb.count > maxTableEntries {
			t.Errorf("table at %d lists %d chunks", tb.off, tb.count)
		}
		e, err := r.entries(tb)
		if err != nil {
			t.Fatal(err)
		}
		if last := int64(e[len(e)-1] &^ compressedFlag); last > maxChunkOffset {
			t.Errorf("table at %d: chunk offset %d", tb.off, last)
		}
	}
	vr, err := r.Verify(nil)
	if err != nil || !vr.MD5OK || !vr.SHA1OK || vr.SHA256 != res.SHA256 {
		t.Errorf("Verify = %+v, %v", vr, err)
	}
	out := run(t, tools[0], "-q", res.Segments[0])
	if !strings.Contains(out, "ewfverify: SUCCESS") {
		t.Errorf("ewfverify:\n%s", out)
	}
}

// damagingFlip returns the first offset, from the middle of the
// zlib-compressed chunk comp on (wrapping round), where flipping bit 6
// makes compress/zlib fail or decode something other than want.
func damagingFlip(t *testing.T, comp, want []byte) int64 {
	t.Helper()
	if zr, err := zlib.NewReader(bytes.NewReader(comp)); err != nil {
		t.Fatalf("the chunk is not a zlib stream: %v", err)
	} else if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the chunk does not decode to its data (%v)", err)
	}
	for k := range len(comp) {
		off := (len(comp)/2 + k) % len(comp)
		c := bytes.Clone(comp)
		c[off] ^= 0x40
		zr, err := zlib.NewReader(bytes.NewReader(c))
		if err != nil {
			return int64(off)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, want) {
			return int64(off)
		}
	}
	t.Fatal("no byte of the chunk changes it when flipped")
	return 0
}
