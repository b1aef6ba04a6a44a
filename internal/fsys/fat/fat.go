// Package fat reads FAT12, FAT16, FAT32 and exFAT file systems, read
// only: EFI system partitions and removable-style volumes.
//
// Files are numbered as Sleuth Kit numbers them, so that an address
// from this reader works with istat and icat: the root directory is 2,
// and any other file is numbered by the position of its directory entry
// (the short entry on FAT, the File entry on exFAT), counting 32-byte
// entries from the start of the data area (the FAT12/16 root region, or
// the cluster heap on FAT32 and exFAT) and adding 3.
//
// FAT times carry no time zone and are returned as UTC, as Sleuth Kit
// shows them with TZ=UTC; exFAT times carry their UTC offset when it is
// recorded. Deleted entries, volume labels and the exFAT allocation
// bitmap and up-case table entries are not listed; neither are the
// virtual files Sleuth Kit adds ($MBR, $FAT1, $FAT2, $OrphanFiles).
//
// Modes are rwx for everyone, as Sleuth Kit gives them, less the write
// bits for a file with the read-only attribute (Sleuth Kit 4.11 drops
// the read bits instead). An exFAT File entry set that fails its
// SetChecksum or its structure makes the listing of its directory fail
// with ErrCorrupt naming the set: the reader never lists a directory
// that it knows to be damaged as if it were whole.
package fat

import (
	"fmt"
	"io"
	"sync"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// FS is an open FAT or exFAT file system. Its methods are safe for
// concurrent use when the io.ReaderAt it reads is.
type FS struct {
	r    io.ReaderAt
	size int64
	g    *geometry

	mu    sync.Mutex
	fat   *table
	nodes map[fsys.ID]*node // files met in directory listings
}

// rootID is the root directory's address (Sleuth Kit's FATFS_ROOTINO);
// firstID the address of the data area's first directory entry.
const (
	rootID  fsys.ID = 2
	firstID fsys.ID = 3
)

var _ fsys.FS = (*FS)(nil)

// Open reads the boot sector of the FAT or exFAT file system in the
// first size bytes of r.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	b := make([]byte, 512)
	if size < int64(len(b)) {
		return nil, corrupt("fat: volume of %d bytes is smaller than a boot sector", size)
	}
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("fat: reading the boot sector: %w", err)
	}
	g, err := parseBoot(b, size)
	if err != nil {
		return nil, err
	}
	return &FS{r: r, size: size, g: g, fat: newTable(r, g), nodes: map[fsys.ID]*node{}}, nil
}

// Type returns "vfat" for FAT12/16/32 and "exfat" for exFAT, as blkid
// names them.
func (f *FS) Type() string {
	if f.g.kind == exfat {
		return "exfat"
	}
	return "vfat"
}

// Variant names the FAT variant: "FAT12", "FAT16", "FAT32" or "exFAT".
func (f *FS) Variant() string { return f.g.kind.String() }

// Root returns the root directory's ID, 2.
func (f *FS) Root() fsys.ID { return rootID }

func (f *FS) name() string {
	if f.g.kind == exfat {
		return "exfat"
	}
	return "fat"
}

// idAt is the address of the directory entry at volume offset off.
func (f *FS) idAt(off int64) fsys.ID {
	return fsys.ID((off-f.g.dataOffset)/entrySize) + firstID
}

// offsetOf is the volume offset of the directory entry numbered id.
func (f *FS) offsetOf(id fsys.ID) (int64, error) {
	limit := min(f.size, f.g.volBytes)
	if id < firstID || uint64(id-firstID) > uint64(limit/entrySize) {
		return 0, fmt.Errorf("%s: file %d: %w", f.name(), id, fsys.ErrNotFound)
	}
	off := f.g.dataOffset + int64(id-firstID)*entrySize
	if off+entrySize > limit {
		return 0, fmt.Errorf("%s: file %d: %w", f.name(), id, fsys.ErrNotFound)
	}
	if off >= f.g.heapOffset {
		if c := uint32((off-f.g.heapOffset)/f.g.clusterSize) + 2; c > f.g.maxCluster() {
			return 0, fmt.Errorf("%s: file %d: %w", f.name(), id, fsys.ErrNotFound)
		}
	}
	return off, nil
}

