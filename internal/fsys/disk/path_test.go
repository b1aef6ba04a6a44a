package disk

import (
	"errors"
	"testing"
)

func TestParsePath(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Path
		err  bool
	}{
		{in: "1:/etc/passwd", want: Path{Part: "1", Path: "/etc/passwd"}},
		{in: "p1:/etc/passwd", want: Path{Part: "1", Path: "/etc/passwd"}},
		{in: "12:/", want: Path{Part: "12", Path: "/"}},
		{in: "/etc/passwd", want: Path{Path: "/etc/passwd"}},
		{in: "/", want: Path{Path: "/"}},
		{in: "rootvg/root:/etc", want: Path{Part: "rootvg/root", Path: "/etc"}},
		{in: "vg_01.x+y-z/lv-1:/a", want: Path{Part: "vg_01.x+y-z/lv-1", Path: "/a"}},
		{in: "3:/Users/a/file.txt:Zone.Identifier", want: Path{Part: "3", Path: "/Users/a/file.txt", Stream: "Zone.Identifier"}},
		{in: "/file:stream", want: Path{Path: "/file", Stream: "stream"}},
		{in: "3:/$Extend/$UsnJrnl:$J", want: Path{Part: "3", Path: "/$Extend/$UsnJrnl", Stream: "$J"}},
		{in: "1:/a:b/c", want: Path{Part: "1", Path: "/a:b/c"}}, // a colon in a directory name is a name
		{in: "1:/a:", want: Path{Part: "1", Path: "/a:"}},       // a trailing colon stays in the name
		{in: "1:/a:b:c", want: Path{Part: "1", Path: "/a:b", Stream: "c"}},
		{in: "", err: true},
		{in: "1", err: true},
		{in: "1:", err: true},
		{in: "1:etc", err: true},
		{in: "0:/etc", want: Path{Part: "0", Path: "/etc"}},
		{in: "01:/etc", err: true},
		{in: "p:/etc", err: true},
		{in: "C:/etc", err: true},
		{in: "vg/:/etc", err: true},
		{in: "/lv:/etc", want: Path{Path: "/lv:/etc"}},
		{in: "vg/l v:/etc", err: true},
		{in: "vg/lv/x:/etc", err: true},
		{in: "1:/a\x00b", err: true},
		{in: "vg/..:/etc", err: true},
	} {
		got, err := ParsePath(c.in)
		if c.err {
			if err == nil || !errors.Is(err, ErrBadPath) {
				t.Errorf("ParsePath(%q) = %+v, %v; want an error", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParsePath(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	if p, _ := ParsePath("1:/a:b"); p.Whole() != "/a:b" || p.String() != "1:/a:b" {
		t.Errorf("Whole %q, String %q", p.Whole(), p.String())
	}
}

// FuzzParsePath checks that any argument parses without a panic, and
// that what parses writes back to a form that parses the same.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"1:/etc/passwd", "p2:/", "/etc", "vg/lv:/a:b", "3:/a/b:c", "1:/a:", ":/", "vg/:/", "1:/a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("ParsePath(%q): %v does not wrap ErrBadPath", s, err)
			}
			return
		}
		q, err := ParsePath(p.String())
		if err != nil || q != p {
			t.Fatalf("ParsePath(%q) = %+v, whose String %q parses to %+v, %v", s, p, p.String(), q, err)
		}
		if p.Path == "" || p.Path[0] != '/' {
			t.Fatalf("ParsePath(%q): path %q", s, p.Path)
		}
	})
}
