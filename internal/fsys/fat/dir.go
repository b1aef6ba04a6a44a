package fat

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// Directory entries are 32 bytes on FAT and exFAT alike.
const entrySize = 32

// FAT directory entry attributes (fatgen103, "FAT Directory Structure").
const (
	attrReadOnly = 0x01
	attrVolumeID = 0x08
	attrDir      = 0x10
	attrLFN      = 0x0F // read-only, hidden, system and volume ID together
	attrLFNMask  = 0x3F
)

// maxFATDirBytes bounds a FAT directory: 65536 entries (fatgen103: a
// directory may not hold more).
const maxFATDirBytes = 65536 * entrySize

// node is what a directory entry says of a file.
type node struct {
	dir    bool
	attr   uint16
	first  uint32
	size   int64 // FAT: the entry's size (-1 for a directory until its chain is measured); exFAT: DataLength
	valid  int64 // exFAT ValidDataLength; the size on FAT
	contig bool  // exFAT NoFatChain: clusters are consecutive, with no chain
	mtime  time.Time
	atime  time.Time
	crtime time.Time
}

// slotFunc is called for each 32-byte entry of a directory, with the
// entry's byte offset on the volume. It returns false to stop.
type slotFunc func(b []byte, off int64) (bool, error)

// slots calls fn for each entry in the extents (volume offsets and
// lengths) of a directory, reading at most 64 KiB at a time.
func slots(r io.ReaderAt, extents [][2]int64, fn slotFunc) error {
	buf := make([]byte, 64<<10)
	for _, e := range extents {
		for done := int64(0); done < e[1]; {
			n := min(int64(len(buf)), e[1]-done)
			n -= n % entrySize
			if n == 0 {
				break
			}
			if _, err := r.ReadAt(buf[:n], e[0]+done); err != nil {
				return fmt.Errorf("reading directory bytes at %d: %w", e[0]+done, err)
			}
			for i := int64(0); i < n; i += entrySize {
				more, err := fn(buf[i:i+entrySize], e[0]+done+i)
				if err != nil || !more {
					return err
				}
			}
			done += n
		}
	}
	return nil
}

// lfn gathers the long-name entries that precede a short entry. They
// are stored last part first: the first one met has bit 6 (0x40) set in
// its ordinal and holds the highest part number.
type lfn struct {
	parts [20][13]uint16 // 20 parts of 13 UTF-16 units hold the 255-unit maximum
	count int            // parts announced by the first entry, 0 when none is pending
	next  int            // part number expected next; 0 when all are in
	sum   byte
}

func (l *lfn) add(b []byte) {
	ord := int(b[0])
	if ord&0x40 != 0 {
		n := ord & 0x1F
		if n < 1 || n > len(l.parts) {
			l.count = 0
			return
		}
		l.count, l.next, l.sum = n, n, b[13]
	}
	if l.count == 0 || l.next == 0 || ord&0x1F != l.next || b[13] != l.sum {
		l.count = 0
		return
	}
	p := &l.parts[l.next-1]
	for i := 0; i < 5; i++ {
		p[i] = binary.LittleEndian.Uint16(b[1+2*i:])
	}
	for i := 0; i < 6; i++ {
		p[5+i] = binary.LittleEndian.Uint16(b[14+2*i:])
	}
	for i := 0; i < 2; i++ {
		p[11+i] = binary.LittleEndian.Uint16(b[28+2*i:])
	}
	l.next--
}

// name returns the long name for the short entry b, if the parts
// gathered are complete and carry b's checksum.
func (l *lfn) name(b []byte) (string, bool) {
	defer func() { l.count = 0 }()
	if l.count == 0 || l.next != 0 || shortSum(b) != l.sum {
		return "", false
	}
	units := make([]uint16, 0, l.count*13)
	for i := 0; i < l.count; i++ {
		units = append(units, l.parts[i][:]...)
	}
	for i, u := range units {
		if u == 0 {
			units = units[:i]
			break
		}
	}
	if len(units) == 0 {
		return "", false
	}
	return string(utf16.Decode(units)), true
}

// shortSum is the checksum long-name entries carry of their short name
// (fatgen103, "ChkSum"): rotate right by one bit, then add each byte.
func shortSum(b []byte) byte {
	var s byte
	for _, c := range b[:11] {
		s = (s>>1 | s<<7) + c
	}
	return s
}

// shortName decodes an 8.3 name, lowering the base or extension when
// the case flags Windows NT keeps in byte 12 say so (bit 3 the base,
// bit 4 the extension). Bytes outside ASCII are kept as stored.
func shortName(b []byte) string {
	base := []byte(strings.TrimRight(string(b[0:8]), " "))
	ext := []byte(strings.TrimRight(string(b[8:11]), " "))
	if len(base) > 0 && base[0] == 0x05 {
		base[0] = 0xE5 // a name starting with 0xE5 is stored with 0x05
	}
	lower := func(s []byte) {
		for i, c := range s {
			if 'A' <= c && c <= 'Z' {
				s[i] = c + 'a' - 'A'
			}
		}
	}
	if b[12]&0x08 != 0 {
		lower(base)
	}
	if b[12]&0x10 != 0 {
		lower(ext)
	}
	if len(ext) == 0 {
		return string(base)
	}
	return string(base) + "." + string(ext)
}

// fatNode decodes a FAT short directory entry.
func fatNode(k kind, b []byte) *node {
	le := binary.LittleEndian
	n := &node{
		attr:   uint16(b[11]),
		dir:    b[11]&attrDir != 0,
		first:  uint32(le.Uint16(b[26:])),
		crtime: dosTime(le.Uint16(b[16:]), le.Uint16(b[14:]), b[13], time.UTC),
		atime:  dosTime(le.Uint16(b[18:]), 0, 0, time.UTC),
		mtime:  dosTime(le.Uint16(b[24:]), le.Uint16(b[22:]), 0, time.UTC),
	}
	if k == fat32 {
		n.first |= uint32(le.Uint16(b[20:])) << 16
	}
	if n.dir {
		n.size = -1
	} else {
		n.size = int64(le.Uint32(b[28:]))
		n.valid = n.size
	}
	return n
}

// readFATDir lists a FAT directory held in extents.
func (f *FS) readFATDir(id fsys.ID, extents [][2]int64) ([]fsys.DirEntry, map[fsys.ID]*node, error) {
	var (
		out   []fsys.DirEntry
		nodes = map[fsys.ID]*node{}
		long  lfn
	)
	err := slots(f.r, extents, func(b []byte, off int64) (bool, error) {
		switch {
		case b[0] == 0x00:
			return false, nil // no entry follows (fatgen103: DIR_Name[0] == 0)
		case b[0] == 0xE5:
			long.count = 0 // deleted
			return true, nil
		case b[11]&attrLFNMask == attrLFN:
			long.add(b)
			return true, nil
		case b[11]&attrVolumeID != 0:
			long.count = 0
			return true, nil
		}
		name, ok := long.name(b)
		if !ok {
			name = shortName(b)
		}
		if name == "." || name == ".." {
			return true, nil
		}
		if len(out) >= fsys.MaxDirEntries {
			return false, corrupt("fat: directory %d: more than %d entries", id, fsys.MaxDirEntries)
		}
		n := fatNode(f.g.kind, b)
		cid := f.idAt(off)
		nodes[cid] = n
		t := fsys.TypeRegular
		if n.dir {
			t = fsys.TypeDir
		}
		out = append(out, fsys.DirEntry{Name: name, ID: cid, Type: t})
		return true, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("fat: directory %d: %w", id, err)
	}
	return out, nodes, nil
}
