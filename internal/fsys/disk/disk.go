// Package disk is the layer between a volume and the file-system
// readers: it lists the parts of a disk that can hold a file system
// (partitions of a GPT or MBR table, MBR logical partitions, a bare file
// system with no table, and LVM2 linear logical volumes inside a PV),
// opens the reader of each by its type, and resolves the paths the
// commands take ("1:/etc/passwd", "rootvg/root:/etc", "/etc").
//
// Encrypted parts (LUKS, BitLocker) are listed and reported, never
// guessed at: opening one is an error wrapping fsys.ErrEncrypted.
package disk

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// Kinds of part.
const (
	KindPartition = "partition" // an entry of the partition table
	KindBare      = "bare"      // the whole volume: a file system with no table
	KindLV        = "lvm"       // an LVM2 logical volume
)

// Part is a readable region of the disk: where it lies and what it holds.
type Part struct {
	// Name is how paths address the part: the partition's number ("1"),
	// an LV's "VG/LV" ("rootvg/root"), or "" for a bare file system.
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Number int    `json:"number,omitempty"` // the partition's number
	// Offset and Length place the part on the volume. An LV made of
	// several segments starts at its first segment's offset; Segments
	// lists them all.
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
	// Type is the file system (or container) the part holds, as inspect
	// names it: "ext4", "xfs", "ntfs", "fat32", "exfat", "luks2",
	// "BitLocker", "lvm2_pv", "swap", "unknown", ...
	Type  string `json:"type"`
	Label string `json:"label,omitempty"`
	// Encryption is "LUKS1", "LUKS2" or "BitLocker" for an encrypted
	// part.
	Encryption string    `json:"encryption,omitempty"`
	Segments   []Segment `json:"segments,omitempty"` // an LV's extents
	// PV names the part holding an LV's physical volume.
	PV  string `json:"pv,omitempty"`
	err error  // why the part cannot be opened, when known before trying
	r   io.ReaderAt
}

// Segment places Length bytes of an LV, from its offset Logical, at the
// volume's offset Physical.
type Segment struct {
	Logical  int64 `json:"logical"`
	Physical int64 `json:"physical"`
	Length   int64 `json:"length"`
}

// Display is the part's name as messages print it: "partition 1",
// "LV rootvg/root", "the volume".
func (p *Part) Display() string {
	switch p.Kind {
	case KindPartition:
		return "partition " + p.Name
	case KindLV:
		return "LV " + p.Name
	}
	return "the volume"
}

// Readable reports whether the part holds a file system this package has
// a reader for.
func (p *Part) Readable() bool {
	_, ok := readers[p.Type]
	return ok && p.err == nil
}

// HoldsFileSystem reports whether the part holds a file system of a type the
// issue's readers cover, whether or not its reader is built in.
func (p *Part) HoldsFileSystem() bool {
	switch p.Type {
	case inspect.TypeExt2, inspect.TypeExt3, inspect.TypeExt4, inspect.TypeXFS, inspect.TypeNTFS,
		inspect.TypeFAT12, inspect.TypeFAT16, inspect.TypeFAT32, inspect.TypeExFAT:
		return true
	}
	return false
}

// Disk is a volume with its parts listed.
type Disk struct {
	r      io.ReaderAt
	size   int64
	Layout *inspect.Layout
	Parts  []*Part
	// Warnings are problems met while listing the parts (a PV whose
	// metadata could not be read); the parts affected say so when opened.
	Warnings []string
}

// Open lists the parts of v.
func Open(v volume.Volume) (*Disk, error) {
	return New(v, v.Size())
}

// New lists the parts of the disk image r of size bytes.
func New(r io.ReaderAt, size int64) (*Disk, error) {
	l, err := inspect.Inspect(r, size)
	if err != nil {
		return nil, err
	}
	d := &Disk{r: r, size: size, Layout: l}
	if l.Table == inspect.TableNone {
		if l.FileSystem != nil {
			d.add(&Part{Kind: KindBare, Length: size}, l.FileSystem)
		}
	} else {
		for _, lp := range l.Partitions {
			if lp.Role == "extended" || lp.FileSystem == nil {
				continue
			}
			length := lp.Length
			if end := lp.Offset + length; lp.Offset >= size {
				length = 0
			} else if end > size || end < lp.Offset {
				length = size - lp.Offset // inspect warned: the table says more than the image holds
			}
			d.add(&Part{Name: strconv.Itoa(lp.Number), Kind: KindPartition, Number: lp.Number, Offset: lp.Offset, Length: length}, lp.FileSystem)
		}
	}
	d.addLVs()
	return d, nil
}

