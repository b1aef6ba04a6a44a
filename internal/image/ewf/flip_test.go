package ewf

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

// Damage tests with libewf's ewfverify as the oracle: wherever ewfverify
// fails on (or cannot open) a damaged image, Check must fail too.

// flipImage is a small image kept in memory: its segment files' bytes.
type flipImage struct {
	name string
	segs [][]byte
}

// flipImages writes the images the damage tests start from: one segment
// with every section an image has (header2 twice, header, volume,
// sectors, table, table2, data, digest, hash, done) and chunks stored
// compressed (text, zeros) and uncompressed (random bytes); and two
// segments with small tables, for next, a data section in the second
// segment and several sectors/table/table2 runs.
func flipImages(t testing.TB) []flipImage {
	text := bytes.Repeat([]byte("evidence you can trust under misuse. "), 1000)[:ChunkSize]
	data := append(append(append(append(randomMedia(ChunkSize, 21), text...),
		make([]byte, ChunkSize)...), randomMedia(ChunkSize, 22)...), text[:3*512]...)
	dir := t.TempDir()
	var out []flipImage
	read := func(name string, res Result) {
		img := flipImage{name: name}
		for _, s := range res.Segments {
			b, err := os.ReadFile(s)
			if err != nil {
				t.Fatal(err)
			}
			img.segs = append(img.segs, b)
		}
		out = append(out, img)
	}
	read("one", writeImage(t, dir, "one", data, Options{Level: LevelFast, Workers: 1, Meta: testMeta}))
	lim := formatLimits
	lim.minSegment = 64 << 10
	lim.maxEntries = 2
	res := writeImageLimits(t, dir, "two", data, Options{Level: LevelFast, Workers: 1, SegmentSize: 64 << 10, Meta: testMeta}, lim)
	if len(res.Segments) != 2 {
		t.Fatalf("%d segments, want 2", len(res.Segments))
	}
	read("two", res)
	return out
}

// flipSite is one byte to damage.
type flipSite struct {
	seg     int
	off     int64
	section string // the section (or "file header") and the part of it
}

// flipSites lists, for every section of every segment, the bytes whose
// damage each checksum or check must catch: each field of the
// descriptor, the first, middle and last bytes of the data, and for
// tables and sectors the fields and chunks inside.
func flipSites(t testing.TB, segs [][]byte) []flipSite {
	var sites []flipSite
	add := func(seg int, base int64, what string, offs ...int64) {
		for _, o := range offs {
			sites = append(sites, flipSite{seg, base + o, what})
		}
	}
	for i, b := range segs {
		add(i, 0, "file header", 0, 7, 8, 9, 10, 11, 12)
		off := int64(fileHeaderSize)
		var entries []int64 // chunk starts of the latest table, file offsets
		var sectorsOff, sectorsEnd int64
		for {
			d, err := parseDescriptor(b[off:])
			if err != nil {
				t.Fatalf("segment %d at %d: %v", i+1, off, err)
			}
			add(i, off, d.Type+" descriptor", 0, 15, 16, 24, 40, 72, 75) // type, next, size, padding, checksum
			if d.Type == "done" || d.Type == "next" {
				break
			}
			data, n := off+descriptorSize, d.Next-off-descriptorSize
			add(i, data, d.Type+" data", 0, n/2, n-5, n-1)
			switch d.Type {
			case "sectors":
				sectorsOff, sectorsEnd = off, d.Next
			case "table", "table2":
				add(i, data, d.Type+" header", 0, 4, 8, 12, 16, 20)
				count := int64(binary.LittleEndian.Uint32(b[data:]))
				add(i, data+tableHeaderSize, d.Type+" entries", 0, 3, 4*count-1, 4*count, 4*count+3)
				entries = entries[:0]
				for k := range count {
					e := binary.LittleEndian.Uint32(b[data+tableHeaderSize+4*k:])
					entries = append(entries, sectorsOff+int64(e&^compressedFlag))
				}
				if d.Type == "table" {
					for k, start := range entries {
						end := sectorsEnd
						if k+1 < len(entries) {
							end = entries[k+1]
						}
						add(i, start, "chunk", 0, 1, (end-start)/2, end-start-4, end-start-1)
					}
				}
			}
			off = d.Next
		}
	}
	return sites
}

// writeSegs writes segs as dir/img.E01, dir/img.E02, … and returns the
// first one's path.
func writeSegs(t testing.TB, dir string, segs [][]byte) string {
	for i, b := range segs {
		name, _ := SegmentName(filepath.Join(dir, "img"), i+1)
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "img.E01")
}

// ewfverifyFails runs ewfverify and reports whether it does not succeed.
func ewfverifyFails(t testing.TB, tool, path string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, "-q", "-d", "sha1", path).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("ewfverify %s timed out", path)
	}
	return err != nil || !strings.Contains(string(out), "ewfverify: SUCCESS")
}

// checkFails runs Check and reports whether it finds the image damaged.
func checkFails(t testing.TB, path string) (bool, string) {
	rep, err := Check(path, nil)
	if err != nil {
		return true, err.Error()
	}
	if !rep.OK() {
		if len(rep.Problems) > 0 {
			return true, rep.Problems[0].Error()
		}
		return true, "a stored hash differs or cannot be read"
	}
	return false, ""
}

// flipOutcome is what both verifiers said about one damaged image.
type flipOutcome struct {
	what         string
	libewfFails  bool
	checkFails   bool
	checkProblem string
}

