package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// LVM2 on-disk structures, from LVM2's lib/label/label.h,
// lib/format_text/layout.h and lib/format_text/format-text.c, and the
// text metadata format of lib/format_text/import_vsn1.c.
const (
	lvmLabelID     = "LABELONE"
	lvmLabelType   = "LVM2 001"
	lvmScanSectors = 4   // the label is in one of the first four sectors
	lvmSector      = 512 // PV offsets in the metadata count 512-byte sectors
	lvmMDAMagic    = " LVM2 x[5A%r0N*>"
	lvmMDAHeader   = 512 // mda_header size; the circular buffer starts after it
	lvmRawLocnSize = 24  // offset, size, checksum, flags
	lvmLocnIgnored = 1   // RAW_LOCN_IGNORED
	// lvmMaxAreas bounds the data and metadata area lists of a PV header
	// (LVM2 writes one data area and at most two metadata areas).
	lvmMaxAreas = 8
	// lvmMaxText bounds the metadata text read (LVM2's default area is
	// 1 MiB; a VG with thousands of LVs stays well under this).
	lvmMaxText = 16 << 20
	// lvmMaxDepth and lvmMaxItems bound the text parser.
	lvmMaxDepth = 32
	lvmMaxItems = 1 << 20
	// lvmMaxSegments bounds one LV's segments.
	lvmMaxSegments = 1 << 16
)

// lvmCRC is LVM2's checksum (lib/misc/crc.c): the reflected CRC-32
// polynomial 0xEDB88320 (IEEE's) started from crc, with no final
// inversion. crc32.Update inverts before and after, so the inversions
// are undone around it.
func lvmCRC(crc uint32, b []byte) uint32 {
	return ^crc32.Update(^crc, crc32.IEEETable, b)
}

const lvmInitialCRC = 0xf597a6cf

func lvmCorrupt(format string, args ...any) error {
	return fmt.Errorf("lvm2: "+format+": %w", append(args, fsys.ErrCorrupt)...)
}

// pvLabel is what an LVM2 physical volume's label says.
type pvLabel struct {
	uuid string    // 32 characters, without the dashes LVM2 prints
	mdas []lvmArea // metadata areas, bytes from the PV's start
	data []lvmArea // data areas
}

type lvmArea struct{ offset, size uint64 }

// readPVLabel reads the label and PV header of the PV at r (size bytes).
func readPVLabel(r io.ReaderAt, size int64) (pvLabel, error) {
	head := make([]byte, lvmScanSectors*lvmSector)
	if n, err := r.ReadAt(head, 0); n < len(head) {
		if err == nil || errors.Is(err, io.EOF) {
			return pvLabel{}, lvmCorrupt("label: volume of %d bytes too short", size)
		}
		return pvLabel{}, fmt.Errorf("lvm2: reading label: %w", err)
	}
	for s := range lvmScanSectors {
		sec := head[s*lvmSector : (s+1)*lvmSector]
		if string(sec[:8]) != lvmLabelID || string(sec[24:32]) != lvmLabelType {
			continue
		}
		if binary.LittleEndian.Uint64(sec[8:]) != uint64(s) {
			return pvLabel{}, lvmCorrupt("label in sector %d says sector %d", s, binary.LittleEndian.Uint64(sec[8:]))
		}
		if got, want := lvmCRC(lvmInitialCRC, sec[20:]), binary.LittleEndian.Uint32(sec[16:]); got != want {
			return pvLabel{}, lvmCorrupt("label in sector %d: CRC 0x%08x, stored 0x%08x", s, got, want)
		}
		off := int(binary.LittleEndian.Uint32(sec[20:]))
		if off < 32 || off+32+8+16 > lvmSector {
			return pvLabel{}, lvmCorrupt("label in sector %d: PV header at %d", s, off)
		}
		ph := sec[off:]
		l := pvLabel{uuid: string(ph[:32])}
		pos := 40
		for _, list := range []*[]lvmArea{&l.data, &l.mdas} {
			for {
				if pos+16 > len(ph) {
					return pvLabel{}, lvmCorrupt("PV header: area list runs past the label sector")
				}
				a := lvmArea{binary.LittleEndian.Uint64(ph[pos:]), binary.LittleEndian.Uint64(ph[pos+8:])}
				pos += 16
				if a.offset == 0 && a.size == 0 {
					break
				}
				if len(*list) == lvmMaxAreas {
					return pvLabel{}, lvmCorrupt("PV header: more than %d areas", lvmMaxAreas)
				}
				*list = append(*list, a)
			}
		}
		return l, nil
	}
	return pvLabel{}, lvmCorrupt("no LABELONE label in the first %d sectors", lvmScanSectors)
}

