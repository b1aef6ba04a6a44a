package depcheck

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ebsimager/ebsimager"

const (
	ebsPkg = module + "/internal/ebs"
	uiPkg  = module + "/internal/ui"
	sdk    = "github.com/aws/"
)

// rule: a package (a path prefix under the module; "" is every package)
// must not depend, directly or not, on any of the packages (prefixes) in
// forbid. A named package may always depend on its own subpackages.
// (Before this was said of named packages only, the allowance covered
// the whole module for the rules of every package, so that the rule that
// only cmd/ imports internal/awsctx checked nothing: TestEveryRuleCanFail
// found it.)
type rule struct {
	pkg    string
	forbid []string
	why    string
	direct bool     // only direct imports count
	exempt []string // packages (prefixes) the rule does not apply to
	// planned marks a rule for a package that issue 12 creates: until it
	// exists the rule matches nothing, and applies as soon as it does.
	planned bool
}

var rules = []rule{
	{pkg: "internal/block", forbid: []string{module + "/internal/", sdk}, why: "block is the shared vocabulary: it imports nothing of ours"},
	{pkg: "internal/store", forbid: []string{ebsPkg, sdk}, why: "the evidence directory knows nothing of AWS"},
	{pkg: "internal/manifest", forbid: []string{ebsPkg, sdk}, why: "the manifest knows nothing of AWS"},
	{pkg: "internal/image", forbid: []string{ebsPkg, module + "/internal/store", sdk}, why: "images are sinks that know nothing of AWS"},
	{pkg: "internal/digest", forbid: []string{ebsPkg, sdk}, why: "hashing knows nothing of AWS"},
	{pkg: "internal/codec", forbid: []string{ebsPkg, sdk}, why: "codecs know nothing of AWS"},
	{pkg: "internal/cost", forbid: []string{ebsPkg, sdk}, why: "the price table is pure"},
	{pkg: "internal/inspect", forbid: []string{ebsPkg, sdk}, why: "inspect reads any io.ReaderAt"},
	{pkg: "internal/acquire", forbid: []string{"github.com/aws/aws-sdk-go-v2/service/"}, why: "only internal/ebs calls the SDK's services", direct: true},
	{pkg: "internal/casework", forbid: []string{"github.com/aws/aws-sdk-go-v2/service/"}, why: "a case runs the pipeline per snapshot; only internal/ebs calls the SDK's services", direct: true},
	{pkg: "cmd/", forbid: []string{"github.com/aws/aws-sdk-go-v2/service/ebs"}, why: "only internal/ebs calls the EBS SDK", direct: true},
	{pkg: "internal/ui", forbid: []string{ebsPkg, sdk}, why: "the UI draws; it does not talk to AWS"},
	{pkg: "internal/report", forbid: []string{ebsPkg, sdk}, why: "the record is data and its renderers: internal/awsctx makes the AWS calls"},
	// The EC2 package builds slowly: keep it out of everything but the
	// three packages that call EC2 (the report's context calls in
	// internal/awsctx, the preservation step in internal/preserve, the
	// pre-flight checks in internal/preflight) and the commands that
	// use them. Test packages are not listed by go list, so their
	// imports are free.
	{pkg: "", forbid: []string{"github.com/aws/aws-sdk-go-v2/service/ec2", module + "/internal/awsctx", module + "/internal/preserve", module + "/internal/preflight"},
		why:    "only internal/awsctx, internal/preserve and internal/preflight import EC2, and only cmd/ imports them",
		exempt: []string{"internal/awsctx", "internal/preserve", "internal/preflight", "cmd/"}},
	{pkg: "cmd/", forbid: []string{"github.com/aws/aws-sdk-go-v2/service/ec2"}, why: "only internal/awsctx, internal/preserve and internal/preflight call the EC2 SDK", direct: true},

	// Issue 12: the readers of volumes and the formats know nothing of
	// AWS, and only the command draws.
	{pkg: "", forbid: []string{uiPkg}, why: "only cmd/ imports internal/ui: the core reports through callbacks", exempt: []string{"cmd/", "internal/ui"}},
	{pkg: "internal/diff", forbid: []string{ebsPkg, sdk}, why: "diff compares volumes, wherever they live; cmd/ opens a live snapshot for it"},
	{pkg: "internal/fsmap", forbid: []string{ebsPkg, sdk}, why: "fsmap reads file systems from bytes"},
	{pkg: "internal/snap4n6ir", forbid: []string{ebsPkg, sdk}, why: "the original tool's folder is read from disk, never from AWS"},
	{pkg: "internal/emulator", forbid: []string{ebsPkg}, why: "the emulator is the server: it must not share the client's code, or a client bug could hide in both"},
	{pkg: "internal/emulator", forbid: []string{sdk}, why: "the emulator speaks the wire protocol itself; only emulatortest builds SDK clients for tests",
		exempt: []string{"internal/emulator/emulatortest"}},
	{pkg: "internal/volume", forbid: []string{ebsPkg, sdk}, why: "a Volume reads any source; the live snapshot's lives in internal/live"},
	{pkg: "internal/sink", forbid: []string{ebsPkg, sdk}, why: "sinks write blocks and know nothing of AWS"},
	// convert runs on the one pipeline, whose Source speaks ebs's nouns
	// (Page, Info, Fetcher), so it may name them; it calls no SDK itself.
	{pkg: "internal/convert", forbid: []string{sdk}, why: "converting stored evidence calls no AWS: it reads the evidence through the pipeline", direct: true},
	{pkg: "internal/live", forbid: []string{sdk}, why: "the live snapshot talks to AWS only through internal/ebs", direct: true},

	// Issue 13: file systems are read from bytes; FUSE is one package's
	// business.
	{pkg: "internal/fsys", forbid: []string{ebsPkg, sdk, module + "/internal/live"}, why: "file-system readers read bytes from any volume, never from AWS"},
	{pkg: "internal/triage", forbid: []string{sdk}, why: "triage reaches AWS only through the volume it is given", direct: true, planned: true},
	{pkg: "", forbid: []string{"github.com/hanwen/go-fuse/"}, why: "only internal/mount uses FUSE (go-fuse); cmd/ reaches it through internal/mount",
		exempt: []string{"internal/mount", "cmd/"}},
	{pkg: "cmd/", forbid: []string{"github.com/hanwen/go-fuse/"}, why: "cmd/ mounts through internal/mount", direct: true},
	{pkg: "internal/mount", forbid: []string{ebsPkg, sdk}, why: "the mount serves any volume; cmd/ opens a live snapshot for it"},

	// Issue 15: S3 is one package's business, as EC2 is three's.
	{pkg: "", forbid: []string{"github.com/aws/aws-sdk-go-v2/service/s3", module + "/internal/s3store"},
		why:    "only internal/s3store imports the S3 SDK, and only cmd/ imports internal/s3store",
		exempt: []string{"internal/s3store", "cmd/"}},
	{pkg: "cmd/", forbid: []string{"github.com/aws/aws-sdk-go-v2/service/s3"}, why: "cmd/ reaches S3 through internal/s3store", direct: true},
	{pkg: "internal/bucket", forbid: []string{ebsPkg, sdk}, why: "the object-store vocabulary knows nothing of AWS: internal/s3store implements it"},
}