// runDamage applies each damage to a fresh copy of img, two at a time,
// and returns what ewfverify and Check say of each.
func runDamage(t *testing.T, tool string, img flipImage, damages []func(segs [][]byte) string) []flipOutcome {
	out := make([]flipOutcome, len(damages))
	next := make(chan int)
	var wg sync.WaitGroup
	for range 2 {
		dir := t.TempDir()
		wg.Go(func() {
			for k := range next {
				segs := make([][]byte, len(img.segs))
				for i, b := range img.segs {
					segs[i] = bytes.Clone(b)
				}
				what := damages[k](segs)
				path := writeSegs(t, dir, segs)
				fails, problem := checkFails(t, path)
				out[k] = flipOutcome{what, ewfverifyFails(t, tool, path), fails, problem}
			}
		})
	}
	for k := range damages {
		next <- k
	}
	close(next)
	wg.Wait()
	return out
}

// stricterThanLibewf are the damages Check may catch where ewfverify
// (libewf 20140813) does not: the file header's constant fields, which
// libewf ignores, and the table2 mirror, whose entries libewf does not
// read while the table is intact. A mirror that no longer repeats its
// table is damage to the evidence all the same.
var stricterThanLibewf = map[string]bool{
	"file header": true, "table2 data": true, "table2 header": true, "table2 entries": true,
}

// judge fails the test for every damage ewfverify catches and Check does
// not, and logs the counts and the cases only Check catches.
func judge(t *testing.T, img string, out []flipOutcome) {
	var libewf, ours, onlyOurs int
	onlyOursBy := map[string]int{}
	for _, o := range out {
		if o.libewfFails {
			libewf++
		}
		if o.checkFails {
			ours++
		}
		switch {
		case o.libewfFails && !o.checkFails:
			t.Errorf("%s: %s: ewfverify fails, Check passes", img, o.what)
		case o.checkFails && !o.libewfFails:
			onlyOurs++
			class, _, _ := strings.Cut(o.what, ":")
			onlyOursBy[class]++
			if !stricterThanLibewf[class] {
				t.Errorf("%s: %s: Check fails (%s), ewfverify passes, and nothing justifies it", img, o.what, o.checkProblem)
			}
			if onlyOursBy[class] == 1 {
				t.Logf("%s: only Check fails, e.g. %s: %s", img, o.what, o.checkProblem)
			}
		}
	}
	t.Logf("%s: %d damaged images, ewfverify failed %d, Check failed %d, Check alone failed %d", img, len(out), libewf, ours, onlyOurs)
	keys := make([]string, 0, len(onlyOursBy))
	for k := range onlyOursBy {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("  only Check fails: %d damaged %s", onlyOursBy[k], k)
	}
}

// TestBitFlipsAgreeWithEwfverify flips bits of every class (descriptor
// fields, checksums, section data, table fields, chunk bytes) in every
// section of small images and requires Check to fail wherever ewfverify
// fails or cannot open the image.
func TestBitFlipsAgreeWithEwfverify(t *testing.T) {
	tool := testenv.RequireTool(t, "ewfverify")[0]
	for _, img := range flipImages(t) {
		path := writeSegs(t, t.TempDir(), img.segs)
		if ewfverifyFails(t, tool, path) {
			t.Fatalf("%s: ewfverify fails on the undamaged image", img.name)
		}
		if fails, problem := checkFails(t, path); fails {
			t.Fatalf("%s: Check fails on the undamaged image: %s", img.name, problem)
		}
		// One bit of each site, taking bits 0, 3 and 7 in turn: every
		// checksum covers its field's every bit alike, and the turns keep
		// the test within seconds.
		var damages []func([][]byte) string
		seen := map[[2]int64]bool{}
		for k, s := range flipSites(t, img.segs) {
			bit := []uint{0, 7, 3}[k%3]
			if s.off < 0 || s.off >= int64(len(img.segs[s.seg])) || seen[[2]int64{int64(s.seg), s.off}] {
				continue
			}
			seen[[2]int64{int64(s.seg), s.off}] = true
			damages = append(damages, func(segs [][]byte) string {
				segs[s.seg][s.off] ^= 1 << bit
				return fmt.Sprintf("%s: segment %d byte %d bit %d", s.section, s.seg+1, s.off, bit)
			})
		}
		judge(t, img.name, runDamage(t, tool, img, damages))
	}
}

// TestRandomDamageAgreesWithEwfverify is the randomized variant: a seeded
// run of multi-byte corruptions (runs of random bytes, zeroed runs, bit
// flips in several places at once) anywhere in the files.
func TestRandomDamageAgreesWithEwfverify(t *testing.T) {
	tool := testenv.RequireTool(t, "ewfverify")[0]
	const rounds = 60
	for _, img := range flipImages(t) {
		rng := rand.New(rand.NewPCG(10, uint64(len(img.segs))))
		var damages []func([][]byte) string
		for range rounds {
			seed := rng.Uint64()
			damages = append(damages, func(segs [][]byte) string {
				rng := rand.New(rand.NewPCG(seed, 1))
				var what []string
				for range 1 + rng.IntN(3) {
					s := rng.IntN(len(segs))
					b := segs[s]
					at := rng.IntN(len(b))
					n := min(len(b)-at, 1+rng.IntN(16))
					switch rng.IntN(3) {
					case 0:
						for k := range n {
							b[at+k] = byte(rng.Uint32())
						}
						what = append(what, fmt.Sprintf("segment %d: %d random bytes at %d", s+1, n, at))
					case 1:
						clear(b[at : at+n])
						what = append(what, fmt.Sprintf("segment %d: %d zero bytes at %d", s+1, n, at))
					default:
						b[at] ^= 1 << rng.IntN(8)
						what = append(what, fmt.Sprintf("segment %d: bit flip at %d", s+1, at))
					}
				}
				return fmt.Sprintf("random (seed %d): %s", seed, strings.Join(what, ", "))
			})
		}
		judge(t, img.name, runDamage(t, tool, img, damages))
	}
}
