package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/inspect"
)

//go:embed report.html.tmpl
var pageSource string

var page = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"timeText":     timeText,
	"bytesText":    bytesText,
	"durationText": durationText,
	"shellJoin":    shellJoin,
	"countsText":   countsText,
	"callText":     func(c Call) string { return callText(&c) },
	"replacedText": replacedText,
	"callFor":      func(calls []Call, api string) string { return callText(findCall(calls, api)) },
	"orNone":       orNone,
	"add1":         func(i int) int { return i + 1 },
	"problems":     func(v *Verify) int64 { return int64(len(v.Problems)) + v.MoreProblems },
	"fsSummary":    fsSummary,
	"rate":         func(bps float64) string { return shortBytes(int64(bps)) + "/s" },
	"hashRows":     hashRows,
	"failedText": func(a *Acquisition) string {
		return plural(int64(len(a.FailedBlocks))+a.FailedBlocksUnlisted, "block")
	},
	"percent": func(n, of int64) string {
		if of == 0 {
			return "0.00"
		}
		return fmt.Sprintf("%.2f", 100*float64(n)/float64(of))
	},
}).Parse(pageSource))

type row struct{ Label, Value string }

// hashRows lists an image's files and hashes as the text report does.
func hashRows(what string, files []string, hashes map[string]string) []row {
	var rows []row
	for i, f := range files {
		label := ""
		if i == 0 {
			label = what + " files"
			if len(files) == 1 {
				label = what + " file"
			}
		}
		rows = append(rows, row{label, f})
	}
	for _, alg := range hashOrder(hashes) {
		rows = append(rows, row{hashName(alg), hashes[alg]})
	}
	return rows
}

// HTML writes report.html: one self-contained printable page, with the
// block map drawn as inline SVG.
func (r *Report) HTML(w io.Writer) error {
	r.derive()
	data := struct {
		*Report
		Map    template.HTML
		Legend []legendItem
		Cell   string
	}{Report: r}
	if r.BlockMap != nil {
		data.Map = template.HTML(mapSVG(r.BlockMap, r.Layout)) //nolint:gosec // built from numbers and escaped names only
		data.Legend = legend(r.BlockMap, r.Layout)
		m := r.BlockMap
		data.Cell = fmt.Sprintf("%d block(s), %s", m.SlotsPerCell, shortBytes(m.SlotsPerCell*block.Size))
	}
	if err := page.Execute(w, data); err != nil {
		return fmt.Errorf("rendering %s: %w", HTMLName, err)
	}
	return nil
}

// fsSummary is a partition's file system in a few words.
func fsSummary(fs *inspect.FileSystem) string {
	if fs == nil {
		return ""
	}
	parts := []string{fs.Type}
	if fs.Label != "" {
		parts = append(parts, fmt.Sprintf("label %q", fs.Label))
	}
	if fs.UUID != "" {
		parts = append(parts, "UUID "+fs.UUID)
	}
	if fs.Serial != "" {
		parts = append(parts, "serial "+fs.Serial)
	}
	if fs.Size != 0 {
		parts = append(parts, shortBytes(fs.Size))
	}
	return strings.Join(parts, ", ")
}

// Block map geometry, in CSS pixels: a cell is a 6×6 square every 8
// pixels across, on rows 12 pixels apart; above each cell row is a band
// of 2 pixels and below it the partition strip. Partition boundaries are
// drawn in the 2-pixel gap before a cell, across the whole row.
const (
	mapColumns  = 128 // cells per row: 2,048 cells (a 1 GiB volume) make 16 rows
	mapPitchX   = 8
	mapCellSize = 6
	mapPitchY   = 12
	mapCellTop  = 2 // cell offset in its row
	mapStripTop = 9 // partition strip offset in its row
	mapStripH   = 2
	mapLabelW   = 64 // room for the row offset labels
)

// Block map colours. They appear nowhere else on the page, so a test can
// find the map in a screenshot by them.
const (
	colorEmpty    = "#e9e4d8" // no listed block: zeros
	colorFull     = "#0f3d80" // every slot listed
	colorChanged  = "#f08c00"
	colorBoundary = "#d62728"
)

// partialColor shades a partly allocated cell from a pale blue (one block
// of many) to a mid blue (nearly full), distinct from colorFull.
func partialColor(f float64) string {
	lo := [3]float64{0xb8, 0xd0, 0xf2}
	hi := [3]float64{0x3a, 0x6c, 0xc0}
	var c [3]int
	for i := range c {
		c[i] = int(lo[i] + (hi[i]-lo[i])*f + 0.5)
	}
	return fmt.Sprintf("#%02x%02x%02x", c[0], c[1], c[2])
}

// cellColor is the fill of cell i.
func cellColor(m *BlockMap, i int) string {
	switch n := m.Allocated[i]; {
	case n == 0:
		return colorEmpty
	case n == m.CellSlots(i):
		return colorFull
	default:
		return partialColor(m.Fill(i))
	}
}

// partitionColors tell partitions apart in the strip under the cells.
var partitionColors = []string{"#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"}

