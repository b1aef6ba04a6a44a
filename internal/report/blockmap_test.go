package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/manifest"
)

func TestNewBlockMap(t *testing.T) {
	for _, tc := range []struct {
		slots      int64
		per        int64
		cells      int
		lastFilled int64 // slots in the last cell
	}{
		{2048, 1, 2048, 1},                    // 1 GiB
		{4096, 1, 4096, 1},                    // 2 GiB: exactly MaxCells
		{6144, 2, 3072, 2},                    // 3 GiB
		{5 * 2048, 3, 3414, 1},                // 5 GiB: 10,240 slots in cells of 3
		{64 << 10 * 2048, 32768, 4096, 32768}, // 64 TiB
		{16384*2048 + 2048, 8193, 4096, 6145}, // 16 TiB + 1 GiB: the last cell is short
	} {
		m := NewBlockMap(tc.slots)
		if m.SlotsPerCell != tc.per || m.Cells != tc.cells || len(m.Allocated) != tc.cells || m.CellSlots(m.Cells-1) != tc.lastFilled {
			t.Errorf("NewBlockMap(%d): %d cells of %d, last %d; want %d of %d, last %d",
				tc.slots, m.Cells, m.SlotsPerCell, m.CellSlots(m.Cells-1), tc.cells, tc.per, tc.lastFilled)
		}
		if m.Cells > MaxCells || int64(m.Cells-1)*m.SlotsPerCell >= tc.slots || int64(m.Cells)*m.SlotsPerCell < tc.slots {
			t.Errorf("NewBlockMap(%d): %d cells of %d do not cover the volume exactly", tc.slots, m.Cells, m.SlotsPerCell)
		}
		if err := m.check(); err != nil {
			t.Errorf("NewBlockMap(%d): %v", tc.slots, err)
		}
	}
}

func TestBlockMapAdd(t *testing.T) {
	m := NewBlockMap(6144) // two slots a cell
	for _, i := range []int64{0, 1, 3, 6143} {
		if err := m.Add(i); err != nil {
			t.Fatal(err)
		}
	}
	if m.Allocated[0] != 2 || m.Allocated[1] != 1 || m.Allocated[3071] != 1 || m.AllocatedBlocks != 4 {
		t.Fatalf("counts %v… %v, total %d", m.Allocated[:3], m.Allocated[3071], m.AllocatedBlocks)
	}
	if m.Fill(0) != 1 || m.Fill(1) != 0.5 || m.Fill(2) != 0 {
		t.Fatalf("fills %v %v %v", m.Fill(0), m.Fill(1), m.Fill(2))
	}
	for _, tc := range []struct {
		index int64
		want  string
	}{
		{6143, "index 6143 after 6143: indexes must ascend"},
		{5, "index 5 after 6143"},
		{6144, "index 6144 outside the volume's 6144 slots"},
		{-1, "index -1 outside"},
	} {
		if err := m.Add(tc.index); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%d): %v, want %q", tc.index, err, tc.want)
		}
	}
	if m.Changed != nil {
		t.Fatal("changed counts before any change")
	}
	for _, i := range []int64{1, 2, 3} {
		if err := m.AddChanged(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.AddChanged(2); err == nil {
		t.Fatal("AddChanged accepted a descending index")
	}
	if m.Changed[0] != 1 || m.Changed[1] != 2 || m.ChangedBlocks != 3 || m.AllocatedBlocks != 4 {
		t.Fatalf("changed %v, %d blocks", m.Changed[:3], m.ChangedBlocks)
	}
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
}

func TestBlockMapFromManifest(t *testing.T) {
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{SnapshotID: testSnap, Region: "us-east-1", VolumeSizeGiB: 1,
		VolumeSizeBytes: 1 << 30, BlockSize: 524288, ToolVersion: "test", StartedAt: t0, FinishedAt: t0.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 1, 2, 1000, 2047} {
		if err := w.Add(manifest.Entry{Index: i, SHA256: strings.Repeat("ab", 32), Length: 524288, Name: "x", Size: 524288,
			StoredSHA256: strings.Repeat("ab", 32), Codec: "none", Encryption: "none"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	r, err := manifest.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	m := NewBlockMap(2048)
	if err := m.AddManifest(r); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(m.Allocated)
	if string(got) != `"1*3 0*997 1 0*1046 1"` || m.AllocatedBlocks != 5 {
		t.Fatalf("map of the manifest: %s, %d blocks", got, m.AllocatedBlocks)
	}
	// A manifest of another volume size stops at the first index past
	// the map.
	if r, err = manifest.NewReader(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := NewBlockMap(1024).AddManifest(r); err == nil || !strings.Contains(err.Error(), "index 2047 outside") {
		t.Fatalf("a smaller map took the manifest: %v", err)
	}
}

func TestCountsJSON(t *testing.T) {
	for _, tc := range []struct {
		c    Counts
		want string
	}{
		{Counts{}, `""`},
		{Counts{0}, `"0"`},
		{Counts{0, 0, 0, 5, 32768, 32768, 1}, `"0*3 5 32768*2 1"`},
		{Counts{1, 2, 3}, `"1 2 3"`},
	} {
		got, err := json.Marshal(tc.c)
		if err != nil || string(got) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.c, got, err, tc.want)
		}
		var back Counts
		if err := json.Unmarshal(got, &back); err != nil || len(back) != len(tc.c) {
			t.Errorf("Unmarshal(%s) = %v, %v", got, back, err)
		}
		for i := range back {
			if back[i] != tc.c[i] {
				t.Errorf("Unmarshal(%s)[%d] = %d, want %d", got, i, back[i], tc.c[i])
			}
		}
	}
	for _, bad := range []string{`"1*0"`, `"-1"`, `"x"`, `"1*"`, `"1*4097"`, `"0*4096 1"`, `3`, `"1**2"`} {
		var c Counts
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", bad, c)
		}
	}
}

// BenchmarkBlockMapAdd measures building the map of a 64 TiB volume,
// one block at a time, as acquire streams its manifest.
func BenchmarkBlockMapAdd(b *testing.B) {
	const slots = 64 << 10 * 2048
	b.ReportAllocs()
	for b.Loop() {
		m := NewBlockMap(slots)
		for i := int64(0); i < slots; i += 16 {
			if err := m.Add(i); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(slots/16), "blocks/op")
}

// BenchmarkHTML measures rendering the page of a 64 TiB volume whose
// every cell is a different shade: the largest block map there is.
func BenchmarkHTML(b *testing.B) {
	r := fixture(b)
	r.Evidence.VolumeSizeGiB = 64 << 10
	r.Layout = nil
	m := NewBlockMap(64 << 10 * 2048)
	for c := int64(0); c < int64(m.Cells); c++ {
		if err := m.Add(c*m.SlotsPerCell + c%4099); err != nil {
			b.Fatal(err)
		}
	}
	r.BlockMap = m
	var page bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		page.Reset()
		if err := r.HTML(&page); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(page.Len()), "page-bytes")
}
