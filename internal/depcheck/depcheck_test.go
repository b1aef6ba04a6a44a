package depcheck

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ebsimager/ebsimager"

// rules: a package (prefix) must not depend, directly or not, on any of
// the listed packages (prefixes).
var rules = []struct {
	pkg    string
	forbid []string
	why    string
	direct bool // only direct imports count
}{
	{"internal/block", []string{module + "/internal/", "github.com/aws/"}, "block is the shared vocabulary: it imports nothing of ours", false},
	{"internal/store", []string{module + "/internal/ebs", "github.com/aws/"}, "the evidence directory knows nothing of AWS", false},
	{"internal/manifest", []string{module + "/internal/ebs", "github.com/aws/"}, "the manifest knows nothing of AWS", false},
	{"internal/image", []string{module + "/internal/ebs", module + "/internal/store", "github.com/aws/"}, "images are sinks that know nothing of AWS", false},
	{"internal/digest", []string{module + "/internal/ebs", "github.com/aws/"}, "hashing knows nothing of AWS", false},
	{"internal/codec", []string{module + "/internal/ebs", "github.com/aws/"}, "codecs know nothing of AWS", false},
	{"internal/cost", []string{module + "/internal/ebs", "github.com/aws/"}, "the price table is pure", false},
	{"internal/inspect", []string{module + "/internal/ebs", "github.com/aws/"}, "inspect reads any io.ReaderAt", false},
	{"internal/acquire", []string{"github.com/aws/aws-sdk-go-v2/service/"}, "only internal/ebs calls the SDK's services", true},
	{"cmd/", []string{"github.com/aws/aws-sdk-go-v2/service/ebs"}, "only internal/ebs calls the EBS SDK", true},
	{"internal/ui", []string{module + "/internal/ebs", "github.com/aws/"}, "the UI draws; it does not talk to AWS", false},
	{"internal/report", []string{module + "/internal/ebs", "github.com/aws/"}, "the record is data and its renderers: internal/awsctx makes the AWS calls", false},
	// The EC2 package builds slowly: keep it out of everything but the
	// report's context calls (internal/awsctx) and the commands that make
	// them. Test packages are not listed by go list, so their imports are
	// free.
	{"", []string{"github.com/aws/aws-sdk-go-v2/service/ec2", module + "/internal/awsctx"},
		"only internal/awsctx imports EC2, and only cmd/ imports internal/awsctx", false},
	{"cmd/", []string{"github.com/aws/aws-sdk-go-v2/service/ec2"}, "only internal/awsctx calls the EC2 SDK", true},
}

// exempt lists, by rule package, the packages (prefixes) a rule does not
// apply to.
var exempt = map[string][]string{"": {"internal/awsctx", "cmd/"}}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}} |{{range .Deps}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	checked := 0
	for sc.Scan() {
		imports, deps, _ := strings.Cut(sc.Text(), "|")
		fields := strings.Fields(imports)
		pkg := strings.TrimPrefix(fields[0], module+"/")
		for _, r := range rules {
			if !strings.HasPrefix(pkg, r.pkg) || slices.ContainsFunc(exempt[r.pkg], func(e string) bool { return strings.HasPrefix(pkg, e) }) {
				continue
			}
			checked++
			list := strings.Fields(deps)
			if r.direct {
				list = fields[1:]
			}
			for _, d := range list {
				for _, f := range r.forbid {
					if strings.HasPrefix(d, f) && !strings.HasPrefix(d, module+"/"+r.pkg) {
						t.Errorf("%s depends on %s: %s", pkg, d, r.why)
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d package rules; is go list output as expected?", checked)
	}
}