// readVGText returns the newest VG metadata text of the PV at r: the
// first metadata area whose header and text check.
func readVGText(r io.ReaderAt, size int64, l pvLabel) (string, error) {
	if len(l.mdas) == 0 {
		return "", fmt.Errorf("lvm2: PV %s has no metadata area (pvcreate --metadatacopies 0): its VG is described on another PV: %w", l.uuid, fsys.ErrUnsupported)
	}
	var errs []error
	for _, a := range l.mdas {
		text, err := readMDA(r, size, a)
		if err == nil {
			return text, nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

func readMDA(r io.ReaderAt, size int64, a lvmArea) (string, error) {
	if a.size < lvmMDAHeader || a.offset > uint64(size) || a.size > uint64(size)-a.offset {
		return "", lvmCorrupt("metadata area at %d of %d bytes: outside the %d-byte PV", a.offset, a.size, size)
	}
	h := make([]byte, lvmMDAHeader)
	if _, err := r.ReadAt(h, int64(a.offset)); err != nil {
		return "", fmt.Errorf("lvm2: reading metadata area header at %d: %w", a.offset, err)
	}
	if string(h[4:20]) != lvmMDAMagic {
		return "", lvmCorrupt("metadata area header at %d: bad magic", a.offset)
	}
	if got, want := lvmCRC(lvmInitialCRC, h[4:]), binary.LittleEndian.Uint32(h); got != want {
		return "", lvmCorrupt("metadata area header at %d: CRC 0x%08x, stored 0x%08x", a.offset, got, want)
	}
	if v := binary.LittleEndian.Uint32(h[20:]); v != 1 {
		return "", fmt.Errorf("lvm2: metadata area header at %d: version %d: %w", a.offset, v, fsys.ErrUnsupported)
	}
	start, mdaSize := binary.LittleEndian.Uint64(h[24:]), binary.LittleEndian.Uint64(h[32:])
	if start != a.offset || mdaSize != a.size {
		return "", lvmCorrupt("metadata area header at %d says it is at %d, %d bytes (the label says %d)", a.offset, start, mdaSize, a.size)
	}
	// The first raw location is the committed metadata.
	loc := h[40 : 40+lvmRawLocnSize]
	off, n := binary.LittleEndian.Uint64(loc), binary.LittleEndian.Uint64(loc[8:])
	sum, flags := binary.LittleEndian.Uint32(loc[16:]), binary.LittleEndian.Uint32(loc[20:])
	if flags&lvmLocnIgnored != 0 || n == 0 {
		return "", lvmCorrupt("metadata area at %d: holds no metadata", a.offset)
	}
	ring := mdaSize - lvmMDAHeader
	if off < lvmMDAHeader || off >= mdaSize || n > ring || n > lvmMaxText {
		return "", lvmCorrupt("metadata area at %d: text at %d of %d bytes does not fit its %d bytes", a.offset, off, n, mdaSize)
	}
	text := make([]byte, n)
	first := min(n, mdaSize-off) // the text wraps to the ring's start
	if _, err := r.ReadAt(text[:first], int64(start+off)); err != nil {
		return "", fmt.Errorf("lvm2: reading metadata text at %d: %w", start+off, err)
	}
	if first < n {
		if _, err := r.ReadAt(text[first:], int64(start+lvmMDAHeader)); err != nil {
			return "", fmt.Errorf("lvm2: reading metadata text at %d: %w", start+lvmMDAHeader, err)
		}
	}
	if got := lvmCRC(lvmInitialCRC, text); got != sum {
		return "", lvmCorrupt("metadata text at %d: CRC 0x%08x, stored 0x%08x", start+off, got, sum)
	}
	return string(bytes.TrimRight(text, "\x00")), nil
}

// lvmNode is a section or a value of the metadata text.
type lvmNode struct {
	name  string
	str   string
	num   int64
	isNum bool
	list  []lvmNode
	items []lvmNode // a section's contents, in order
	isSec bool
}

func (n *lvmNode) get(name string) *lvmNode {
	for i := range n.items {
		if n.items[i].name == name {
			return &n.items[i]
		}
	}
	return nil
}

func (n *lvmNode) section(name string) *lvmNode {
	if c := n.get(name); c != nil && c.isSec {
		return c
	}
	return nil
}

func (n *lvmNode) int(name string) (int64, bool) {
	c := n.get(name)
	if c == nil || !c.isNum {
		return 0, false
	}
	return c.num, true
}

func (n *lvmNode) string(name string) string {
	if c := n.get(name); c != nil && !c.isNum && !c.isSec && c.list == nil {
		return c.str
	}
	return ""
}

// hasFlag reports whether the list value name (status, flags) holds f.
func (n *lvmNode) hasFlag(name, f string) bool {
	c := n.get(name)
	if c == nil {
		return false
	}
	for _, v := range c.list {
		if !v.isNum && v.str == f {
			return true
		}
	}
	return false
}

// lvmParser reads the text format: sections `name { … }`, values
// `name = "string" | number | [ values ]`, and # comments.
type lvmParser struct {
	s     string
	pos   int
	items int
}

func parseLVMText(s string) (*lvmNode, error) {
	p := &lvmParser{s: s}
	root := &lvmNode{isSec: true}
	if err := p.body(root, 0); err != nil {
		return nil, err
	}
	if p.pos < len(p.s) {
		return nil, lvmCorrupt("metadata text: unexpected %q at byte %d", p.s[p.pos], p.pos)
	}
	return root, nil
}

func (p *lvmParser) skip() {
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; {
		case c == '#':
			for p.pos < len(p.s) && p.s[p.pos] != '\n' {
				p.pos++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0:
			p.pos++
		default:
			return
		}
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '+' || c == '-'
}

func (p *lvmParser) word() string {
	start := p.pos
	for p.pos < len(p.s) && isWordByte(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// body parses items until a closing brace (depth > 0) or the end.
func (p *lvmParser) body(sec *lvmNode, depth int) error {
	if depth > lvmMaxDepth {
		return lvmCorrupt("metadata text: sections nested deeper than %d", lvmMaxDepth)
	}
	for {
		p.skip()
		if p.pos >= len(p.s) {
			if depth > 0 {
				return lvmCorrupt("metadata text: section %q not closed", sec.name)
			}
			return nil
		}
		if p.s[p.pos] == '}' {
			if depth == 0 {
				return nil // the caller reports the stray brace
			}
			p.pos++
			return nil
		}
		if p.items++; p.items > lvmMaxItems {
			return lvmCorrupt("metadata text: more than %d items", lvmMaxItems)
		}
		name := p.word()
		if name == "" {
			return lvmCorrupt("metadata text: unexpected %q at byte %d", p.s[p.pos], p.pos)
		}
		p.skip()
		if p.pos >= len(p.s) {
			return lvmCorrupt("metadata text: %q ends the text", name)
		}
		switch p.s[p.pos] {
		case '{':
			p.pos++
			child := lvmNode{name: name, isSec: true}
			if err := p.body(&child, depth+1); err != nil {
				return err
			}
			sec.items = append(sec.items, child)
		case '=':
			p.pos++
			v, err := p.value(0)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			v.name = name
			sec.items = append(sec.items, v)
		default:
			return lvmCorrupt("metadata text: unexpected %q after %q at byte %d", p.s[p.pos], name, p.pos)
		}
	}
}

func (p *lvmParser) value(depth int) (lvmNode, error) {
	p.skip()
	if p.pos >= len(p.s) {
		return lvmNode{}, lvmCorrupt("metadata text: value missing at the end")
	}
	switch c := p.s[p.pos]; {
	case c == '"':
		p.pos++
		var b strings.Builder
		for {
			if p.pos >= len(p.s) {
				return lvmNode{}, lvmCorrupt("metadata text: string not closed")
			}
			c := p.s[p.pos]
			p.pos++
			if c == '"' {
				return lvmNode{str: b.String()}, nil
			}
			if c == '\\' && p.pos < len(p.s) {
				c = p.s[p.pos]
				p.pos++
			}
			b.WriteByte(c)
		}
	case c == '[':
		if depth > 0 {
			return lvmNode{}, lvmCorrupt("metadata text: nested list at byte %d", p.pos)
		}
		p.pos++
		list := []lvmNode{}
		for {
			p.skip()
			if p.pos < len(p.s) && p.s[p.pos] == ']' {
				p.pos++
				return lvmNode{list: list}, nil
			}
			if len(list) > 0 {
				if p.pos >= len(p.s) || p.s[p.pos] != ',' {
					return lvmNode{}, lvmCorrupt("metadata text: list needs a comma at byte %d", p.pos)
				}
				p.pos++
			}
			if p.items++; p.items > lvmMaxItems {
				return lvmNode{}, lvmCorrupt("metadata text: more than %d items", lvmMaxItems)
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return lvmNode{}, err
			}
			list = append(list, v)
		}
	case c == '-' || c >= '0' && c <= '9':
		w := p.word()
		if n, err := strconv.ParseInt(w, 10, 64); err == nil {
			return lvmNode{num: n, isNum: true}, nil
		}
		return lvmNode{str: w}, nil // a float or other word: kept as text
	}
	return lvmNode{}, lvmCorrupt("metadata text: unexpected %q at byte %d", p.s[p.pos], p.pos)
}

// pvOnDisk is a physical volume found on the disk: a partition (or the
// bare volume) with an LVM2 label.
type pvOnDisk struct {
	part   string // the part holding it
	offset int64  // on the disk
	length int64
	label  pvLabel
	text   string
	err    error
}

// lvmVG is a volume group's metadata, as parsed.
type lvmVG struct {
	name       string
	id         string
	seqno      int64
	extentSize int64 // bytes
	pvs        map[string]lvmPV
	lvs        []lvmLV
}

type lvmPV struct {
	id      string // without dashes
	peStart int64  // bytes
	peCount int64
}

type lvmLV struct {
	name string
	segs []lvmSeg
	// unsupported says why the LV cannot be read (a segment type other
	// than linear), or "".
	unsupported string
}

type lvmSeg struct {
	startExtent, extentCount int64
	pv                       string // the PV's name in the VG metadata ("pv0")
	pvExtent                 int64
}

// parseVG parses a PV's metadata text into its volume group.
func parseVG(text string) (*lvmVG, error) {
	root, err := parseLVMText(text)
	if err != nil {
		return nil, err
	}
	var sec *lvmNode
	for i := range root.items {
		if root.items[i].isSec {
			if sec != nil {
				return nil, lvmCorrupt("metadata text: more than one volume group")
			}
			sec = &root.items[i]
		}
	}
	if sec == nil {
		return nil, lvmCorrupt("metadata text: no volume group")
	}
	vg := &lvmVG{name: sec.name, id: sec.string("id"), pvs: map[string]lvmPV{}}
	vg.seqno, _ = sec.int("seqno")
	es, ok := sec.int("extent_size")
	if !ok || es <= 0 || es > 1<<32 {
		return nil, lvmCorrupt("VG %s: extent_size %d", vg.name, es)
	}
	vg.extentSize = es * lvmSector
	if pvs := sec.section("physical_volumes"); pvs != nil {
		for _, n := range pvs.items {
			if !n.isSec {
				continue
			}
			start, ok1 := n.int("pe_start")
			count, ok2 := n.int("pe_count")
			if !ok1 || !ok2 || start < 0 || start > 1<<40 || count < 0 || count > 1<<40 {
				return nil, lvmCorrupt("VG %s: PV %s: pe_start %d, pe_count %d", vg.name, n.name, start, count)
			}
			vg.pvs[n.name] = lvmPV{id: strings.ReplaceAll(n.string("id"), "-", ""), peStart: start * lvmSector, peCount: count}
		}
	}
	lvs := sec.section("logical_volumes")
	if lvs == nil {
		return vg, nil
	}
	for _, n := range lvs.items {
		if !n.isSec || !n.hasFlag("status", "VISIBLE") {
			continue // internal LVs (a thin pool's data, mirror legs) are not listed
		}
		lv, err := parseLV(vg, &n)
		if err != nil {
			return nil, err
		}
		vg.lvs = append(vg.lvs, lv)
	}
	return vg, nil
}

func parseLV(vg *lvmVG, n *lvmNode) (lvmLV, error) {
	lv := lvmLV{name: n.name}
	bad := func(format string, args ...any) error {
		return lvmCorrupt("LV %s/%s: "+format, append([]any{vg.name, lv.name}, args...)...)
	}
	for _, s := range n.items {
		if !s.isSec || !strings.HasPrefix(s.name, "segment") {
			continue
		}
		if len(lv.segs) == lvmMaxSegments {
			return lv, bad("more than %d segments", lvmMaxSegments)
		}
		start, ok1 := s.int("start_extent")
		count, ok2 := s.int("extent_count")
		if !ok1 || !ok2 || start < 0 || count <= 0 || start > 1<<40 || count > 1<<40 {
			return lv, bad("%s: start_extent %d, extent_count %d", s.name, start, count)
		}
		typ := s.string("type")
		stripes, _ := s.int("stripe_count")
		list := s.get("stripes")
		if (typ != "striped" && typ != "linear") || stripes != 1 || list == nil || len(list.list) != 2 {
			if lv.unsupported == "" {
				lv.unsupported = fmt.Sprintf("segment %s is %q with %d stripes; only linear segments are read", s.name, typ, stripes)
			}
			continue
		}
		pv, pe := list.list[0], list.list[1]
		if pv.isNum || !pe.isNum || pe.num < 0 || pe.num > 1<<40 {
			return lv, bad("%s: stripes %q", s.name, "["+pv.str+", ...]")
		}
		lv.segs = append(lv.segs, lvmSeg{startExtent: start, extentCount: count, pv: pv.str, pvExtent: pe.num})
	}
	if lv.unsupported != "" {
		return lv, nil
	}
	slices.SortFunc(lv.segs, func(a, b lvmSeg) int { return int(a.startExtent - b.startExtent) })
	next := int64(0)
	for _, s := range lv.segs {
		if s.startExtent != next {
			return lv, bad("segments leave extents %d to %d unmapped", next, s.startExtent-1)
		}
		next += s.extentCount
	}
	if next == 0 {
		return lv, bad("no segments")
	}
	return lv, nil
}
