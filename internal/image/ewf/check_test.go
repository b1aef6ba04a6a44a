package ewf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkOK runs Check and fails the test unless the image is intact.
func checkOK(t testing.TB, path string, data []byte) *Report {
	t.Helper()
	rep, err := Check(path, nil)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Check found the intact image damaged: %v; stored %+v", rep.Problems, rep.Stored)
	}
	if data != nil && (rep.Size != int64(len(data)) || len(rep.Stored) != 3) {
		t.Errorf("Check: size %d, %d stored hashes; want %d, 3 (MD5 and SHA-1 in digest, MD5 in hash)", rep.Size, len(rep.Stored), len(data))
	}
	return rep
}

// TestCheckDamagedDigest is the case that broke: a damaged digest section
// made the SHA-1 vanish while the MD5 of the hash section still matched.
func TestCheckDamagedDigest(t *testing.T) {
	data := sparseMedia(2<<20 + 512)
	dir := t.TempDir()
	res := writeImage(t, dir, "img", data, Options{Level: LevelFast, Meta: testMeta})
	checkOK(t, res.Segments[0], data)
	b, err := os.ReadFile(res.Segments[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, digestData(res.MD5, res.SHA1))
	if i < 0 {
		t.Fatal("no digest section data")
	}
	b[i+20] ^= 0x04 // a byte of the SHA-1
	if err := os.WriteFile(res.Segments[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(res.Segments[0]); err == nil || !strings.Contains(err.Error(), "digest section") || !errors.Is(err, errChecksum) {
		t.Errorf("Open = %v; want a digest section checksum error, as libewf gives", err)
	}
	rep, err := Check(res.Segments[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !rep.Read || rep.MD5 != res.MD5 || rep.SHA1 != res.SHA1 {
		t.Fatalf("Check: OK %v, read %v, MD5 %x, SHA-1 %x", rep.OK(), rep.Read, rep.MD5, rep.SHA1)
	}
	var got []string
	for _, h := range rep.Stored {
		state := "matches"
		if h.Err != nil {
			state = "unreadable"
		} else if !rep.Matches(h) {
			state = "differs"
		}
		got = append(got, h.Algorithm+" "+h.Section+" "+state)
	}
	if want := "md5 digest unreadable, sha1 digest unreadable, md5 hash matches"; strings.Join(got, ", ") != want {
		t.Errorf("stored hashes: %s; want %s", strings.Join(got, ", "), want)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Error(), "digest section at offset") {
		t.Errorf("problems %v; want the digest section's", rep.Problems)
	}
}

// TestCheckFindsWhatOpenSteps over: damage the normal reader tolerates
// (a table read through its table2 mirror, a table2 that disagrees) is
// still damage to Check.
func TestCheckFindsWhatOpenStepsOver(t *testing.T) {
	data := sparseMedia(2<<20 + 512)
	dir := t.TempDir()
	res := writeImage(t, dir, "img", data, Options{Level: LevelFast})
	orig, err := os.ReadFile(res.Segments[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, section string
		want          string
	}{
		{"table entry", "table\x00", "its table2 stands in"},
		{"table2 entry", "table2\x00", "table2 at offset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(orig)
			i := bytes.Index(b, []byte(tc.section))
			b[i+descriptorSize+tableHeaderSize+8] ^= 0xff
			if tc.section == "table\x00" {
				b[i+descriptorSize] ^= 1 // the table header too, so Open reads the table2 instead
			}
			path := filepath.Join(t.TempDir(), "img.E01")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			readAllMatches(t, openImage(t, path), data)
			rep, err := Check(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Error(), tc.want) {
				t.Errorf("Check: OK %v, problems %v; want one that says %q", rep.OK(), rep.Problems, tc.want)
			}
		})
	}
}

func TestCheckRefusesImagesWithoutHashes(t *testing.T) {
	data := sparseMedia(2<<20 + 512)
	dir := t.TempDir()
	res := writeImage(t, dir, "img", data, Options{Level: LevelFast})
	b, err := os.ReadFile(res.Segments[0])
	if err != nil {
		t.Fatal(err)
	}
	// Zero hashes (checksums kept valid): the writer computed none.
	copy(b[bytes.Index(b, digestData(res.MD5, res.SHA1)):], digestData([16]byte{}, [20]byte{}))
	copy(b[bytes.Index(b, hashData(res.MD5)):], hashData([16]byte{}))
	if err := os.WriteFile(res.Segments[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(res.Segments[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Stored) != 0 || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Error(), "no digest or hash section records a hash") {
		t.Errorf("Check: OK %v, stored %v, problems %v", rep.OK(), rep.Stored, rep.Problems)
	}
}

func TestCheckMissingSegmentIsAnError(t *testing.T) {
	data := randomMedia(3<<20, 11)
	dir := t.TempDir()
	res := writeImage(t, dir, "img", data, Options{SegmentSize: MinSegmentSize})
	if err := os.Remove(res.Segments[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(res.Segments[0], nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check = %v, want os.ErrNotExist", err)
	}
}

// TestOpenRefusesDamagedSections: the normal reader (export, diff) refuses
// a damaged section wherever libewf refuses to open the image, even when
// the data it needs is elsewhere: the second header2 copy, the header,
// the data section at the end, the digest and the hash.
func TestOpenRefusesDamagedSections(t *testing.T) {
	data := sparseMedia(2<<20 + 512)
	res := writeImage(t, t.TempDir(), "img", data, Options{Level: LevelFast, Meta: testMeta})
	orig, err := os.ReadFile(res.Segments[0])
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string][]int64{} // type -> descriptor offsets
	for off := int64(fileHeaderSize); ; {
		d, err := parseDescriptor(orig[off:])
		if err != nil {
			t.Fatal(err)
		}
		sections[d.Type] = append(sections[d.Type], off)
		if d.Type == "done" {
			break
		}
		off = d.Next
	}
	for _, tc := range []struct {
		typ  string
		copy int
		want string
	}{
		{"header2", 1, "header2 section"},
		{"header", 0, "header section"},
		{"volume", 0, "volume section"},
		{"data", 0, "data section"},
		{"digest", 0, "digest section"},
		{"hash", 0, "hash section"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			b := bytes.Clone(orig)
			b[sections[tc.typ][tc.copy]+descriptorSize+20] ^= 0x01
			path := filepath.Join(t.TempDir(), "img.E01")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := Open(path)
			if err == nil {
				r.Close()
				t.Fatalf("Open accepted a damaged %s section", tc.typ)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v; want it to name the %s", err, tc.want)
			}
			rep, err := Check(path, nil)
			if err != nil || rep.OK() || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].Error(), tc.want) {
				t.Errorf("Check: %v, problems %v", err, rep.Problems)
			}
		})
	}
}
