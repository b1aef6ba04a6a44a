package fat

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// exFAT directory entry types (exFAT specification section 6.2: bit 7
// marks an entry in use; a cleared bit 7 is a deleted or unused entry).
const (
	exEndOfDir  = 0x00
	exInUse     = 0x80
	exFile      = 0x85
	exStream    = 0xC0
	exName      = 0xC1
	exNameChars = 15 // UTF-16 units in one File Name entry
)

// maxExFATDirBytes bounds an exFAT directory (specification section
// 6.2.1: DataLength of a directory is at most 256 MiB).
const maxExFATDirBytes = 256 << 20

// setChecksum is an entry set's SetChecksum (specification section
// 6.3.3): rotate right by one bit and add each byte, over every entry of
// the set except the checksum field itself (bytes 2 and 3).
func setChecksum(set []byte) uint16 {
	var s uint16
	for i, c := range set {
		if i == 2 || i == 3 {
			continue
		}
		s = (s>>1 | s<<15) + uint16(c)
	}
	return s
}

// exfatSet decodes a File entry set: the File entry, the Stream
// Extension and the File Name entries (and any other secondary entries,
// which it skips). set holds all 1+SecondaryCount entries.
func exfatSet(set []byte, g *geometry) (*node, string, error) {
	le := binary.LittleEndian
	if got, want := setChecksum(set), le.Uint16(set[2:]); got != want {
		return nil, "", corrupt("entry set checksum 0x%04x, stored 0x%04x", got, want)
	}
	for i := entrySize; i < len(set); i += entrySize {
		if set[i]&exInUse == 0 || set[i]&0x40 == 0 {
			return nil, "", corrupt("entry set: entry %d of type 0x%02x is not an in-use secondary entry", i/entrySize, set[i])
		}
	}
	st := set[entrySize : 2*entrySize]
	if st[0] != exStream {
		return nil, "", corrupt("entry set: type 0x%02x where the Stream Extension belongs", st[0])
	}
	nameLen := int(st[3])
	nameEntries := (nameLen + exNameChars - 1) / exNameChars
	if nameLen == 0 || 2+nameEntries > len(set)/entrySize {
		return nil, "", corrupt("entry set: name of %d characters in %d entries", nameLen, len(set)/entrySize-2)
	}
	units := make([]uint16, 0, nameEntries*exNameChars)
	for i := 0; i < nameEntries; i++ {
		e := set[(2+i)*entrySize : (3+i)*entrySize]
		if e[0] != exName {
			return nil, "", corrupt("entry set: type 0x%02x where File Name entry %d belongs", e[0], i)
		}
		for j := 2; j < entrySize; j += 2 {
			units = append(units, le.Uint16(e[j:]))
		}
	}
	units = units[:nameLen]
	attr := le.Uint16(set[4:])
	n := &node{
		attr:   attr,
		dir:    attr&attrDir != 0,
		crtime: exfatTime(le.Uint32(set[8:]), set[20], set[22]),
		mtime:  exfatTime(le.Uint32(set[12:]), set[21], set[23]),
		atime:  exfatTime(le.Uint32(set[16:]), 0, set[24]),
		contig: st[1]&0x02 != 0,
		valid:  int64(le.Uint64(st[8:])),
		first:  le.Uint32(st[20:]),
		size:   int64(le.Uint64(st[24:])),
	}
	heap := int64(g.clusters) * g.clusterSize
	if n.size < 0 || n.size > heap || n.valid < 0 || n.valid > n.size {
		return nil, "", corrupt("entry set: DataLength %d, ValidDataLength %d, on a cluster heap of %d bytes", uint64(n.size), uint64(n.valid), heap)
	}
	if n.dir && n.size > maxExFATDirBytes {
		return nil, "", corrupt("entry set: directory of %d bytes, more than %d", n.size, maxExFATDirBytes)
	}
	return n, string(utf16.Decode(units)), nil
}

// readExFATDir lists an exFAT directory held in extents. A File entry
// set that fails its checksum or its structure makes the whole listing
// fail with ErrCorrupt naming the set's address: a damaged set may have
// damaged the entries around it, and a listing that silently lacks a
// file would mislead an examiner.
func (f *FS) readExFATDir(id fsys.ID, extents [][2]int64) ([]fsys.DirEntry, map[fsys.ID]*node, error) {
	var (
		out     []fsys.DirEntry
		nodes   = map[fsys.ID]*node{}
		set     []byte
		setID   fsys.ID
		pending int // secondary entries still to gather into set
	)
	err := slots(f.r, extents, func(b []byte, off int64) (bool, error) {
		if pending > 0 {
			set = append(set, b...)
			pending--
			if pending > 0 {
				return true, nil
			}
			n, name, err := exfatSet(set, f.g)
			if err != nil {
				return false, fmt.Errorf("file entry set %d: %w", setID, err)
			}
			if len(out) >= fsys.MaxDirEntries {
				return false, corrupt("more than %d entries", fsys.MaxDirEntries)
			}
			nodes[setID] = n
			t := fsys.TypeRegular
			if n.dir {
				t = fsys.TypeDir
			}
			out = append(out, fsys.DirEntry{Name: name, ID: setID, Type: t})
			return true, nil
		}
		switch {
		case b[0] == exEndOfDir:
			return false, nil
		case b[0] == exFile:
			count := int(b[1])
			if count < 2 || count > 18 {
				return false, corrupt("file entry set %d: SecondaryCount %d outside 2-18", f.idAt(off), count)
			}
			set = append(set[:0], b...)
			setID = f.idAt(off)
			pending = count
		}
		// Anything else is skipped: deleted entries (bit 7 clear), the
		// allocation bitmap, up-case table and volume label entries,
		// and benign primary entries such as the volume GUID.
		return true, nil
	})
	if err == nil && pending > 0 {
		err = corrupt("file entry set %d: the directory ends %d entries short of it", setID, pending)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("exfat: directory %d: %w", id, err)
	}
	return out, nodes, nil
}
