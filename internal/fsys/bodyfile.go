package fsys

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// A bodyfile is Sleuth Kit's timeline input, as `fls -r -m` writes it and
// mactime reads it: one line per file,
//
//	MD5|name|inode|mode_as_string|UID|GID|size|atime|mtime|ctime|crtime
//
// built from metadata only. WriteBodyfile follows fls 4.11's conventions
// (tsk_fs_name_print_mac_md5):
//   - MD5 is "0": no content is read;
//   - name is the prefix, then the absolute path ("/etc/passwd"); a
//     symbolic link's line adds " -> target"; a named stream's line adds
//     ":stream" (NTFS);
//   - inode is the file's address as Sleuth Kit prints it (Stat.Addr);
//   - the mode is the directory entry's type, "/", the inode's type and
//     the permissions: "r/rrw-r--r--", "d/drwxr-xr-x", "l/lrwxrwxrwx";
//   - times are Unix seconds, 0 when the file system keeps none;
//   - the root directory itself has no line; "." and ".." have none.
//
// Names are escaped so that no name can break the format: fls turns
// control characters (bytes 0x00-0x1F) into "^"; WriteBodyfile does the
// same and also turns "|", which fls leaves as it is (so a name holding
// it breaks fls's line), into "^", in names, stream names and link
// targets. Other bytes are written as stored.

// BodyLine is one line of a bodyfile.
type BodyLine struct {
	Name     string // prefix and path, unescaped
	Link     string // a symbolic link's target, or ""
	Addr     string
	NameType Type // the type the directory entry gives (TypeUnknown: the inode's)
	Stat     Stat
	Size     int64 // the stream's size
}

// String formats the line, with its newline.
func (l BodyLine) String() string {
	var b strings.Builder
	b.WriteString("0|")
	b.WriteString(bodyEscape(l.Name))
	if l.Link != "" {
		b.WriteString(" -> ")
		b.WriteString(bodyEscape(l.Link))
	}
	b.WriteByte('|')
	b.WriteString(bodyEscape(l.Addr))
	b.WriteByte('|')
	nt := l.NameType
	if nt == TypeUnknown {
		nt = l.Stat.Type
	}
	b.WriteByte(typeLetter(nt))
	b.WriteByte('/')
	b.WriteString(ModeString(l.Stat.Type, l.Stat.Mode))
	fmt.Fprintf(&b, "|%d|%d|%d|%d|%d|%d|%d\n", l.Stat.UID, l.Stat.GID, l.Size,
		bodyTime(l.Stat.Atime), bodyTime(l.Stat.Mtime), bodyTime(l.Stat.Ctime), bodyTime(l.Stat.Crtime))
	return b.String()
}

func bodyEscape(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == '|' }) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == '|' {
			b[i] = '^'
		}
	}
	return string(b)
}

func bodyTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// typeLetter is Sleuth Kit's letter for a file type: "r" for a regular
// file, "d", "l", "c", "b", "p", "s", and "-" when unknown.
func typeLetter(t Type) byte {
	switch t {
	case TypeRegular:
		return 'r'
	case TypeDir:
		return 'd'
	case TypeSymlink:
		return 'l'
	case TypeCharDev:
		return 'c'
	case TypeBlockDev:
		return 'b'
	case TypeFIFO:
		return 'p'
	case TypeSocket:
		return 's'
	}
	return '-'
}

// ModeString is the type letter and the permissions as Sleuth Kit
// writes them (tsk_fs_meta_make_ls): "rrw-r--r--", "drwxr-xr-x",
// "rrwsr-xr-x" (setuid), "drwxrwxrwt" (sticky).
func ModeString(t Type, mode uint32) string {
	b := []byte("----------")
	b[0] = typeLetter(t)
	const rwx = "rwx"
	for i := range 9 {
		if mode&(1<<(8-i)) != 0 {
			b[1+i] = rwx[i%3]
		}
	}
	special := func(pos int, bit uint32, set, unset byte) {
		if mode&bit == 0 {
			return
		}
		if b[pos] == 'x' {
			b[pos] = set
		} else {
			b[pos] = unset
		}
	}
	special(3, 0o4000, 's', 'S')
	special(6, 0o2000, 's', 'S')
	special(9, 0o1000, 't', 'T')
	return string(b)
}

// streamAddr is implemented by a File that knows its own Sleuth Kit
// address, such as an NTFS named stream's "35-128-4".
type streamAddr interface{ Addr() string }

// WriteBodyfile writes the bodyfile of f to w: a line for every file
// under the root, and one for every named stream, each name prefixed
// with prefix ("" or "1:", so "1:/etc/passwd"). It reads metadata only:
// directories, inodes or records, and link targets. A directory that
// cannot be read ends it with an error naming it.
func WriteBodyfile(w io.Writer, f FS, prefix string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	err := Walk(f, f.Root(), "/", func(p string, e DirEntry) error {
		st, err := f.Stat(e.ID)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		line := BodyLine{Name: prefix + p, Addr: st.Addr, NameType: e.Type, Stat: st, Size: st.Size}
		if line.Addr == "" {
			line.Addr = strconv.FormatUint(uint64(e.ID), 10)
		}
		if st.Type == TypeSymlink {
			if line.Link, err = f.Readlink(e.ID); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		if _, err := bw.WriteString(line.String()); err != nil {
			return err
		}
		for _, s := range st.Streams {
			sf, err := f.Open(e.ID, s)
			if err != nil {
				return fmt.Errorf("%s:%s: %w", p, s, err)
			}
			sl := line
			sl.Name, sl.Link, sl.Size = prefix+p+":"+s, "", sf.Size()
			if a, ok := sf.(streamAddr); ok {
				sl.Addr = a.Addr()
			}
			if _, err := bw.WriteString(sl.String()); err != nil {
				return err
			}
		}
		return nil
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}
