package ewf

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/testenv"
)

func openImage(t testing.TB, path string) *Reader {
	t.Helper()
	r, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// readAllMatches reads the media back whole, then in random pieces.
func readAllMatches(t testing.TB, r *Reader, data []byte) {
	t.Helper()
	if r.Size() != int64(len(data)) {
		t.Fatalf("Size = %d, want %d", r.Size(), len(data))
	}
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatalf("reading the media: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("media read back differs: sha256 %x, want %x", sha256.Sum256(got), sha256.Sum256(data))
	}
	rng := rand.New(rand.NewPCG(uint64(len(data)), 3))
	for range 200 {
		off := rng.Int64N(int64(len(data)))
		n := rng.IntN(100_000)
		buf := make([]byte, n)
		k, err := r.ReadAt(buf, off)
		want := data[off:min(int64(len(data)), off+int64(n))]
		if k != len(want) || !bytes.Equal(buf[:k], want) {
			t.Fatalf("ReadAt(%d bytes, %d) = %d bytes that differ", n, off, k)
		}
		if k < n && err != io.EOF {
			t.Fatalf("short ReadAt(%d bytes, %d) = %d, %v; want io.EOF", n, off, k, err)
		}
		if k == n && err != nil {
			t.Fatalf("ReadAt(%d bytes, %d): %v", n, off, err)
		}
	}
	if k, err := r.ReadAt(make([]byte, 10), int64(len(data))); k != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, io.EOF", k, err)
	}
}

// chunkLocation returns where chunk idx is stored in its segment file and
// how many bytes it takes there.
func chunkLocation(t testing.TB, r *Reader, idx int64) (int64, int64) {
	t.Helper()
	tb, i := r.locate(idx)
	e, err := r.entries(tb)
	if err != nil {
		t.Fatal(err)
	}
	start := tb.base + int64(e[i]&^compressedFlag)
	end := tb.end
	if i+1 < len(e) {
		end = tb.base + int64(e[i+1]&^compressedFlag)
	}
	return start, end - start
}

