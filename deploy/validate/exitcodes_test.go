package validate

import (
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// exitGo is where ebsimager defines its exit codes and the root help
// text that documents them.
const exitGo = "../../cmd/ebsimager/exit.go"

// What a job engine does with each exit code, by the constant's name in
// exit.go: a permanent failure fails the job, a transient one is retried
// (and counted), an interruption is retried without counting. Every
// constant but exitOK must be here, and nothing else: a code renamed,
// removed or added in exit.go fails TestExitCodesDecided until this
// table and the specs say what to do with it.
const (
	permanent   = "FailJob"
	transient   = "Count"
	interrupted = "Ignore"
)

var decided = map[string]string{
	"exitError":       transient,   // unclassified: a network failure past every retry among them
	"exitUsage":       permanent,   // the spec's command line is wrong
	"exitIncomplete":  transient,   // blocks failed after every retry; a rerun fetches only those
	"exitMismatch":    permanent,   // evidence does not match its record: tampering
	"exitDenied":      permanent,   // IAM or KMS refused
	"exitNotFound":    permanent,   // no such snapshot
	"exitInvalid":     permanent,   // index beyond the targets, malformed id, request AWS rejects
	"exitConflict":    permanent,   // the output holds other evidence
	"exitLocalIO":     transient,   // local disk: another pod gets another disk
	"exitWrongKey":    permanent,   // wrong passphrase or identity
	"exitQuota":       transient,   // an AWS service quota is exhausted for now
	"exitBusy":        transient,   // another process (the pod this replaces) still holds the output
	"exitUnrecorded":  transient,   // the evidence verified, the record was not written: a rerun writes it
	"exitFileSystem":  permanent,   // a file system that cannot be read (not acquire's; decided all the same)
	"exitUnreadable":  permanent,   // the direct APIs cannot read the snapshot
	"exitInterrupted": interrupted, // SIGTERM: a node drained or preempted
}

// exitCodes parses exit.go and returns its exit* constants by name, and
// the codes its help text (exitCodesHelp) documents.
func exitCodes(t *testing.T) (map[string]int, map[int]bool) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, exitGo, nil, 0)
	if err != nil {
		t.Fatalf("parsing %s: %v", exitGo, err)
	}
	codes := map[string]int{}
	documented := map[int]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					t.Fatalf("%s: %s has no value of its own", exitGo, name.Name)
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				switch {
				case name.Name == "exitCodesHelp" && ok && lit.Kind == token.STRING:
					help, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					for _, m := range regexp.MustCompile(`(?m)^  (\d+) `).FindAllStringSubmatch(help, -1) {
						n, _ := strconv.Atoi(m[1])
						documented[n] = true
					}
				case strings.HasPrefix(name.Name, "exit") && ok && lit.Kind == token.INT:
					v := constant.MakeFromLiteral(lit.Value, token.INT, 0)
					n, exact := constant.Int64Val(v)
					if !exact {
						t.Fatalf("%s: %s", exitGo, name.Name)
					}
					codes[name.Name] = int(n)
				}
			}
		}
	}
	if len(codes) == 0 || len(documented) == 0 {
		t.Fatalf("%s: no exit codes or no help text found", exitGo)
	}
	return codes, documented
}

// byAction is the codes of each action, from exit.go through decided.
func byAction(t *testing.T) map[string][]int {
	t.Helper()
	codes, _ := exitCodes(t)
	out := map[string][]int{}
	for name, action := range decided {
		code, ok := codes[name]
		if !ok {
			t.Fatalf("%s has no %s: it was renamed or removed; decide again what a job does with its code", exitGo, name)
		}
		out[action] = append(out[action], code)
	}
	for _, v := range out {
		sort.Ints(v)
	}
	return out
}

// Every exit code of ebsimager is decided, and documented in the help.
func TestExitCodesDecided(t *testing.T) {
	codes, documented := exitCodes(t)
	for name, code := range codes {
		if name == "exitOK" {
			if code != 0 {
				t.Errorf("exitOK = %d", code)
			}
			continue
		}
		if _, ok := decided[name]; !ok {
			t.Errorf("%s = %d is new: decide whether a job fails, retries or ignores it (decided, deploy/k8s/job.yaml, deploy/batch/job-definition.json)", name, code)
		}
		if !documented[code] {
			t.Errorf("%s = %d is not in the help text's EXIT STATUS", name, code)
		}
	}
	for name := range decided {
		if _, ok := codes[name]; !ok {
			t.Errorf("%s is gone from %s", name, exitGo)
		}
	}
}