// pkg is one package as go list describes it: its path under the module
// (or outside it), its imports and all its dependencies.
type pkg struct {
	path          string
	imports, deps []string
}

// check returns the violations of rules in pkgs, and how many packages
// each rule applied to.
func check(rules []rule, pkgs []pkg) (violations []string, applied []int) {
	applied = make([]int, len(rules))
	for _, p := range pkgs {
		for i, r := range rules {
			if !strings.HasPrefix(p.path, r.pkg) || slices.ContainsFunc(r.exempt, func(e string) bool { return strings.HasPrefix(p.path, e) }) {
				continue
			}
			applied[i]++
			list := p.deps
			if r.direct {
				list = p.imports
			}
			for _, d := range list {
				for _, f := range r.forbid {
					if strings.HasPrefix(d, f) && !(r.pkg != "" && strings.HasPrefix(d, module+"/"+r.pkg)) {
						violations = append(violations, fmt.Sprintf("%s depends on %s: %s", p.path, d, r.why))
					}
				}
			}
		}
	}
	return violations, applied
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}} |{{range .Deps}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		imports, deps, _ := strings.Cut(sc.Text(), "|")
		fields := strings.Fields(imports)
		pkgs = append(pkgs, pkg{path: strings.TrimPrefix(fields[0], module+"/"), imports: fields[1:], deps: strings.Fields(deps)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	violations, applied := check(rules, pkgs)
	for _, v := range violations {
		t.Error(v)
	}
	checked := 0
	for i, r := range rules {
		checked += applied[i]
		switch {
		case applied[i] == 0 && !r.planned:
			t.Errorf("the rule for %q applies to no package: a misspelt path, or a package gone", r.pkg)
		case applied[i] > 0 && r.planned:
			t.Logf("the rule for %s now applies to %d packages", r.pkg, applied[i])
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d package rules; is go list output as expected?", checked)
	}
}

// Every rule can fail: a package where the rule applies that imports
// what it forbids (directly, and for a transitive rule only through
// another package) is reported, once per forbidden import, with the
// rule's reason. Planned rules are tried on the packages they wait for.
func TestEveryRuleCanFail(t *testing.T) {
	for i, r := range rules {
		path := r.pkg
		if path == "" || strings.HasSuffix(path, "/") {
			path += "internal/probe"
		}
		for _, f := range r.forbid {
			bad := f + "probe"
			// Directly.
			v, applied := check(rules[i:i+1], []pkg{{path: path, imports: []string{bad}, deps: []string{bad}}})
			if applied[0] != 1 || len(v) != 1 || !strings.Contains(v[0], r.why) || !strings.HasPrefix(v[0], path+" depends on "+bad) {
				t.Errorf("rule %d (%q) on %s importing %s: %q", i, r.pkg, path, bad, v)
			}
			// Only through another package.
			v, _ = check(rules[i:i+1], []pkg{{path: path, imports: []string{"fmt"}, deps: []string{"fmt", bad}}})
			if r.direct != (len(v) == 0) {
				t.Errorf("rule %d (%q, direct %v) on %s depending on %s through another package: %q", i, r.pkg, r.direct, path, bad, v)
			}
		}
	}
}

// The exemptions and the own-subpackage allowance, on the real rules.
func TestRuleExemptions(t *testing.T) {
	ok := []pkg{
		{path: "cmd/ebsimager", imports: []string{uiPkg, module + "/internal/awsctx"}, deps: []string{uiPkg, module + "/internal/awsctx", "github.com/aws/aws-sdk-go-v2/service/ec2"}},
		{path: "internal/awsctx", imports: []string{ebsPkg, "github.com/aws/aws-sdk-go-v2/service/ec2"}, deps: []string{ebsPkg, "github.com/aws/aws-sdk-go-v2/service/ec2"}},
		{path: "internal/emulator/emulatortest", imports: []string{"github.com/aws/aws-sdk-go-v2/service/ebs"}, deps: []string{"github.com/aws/aws-sdk-go-v2/service/ebs"}},
		{path: "internal/live", imports: []string{ebsPkg}, deps: []string{ebsPkg, "github.com/aws/aws-sdk-go-v2/service/ebs"}},
		{path: "internal/image", imports: []string{module + "/internal/image/raw"}, deps: []string{module + "/internal/image/raw"}},
		{path: "internal/ui", imports: []string{"golang.org/x/term"}, deps: []string{"golang.org/x/term"}},
	}
	if v, _ := check(rules, ok); len(v) != 0 {
		t.Errorf("allowed imports reported: %q", v)
	}
	bad := []pkg{
		{path: "internal/store", imports: []string{uiPkg}, deps: []string{uiPkg}},
		{path: "internal/emulator/emulatortest", imports: []string{ebsPkg}, deps: []string{ebsPkg}},
		{path: "internal/volume", imports: []string{module + "/internal/live"}, deps: []string{module + "/internal/live", ebsPkg}},
		{path: "internal/live", imports: []string{"github.com/aws/aws-sdk-go-v2/service/ebs"}, deps: []string{"github.com/aws/aws-sdk-go-v2/service/ebs"}},
	}
	for _, p := range bad {
		if v, _ := check(rules, []pkg{p}); len(v) != 1 {
			t.Errorf("%s importing %v: %q, want one violation", p.path, p.imports, v)
		}
	}
}
