package fsmap

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/ext"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// internal/fsys/ext parses the ext2/3/4 structures (its Scan); this file
// turns what they say into owners and extents. Build only needs to tell
// an ext superblock from others before it.
const (
	extSuperOff        = 1024   // the superblock starts 1024 bytes into the volume
	extMagic           = 0xEF53 // s_magic
	sMagic             = 0x38
	sFeatureIncompat   = 0x60
	incompatFiletype   = 0x2
	incompatJournalDev = 0x8
	extRootIno         = 2    // EXT2_ROOT_INO
	extInlineHeader    = 4    // an inline directory keeps its parent's inode number first
	extIBlockLen       = 60   // i_block, whose entries an inline directory parses apart from the rest
	extPathDepth       = 4096 // deeper directory chains are loops in damaged volumes
)

func isExt(head []byte) bool {
	sb := head[extSuperOff:]
	return ondisk.U16(sb, sMagic) == extMagic && ondisk.U32(sb, sFeatureIncompat)&incompatJournalDev == 0
}

type extLink struct {
	dir  uint32
	name string
}

type extDir struct {
	ino    uint32
	runs   [][2]uint64 // physical block, count
	inline []byte      // an inline directory's data
}

// extSource gives the ext reader fsmap's budgeted reads, and remembers
// the first error that must stop the map (a read error of the volume or
// an exhausted budget): the reader's errors are otherwise warnings.
type extSource struct {
	rd  *reader
	err error
}

func (s *extSource) ReadAt(p []byte, off int64) (int, error) {
	if err := s.rd.readInto(p, off); err != nil {
		if fatal(err) && s.err == nil {
			s.err = err
		}
		return 0, err
	}
	return len(p), nil
}

type extFS struct {
	b   *builder
	src *extSource
	fs  *ext.FS
	lay ext.Layout

	typ      string
	bs       int64
	inodes   uint64
	incompat uint32 // incompatFiletype or 0, as entries needs it

	owners   map[uint32]int  // inodes of mapped files
	usedDirs map[uint32]bool // every directory in use, mapped or not
	dirs     []extDir
	parents  map[uint32][]extLink
	paths    map[uint32]string
}

func buildExt(rd *reader, keep []Range) (*Map, error) {
	src := &extSource{rd: rd}
	fs, err := ext.Scan(src, rd.size)
	if src.err != nil {
		return nil, fmt.Errorf("reading the ext superblock: %w", src.err)
	}
	if err != nil {
		return nil, err
	}
	lay := fs.Layout()
	x := &extFS{src: src, fs: fs, lay: lay, typ: lay.Type, bs: lay.BlockSize, inodes: lay.Inodes,
		owners: map[uint32]int{}, usedDirs: map[uint32]bool{}, parents: map[uint32][]extLink{}, paths: map[uint32]string{}}
	if lay.Filetype {
		x.incompat = incompatFiletype
	}
	fsBytes := int64(min(lay.Blocks, uint64(1<<62)/uint64(x.bs))) * x.bs
	x.b = newBuilder(x.typ, min(fsBytes, rd.size), x.bs, keep)
	if fsBytes > rd.size {
		x.b.warnf("the file system says it spans %d bytes; the volume has %d: structures past the end are skipped", fsBytes, rd.size)
	}
	if err := x.layout(); err != nil {
		return nil, err
	}
	if err := x.inodeTables(); err != nil {
		return nil, err
	}
	if err := x.directories(); err != nil {
		return nil, err
	}
	x.name()
	return x.b.finish()
}

// check turns the reader's error err into a warning (prefixed with
// format, unless it is empty), or returns the error that stops the map.
func (x *extFS) check(err error, format string, args ...any) error {
	if x.src.err != nil {
		return fmt.Errorf("reading the %s file system: %w", x.typ, x.src.err)
	}
	if err != nil && format == "" {
		x.b.warnf("%v", err)
	} else if err != nil {
		x.b.warnf("%s: %v", fmt.Sprintf(format, args...), err)
	}
	return x.b.err
}

func (x *extFS) structure(what string) func() int { return x.b.named(x.typ + ":" + what) }

// layout adds the superblocks, group descriptors and bitmaps.
func (x *extFS) layout() error {
	for g := range x.lay.Groups {
		ss, err := x.fs.Structures(g)
		for _, s := range ss {
			x.b.add(s.Off, s.Len, Metadata, x.structure(s.Name))
		}
		if err := x.check(err, ""); err != nil {
			return err
		}
	}
	return nil
}

// inodeTables maps every inode table: records in use are their inodes'
// metadata, the others the table's.
func (x *extFS) inodeTables() error {
	itOwner := x.structure("inode table")
	isz := x.lay.InodeSize
	for g := range x.lay.Groups {
		t, err := x.fs.Table(g)
		if err != nil {
			if err := x.check(err, ""); err != nil {
				return err
			}
			continue
		}
		if t.Used < t.Records {
			x.b.add(t.Off+int64(t.Used)*isz, int64(t.Records-t.Used)*isz, Metadata, itOwner)
		}
		next := uint64(0) // the first record not yet mapped
		var stop error
		err = x.fs.Inodes(g, t, func(in *ext.Inode) error {
			next = uint64(in.Off-t.Off)/uint64(isz) + 1
			if !in.InUse {
				x.b.add(in.Off, in.Len, Metadata, itOwner)
				return nil
			}
			stop = x.inode(in)
			return stop
		})
		if stop != nil {
			return stop
		}
		if err != nil {
			// The rest of the table is skipped: the table's own.
			if err := x.check(err, "group %d: its inodes from %d on are skipped", g, g*x.lay.InodesPerGroup+next+1); err != nil {
				return err
			}
			if next < t.Used {
				x.b.add(t.Off+int64(next)*isz, int64(t.Used-next)*isz, Metadata, itOwner)
			}
		}
	}
	return nil
}

