package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/iampolicy"
	"github.com/ebsimager/ebsimager/internal/preserve"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// TestPolicyTagKeys keeps the tag keys the policy lets the preservation
// step add after CreateSnapshots in step with the keys it adds.
func TestPolicyTagKeys(t *testing.T) {
	want := []string{preserve.TagPrefix + "device", preserve.TagPrefix + "volume"}
	if !slices.Equal(iampolicy.DeviceTagKeys, want) {
		t.Fatalf("iampolicy.DeviceTagKeys %v, preserve tags %v", iampolicy.DeviceTagKeys, want)
	}
}

// The flows the README shows, and every step at once. A snapshot can be
// copied only by the step that makes it (snapshot takes instances and
// volumes), so the copy under a key the forensic account may use is made
// in the suspect's account, and the forensic account acquires it.
var policyFlows = []struct {
	golden string
	args   []string
}{
	{"policy-acquire", []string{"--acquire"}},
	{"policy-suspect-account", []string{"--snapshot", "--share", "--copy", "--region", "us-east-1", "--account", "111122223333",
		"--share-with", "555566667777", "--kms-key", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}},
	{"policy-forensic-account", []string{"--acquire", "--region", "us-east-1",
		"--kms-key", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}},
	{"policy-all", []string{"--snapshot", "--share", "--copy", "--acquire"}},
	// A fleet worker in the forensic account: it acquires snapshots and
	// writes them to a locked evidence bucket; and whoever reads them.
	{"policy-s3-worker", []string{"--acquire", "--s3-write", "--s3", "s3://evidence-bucket/ir-2026-15/", "--object-lock", "compliance", "--legal-hold",
		"--region", "us-east-1", "--kms-key", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}},
	{"policy-s3-reader", []string{"--s3-read", "--s3", "s3://evidence-bucket/ir-2026-15/"}},
}

func TestPolicyCommand(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "")
	for _, f := range policyFlows {
		r := c.ok(append([]string{"policy"}, f.args...)...)
		golden(t, f.golden, r.stdout)
		if q := c.ok(append([]string{"policy", "--quiet"}, f.args...)...); q.stdout != r.stdout || q.stderr != "" {
			t.Errorf("%s --quiet: stdout differs or stderr %q", f.golden, q.stderr)
		}
		e := c.ok(append([]string{"policy", "--quiet", "--explain"}, f.args...)...)
		if e.stdout != r.stdout || strings.Count(e.stderr, "\n") != strings.Count(r.stdout, `"Sid"`) {
			t.Errorf("%s --explain: a line per statement, stdout unchanged; stderr:\n%s", f.golden, e.stderr)
		}
	}
	// What is left wide is said, and said only when it is.
	r := c.ok("policy", "--acquire")
	want := "ebsimager: note: the ARNs allow every Region: --region narrows them\n" +
		"ebsimager: note: the KMS statements allow any key, used only by EBS (kms:ViaService): --kms-key KEY-ARN narrows them to the key of the copy or of the snapshots you acquire\n"
	if r.stderr != want {
		t.Errorf("policy --acquire: stderr\n%s\nwant\n%s", r.stderr, want)
	}
	if r := c.ok(append([]string{"policy"}, policyFlows[2].args...)...); r.stderr != "" {
		t.Errorf("a policy narrowed everywhere has notes:\n%s", r.stderr)
	}
	// The order of the flags changes nothing.
	if a, b := c.ok("policy", "--share", "--snapshot", "--acquire", "--copy"), c.ok("policy", "--copy", "--acquire", "--snapshot", "--share"); a.stdout != b.stdout {
		t.Error("the order of the steps changed the policy")
	}
	for _, f := range []struct{ want, args string }{
		{"choose at least one of --snapshot, --share, --copy and --acquire", ""},
		{`--region "us-east": not a Region name`, "--acquire --region us-east"},
		{"an alias does not authorize the use of a key in IAM", "--copy --kms-key alias/forensics"},
		{"--kms-key is in us-east-1, not in the Region of the copy (eu-west-1)", "--copy --copy-region eu-west-1 --kms-key arn:aws:kms:us-east-1:555566667777:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
		{`--share-with "all": an AWS account id is 12 digits`, "--share --share-with all"},
		{"--share-with names the accounts --share shares with: add --share", "--snapshot --share-with 555566667777"},
		{`unexpected argument "acquire"`, "acquire"},
	} {
		r := c.fails(exitUsage, f.want, append([]string{"policy"}, strings.Fields(f.args)...)...)
		if r.stdout != "" {
			t.Errorf("policy %s: a refused policy printed %q", f.args, r.stdout)
		}
	}
}

// TestPolicyMotoAccepts has an independent implementation of IAM's policy
// grammar, moto's (CreatePolicy validates the document), take every
// policy the README shows; a malformed one is refused, so the check can
// fail.
func TestPolicyMotoAccepts(t *testing.T) {
	t.Parallel()
	endpoint := testenv.Moto(t)
	create := func(name, doc string) string {
		form := url.Values{"Action": {"CreatePolicy"}, "Version": {"2010-05-08"}, "PolicyName": {name}, "PolicyDocument": {doc}}
		req, err := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		// moto routes by the credential scope's service; it checks no
		// signature.
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDPOLICYTEST/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	for _, f := range policyFlows {
		doc, err := os.ReadFile(filepath.Join("testdata", f.golden+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		if got := create(f.golden, string(doc)); !strings.Contains(got, "<CreatePolicyResponse") {
			t.Errorf("%s: moto refuses it:\n%s", f.golden, got)
		}
	}
	bad := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "GetSnapshotBlock", "Resource": "*"}]}`
	if got := create("malformed", bad); !strings.Contains(got, "MalformedPolicyDocument") {
		t.Errorf("moto takes an action without its service:\n%s", got)
	}
}
