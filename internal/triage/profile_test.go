package triage

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseProfile(t *testing.T) {
	p, err := Parse("t", []byte(`# comment
/etc/passwd

/var/log/**   max=1MiB # the logs
"/Start Menu/Programs/**" list
/home/*/.ssh/id_* private list
/$Extend/$UsnJrnl:$J
/a\:b
~/.ssh/id_*
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Pattern: "/etc/passwd", Names: []string{"etc", "passwd"}, Line: 2},
		{Pattern: "/var/log/**", Names: []string{"var", "log", "**"}, MaxSize: 1 << 20, Line: 4},
		{Pattern: "/Start Menu/Programs/**", Names: []string{"Start Menu", "Programs", "**"}, List: true, Line: 5},
		{Pattern: "/home/*/.ssh/id_*", Names: []string{"home", "*", ".ssh", "id_*"}, Private: true, List: true, Line: 6},
		{Pattern: "/$Extend/$UsnJrnl:$J", Names: []string{"$Extend", "$UsnJrnl"}, Stream: "$J", Line: 7},
		{Pattern: `/a\:b`, Names: []string{"a:b"}, Line: 8},
		{Pattern: "~/.ssh/id_*", Names: []string{".ssh", "id_*"}, Home: true, Line: 9},
	}
	if !reflect.DeepEqual(p.Rules, want) {
		t.Fatalf("rules\n%+v\nwant\n%+v", p.Rules, want)
	}
	if len(p.SHA256) != 64 {
		t.Fatalf("sha256 %q", p.SHA256)
	}
}

func TestParseProfileRefuses(t *testing.T) {
	for _, bad := range []string{
		"etc/passwd",                          // relative
		"/etc/../shadow",                      // ..
		"/etc/passwd maybe",                   // unknown option
		"/etc/passwd max=0",                   // size
		"/etc/passwd max=-1",                  // size
		"/etc/passwd max=1XB",                 // unit
		`"/etc/passwd`,                        // quote
		`"/etc/passwd"x`,                      // text after quote
		"/etc/[",                              // bad class
		"/",                                   // names nothing
		"/var/**:$J",                          // stream after **
		"/a:*",                                // stream with a glob
		"# only a comment",                    // no rules
		"/a\x00b",                             // NUL
		"/" + strings.Repeat("a/", 300) + "b", // too deep
	} {
		if _, err := Parse("t", []byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestBuiltins(t *testing.T) {
	for _, name := range BuiltinNames {
		p, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Rules) < 20 || p.Origin != "built-in" {
			t.Fatalf("%s: %d rules, origin %q", name, len(p.Rules), p.Origin)
		}
	}
	if _, err := Load("nosuch"); err == nil {
		t.Fatal("unknown built-in: no error")
	}
}

func TestParseTkape(t *testing.T) {
	p, err := ParseTkape("x.tkape", []byte(`Description: Test
Author: someone
Version: 1.0
Id: 2da16dbf-ea47-448e-a00f-fc442c3109ba
RecreateDirectories: true
Targets:
    -
        Name: Event logs
        Category: EventLogs
        Path: C:\Windows\System32\winevt\logs\
        FileMask: '*.evtx'
    - Name: LNK
      Path: C:\Users\%user%\AppData\Roaming\Microsoft\Windows\Recent\
      FileMask: "*.lnk"
      Recursive: true
      IsDirectory: false
      Comment: "Locates LNK files # and more"
    -
        Name: J
        Path: '%SystemDrive%\$Extend'
        FileMask: $UsnJrnl:$J
        AlwaysAddToQueue: true
    -
        Name: everything under
        Path: D:\Tasks
        Recursive: true
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range p.Rules {
		got = append(got, r.Pattern)
	}
	want := []string{"/Windows/System32/winevt/logs/*.evtx", "/Users/*/AppData/Roaming/Microsoft/Windows/Recent/**/*.lnk",
		"/$Extend/$UsnJrnl:$J", "/Tasks/**/*"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("patterns %q, want %q", got, want)
	}
	if p.Rules[2].Stream != "$J" || p.Rules[0].Line != 7 {
		t.Fatalf("rules %+v", p.Rules)
	}
}

func TestParseTkapeRefuses(t *testing.T) {
	head := "Description: x\nTargets:\n    -\n        Name: a\n"
	for _, bad := range []string{
		head + "        Path: C:\\x\\\n        MaxSize: 10\n",
		head + "        Path: Compound.tkape\n",
		head + "        Path: C:\\x\n        FileMask: regex:.*\n",
		head + "        Path: C:\\%temp%\\x\n",
		head + "        Path: |\n          C:\\x\n",
		head + "        Path: C:\\x\n        Recursive: maybe\n",
		head + "        Path: C:\\x\n        Path: C:\\y\n",
		head + "        FileMask: x\n",
		"Description: x\nTargets: []\n",
		"Description: x\nSomething: y\nTargets:\n    -\n        Path: C:\\x\n",
		"Description: x\n",
		"Description: x\nTargets:\n        Path: C:\\x\n",
		"Description: x\nTargets:\n    -\n\tPath: C:\\x\n",
	} {
		if _, err := ParseTkape("x.tkape", []byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLocalName(t *testing.T) {
	for in, want := range map[string]string{
		"passwd":      "passwd",
		".":           "%2E",
		"..":          "%2E%2E",
		"a/b":         "a%2Fb",
		`a\b`:         "a%5Cb",
		"a:b":         "a%3Ab",
		"100%":        "100%25",
		"new\nline":   "new%0Aline",
		"tab\t\x7f":   "tab%09%7F",
		"bad\xffutf8": "bad%FFutf8",
		"naïve":       "naïve",
		".tmp-x":      "%2Etmp-x",
		"":            "%",
	} {
		if got := localName(in); got != want {
			t.Errorf("localName(%q) = %q, want %q", in, got, want)
		}
	}
	long := localName(strings.Repeat("é", 200))
	if len(long) > maxNameBytes || !strings.Contains(long, "%~") {
		t.Fatalf("long name %q (%d bytes)", long, len(long))
	}
	if got := localPath([]string{"$Extend", "$UsnJrnl"}, "$J"); got != "$Extend/$UsnJrnl%3A$J" {
		t.Fatalf("stream path %q", got)
	}
}
