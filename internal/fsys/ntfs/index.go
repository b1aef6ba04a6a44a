package ntfs

import (
	"fmt"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// Index ($I30) layout: an $INDEX_ROOT value is a root header then an
// index header; an index record ("INDX") has its index header at 0x18.
// Every index header gives its entries' offset and end relative to
// itself.
const (
	irBlockSize   = 0x08
	irHeader      = 0x10
	ihEntries     = 0x00
	ihEnd         = 0x04
	ixVCN         = 0x10
	ixHeader      = 0x18
	ieRef         = 0x00
	ieLen         = 0x08
	ieKeyLen      = 0x0A
	ieFlags       = 0x0C
	ieKey         = 0x10
	ieFlagSubnode = 0x1
	ieFlagLast    = 0x2

	maxIndexDepth = 32 // a B+tree of 4 KiB nodes 32 deep holds more names than any volume
)

// ReadDir implements fsys.FS: the names of directory id's $I30 index in
// collation order, without "." and without DOS 8.3 names that sit beside
// long ones. A junction or directory symbolic link is not a directory.
func (fs *FS) ReadDir(id fsys.ID) ([]fsys.DirEntry, error) {
	f, err := fs.load(id)
	if err != nil {
		return nil, err
	}
	if f.typ() != fsys.TypeDir {
		return nil, fmt.Errorf("ntfs: MFT record %d: %w", id, fsys.ErrNotDir)
	}
	root, ok := findAttr(f.attrs, attrIndexRoot, "$I30")
	if !ok {
		return nil, corruptf("MFT record %d: a directory without a $I30 $INDEX_ROOT", id)
	}
	return fs.readIndex(fmt.Sprintf("MFT record %d $I30", id), root, dataPieces(f.attrs, attrIndexAlloc, "$I30"))
}

// readIndex walks an index from its $INDEX_ROOT through the index
// records of its $INDEX_ALLOCATION pieces.
func (fs *FS) readIndex(what string, root attr, alloc []attr) ([]fsys.DirEntry, error) {
	w := &indexWalk{fs: fs, what: what, seen: map[int64]bool{}}
	if !root.resident || len(root.value) < irHeader+16 {
		return nil, corruptf("%s: $INDEX_ROOT is not resident or holds %d bytes", w.what, len(root.value))
	}
	w.block = int64(ondisk.U32(root.value, irBlockSize))
	if len(alloc) > 0 {
		if w.block < fixupStride || w.block > maxRecordSize || w.block&(w.block-1) != 0 {
			return nil, corruptf("%s: index record size %d", w.what, w.block)
		}
		var err error
		if w.alloc, err = newStream(fs, w.what+" $INDEX_ALLOCATION", alloc, false); err != nil {
			return nil, err
		}
		w.vcnSize = fixupStride // VCNs count 512-byte blocks when index records are smaller than clusters
		if w.block >= fs.cluster {
			w.vcnSize = fs.cluster
		}
	}
	if err := w.node(root.value[irHeader:], "$INDEX_ROOT", 0); err != nil {
		return nil, err
	}
	return w.out, nil
}

// indexWalk walks one directory's B+tree in order.
type indexWalk struct {
	fs      *FS
	what    string
	alloc   *stream
	block   int64
	vcnSize int64
	seen    map[int64]bool // index records visited: a second visit is a loop
	out     []fsys.DirEntry
}

// node walks the entries under the index header at the start of h:
// each entry's subtree, then the entry.
func (w *indexWalk) node(h []byte, where string, depth int) error {
	start, end := int(ondisk.U32(h, ihEntries)), int(ondisk.U32(h, ihEnd))
	if start < 16 || start > end || end > len(h) {
		return corruptf("%s %s: entries %d-%d in %d bytes", w.what, where, start, end, len(h))
	}
	for off := start; ; {
		if off+ieKey > end {
			return corruptf("%s %s: entries end at byte %d without a last entry", w.what, where, off)
		}
		e := h[off:end]
		n, keyLen, flags := int(ondisk.U16(e, ieLen)), int(ondisk.U16(e, ieKeyLen)), ondisk.U32(e, ieFlags)
		if n < ieKey || n%8 != 0 || n > len(e) || ieKey+keyLen > n {
			return corruptf("%s %s: entry of %d bytes (key %d) at byte %d", w.what, where, n, keyLen, off)
		}
		if flags&ieFlagSubnode != 0 {
			if n < ieKey+8 || ieKey+keyLen > n-8 {
				return corruptf("%s %s: entry at byte %d has no room for its subnode", w.what, where, off)
			}
			if err := w.child(int64(ondisk.U64(e, n-8)), depth+1); err != nil {
				return err
			}
		}
		if flags&ieFlagLast != 0 {
			return nil
		}
		if err := w.entry(e[ieKey:ieKey+keyLen], ondisk.U64(e, ieRef), where, off); err != nil {
			return err
		}
		off += n
	}
}

func (w *indexWalk) entry(key []byte, ref uint64, where string, off int) error {
	if len(key) < fnName || fnName+2*int(key[fnNameLen]) > len(key) {
		return corruptf("%s %s: $FILE_NAME key of %d bytes at byte %d", w.what, where, len(key), off)
	}
	if key[fnNamespace] == nsDOS {
		return nil
	}
	name := utf16String(key[fnName : fnName+2*int(key[fnNameLen])])
	if name == "." {
		return nil
	}
	if len(w.out) >= fsys.MaxDirEntries {
		return corruptf("%s: more than %d entries", w.what, fsys.MaxDirEntries)
	}
	e := fsys.DirEntry{Name: name, ID: fsys.ID(ref & refMask), Type: fsys.TypeRegular}
	flags, tag := ondisk.U32(key, fnFlags), ondisk.U32(key, fnReparse)
	switch {
	case flags&fnFlagReparse != 0 && (tag == tagSymlink || tag == tagMountPoint):
		e.Type = fsys.TypeSymlink
	case flags&fnFlagDir != 0:
		e.Type = fsys.TypeDir
	}
	w.out = append(w.out, e)
	return nil
}

// child reads the index record at vcn and walks it.
func (w *indexWalk) child(vcn int64, depth int) error {
	where := fmt.Sprintf("index record at VCN %d", vcn)
	switch {
	case w.alloc == nil:
		return corruptf("%s: an entry points to %s, but there is no $INDEX_ALLOCATION", w.what, where)
	case depth > maxIndexDepth:
		return corruptf("%s: deeper than %d levels", w.what, maxIndexDepth)
	case w.seen[vcn]:
		return corruptf("%s: %s is reached twice (a loop)", w.what, where)
	case vcn < 0 || vcn > (w.alloc.size-w.block)/w.vcnSize:
		return corruptf("%s: %s is past the %d-byte allocation", w.what, where, w.alloc.size)
	}
	w.seen[vcn] = true
	b := make([]byte, w.block)
	if n, err := w.alloc.ReadAt(b, vcn*w.vcnSize); int64(n) != w.block {
		return fmt.Errorf("ntfs: %s: reading %s: %w", w.what, where, err)
	}
	if string(b[:4]) != "INDX" {
		return corruptf("%s: %s: signature %q, not INDX", w.what, where, b[:4])
	}
	if err := fixup(b, w.what+" "+where); err != nil {
		return err
	}
	if got := int64(ondisk.U64(b, ixVCN)); got != vcn {
		return corruptf("%s: %s says it is at VCN %d", w.what, where, got)
	}
	return w.node(b[ixHeader:], where, depth)
}