// add appends part p holding fs.
func (d *Disk) add(p *Part, fs *inspect.FileSystem) {
	p.Type, p.Label = fs.Type, fs.Label
	switch fs.Type {
	case inspect.TypeLUKS1:
		p.Encryption = "LUKS1"
	case inspect.TypeLUKS2:
		p.Encryption = "LUKS2"
	case inspect.TypeBitLocker:
		p.Encryption = "BitLocker"
	default:
		if strings.HasPrefix(fs.Type, "luks") {
			p.Encryption = strings.ToUpper(fs.Type)
		}
	}
	if p.r == nil {
		p.r = io.NewSectionReader(d.r, p.Offset, p.Length)
	}
	d.Parts = append(d.Parts, p)
}

// addLVs reads the metadata of every LVM2 PV among the parts and adds
// the logical volumes of each volume group whose PVs are all here.
func (d *Disk) addLVs() {
	var pvs []*pvOnDisk
	for _, p := range d.Parts {
		if p.Type != inspect.TypeLVM2 {
			continue
		}
		pv := &pvOnDisk{part: p.Name, offset: p.Offset, length: p.Length}
		pv.label, pv.err = readPVLabel(p.r, p.Length)
		if pv.err == nil {
			pv.text, pv.err = readVGText(p.r, p.Length, pv.label)
		}
		if pv.err != nil {
			p.err = fmt.Errorf("%s: LVM2 physical volume: %w", p.Display(), pv.err)
			d.Warnings = append(d.Warnings, p.err.Error())
			continue
		}
		pvs = append(pvs, pv)
	}
	// Every PV of a VG carries the VG's metadata; the highest seqno is
	// the newest.
	vgs := map[string]*lvmVG{}
	var order []string
	for _, pv := range pvs {
		vg, err := parseVG(pv.text)
		if err != nil {
			d.Warnings = append(d.Warnings, fmt.Sprintf("partition %s: LVM2 metadata: %v", pv.part, err))
			continue
		}
		key := vg.name + "\x00" + vg.id
		if old, ok := vgs[key]; !ok {
			order = append(order, key)
			vgs[key] = vg
		} else if vg.seqno > old.seqno {
			vgs[key] = vg
		}
	}
	for _, key := range order {
		vg := vgs[key]
		for _, lv := range vg.lvs {
			d.addLV(vg, lv, pvs)
		}
	}
}

func (d *Disk) addLV(vg *lvmVG, lv lvmLV, pvs []*pvOnDisk) {
	p := &Part{Name: vg.name + "/" + lv.name, Kind: KindLV, Type: inspect.TypeUnknown}
	d.Parts = append(d.Parts, p)
	if lv.unsupported != "" {
		p.err = fmt.Errorf("LV %s: %s: %w", p.Name, lv.unsupported, fsys.ErrUnsupported)
		return
	}
	var pvNames []string
	for _, s := range lv.segs {
		meta, ok := vg.pvs[s.pv]
		var on *pvOnDisk
		for _, pv := range pvs {
			if ok && pv.label.uuid == meta.id {
				on = pv
			}
		}
		if on == nil {
			p.err = fmt.Errorf("LV %s: its physical volume %s is not on this disk: %w", p.Name, s.pv, fsys.ErrUnsupported)
			return
		}
		if s.pvExtent+s.extentCount > meta.peCount {
			p.err = lvmCorrupt("LV %s: extents %d to %d of PV %s: the PV has %d", p.Name, s.pvExtent, s.pvExtent+s.extentCount-1, s.pv, meta.peCount)
			return
		}
		seg := Segment{
			Logical:  s.startExtent * vg.extentSize,
			Physical: on.offset + meta.peStart + s.pvExtent*vg.extentSize,
			Length:   s.extentCount * vg.extentSize,
		}
		if seg.Physical-on.offset+seg.Length > on.length {
			p.err = lvmCorrupt("LV %s: segment at %d of %d bytes runs past %s's end", p.Name, seg.Physical, seg.Length, "partition "+on.part)
			return
		}
		p.Segments = append(p.Segments, seg)
		if !slices.Contains(pvNames, on.part) {
			pvNames = append(pvNames, on.part)
		}
	}
	p.PV = strings.Join(pvNames, ",")
	p.Offset = p.Segments[0].Physical
	last := p.Segments[len(p.Segments)-1]
	p.Length = last.Logical + last.Length
	p.r = &extentMap{r: d.r, segs: p.Segments, size: p.Length}
	l, err := inspect.Inspect(p.r, p.Length)
	switch {
	case err != nil:
		p.err = fmt.Errorf("LV %s: %w", p.Name, err)
	case l.Table != inspect.TableNone:
		p.Type = "partitioned"
		p.err = fmt.Errorf("LV %s holds a partition table: %w", p.Name, fsys.ErrUnsupported)
	case l.FileSystem != nil:
		d.Parts = d.Parts[:len(d.Parts)-1]
		d.add(p, l.FileSystem)
	}
}

// extentMap reads an LV through its segments.
type extentMap struct {
	r    io.ReaderAt
	segs []Segment
	size int64
}

