package disk

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// Path is a file named on a disk, as the commands take it:
//
//	1:/etc/passwd            partition 1 (also written p1:/etc/passwd)
//	rootvg/root:/etc/passwd  LVM2 logical volume root of volume group rootvg
//	/etc/passwd              the volume's single file system (see Disk.Single)
//	3:/file.txt:stream       a named data stream (NTFS)
//
// The part comes before the first colon; the path after it starts with
// "/". Stream is what follows the last colon of the path's last
// element (a colon that ends the path stays in it): on a file system without named streams (all but NTFS), a
// colon is part of the name, and Whole gives the path back with it.
type Path struct {
	Part   string // "1", "rootvg/root"; "" for the single file system
	Path   string // absolute, as written
	Stream string // "" for the default data stream
}

// ErrBadPath is wrapped by ParsePath's errors.
var ErrBadPath = errors.New("malformed path")

// maxPathLen bounds a path argument.
const maxPathLen = 64 << 10

// ParsePath parses s in one of the forms Path describes.
func ParsePath(s string) (Path, error) {
	bad := func(why string) (Path, error) {
		return Path{}, fmt.Errorf("%q: %s: %w (write N:/path, VG/LV:/path, or /path for a volume with one file system)", s, why, ErrBadPath)
	}
	if len(s) > maxPathLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxPathLen))
	}
	if strings.IndexByte(s, 0) >= 0 {
		return bad("holds a NUL byte")
	}
	var p Path
	rest := s
	if !strings.HasPrefix(s, "/") {
		part, after, ok := strings.Cut(s, ":")
		if !ok {
			return bad("no colon after the part")
		}
		name, err := ParsePart(part)
		if err != nil {
			return Path{}, fmt.Errorf("%q: %w", s, err)
		}
		p.Part, rest = name, after
	}
	if !strings.HasPrefix(rest, "/") {
		return bad("the path does not start with /")
	}
	p.Path = rest
	last := rest[strings.LastIndexByte(rest, '/')+1:]
	if i := strings.LastIndexByte(last, ':'); i >= 0 && i+1 < len(last) {
		p.Stream = last[i+1:]
		p.Path = rest[:len(rest)-len(last)+i]
	}
	return p, nil
}

// Whole is the path with the stream put back as part of the name: how a
// file system without named streams reads "a:b".
func (p Path) Whole() string {
	if p.Stream == "" {
		return p.Path
	}
	return p.Path + ":" + p.Stream
}

// String writes the path back in the form ParsePath reads.
func (p Path) String() string {
	s := p.Path
	if p.Stream != "" {
		s += ":" + p.Stream
	}
	if p.Part != "" {
		s = p.Part + ":" + s
	}
	return s
}

// ParsePart checks a part name: a partition number ("1", or "p1" as
// Linux names the device), or an LVM2 "VG/LV" whose names use LVM2's
// characters (letters, digits, and _ . + -). It returns the name as
// Disk.Parts spell it ("p1" becomes "1").
func ParsePart(s string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("part %q: %s: %w (a partition number such as 1, or VG/LV)", s, why, ErrBadPath)
	}
	if s == "" {
		return bad("empty")
	}
	if n := normalizePart(s); allDigits(n) {
		if len(n) > 1 && n[0] == '0' || len(n) > 6 {
			return bad("not a partition number")
		}
		return n, nil
	}
	vg, lv, ok := strings.Cut(s, "/")
	if !ok {
		return bad("neither a partition number nor VG/LV")
	}
	for _, name := range []string{vg, lv} {
		if name == "" || len(name) > 127 || name == "." || name == ".." || name[0] == '-' {
			return bad("not an LVM2 name")
		}
		for i := 0; i < len(name); i++ {
			if !isWordByte(name[i]) {
				return bad(fmt.Sprintf("%q is not allowed in an LVM2 name", name[i]))
			}
		}
	}
	return s, nil
}

// Resolve opens the file system of p's part and looks up p's path (see
// fsys.Lookup: no symbolic link is followed). On NTFS, Stream names a
// data stream; elsewhere a colon is part of the name, and the stream
// returned is "".
func (d *Disk) Resolve(p Path) (part *Part, f fsys.FS, id fsys.ID, stream string, err error) {
	part, err = d.Part(p.Part)
	if err != nil {
		return nil, nil, 0, "", err
	}
	f, err = d.OpenPart(part)
	if err != nil {
		return nil, nil, 0, "", err
	}
	name := p.Whole()
	if f.Type() == "ntfs" {
		name, stream = p.Path, p.Stream
	}
	id, err = fsys.Lookup(f, name)
	if err != nil {
		return nil, nil, 0, "", fmt.Errorf("%s: %w", part.Display(), err)
	}
	return part, f, id, stream, nil
}