func TestRoundTrip(t *testing.T) {
	for _, m := range allMedia(t) {
		for _, level := range []Level{LevelNone, LevelFast, LevelBest} {
			for _, seg := range []int64{0, MinSegmentSize} {
				t.Run(fmt.Sprintf("%s/%s/seg%d", m.name, level, seg), func(t *testing.T) {
					dir := t.TempDir()
					res := writeImage(t, dir, "img", m.data, Options{Level: level, SegmentSize: seg, Meta: testMeta})
					r := openImage(t, res.Segments[0])
					if got := r.Segments(); !equalStrings(got, res.Segments) {
						t.Errorf("Segments = %q, want %q", got, res.Segments)
					}
					if got := r.Metadata(); !sameMeta(got, testMeta) {
						t.Errorf("Metadata = %+v, want %+v", got, testMeta)
					}
					if sum, ok := r.StoredMD5(); !ok || sum != md5.Sum(m.data) {
						t.Errorf("StoredMD5 = %x, %v; want %x", sum, ok, md5.Sum(m.data))
					}
					if sum, ok := r.StoredSHA1(); !ok || sum != sha1.Sum(m.data) {
						t.Errorf("StoredSHA1 = %x, %v; want %x", sum, ok, sha1.Sum(m.data))
					}
					readAllMatches(t, r, m.data)
					checkOK(t, res.Segments[0], m.data)
					var last, calls int64
					vr, err := r.Verify(func(done, total int64) {
						if total != int64(len(m.data)) || done <= last {
							t.Errorf("progress(%d, %d) after %d", done, total, last)
						}
						last = done
						calls++
					})
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					want := VerifyResult{MD5: md5.Sum(m.data), SHA1: sha1.Sum(m.data), SHA256: sha256.Sum256(m.data), MD5OK: true, SHA1OK: true}
					if vr != want {
						t.Errorf("Verify = %+v, want %+v", vr, want)
					}
					if last != int64(len(m.data)) || calls < 2 {
						t.Errorf("progress ended at %d after %d calls, want %d", last, calls, len(m.data))
					}
				})
			}
		}
	}
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

func sameMeta(a, b Metadata) bool {
	ta, tb := a.AcquiredAt, b.AcquiredAt
	sa, sb := a.SystemAt, b.SystemAt
	a.AcquiredAt, b.AcquiredAt, a.SystemAt, b.SystemAt = ta.UTC(), tb.UTC(), sa.UTC(), sb.UTC()
	return a == b
}

func TestOpenFromAnySegment(t *testing.T) {
	data := randomMedia(3<<20, 9)
	dir := t.TempDir()
	res := writeImage(t, dir, "img", data, Options{SegmentSize: MinSegmentSize})
	if len(res.Segments) < 3 {
		t.Fatalf("%d segments, want 3 or more", len(res.Segments))
	}
	r := openImage(t, res.Segments[2])
	if !equalStrings(r.Segments(), res.Segments) {
		t.Errorf("Segments = %q, want %q", r.Segments(), res.Segments)
	}
	readAllMatches(t, r, data)
}

func TestOpenRejectsDamagedSets(t *testing.T) {
	data := randomMedia(3<<20, 11)
	src := t.TempDir()
	res := writeImage(t, src, "img", data, Options{SegmentSize: MinSegmentSize})
	if len(res.Segments) < 3 {
		t.Fatalf("%d segments, want 3 or more", len(res.Segments))
	}
	for _, tc := range []struct {
		name   string
		damage func(dir string) error
		want   []string
		is     error
	}{
		{"missing second segment", func(dir string) error {
			return os.Remove(filepath.Join(dir, "img.E02"))
		}, []string{"segment 2 is missing", "img.E01 ends with a next section", "img.E02"}, os.ErrNotExist},
		{"missing last segment", func(dir string) error {
			return os.Remove(filepath.Join(dir, fmt.Sprintf("img.E%02d", len(res.Segments))))
		}, []string{fmt.Sprintf("segment %d is missing", len(res.Segments))}, os.ErrNotExist},
		{"missing first segment", func(dir string) error {
			return os.Remove(filepath.Join(dir, "img.E01"))
		}, []string{"img.E01"}, os.ErrNotExist},
		{"truncated middle segment", func(dir string) error {
			return os.Truncate(filepath.Join(dir, "img.E02"), 500_000)
		}, []string{"img.E02", "truncated"}, nil},
		{"truncated last segment", func(dir string) error {
			p := filepath.Join(dir, fmt.Sprintf("img.E%02d", len(res.Segments)))
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, st.Size()-40) // into the done section
		}, []string{"truncated"}, nil},
		{"segment header only", func(dir string) error {
			return os.Truncate(filepath.Join(dir, "img.E02"), 13)
		}, []string{"img.E02", "truncated"}, nil},
		{"segments swapped", func(dir string) error {
			a, b := filepath.Join(dir, "img.E02"), filepath.Join(dir, "img.E03")
			return errors.Join(os.Rename(a, a+"x"), os.Rename(b, a), os.Rename(a+"x", b))
		}, []string{"img.E02", "segment number 3, want 2"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, s := range res.Segments {
				b, err := os.ReadFile(s)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(s)), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.damage(dir); err != nil {
				t.Fatal(err)
			}
			r, err := Open(filepath.Join(dir, "img.E01"))
			if err == nil {
				r.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
		})
	}
}

func TestOpenRejectsBadNames(t *testing.T) {
	for _, name := range []string{"img", "img.E00", "img.E1", "img.ED0", "img.e0a", "img.E012"} {
		if _, err := Open(filepath.Join(t.TempDir(), name)); err == nil || !strings.Contains(err.Error(), "extension") {
			t.Errorf("Open(%s) = %v, want an extension error", name, err)
		}
	}
}

// TestReadsEwfacquireImages reads images made by libewf's ewfacquire.
func TestReadsEwfacquireImages(t *testing.T) {
	tools := testenv.RequireTool(t, "ewfacquire")
	d := buildDisk(t)
	src := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(src, d.data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"none", "empty-block", "fast", "best"} {
		for _, seg := range []string{"", "1048576"} {
			t.Run(c+"/"+seg, func(t *testing.T) {
				target := filepath.Join(t.TempDir(), "acq")
				args := []string{"-u", "-q", "-c", c, "-d", "sha1", "-t", target,
					"-C", "case 7", "-D", "described", "-e", "examiner x", "-E", "ev 9", "-N", "some notes"}
				if seg != "" {
					args = append(args, "-S", seg)
				}
				run(t, tools[0], append(args, src)...)
				r := openImage(t, target+".E01")
				if seg != "" && len(r.Segments()) < 2 {
					t.Errorf("ewfacquire wrote %d segments, want several", len(r.Segments()))
				}
				m := r.Metadata()
				if m.CaseNumber != "case 7" || m.Description != "described" || m.Examiner != "examiner x" ||
					m.EvidenceNumber != "ev 9" || m.Notes != "some notes" || m.AcquiredAt.IsZero() {
					t.Errorf("Metadata = %+v", m)
				}
				if sum, ok := r.StoredMD5(); !ok || sum != md5.Sum(d.data) {
					t.Errorf("StoredMD5 = %x, %v; want %x", sum, ok, md5.Sum(d.data))
				}
				if sum, ok := r.StoredSHA1(); !ok || sum != sha1.Sum(d.data) {
					t.Errorf("StoredSHA1 = %x, %v; want %x", sum, ok, sha1.Sum(d.data))
				}
				readAllMatches(t, r, d.data)
				checkOK(t, target+".E01", nil)
				vr, err := r.Verify(nil)
				if err != nil || !vr.MD5OK || !vr.SHA1OK || vr.SHA256 != sha256.Sum256(d.data) {
					t.Errorf("Verify = %+v, %v", vr, err)
				}
			})
		}
	}
}

func TestVerifyReportsWrongStoredHash(t *testing.T) {
	data := sparseMedia(2<<20 + 512)
	dir := t.TempDir()
	res := writeImage(t, dir, "img", data, Options{Level: LevelFast})
	b, err := os.ReadFile(res.Segments[0])
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite the digest and hash sections with another MD5 (checksums
	// kept valid), as if the stored hashes did not match the chunks.
	var other [16]byte
	other[0] = 1
	i := bytes.Index(b, digestData(res.MD5, res.SHA1))
	j := bytes.Index(b, hashData(res.MD5))
	if i < 0 || j < 0 {
		t.Fatalf("digest at %d, hash at %d", i, j)
	}
	copy(b[i:], digestData(other, res.SHA1))
	copy(b[j:], hashData(other))
	if err := os.WriteFile(res.Segments[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := openImage(t, res.Segments[0])
	vr, err := r.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	if vr.MD5OK || !vr.SHA1OK || vr.MD5 != res.MD5 {
		t.Errorf("Verify = %+v; want MD5 %x not OK, SHA-1 OK", vr, res.MD5)
	}
}

func TestCorruptTableFallsBackToTable2(t *testing.T) {
	data := sparseMedia(2<<20 + 512)
	dir := t.TempDir()
	res := writeImage(t, dir, "img", data, Options{Level: LevelFast})
	b, err := os.ReadFile(res.Segments[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("table\x00"))
	if i < 0 {
		t.Fatal("no table section")
	}
	b[i+descriptorSize+tableHeaderSize+8] ^= 0xff // an entry; the footer no longer matches
	if err := os.WriteFile(res.Segments[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	readAllMatches(t, openImage(t, res.Segments[0]), data)

	j := bytes.Index(b, []byte("table2\x00"))
	b[j+descriptorSize+tableHeaderSize+8] ^= 0xff
	if err := os.WriteFile(res.Segments[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := openImage(t, res.Segments[0])
	_, err = r.ReadAt(make([]byte, 10), 0)
	var ce *ChunkError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "table2") || !errors.Is(err, errChecksum) {
		t.Errorf("ReadAt with both tables broken: %v", err)
	}
}