// node returns what the directory entry id says. Entries met in a
// listing are remembered; any other address is read where it lies, as
// Sleuth Kit's istat reads it. Call with f.mu held.
func (f *FS) node(id fsys.ID) (*node, error) {
	if id == rootID {
		return &node{dir: true, first: f.g.rootCluster, size: -1}, nil
	}
	if n, ok := f.nodes[id]; ok {
		return n, nil
	}
	off, err := f.offsetOf(id)
	if err != nil {
		return nil, err
	}
	if f.g.kind == exfat {
		return f.exfatNodeAt(id, off)
	}
	b := make([]byte, entrySize)
	if _, err := f.r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("fat: file %d: reading its directory entry: %w", id, err)
	}
	if b[0] == 0x00 || b[0] == 0xE5 || b[11]&attrVolumeID != 0 {
		return nil, fmt.Errorf("fat: file %d: no file's directory entry there: %w", id, fsys.ErrNotFound)
	}
	return fatNode(f.g.kind, b), nil
}

// exfatNodeAt reads the File entry set at off that was not met in a
// listing. Its secondary entries continue into the cluster that follows
// in the FAT when the FAT names one, else into the next cluster (a
// directory without a chain is contiguous).
func (f *FS) exfatNodeAt(id fsys.ID, off int64) (*node, error) {
	b := make([]byte, entrySize)
	if _, err := f.r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("exfat: file %d: reading its directory entry: %w", id, err)
	}
	if b[0] != exFile {
		return nil, fmt.Errorf("exfat: file %d: no File entry there: %w", id, fsys.ErrNotFound)
	}
	count := int(b[1])
	if count < 2 || count > 18 {
		return nil, corrupt("exfat: file entry set %d: SecondaryCount %d outside 2-18", id, count)
	}
	set := append([]byte(nil), b...)
	for i := 0; i < count; i++ {
		off += entrySize
		if rel := off - f.g.heapOffset; rel%f.g.clusterSize == 0 {
			prev := uint32((rel-1)/f.g.clusterSize) + 2
			next := prev + 1
			if e, err := f.fat.entry(prev); err == nil && e >= 2 && e <= f.g.maxCluster() {
				next = e
			}
			if next > f.g.maxCluster() {
				return nil, corrupt("exfat: file entry set %d: runs past the last cluster", id)
			}
			off = f.g.clusterOffset(next)
		}
		if _, err := f.r.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("exfat: file %d: reading its directory entry: %w", id, err)
		}
		set = append(set, b...)
	}
	n, _, err := exfatSet(set, f.g)
	if err != nil {
		return nil, fmt.Errorf("exfat: file entry set %d: %w", id, err)
	}
	return n, nil
}

// Stat returns what file id's directory entry says. Modes are Sleuth
// Kit's: read, write and execute for everyone, without write when the
// read-only attribute is set. FAT keeps no change time: Ctime is zero.
func (f *FS) Stat(id fsys.ID) (fsys.Stat, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.node(id)
	if err != nil {
		return fsys.Stat{}, err
	}
	st := fsys.Stat{
		ID:     id,
		Addr:   fmt.Sprint(uint64(id)),
		Type:   fsys.TypeRegular,
		Mode:   0o777,
		Nlink:  1,
		Size:   n.size,
		Atime:  n.atime,
		Mtime:  n.mtime,
		Crtime: n.crtime,
	}
	if n.attr&attrReadOnly != 0 {
		st.Mode = 0o555
	}
	if n.dir {
		st.Type = fsys.TypeDir
		if n.size < 0 {
			extents, err := f.dirExtents(id, n)
			if err != nil {
				return fsys.Stat{}, err
			}
			var total int64
			for _, e := range extents {
				total += e[1]
			}
			n.size = total
			st.Size = total
		}
	}
	return st, nil
}