func (x *extFS) inode(in *ext.Inode) error {
	ino := in.Ino
	kind := KindSpecial
	switch in.Type {
	case fsys.TypeRegular:
		kind = KindFile
	case fsys.TypeDir:
		kind = KindDir
	case fsys.TypeSymlink:
		kind = KindSymlink
	}
	var owner func() int
	dataRole := Data
	if name, special := x.lay.Special[ino]; special || (ino < x.lay.FirstInode && ino != extRootIno) {
		if !special {
			name = fmt.Sprintf("reserved inode %d", ino)
		}
		owner, dataRole = x.structure(name), Metadata
	} else {
		owner = func() int {
			if i, ok := x.owners[ino]; ok {
				return i
			}
			i := x.b.owner(Owner{ID: uint64(ino), Kind: kind, Record: Range{in.Off, in.Len}})
			x.owners[ino] = i
			return i
		}
		if kind == KindDir {
			dataRole = Metadata // directory entries are metadata
			x.usedDirs[ino] = true
		}
	}
	blocks, err := x.fs.Blocks(in)
	if err := x.check(err, ""); err != nil {
		return err
	}
	if blocks.InlineOff != 0 {
		// The data lives in i_block, inside the inode.
		x.b.add(in.Off, blocks.InlineOff-in.Off, Metadata, owner)
		x.b.add(blocks.InlineOff, blocks.InlineLen, dataRole, owner)
		x.b.add(blocks.InlineOff+blocks.InlineLen, in.Off+in.Len-blocks.InlineOff-blocks.InlineLen, Metadata, owner)
	} else {
		x.b.add(in.Off, in.Len, Metadata, owner)
	}
	if blocks.ACL != 0 {
		x.b.add(int64(blocks.ACL)*x.bs, x.bs, Metadata, owner)
	}
	for _, blk := range blocks.Tree {
		x.b.add(int64(blk)*x.bs, x.bs, Metadata, owner)
	}
	for _, r := range blocks.Data {
		x.b.add(int64(r[0])*x.bs, int64(r[1])*x.bs, dataRole, owner)
	}
	if x.usedDirs[ino] {
		x.dirs = append(x.dirs, extDir{ino: ino, runs: blocks.Data, inline: blocks.InlineData})
	}
	return x.b.err
}

// directories reads every directory's entries to learn the names.
func (x *extFS) directories() error {
	for _, d := range x.dirs {
		if len(d.inline) >= extIBlockLen {
			// Entries in i_block after the parent's inode number ("."
			// and ".." are implied), then in system.data.
			x.entries(d.ino, d.inline[extInlineHeader:extIBlockLen])
			x.entries(d.ino, d.inline[extIBlockLen:])
			continue
		}
		for _, r := range d.runs {
			for blk := r[0]; blk < r[0]+r[1]; blk++ {
				buf, err := x.src.rd.read(int64(blk)*x.bs, int(x.bs))
				if err != nil {
					if fatal(err) {
						return fmt.Errorf("reading directory inode %d: %w", d.ino, err)
					}
					x.b.warnf("directory inode %d: %v", d.ino, err)
					continue
				}
				x.entries(d.ino, buf)
			}
		}
	}
	return nil
}

// entries reads the names in a block of linear directory entries.
// Hash-tree interior blocks and checksum tails hold entries with inode 0,
// which are skipped.
func (x *extFS) entries(dir uint32, buf []byte) {
	err := ext.Entries(buf, x.bs, x.incompat&incompatFiletype != 0, func(ino uint32, name []byte) {
		if ino != 0 && uint64(ino) <= x.inodes && len(name) > 0 && x.wanted(ino) {
			if s := string(name); s != "." && s != ".." {
				x.parents[ino] = append(x.parents[ino], extLink{dir: dir, name: cleanName(s)})
			}
		}
	})
	if err != nil {
		x.b.warnf("directory inode %d: %v", dir, err)
	}
}

// wanted reports whether the name of inode ino is needed: it is mapped,
// or a directory that may be on a mapped file's path.
func (x *extFS) wanted(ino uint32) bool {
	_, mapped := x.owners[ino]
	return mapped || x.usedDirs[ino]
}

// name gives every file owner its path.
func (x *extFS) name() {
	for ino, owner := range x.owners {
		p, ok := x.path(ino, 0, map[uint32]bool{})
		if !ok {
			p = fmt.Sprintf("<inode %d>", ino)
		}
		x.b.m.owners[owner].Name = p
	}
}

func (x *extFS) path(ino uint32, depth int, visiting map[uint32]bool) (string, bool) {
	if ino == extRootIno {
		return "/", true
	}
	if p, ok := x.paths[ino]; ok {
		return p, p != ""
	}
	links := x.parents[ino]
	if len(links) == 0 || depth > extPathDepth || visiting[ino] {
		return "", false
	}
	visiting[ino] = true
	defer delete(visiting, ino)
	slices.SortFunc(links, func(a, b extLink) int {
		if a.dir != b.dir {
			return cmpInt64(int64(a.dir), int64(b.dir))
		}
		return strings.Compare(a.name, b.name)
	})
	for _, l := range links {
		if !x.usedDirs[l.dir] {
			continue // named by a directory that is not in use
		}
		if pp, ok := x.path(l.dir, depth+1, visiting); ok {
			p := path.Join(pp, l.name)
			x.paths[ino] = p
			return p, true
		}
	}
	if depth == 0 {
		x.paths[ino] = ""
	}
	return "", false
}
