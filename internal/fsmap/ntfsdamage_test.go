package fsmap

import (
	"bytes"
	"slices"
	"testing"
)

// TestNTFSDamageIsWarned damages one record of the crafted volume at a
// time: what internal/fsys/ntfs rejects outright becomes one warning here,
// and the rest of the record and the volume are still mapped.
func TestNTFSDamageIsWarned(t *testing.T) {
	at := func(r int) int { return craftMFT2*craftCluster + (r-16)*craftRecord }
	for _, tc := range []struct {
		name    string
		damage  func(v []byte)
		warning string
		check   func(t *testing.T, m *Map)
	}{
		{
			name:    "torn-record",
			damage:  func(v []byte) { v[at(21)+2*fixupStride-1] ^= 0xFF }, // sector 1's update sequence number
			warning: "ntfs: MFT record 21: update sequence mismatch in sector 1 (a torn write): corrupt file-system structure",
			check: func(t *testing.T, m *Map) {
				f, ok := m.Find("/sub/file2")
				if !ok || !covers(m, f, Data, craftFileData*craftCluster, 3*craftCluster) {
					t.Fatalf("the torn record's file is not mapped whole: %+v", m.Owners())
				}
			},
		},
		{
			name: "bad-run-list",
			damage: func(v []byte) {
				// The run list of record 21's $DATA, after its $FILE_NAME: a
				// run of 3 clusters at LCN 400 becomes one at LCN 2^15-1.
				r := record(1, recFlagInUse, 0, fileName(22, 2, "file2"), nonResident(attrData, 0, 2, 1500, runOf(3, 0x7FFF)))
				copy(v[at(21):], r)
			},
			warning: "ntfs: MFT record 21: attribute at byte 160: type 0x80: run list: LCN delta 32767 past the volume's 511 clusters: corrupt file-system structure",
			check: func(t *testing.T, m *Map) {
				f, ok := m.Find("/sub/file2")
				if !ok {
					t.Fatalf("the file of a record with a bad run list is not named: %+v", m.Owners())
				}
				if got := m.Lookup(craftFileData*craftCluster, 3*craftCluster); len(got) != 0 {
					t.Fatalf("clusters mapped from a bad run list: %+v", got)
				}
				if !covers(m, f, Data, int64(at(23))+88, int64(len("stream"))) { // record 23's "ads" value: after 0x38 bytes of record header and 32 of attribute header
					t.Fatalf("the named stream in its extension record is not mapped: %+v", m.ExtentsOf(f))
				}
				if !covers(m, f, Metadata, int64(at(21)), craftRecord) {
					t.Fatalf("the record is not its file's metadata: %+v", m.Lookup(int64(at(21)), craftRecord))
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := craftNTFS()
			tc.damage(v)
			m, err := Build(bytes.NewReader(v), int64(len(v)), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(m.Warnings, []string{tc.warning}) {
				t.Fatalf("warnings %q, want %q", m.Warnings, tc.warning)
			}
			if _, ok := m.Find("/frag.txt"); !ok {
				t.Fatal("the rest of the volume is not mapped")
			}
			tc.check(t, m)
		})
	}
}