// dirExtents places a directory's bytes on the volume: the fixed root
// region of FAT12/16, or the directory's clusters.
func (f *FS) dirExtents(id fsys.ID, n *node) ([][2]int64, error) {
	g := f.g
	if id == rootID && g.kind != fat32 && g.kind != exfat {
		return [][2]int64{{g.rootOffset, g.rootBytes}}, nil
	}
	what := fmt.Sprintf("%s: directory %d", f.name(), id)
	var spans []span
	var err error
	switch {
	case n.first == 0 && id != rootID:
		if g.kind == exfat && n.size == 0 {
			return nil, nil
		}
		return nil, corrupt("%s: no first cluster", what)
	case g.kind == exfat && id != rootID:
		want := (n.size + g.clusterSize - 1) / g.clusterSize
		if want == 0 {
			return nil, nil
		}
		if n.contig {
			spans, err = f.fat.contiguous(n.first, want, what)
		} else {
			spans, err = f.fat.chain(n.first, want, 0, what)
		}
	case g.kind == exfat:
		spans, err = f.fat.chain(n.first, 0, maxExFATDirBytes/g.clusterSize, what)
	default:
		spans, err = f.fat.chain(n.first, 0, max(1, maxFATDirBytes/g.clusterSize), what)
	}
	if err != nil {
		return nil, err
	}
	extents := make([][2]int64, 0, len(spans))
	for _, s := range spans {
		extents = append(extents, [2]int64{g.clusterOffset(s.first), int64(s.n) * g.clusterSize})
	}
	return extents, nil
}

// ReadDir lists directory id in on-disk order, without "." and "..".
func (f *FS) ReadDir(id fsys.ID) ([]fsys.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.node(id)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, fmt.Errorf("%s: file %d: %w", f.name(), id, fsys.ErrNotDir)
	}
	extents, err := f.dirExtents(id, n)
	if err != nil {
		return nil, err
	}
	var entries []fsys.DirEntry
	var nodes map[fsys.ID]*node
	if f.g.kind == exfat {
		entries, nodes, err = f.readExFATDir(id, extents)
	} else {
		entries, nodes, err = f.readFATDir(id, extents)
	}
	if err != nil {
		return nil, err
	}
	for cid, cn := range nodes {
		f.nodes[cid] = cn
	}
	return entries, nil
}

// Open opens file id's data. FAT and exFAT files have no named streams.
func (f *FS) Open(id fsys.ID, stream string) (fsys.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.node(id)
	if err != nil {
		return nil, err
	}
	if stream != "" {
		return nil, fmt.Errorf("%s: file %d: stream %q: %w", f.name(), id, stream, fsys.ErrNotFound)
	}
	if n.dir {
		return nil, fmt.Errorf("%s: file %d: %w", f.name(), id, fsys.ErrIsDir)
	}
	g := f.g
	what := fmt.Sprintf("%s: file %d", f.name(), id)
	file := &file{r: f.r, id: id, size: n.size}
	want := (n.size + g.clusterSize - 1) / g.clusterSize
	if want == 0 {
		return file, nil
	}
	if n.first == 0 {
		return nil, corrupt("%s: %d bytes and no first cluster", what, n.size)
	}
	var spans []span
	if n.contig {
		spans, err = f.fat.contiguous(n.first, want, what)
	} else {
		spans, err = f.fat.chain(n.first, want, 0, what)
	}
	if err != nil {
		return nil, err
	}
	file.runs = runsOf(g, spans, n.valid, n.size)
	return file, nil
}

// Readlink fails: FAT and exFAT have no symbolic links.
func (f *FS) Readlink(id fsys.ID) (string, error) {
	return "", fmt.Errorf("%s: file %d: not a symbolic link (FAT has none): %w", f.name(), id, fsys.ErrUnsupported)
}
