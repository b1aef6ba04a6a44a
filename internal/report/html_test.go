package report

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// screenshotMap is a 4 GiB volume (8,192 slots, two per cell, 4,096
// cells in 32 rows): empty and full runs, half-full cells, changed cells
// and two partitions, so every kind of cell appears.
func screenshotMap(t *testing.T) (*BlockMap, *inspect.Layout) {
	t.Helper()
	m := NewBlockMap(8192)
	if m.Cells != 4096 || m.SlotsPerCell != 2 {
		t.Fatalf("4 GiB map: %d cells of %d", m.Cells, m.SlotsPerCell)
	}
	for i := int64(0); i < 8192; i++ {
		cell := i / 2
		row := cell / mapColumns
		var take bool
		switch {
		case row == 0 || row == 5 || row == 6: // full rows
			take = true
		case row == 10: // every cell half full
			take = i%2 == 0
		case row == 20: // alternating full and empty cells
			take = cell%2 == 0
		case row == 31:
			take = cell%mapColumns >= 100
		}
		if take {
			if err := m.Add(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.ChangedBase = "snap-0aaaaaaaaaaaaaaa0"
	for _, cell := range []int64{5*mapColumns + 7, 20*mapColumns + 64, 25*mapColumns + 3} {
		if err := m.AddChanged(cell * 2); err != nil {
			t.Fatal(err)
		}
	}
	const cellBytes = 2 * 524288
	l := &inspect.Layout{Size: 4 << 30, SectorSize: 512, Table: inspect.TableGPT, Partitions: []inspect.Partition{
		{Number: 1, Scheme: "gpt", TypeName: "Linux filesystem", Name: "root", Offset: 40 * cellBytes, Length: 300 * cellBytes},
		{Number: 2, Scheme: "gpt", TypeName: "Linux swap", Name: "swap", Offset: 1000 * cellBytes, Length: 1000 * cellBytes},
	}}
	return m, l
}

// TestHTMLScreenshot renders report.html in headless Chromium and reads
// the block map back from the screenshot's pixels: every cell's colour
// must say what the map says, the partition boundaries and strips must
// be where the layout puts them.
func TestHTMLScreenshot(t *testing.T) {
	chromium := testenv.RequireTool(t, "chromium")[0]
	m, l := screenshotMap(t)
	r := fixture(t)
	r.Evidence.VolumeSizeGiB = 4
	r.BlockMap, r.Layout = m, l
	dir := t.TempDir()
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--screenshot="+shot, "--window-size=1200,1600",
		"file://"+filepath.Join(dir, HTMLName))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}

	// Find cell 0: the first 4×4 square of one cell colour in reading
	// order is the top-left of its fully covered pixels.
	cellColors := []string{colorEmpty, colorFull, partialColor(0.5), colorChanged}
	ox, oy, found := 0, 0, false
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y-4 && !found; y++ {
		for x := b.Min.X; x < b.Max.X-4 && !found; x++ {
			for _, c := range cellColors {
				if uniform(img, x, y, 4, c) {
					ox, oy, found = x, y, true
					break
				}
			}
		}
	}
	if !found {
		t.Fatal("no block map cell in the screenshot")
	}
	// The centre of cell (row, col), from cell 0's first full pixel: the
	// cell is 6 pixels wide, so its middle is 2 or 3 pixels further.
	center := func(row, col int) (int, int) {
		return ox + 2 + col*mapPitchX, oy + 2 + row*mapPitchY
	}
	bad := 0
	for i := 0; i < m.Cells; i++ {
		row, col := i/mapColumns, i%mapColumns
		want := cellColor(m, i)
		if m.Changed[i] > 0 {
			want = colorChanged
		}
		x, y := center(row, col)
		if !near(img, x, y, want) {
			bad++
			if bad <= 10 {
				t.Errorf("cell %d (row %d, col %d, %d blocks): pixel (%d,%d) is %s, want %s",
					i, row, col, m.Allocated[i], x, y, hexColor(img, x, y), want)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d cells have the wrong colour", bad, m.Cells)
	}
	// Spot checks that do not lean on cellColor: data where the map says
	// data, none where it says none.
	for _, c := range []struct {
		row, col int
		want     string
	}{{0, 0, colorFull}, {0, 127, colorFull}, {1, 0, colorEmpty}, {10, 50, partialColor(0.5)},
		{20, 2, colorFull}, {20, 3, colorEmpty}, {31, 99, colorEmpty}, {31, 100, colorFull}, {5, 7, colorChanged}} {
		if x, y := center(c.row, c.col); !near(img, x, y, c.want) {
			t.Errorf("cell at row %d col %d is %s, want %s", c.row, c.col, hexColor(img, x, y), c.want)
		}
	}
	// Partition boundaries are red bars in the gap before the first cell
	// of a partition and after its last; other gaps stay white. Strips
	// under the cells show each partition's extent.
	spans := partitionSpans(m, l)
	for _, s := range spans {
		for _, c := range []int{s.first, s.end + 1} {
			x, y := center(c/mapColumns, c%mapColumns)
			if !near(img, x-4, y, colorBoundary) {
				t.Errorf("partition %d boundary before cell %d: pixel (%d,%d) is %s", s.number, c, x-4, y, hexColor(img, x-4, y))
			}
		}
		for _, c := range []int{s.first, (s.first + s.end) / 2, s.end} {
			x, y := center(c/mapColumns, c%mapColumns)
			if sy := y - 2 - mapCellTop + mapStripTop + 1; !near(img, x, sy, s.color) {
				t.Errorf("partition %d strip under cell %d: pixel (%d,%d) is %s, want %s", s.number, c, x, sy, hexColor(img, x, sy), s.color)
			}
		}
	}
	if x, y := center(3, 60); !near(img, x-4, y, "#ffffff") {
		t.Errorf("gap before cell (3, 60) is %s, want white", hexColor(img, x-4, y))
	}
	if x, y := center(25, 60); !near(img, x, y-2-mapCellTop+mapStripTop+1, "#ffffff") {
		t.Errorf("no partition under cell (25, 60), but its strip is %s", hexColor(img, x, y-2-mapCellTop+mapStripTop+1))
	}
}

// uniform reports whether the n×n square at (x, y) is all colour c.
func uniform(img image.Image, x, y, n int, c string) bool {
	for dy := 0; dy < n; dy++ {
		for dx := 0; dx < n; dx++ {
			if !near(img, x+dx, y+dy, c) {
				return false
			}
		}
	}
	return true
}

// near reports whether the pixel at (x, y) is within 3 of colour c in
// each channel.
func near(img image.Image, x, y int, c string) bool {
	want, err := strconv.ParseUint(strings.TrimPrefix(c, "#"), 16, 32)
	if err != nil {
		panic(err)
	}
	r, g, b, _ := img.At(x, y).RGBA()
	d := func(got uint32, want uint64) bool {
		diff := int(got>>8) - int(want&0xff)
		return diff >= -3 && diff <= 3
	}
	return d(r, want>>16) && d(g, want>>8) && d(b, want)
}

func hexColor(img image.Image, x, y int) string {
	r, g, b, _ := img.At(x, y).RGBA()
	return fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)
}

// TestHTMLSelfContained checks that the page loads nothing from anywhere
// and escapes what it shows.
func TestHTMLSelfContained(t *testing.T) {
	r := fixture(t)
	r.Case.Notes = `<script>alert("x")</script>`
	var page bytes.Buffer
	if err := r.HTML(&page); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	if strings.Contains(html, "<script") {
		t.Fatal("case notes were not escaped")
	}
	if !strings.Contains(html, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Fatal("escaped case notes are missing")
	}
	// The only URL is the SVG namespace; nothing is fetched.
	for _, m := range regexp.MustCompile(`(?i)(src|href)\s*=|url\(\s*['"]?[a-z]+:|@import`).FindAllString(html, -1) {
		t.Errorf("page refers outside itself: %q", m)
	}
	if n := strings.Count(html, "http"); n != strings.Count(html, `xmlns="http://www.w3.org/2000/svg"`)+1 { // +1: the endpoint in the acquisition table
		t.Errorf("%d mentions of http in the page", n)
	}
	for _, want := range []string{"<svg", "partition 1 evidence-ext4", "The snapshot is encrypted", "--passphrase &#39;[REDACTED]&#39;",
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "FAILED: 1 problems", "Name=web-1"} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(html, "hunter2") {
		t.Fatal("the page holds the passphrase")
	}
}

// TestMapSize checks that the largest volume draws in a bounded page.
func TestMapSize(t *testing.T) {
	const slots = 64 << 10 * 2048 // 64 TiB in 512 KiB blocks
	m := NewBlockMap(slots)
	if m.Cells != MaxCells || m.SlotsPerCell != 32768 {
		t.Fatalf("64 TiB: %d cells of %d slots", m.Cells, m.SlotsPerCell)
	}
	// Worst case: every cell partly allocated, each a different shade.
	for c := int64(0); c < int64(m.Cells); c++ {
		if err := m.Add(c*m.SlotsPerCell + c%7); err != nil {
			t.Fatal(err)
		}
	}
	svg := mapSVG(m, nil)
	if n := strings.Count(svg, "<rect"); n > m.Cells+2 {
		t.Fatalf("%d rectangles for %d cells", n, m.Cells)
	}
	if len(svg) > 400<<10 {
		t.Fatalf("SVG of %d bytes", len(svg))
	}
	// An empty volume is a few run rectangles.
	if svg := mapSVG(NewBlockMap(slots), nil); len(svg) > 8<<10 {
		t.Fatalf("empty 64 TiB map: SVG of %d bytes", len(svg))
	}
}