func (m *extentMap) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("lvm2: negative offset")
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= m.size {
			return n, io.EOF
		}
		i, _ := slices.BinarySearchFunc(m.segs, pos, func(s Segment, pos int64) int {
			switch {
			case s.Logical+s.Length <= pos:
				return -1
			case s.Logical > pos:
				return 1
			}
			return 0
		})
		s := m.segs[i]
		chunk := p[n:min(len(p), n+int(min(s.Logical+s.Length-pos, int64(len(p)-n))))]
		k, err := m.r.ReadAt(chunk, s.Physical+pos-s.Logical)
		n += k
		if err != nil && (k < len(chunk) || !errors.Is(err, io.EOF)) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
}

// Part returns the part that name addresses: a partition number ("1" or
// "p1"), "VG/LV", or "" for the single file system (see Single). A name
// that matches none is an error wrapping fsys.ErrNotFound that lists the
// parts there are.
func (d *Disk) Part(name string) (*Part, error) {
	if name == "" {
		return d.Single()
	}
	want := normalizePart(name)
	for _, p := range d.Parts {
		if p.Name == want {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no part %q on this volume (%s): %w", name, d.listing(), fsys.ErrNotFound)
}

// normalizePart turns "p1" into "1".
func normalizePart(name string) string {
	if len(name) > 1 && name[0] == 'p' && allDigits(name[1:]) {
		return name[1:]
	}
	return name
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// listing describes the parts, for messages: "partitions 1 (ext4), 2
// (luks2, encrypted), LV rootvg/root (xfs)".
func (d *Disk) listing() string {
	if len(d.Parts) == 0 {
		return "it holds no partition and no file system that is recognised"
	}
	var b []string
	for _, p := range d.Parts {
		what := p.Type
		if p.Encryption != "" {
			what += ", encrypted"
		}
		switch p.Kind {
		case KindBare:
			b = append(b, "a bare "+what+" file system, addressed as /path")
		default:
			b = append(b, p.Display()+" ("+what+")")
		}
	}
	return "it holds " + strings.Join(b, ", ")
}

// ErrAmbiguous is returned for a path without a part ("/etc") on a
// volume that does not hold exactly one file system.
var ErrAmbiguous = errors.New("the volume does not hold exactly one file system: name the part, as N:/path")

// Single returns the part a path without a part name addresses: the bare
// file system of a volume with no partition table, or else the one part
// holding a file system of a type the readers cover (ext, XFS, NTFS,
// FAT, exFAT), counting partitions and LVs. Encrypted, swap, unknown and
// LVM PV partitions do not count. With none or more than one, the error
// wraps ErrAmbiguous and lists the parts.
func (d *Disk) Single() (*Part, error) {
	var found []*Part
	for _, p := range d.Parts {
		if p.HoldsFileSystem() {
			found = append(found, p)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	return nil, fmt.Errorf("%w (%s)", ErrAmbiguous, d.listing())
}

// FileSystems returns the parts that hold a file system of a type the
// readers cover, in the order of the table (LVs last).
func (d *Disk) FileSystems() []*Part {
	var out []*Part
	for _, p := range d.Parts {
		if p.HoldsFileSystem() {
			out = append(out, p)
		}
	}
	return out
}

// Open opens the file system of the part name addresses (see Part).
func (d *Disk) Open(name string) (fsys.FS, error) {
	p, err := d.Part(name)
	if err != nil {
		return nil, err
	}
	return d.OpenPart(p)
}

// OpenPart opens the file system of part p with the reader of its type.
// An encrypted part is an error wrapping fsys.ErrEncrypted; a type no
// reader covers, fsys.ErrUnsupported.
func (d *Disk) OpenPart(p *Part) (fsys.FS, error) {
	if p.Encryption != "" {
		return nil, fmt.Errorf("%s is encrypted with %s: %w", p.Display(), p.Encryption, fsys.ErrEncrypted)
	}
	if p.err != nil {
		return nil, p.err
	}
	open, ok := readers[p.Type]
	if !ok {
		why := "no reader for " + p.Type
		switch {
		case p.Type == inspect.TypeLVM2:
			var lvs []string
			for _, q := range d.Parts {
				if q.Kind == KindLV && q.PV != "" && slices.Contains(strings.Split(q.PV, ","), p.Name) {
					lvs = append(lvs, q.Name+":/path")
				}
			}
			why = "it is an LVM2 physical volume"
			if len(lvs) > 0 {
				why += "; read its logical volumes as " + strings.Join(lvs, ", ")
			}
		case p.Type == inspect.TypeUnknown:
			why = "its file system is not recognised"
		case p.HoldsFileSystem():
			why = "the " + p.Type + " reader is not built into this ebsimager"
		}
		return nil, fmt.Errorf("%s (%s): %s: %w", p.Display(), p.Type, why, fsys.ErrUnsupported)
	}
	f, err := open(p.r, p.Length)
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", p.Display(), p.Type, err)
	}
	return f, nil
}

// Reader returns the bytes of part p: a view of the volume at its
// offset, or an LV's segments put together.
func (p *Part) Reader() io.ReaderAt { return p.r }
