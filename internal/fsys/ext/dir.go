package ext

import (
	"fmt"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/ondisk"
)

// Directory entries (struct ext4_dir_entry_2) and in-inode extended
// attributes (fs/ext4/xattr.h), which hold the rest of inline data.
const (
	direntHeader = 8       // inode, rec_len, name_len, file_type
	direntMin    = 12      // EXT4_DIR_REC_LEN(1)
	tailLen      = 12      // struct ext4_dir_entry_tail
	tailType     = 0xDE    // its det_reserved_ft
	maxDirSize   = 1 << 32 // largedir directories reach 4 GiB; no real one nears it
	dirChunk     = 1 << 20 // directory blocks are read a MiB at a time

	xattrMagic       = 0xEA020000
	xattrEntryHeader = 16 // e_name_len, e_name_index, e_value_offs, e_value_inum, e_value_size, e_hash
	xattrIndexSystem = 7  // EXT4_XATTR_INDEX_SYSTEM: "system." names
)

// inlineData returns an inline-data inode's bytes: the 60 of i_block,
// then the value of its system.data attribute.
func (f *FS) inlineData(in *inode) ([]byte, error) {
	data := append([]byte(nil), in.raw[iBlock:iBlock+iBlockLen]...)
	start := oldInodeSize + in.extra
	if start+4 > len(in.raw) || ondisk.U32(in.raw, start) != xattrMagic {
		return data, nil // no attributes: all the data is in i_block
	}
	base := start + 4 // value offsets count from the first entry
	region := in.raw[base:]
	for off := 0; off+4 <= len(region) && ondisk.U32(region, off) != 0; {
		if off+xattrEntryHeader > len(region) {
			return nil, f.corrupt("inode %d: in-inode attribute entry at %d runs past the inode", in.ino, off)
		}
		nameLen := int(region[off])
		next := off + (xattrEntryHeader+nameLen+3)&^3
		if next > len(region) {
			return nil, f.corrupt("inode %d: in-inode attribute name at %d runs past the inode", in.ino, off)
		}
		name := string(region[off+xattrEntryHeader : off+xattrEntryHeader+nameLen])
		if region[off+1] == xattrIndexSystem && name == "data" {
			if ondisk.U32(region, off+4) != 0 {
				return nil, f.unsupported("inode %d: inline data kept in an extended-attribute inode", in.ino)
			}
			voff, vsize := int(ondisk.U16(region, off+2)), int(ondisk.U32(region, off+8))
			if voff > len(region) || vsize > len(region)-voff {
				return nil, f.corrupt("inode %d: system.data value of %d bytes at %d runs past the inode", in.ino, vsize, voff)
			}
			return append(data, region[voff:voff+vsize]...), nil
		}
		off = next
	}
	return data, nil
}

// ReadDir returns the directory's entries in on-disk order, without "."
// and "..". Hash-tree directories are read as linear ones: their index
// blocks hold one empty entry spanning the block, which is skipped.
func (f *FS) ReadDir(id fsys.ID) ([]fsys.DirEntry, error) {
	in, err := f.inode(uint64(id))
	if err != nil {
		return nil, err
	}
	if in.mode&modeType != modeDir {
		return nil, fmt.Errorf("%s: inode %d: %w", f.typ, id, fsys.ErrNotDir)
	}
	if in.flags&flagEncrypt != 0 {
		return nil, f.unsupported("directory inode %d: encrypted (fscrypt)", in.ino)
	}
	d := dirReader{f: f, in: in}
	if in.flags&flagInlineData != 0 {
		data, err := f.inlineData(in)
		if err != nil {
			return nil, err
		}
		// The parent's inode number comes first, then entries ("." and
		// ".." are implied) in i_block and in system.data, each parsed
		// on its own.
		if err := d.block(data[4:iBlockLen], false); err != nil {
			return nil, err
		}
		if err := d.block(data[iBlockLen:], false); err != nil {
			return nil, err
		}
		return d.out, nil
	}
	if in.size > maxDirSize || in.size > uint64(f.size) {
		// No directory holds more blocks than its volume (and the
		// extents could name the same blocks over and over).
		return nil, f.corrupt("directory inode %d: size %d on a volume of %d bytes", in.ino, in.size, f.size)
	}
	ext, err := f.extents(in, in.size)
	if err != nil {
		return nil, err
	}
	for _, e := range ext {
		if e.unwritten {
			continue // nothing written: no entries
		}
		per := uint64(max(dirChunk/f.bs, 1))
		for k := uint64(0); k < e.count; k += per {
			n := min(per, e.count-k)
			buf, err := f.read(int64(e.physical+k)*f.bs, int(int64(n)*f.bs))
			if err != nil {
				return nil, fmt.Errorf("directory inode %d: %w", in.ino, err)
			}
			for b := int64(0); b < int64(n); b++ {
				if err := d.block(buf[b*f.bs:(b+1)*f.bs], true); err != nil {
					return nil, fmt.Errorf("block %d: %w", e.logical+k+uint64(b), err)
				}
			}
		}
	}
	return d.out, nil
}

