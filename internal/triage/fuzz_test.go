package triage

import (
	"strings"
	"testing"
)

// FuzzParse feeds profile text to Parse: it never panics, and a rule it
// accepts is absolute, names something, and holds no "..".
func FuzzParse(f *testing.F) {
	for _, name := range BuiltinNames {
		data, err := builtins.ReadFile("profiles/" + name + ".txt")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("\"/a b\\\"c\" max=1KiB list private\n/x:y\n/a\\:b/**\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		for _, r := range p.Rules {
			checkRule(t, r)
		}
	})
}

// FuzzParseTkape feeds target files to ParseTkape, with the same checks.
func FuzzParseTkape(f *testing.F) {
	f.Add([]byte("Description: x\nTargets:\n    -\n        Name: a\n        Path: C:\\Windows\\System32\\config\\\n        FileMask: SAM.LOG*\n        Recursive: true\n"))
	f.Add([]byte("Targets:\n  - Path: '%SystemDrive%\\$Extend'\n    FileMask: \"$UsnJrnl:$J\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseTkape("fuzz.tkape", data)
		if err != nil {
			return
		}
		for _, r := range p.Rules {
			checkRule(t, r)
		}
	})
}

func checkRule(t *testing.T, r Rule) {
	if !strings.HasPrefix(r.Pattern, "/") && !(r.Home && strings.HasPrefix(r.Pattern, "~/")) || len(r.Names) == 0 || len(r.Names) > maxPatternNames {
		t.Fatalf("rule %+v", r)
	}
	for _, n := range r.Names {
		if n == "" || n == ".." || n == "." {
			t.Fatalf("rule %+v: name %q", r, n)
		}
	}
}
