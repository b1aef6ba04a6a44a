// Package listing reads files out of a disk for the commands ls, cat and
// timeline: a directory listing (text or one JSON document), a file's
// bytes, and Sleuth Kit bodyfiles of one file system or of them all. It
// reads through internal/fsys/disk and the file-system readers, metadata
// only except for cat.
package listing

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/fsys/disk"
)

// Entry is one file as ls shows it. Its JSON names are stable.
type Entry struct {
	Path  string `json:"path"` // absolute within its file system
	Name  string `json:"name"`
	Type  string `json:"type"` // "file", "dir", "symlink", ... (fsys.Type)
	ID    uint64 `json:"id"`   // inode or MFT record number
	Addr  string `json:"addr"` // as Sleuth Kit prints it: "12", "35-128-1"
	Mode  string `json:"mode"` // as fls -l and bodyfiles: "r/rrw-r--r--"
	Perm  string `json:"perm"` // octal: "0644", "4755"
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Nlink uint32 `json:"nlink"`
	Size  int64  `json:"size"`
	// Times are UTC; a time the file system does not keep is left out.
	Atime   time.Time `json:"atime,omitzero"`
	Mtime   time.Time `json:"mtime,omitzero"`
	Ctime   time.Time `json:"ctime,omitzero"`
	Crtime  time.Time `json:"crtime,omitzero"`
	Target  string    `json:"target,omitempty"`  // a symbolic link's
	Streams []string  `json:"streams,omitempty"` // named data streams (NTFS)
}

// Listing is what ls prints.
type Listing struct {
	Part      string  `json:"part"`    // "1", "rootvg/root", "" for a bare file system
	FSType    string  `json:"fs_type"` // "ext4", "ntfs", ...
	Path      string  `json:"path"`    // the path listed
	Recursive bool    `json:"recursive"`
	Entries   []Entry `json:"entries"`
}

// List lists the directory p names (its entries, or with recursive
// everything under it), or the one file it names.
func List(d *disk.Disk, p disk.Path, recursive bool) (*Listing, error) {
	part, f, id, _, err := d.Resolve(p)
	if err != nil {
		return nil, err
	}
	l := &Listing{Part: part.Name, FSType: f.Type(), Path: p.Whole(), Recursive: recursive, Entries: []Entry{}}
	st, err := f.Stat(id)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", part.Display(), l.Path, err)
	}
	root := cleanPath(l.Path)
	if st.Type != fsys.TypeDir {
		e, err := entry(f, root, st)
		if err != nil {
			return nil, err
		}
		l.Entries = append(l.Entries, e)
		return l, nil
	}
	add := func(path string, de fsys.DirEntry) error {
		st, err := f.Stat(de.ID)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		e, err := entry(f, path, st)
		if err != nil {
			return err
		}
		l.Entries = append(l.Entries, e)
		return nil
	}
	if recursive {
		err = fsys.Walk(f, id, root, add)
	} else {
		var des []fsys.DirEntry
		if des, err = f.ReadDir(id); err != nil {
			err = fmt.Errorf("%s: %w", root, err)
		}
		for _, de := range des {
			if err = add(joinPath(root, de.Name), de); err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", part.Display(), err)
	}
	return l, nil
}