type dirReader struct {
	f   *FS
	in  *inode
	out []fsys.DirEntry
}

// recLen decodes rec_len for this file system's blocks.
func (d *dirReader) recLen(v uint16) int { return recLenFromDisk(d.f.bs, v) }

// recLenFromDisk decodes rec_len (ext4_rec_len_from_disk): 64 KiB
// blocks keep the top bits in the low two.
func recLenFromDisk(bs int64, v uint16) int {
	if bs < 1<<16 {
		return int(v)
	}
	if v == 0xFFFF || v == 0 {
		return int(bs)
	}
	return int(v&0xFFFC) | int(v&3)<<16
}

// block parses the entries of one directory block (or of one part of an
// inline directory), checking its checksum tail when it has one.
func (d *dirReader) block(buf []byte, whole bool) error {
	f, ino := d.f, d.in.ino
	filetype := f.incompat&incompatFiletype != 0
	err := walkEntries(buf, f.bs, filetype, func(off int, child uint32, nb []byte, ft byte) error {
		if whole && child == 0 && off == len(buf)-tailLen && len(nb) == 0 && ft == tailType {
			if f.csum && !f.opt.IgnoreChecksums {
				if got, stored := crc32c(f.inodeSeed(d.in), buf[:off]), ondisk.U32(buf, off+8); got != stored {
					return f.corrupt("directory inode %d: directory block checksum %08x, computed %08x", ino, stored, got)
				}
			}
			return nil // the tail ends the block
		}
		name := string(nb)
		if child == 0 || name == "." || name == ".." {
			return nil // unused, an index block's empty entry, or the links up
		}
		if len(nb) == 0 || uint64(child) > f.inodes {
			return f.corrupt("directory inode %d: entry %q names inode %d (of %d)", ino, name, child, f.inodes)
		}
		if len(d.out) >= fsys.MaxDirEntries {
			return f.corrupt("directory inode %d: more than %d entries", ino, fsys.MaxDirEntries)
		}
		t := fsys.TypeUnknown
		if filetype {
			t = direntType(ft)
		}
		d.out = append(d.out, fsys.DirEntry{Name: name, ID: fsys.ID(child), Type: t})
		return nil
	})
	if de, ok := err.(*direntError); ok {
		return f.corrupt("directory inode %d: %s", ino, de)
	}
	return err
}

// direntType maps a directory entry's file_type (EXT4_FT_*).
func direntType(ft byte) fsys.Type {
	switch ft {
	case 1:
		return fsys.TypeRegular
	case 2:
		return fsys.TypeDir
	case 3:
		return fsys.TypeCharDev
	case 4:
		return fsys.TypeBlockDev
	case 5:
		return fsys.TypeFIFO
	case 6:
		return fsys.TypeSocket
	case 7:
		return fsys.TypeSymlink
	}
	return fsys.TypeUnknown
}

// Readlink returns a symbolic link's target: in i_block (a fast link),
// inline data, or a data block.
func (f *FS) Readlink(id fsys.ID) (string, error) {
	in, err := f.inode(uint64(id))
	if err != nil {
		return "", err
	}
	if in.mode&modeType != modeSymlink {
		return "", fmt.Errorf("%s: inode %d is not a symbolic link: %w", f.typ, id, fsys.ErrNotFound)
	}
	if in.size > fsys.MaxSymlink || int64(in.size) > f.bs {
		return "", f.corrupt("symbolic link inode %d: target of %d bytes", in.ino, in.size)
	}
	fl, err := f.open(in)
	if err != nil {
		return "", err
	}
	buf := make([]byte, fl.size)
	if _, err := fl.ReadAt(buf, 0); err != nil && len(buf) > 0 {
		return "", fmt.Errorf("reading symbolic link inode %d: %w", in.ino, err)
	}
	return string(buf), nil
}