type span struct {
	number     int
	name       string
	first, end int // cells [first, end]
	color      string
}

// partitionSpans maps each partition of the layout to the cells it
// covers.
func partitionSpans(m *BlockMap, l *inspect.Layout) []span {
	if l == nil {
		return nil
	}
	var out []span
	for i, p := range l.Partitions {
		if p.Length <= 0 || p.Offset < 0 || p.Role == "extended" {
			continue
		}
		first := p.Offset / block.Size / m.SlotsPerCell
		last := (p.Offset + p.Length - 1) / block.Size / m.SlotsPerCell
		if first >= int64(m.Cells) {
			continue
		}
		last = min(last, int64(m.Cells-1))
		name := p.Name
		if name == "" {
			name = p.TypeName
		}
		out = append(out, span{number: p.Number, name: name, first: int(first), end: int(last),
			color: partitionColors[i%len(partitionColors)]})
	}
	return out
}

// mapSVG draws the block map: a grid of cells shaded by how much of each
// is allocated, changed cells marked, partition extents in a strip under
// the cells and their boundaries as red bars. Runs of empty or full cells
// in a row are one rectangle filled with a pattern of cells, so a mostly
// empty or mostly full volume makes a small page.
func mapSVG(m *BlockMap, l *inspect.Layout) string {
	cols := min(mapColumns, max(1, m.Cells))
	rows := (m.Cells + cols - 1) / cols
	width := mapLabelW + cols*mapPitchX
	height := rows * mapPitchY
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="blockmap" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="block map">`,
		width, height, width, height)
	b.WriteString(`<defs>`)
	for _, p := range []struct{ id, color string }{{"e", colorEmpty}, {"f", colorFull}} {
		fmt.Fprintf(&b, `<pattern id="cell-%s" x="%d" y="%d" width="%d" height="%d" patternUnits="userSpaceOnUse"><rect width="%d" height="%d" fill="%s"/></pattern>`,
			p.id, mapLabelW, mapCellTop, mapPitchX, mapPitchY, mapCellSize, mapCellSize, p.color)
	}
	b.WriteString(`</defs>`)
	cellBytes := m.SlotsPerCell * block.Size
	for row := range rows {
		y := row * mapPitchY
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="off">%s</text>`, mapLabelW-6, y+mapCellTop+mapCellSize, shortBytes(int64(row*cols)*cellBytes))
		start, end := row*cols, min(m.Cells, (row+1)*cols)
		for i := start; i < end; {
			x := mapLabelW + (i-start)*mapPitchX
			n := m.Allocated[i]
			if n == 0 || n == m.CellSlots(i) {
				j := i + 1
				for j < end && m.Allocated[j] == n && (n == 0 || m.Allocated[j] == m.CellSlots(j)) {
					j++
				}
				id := "e"
				if n != 0 {
					id = "f"
				}
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="url(#cell-%s)"/>`,
					x, y+mapCellTop, (j-i)*mapPitchX, mapCellSize, id)
				i = j
				continue
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, x, y+mapCellTop, mapCellSize, mapCellSize, cellColor(m, i))
			i++
		}
		if m.Changed != nil {
			for i := start; i < end; i++ {
				if m.Changed[i] > 0 {
					x := mapLabelW + (i-start)*mapPitchX
					fmt.Fprintf(&b, `<rect x="%d" y="%d" width="4" height="4" fill="%s"/>`, x+1, y+mapCellTop+1, colorChanged)
				}
			}
		}
	}
	for _, s := range partitionSpans(m, l) {
		for row := s.first / cols; row <= s.end/cols; row++ {
			a, z := max(s.first, row*cols), min(s.end, row*cols+cols-1)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>partition %d %s</title></rect>`,
				mapLabelW+(a-row*cols)*mapPitchX, row*mapPitchY+mapStripTop, (z-a)*mapPitchX+mapCellSize, mapStripH, s.color,
				s.number, template.HTMLEscapeString(s.name))
		}
		for _, c := range []int{s.first, s.end + 1} {
			row, col := c/cols, c%cols
			if c == m.Cells && col == 0 { // the end of the last row
				row, col = rows-1, cols
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="2" height="%d" fill="%s"/>`,
				mapLabelW+col*mapPitchX-2, row*mapPitchY, mapPitchY, colorBoundary)
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

type legendItem struct {
	Color, Text string
}

func legend(m *BlockMap, l *inspect.Layout) []legendItem {
	items := []legendItem{
		{colorEmpty, "no listed block (zeros)"},
		{partialColor(0), "some blocks listed"},
		{partialColor(1), "most blocks listed"},
		{colorFull, "every block listed"},
	}
	if m.Changed != nil {
		items = append(items, legendItem{colorChanged, "changed since " + orNone(m.ChangedBase)})
	}
	if spans := partitionSpans(m, l); len(spans) > 0 {
		items = append(items, legendItem{colorBoundary, "partition boundary"})
		for _, s := range spans {
			items = append(items, legendItem{s.color, fmt.Sprintf("partition %d: %s", s.number, s.name)})
		}
	}
	return items
}
