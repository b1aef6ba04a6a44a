package fsmap

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// ntfsImage builds an NTFS volume with mkntfs and ntfscp: a resident
// file, non-resident ones and an empty one.
func ntfsImage(t *testing.T, sizeMiB int64, cluster string) string {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "ntfs.img")
	truncate(t, img, sizeMiB<<20)
	run(t, "mkntfs", "-F", "-f", "-q", "-T", "-s", "512", "-c", cluster, "-L", "FSMAP", img)
	files := map[string][]byte{
		"small.txt": []byte("resident data\n"),
		"big.bin":   pattern(600<<10, 3),
		"mid.bin":   pattern(5000, 4),
		"empty.txt": nil,
	}
	for name, data := range files {
		src := filepath.Join(dir, name)
		writeFile(t, src, data)
		run(t, "ntfscp", "-f", img, src, name)
	}
	return img
}

var (
	istatData = regexp.MustCompile(`(?s)Type: \$DATA \(128-\d+\)\s+Name: N/A\s+(Resident|Non-Resident)[^\n]*\n(.*?)(?:\nType:|\n\n|$)`)
)

// istatClusters returns the clusters istat lists for a record's unnamed
// $DATA, or resident=true.
func istatClusters(t *testing.T, img string, rec uint64) (map[int64]bool, bool) {
	t.Helper()
	m := istatData.FindStringSubmatch(run(t, "istat", img, strconv.FormatUint(rec, 10)))
	if m == nil {
		t.Fatalf("istat %d: no $DATA attribute", rec)
	}
	if m[1] == "Resident" {
		return nil, true
	}
	return numbers(m[2]), false
}

func TestNTFSMatchesSleuthKit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sizeMiB int64
		cluster string
	}{
		{"4k-clusters", 16, "4096"},
		{"512-byte-clusters", 8, "512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := ntfsImage(t, tc.sizeMiB, tc.cluster)
			m := buildFile(t, img)
			unit, _ := strconv.ParseInt(tc.cluster, 10, 64)
			if m.Type != "ntfs" || m.Unit != unit || m.Size != tc.sizeMiB<<20 || len(m.Warnings) != 0 {
				t.Fatalf("type %s, unit %d, size %d, warnings %v", m.Type, m.Unit, m.Size, m.Warnings)
			}
			boot := make([]byte, 512)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.ReadAt(boot, 0); err != nil {
				t.Fatal(err)
			}
			mftOff := int64(binary.LittleEndian.Uint64(boot[0x30:])) * unit // mkntfs writes the MFT contiguously

			for _, e := range fls(t, img) {
				owner, o := ownerByID(t, m, e.id)
				switch {
				case strings.HasPrefix(e.path, "/$"):
					if o.Kind != KindStructure || o.Name != strings.TrimPrefix(e.path, "/") {
						t.Errorf("record %d: %+v, fls says %s", e.id, o, e.path)
					}
					continue
				case o.Name != e.path || o.Kind == KindStructure:
					t.Errorf("record %d named %q (%s), fls says %s", e.id, o.Name, o.Kind, e.path)
				}
				recOff := mftOff + int64(e.id)*1024
				if !covers(m, owner, Metadata, recOff, 0x38) {
					t.Errorf("%s: record at %d is not its metadata: %+v", e.path, recOff, m.Lookup(recOff, 1024))
				}
				want, resident := istatClusters(t, img, e.id)
				data := int64(0)
				for _, x := range m.ExtentsOf(owner) {
					if x.Role == Data {
						data += x.Len
					}
				}
				switch {
				case resident:
					// The resident value lies inside the record.
					inRecord := int64(0)
					for _, x := range m.Lookup(recOff, 1024) {
						if x.Owner == owner && x.Role == Data {
							inRecord += x.Len
						}
					}
					if inRecord != data {
						t.Errorf("%s: resident data %d bytes, %d of them in its record", e.path, data, inRecord)
					}
					if e.path == "/small.txt" && data != int64(len("resident data\n")) {
						t.Errorf("%s: %d bytes of resident data", e.path, data)
					}
				case o.Kind == KindFile:
					if got := units(m, owner, Data); !sameSet(got, want) {
						t.Errorf("%s: %d data clusters, istat lists %d", e.path, len(got), len(want))
					}
				}
			}
			// The log and the MFT's free records are structures.
			lf, ok := m.Find("$LogFile")
			logClusters, _ := istatClusters(t, img, 2)
			got := wholeUnits(m, lf, Metadata)
			for off := mftOff + 2*1024; off < mftOff+3*1024; off += unit {
				delete(got, off/unit) // its MFT record, when clusters are smaller than records
			}
			if !ok || !sameSet(got, logClusters) {
				t.Errorf("$LogFile clusters differ from istat's")
			}
			mft, _ := m.Find("$MFT")
			if !covers(m, mft, Metadata, mftOff+16*1024, 1024) {
				t.Errorf("free record 16 is not the $MFT's: %+v", m.Lookup(mftOff+16*1024, 1024))
			}
		})
	}
}

// TestNTFSResidentDataSkipsFixups checks that the update sequence slots
// inside a resident value are the record's metadata, not the file's data.
func TestNTFSResidentDataSkipsFixups(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "ntfs.img")
	truncate(t, img, 8<<20)
	run(t, "mkntfs", "-F", "-f", "-q", "-T", "-s", "512", "-c", "4096", img)
	src := filepath.Join(dir, "spans.txt")
	writeFile(t, src, pattern(600, 5)) // resident, and longer than the rest of the first 512 bytes
	run(t, "ntfscp", img, src, "spans.txt")
	m := buildFile(t, img)
	i, ok := m.Find("/spans.txt")
	if !ok {
		t.Fatal("spans.txt not mapped")
	}
	var data int64
	var pieces []Extent
	for _, e := range m.ExtentsOf(i) {
		if e.Role == Data {
			data += e.Len
			pieces = append(pieces, e)
		}
	}
	if data != 598 || len(pieces) != 2 || pieces[0].End()%512 != 510 || pieces[1].Off != pieces[0].End()+2 {
		t.Fatalf("resident value of 600 bytes across a sector end: data pieces %+v", pieces)
	}
}