func cleanPath(p string) string {
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	return p
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

func entry(f fsys.FS, path string, st fsys.Stat) (Entry, error) {
	addr := st.Addr
	if addr == "" {
		addr = strconv.FormatUint(uint64(st.ID), 10)
	}
	e := Entry{
		Path: path, Name: path[strings.LastIndexByte(path, '/')+1:], Type: st.Type.String(), ID: uint64(st.ID), Addr: addr,
		Mode: modeLetters(st), Perm: fmt.Sprintf("%04o", st.Mode&0o7777), UID: st.UID, GID: st.GID, Nlink: st.Nlink, Size: st.Size,
		Atime: utc(st.Atime), Mtime: utc(st.Mtime), Ctime: utc(st.Ctime), Crtime: utc(st.Crtime), Streams: st.Streams,
	}
	if path == "/" {
		e.Name = "/"
	}
	if st.Type == fsys.TypeSymlink {
		t, err := f.Readlink(st.ID)
		if err != nil {
			return Entry{}, fmt.Errorf("%s: %w", path, err)
		}
		e.Target = t
	}
	return e, nil
}

func modeLetters(st fsys.Stat) string {
	m := fsys.ModeString(st.Type, st.Mode)
	return m[:1] + "/" + m
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// JSON writes the listing as one indented JSON document.
func (l *Listing) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(l)
}

// Text writes the listing: one name a line (a directory's ends in "/", a
// link shows "-> target"), or with long the mode, owner, size, the four
// times (UTC, "-" when the file system keeps none), the address and the
// name. A recursive listing shows paths. A name holding control
// characters or bytes that are not UTF-8 is printed quoted, Go-style, so
// that no name can forge a line.
func (l *Listing) Text(w io.Writer, long bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	if long {
		fmt.Fprintln(tw, "MODE\tUID\tGID\tSIZE\tMODIFIED\tACCESSED\tCHANGED\tCREATED\tADDR\tNAME")
	}
	for _, e := range l.Entries {
		name := e.Name
		if l.Recursive {
			name = e.Path
		}
		name = safe(name)
		if e.Type == "dir" && name != "/" {
			name += "/"
		}
		if e.Target != "" {
			name += " -> " + safe(e.Target)
		}
		for _, s := range e.Streams {
			name += " [:" + safe(s) + "]"
		}
		if !long {
			fmt.Fprintln(tw, name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Mode, e.UID, e.GID, e.Size,
			stamp(e.Mtime), stamp(e.Atime), stamp(e.Ctime), stamp(e.Crtime), e.Addr, name)
	}
	return tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("2006-01-02T15:04:05Z")
}

// safe quotes s when it holds a control character, a tab or bytes that
// are not UTF-8.
func safe(s string) string {
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) {
		return strconv.Quote(s)
	}
	return s
}

// Cat writes the bytes of the file (or NTFS stream) p names to w and
// returns how many there were. A directory is an error wrapping
// fsys.ErrIsDir.
func Cat(d *disk.Disk, p disk.Path, w io.Writer) (int64, error) {
	part, f, id, stream, err := d.Resolve(p)
	if err != nil {
		return 0, err
	}
	file, err := f.Open(id, stream)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", part.Display(), p.Whole(), err)
	}
	n, err := io.Copy(w, io.NewSectionReader(file, 0, file.Size()))
	if err != nil {
		return n, fmt.Errorf("%s: reading %s: %w", part.Display(), p.Whole(), err)
	}
	return n, nil
}

// Timeline writes the bodyfile of part name to w, its names as
// "/etc/passwd"; or, with all, of every part holding a file system, its
// names prefixed with the part's name and a colon ("1:/etc/passwd",
// "rootvg/root:/etc/passwd"; a bare file system's are not prefixed).
// Parts it leaves out (encrypted, unknown, swap) are returned as notes;
// a file system that cannot be read is skipped too, and once the others
// are written the error names each.
func Timeline(d *disk.Disk, name string, all bool, w io.Writer) (notes []string, err error) {
	if !all {
		f, err := d.Open(name)
		if err != nil {
			return nil, err
		}
		if err := fsys.WriteBodyfile(w, f, ""); err != nil {
			return nil, fmt.Errorf("timeline: %w", err)
		}
		return nil, nil
	}
	var errs []error
	for _, p := range d.Parts {
		if !p.HoldsFileSystem() {
			why := "holds " + p.Type
			switch {
			case p.Encryption != "":
				why = "is encrypted with " + p.Encryption
			case p.Type == "lvm2_pv":
				why = "is an LVM2 physical volume (its logical volumes are covered as VG/LV)"
			}
			notes = append(notes, fmt.Sprintf("%s %s: not in the timeline", p.Display(), why))
			continue
		}
		f, err := d.OpenPart(p)
		if err == nil {
			prefix := ""
			if p.Name != "" {
				prefix = p.Name + ":"
			}
			err = fsys.WriteBodyfile(w, f, prefix)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("timeline of %s: %w", p.Display(), err))
		}
	}
	if len(d.FileSystems()) == 0 {
		return notes, fmt.Errorf("timeline: no file system on the volume: %w", fsys.ErrUnsupported)
	}
	return notes, errors.Join(errs...)
}
