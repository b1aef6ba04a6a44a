package iampolicy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestS3LockActions checks the actions a lock adds to the writer, and
// that no option ever grants a deletion or a governance bypass.
func TestS3LockActions(t *testing.T) {
	for _, c := range []struct {
		mode string
		hold bool
		want []string
	}{
		{"", false, nil},
		{"GOVERNANCE", false, []string{"s3:GetBucketObjectLockConfiguration", "s3:GetObjectRetention", "s3:PutObjectRetention"}},
		{"", true, []string{"s3:GetBucketObjectLockConfiguration", "s3:GetObjectLegalHold", "s3:PutObjectLegalHold"}},
		{"COMPLIANCE", true, []string{"s3:GetBucketObjectLockConfiguration", "s3:GetObjectLegalHold", "s3:GetObjectRetention",
			"s3:PutObjectLegalHold", "s3:PutObjectRetention"}},
	} {
		p, err := Build(Options{Flows: S3Write | S3Read, S3Bucket: "evidence", S3Prefix: "ir/", ObjectLock: c.mode, LegalHold: c.hold})
		if err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(flowActions[S3Write]), c.want...)
		slices.Sort(want)
		if got := actions(p); !slices.Equal(got, want) {
			t.Errorf("%q hold %v: %v, want %v", c.mode, c.hold, got, want)
		}
	}
	for flows := Flow(1); flows <= AllFlows; flows++ {
		for _, o := range optionSets(flows) {
			p, err := Build(o)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range actions(p) {
				if strings.Contains(a, "Delete") || strings.Contains(a, "Bypass") || strings.Contains(a, "*") {
					t.Errorf("%+v grants %s", o, a)
				}
			}
		}
	}
}

// TestS3Allows evaluates S3 requests against the writer's and the
// reader's policies: the prefix and nothing else, the lock asked and no
// other, a legal hold placed and never lifted.
func TestS3Allows(t *testing.T) {
	w, err := Build(Options{Flows: S3Write, S3Bucket: "evidence", S3Prefix: "ir-15/", ObjectLock: "COMPLIANCE", LegalHold: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build(Options{Flows: S3Read, S3Bucket: "evidence", S3Prefix: "ir-15/"})
	if err != nil {
		t.Fatal(err)
	}
	const obj = "arn:aws:s3:::evidence/ir-15/snap-1/blocks/00/0000/x"
	// What S3 sets for a PutObject with If-None-Match: *, and for a part.
	create := map[string][]string{"s3:if-none-match": {"*"}, "s3:ObjectCreationOperation": {"true"}}
	part := map[string][]string{"s3:ObjectCreationOperation": {"false"}}
	list := func(prefix string) Request {
		return Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::evidence", Context: map[string][]string{"s3:prefix": {prefix}}}
	}
	for _, c := range []struct {
		p          *Policy
		rq         Request
		want       bool
		what       string
		policyName string
	}{
		{w, Request{Action: "s3:PutObject", Resource: obj, Context: create}, true, "a block", "writer"},
		{w, Request{Action: "s3:PutObject", Resource: obj, Context: map[string][]string{"s3:ObjectCreationOperation": {"true"}}}, false, "an overwrite (no If-None-Match)", "writer"},
		{w, Request{Action: "s3:PutObject", Resource: obj, Context: map[string][]string{"s3:ObjectCreationOperation": {"true"}, "s3:if-match": {`"etag"`}}}, false, "an overwrite (If-Match)", "writer"},
		{w, Request{Action: "s3:PutObject", Resource: obj, Context: part}, true, "a part", "writer"},
		{w, Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::evidence/ir-16/x", Context: create}, false, "outside the prefix", "writer"},
		{w, Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::evidence/ir-16/x", Context: part}, false, "a part outside the prefix", "writer"},
		{w, Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::evidence/ir-15", Context: create}, false, "the prefix without its slash", "writer"},
		{w, Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::other/ir-15/x", Context: create}, false, "another bucket", "writer"},
		{w, Request{Action: "s3:AbortMultipartUpload", Resource: obj}, true, "an abort", "writer"},
		{w, Request{Action: "s3:DeleteObject", Resource: obj}, false, "a deletion", "writer"},
		{w, list("ir-15/snap-1/blocks/"), true, "the prefix's blocks", "writer"},
		{w, list("ir-15/"), true, "the prefix", "writer"},
		{w, list(""), false, "the bucket's root", "writer"},
		{w, list("ir-16/"), false, "another prefix", "writer"},
		{w, Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::evidence"}, false, "no prefix", "writer"},
		{w, Request{Action: "s3:PutObjectRetention", Resource: obj, Context: map[string][]string{"s3:object-lock-mode": {"COMPLIANCE"}}}, true, "the mode asked", "writer"},
		{w, Request{Action: "s3:PutObjectRetention", Resource: obj, Context: map[string][]string{"s3:object-lock-mode": {"GOVERNANCE"}}}, false, "another mode", "writer"},
		{w, Request{Action: "s3:PutObjectLegalHold", Resource: obj, Context: map[string][]string{"s3:object-lock-legal-hold": {"ON"}}}, true, "placing a hold", "writer"},
		{w, Request{Action: "s3:PutObjectLegalHold", Resource: obj, Context: map[string][]string{"s3:object-lock-legal-hold": {"OFF"}}}, false, "lifting a hold", "writer"},
		{w, Request{Action: "s3:GetBucketObjectLockConfiguration", Resource: "arn:aws:s3:::evidence"}, true, "the lock check", "writer"},
		{r, Request{Action: "s3:GetObject", Resource: obj}, true, "a block", "reader"},
		{r, list("ir-15/"), true, "the prefix", "reader"},
		{r, Request{Action: "s3:PutObject", Resource: obj, Context: create}, false, "a write", "reader"},
		{r, Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::evidence/ir-15/snap-1/runs/20261205T120000Z-0a1b2c3d-verify.json", Context: create}, true, "a run record of evidence under the prefix", "reader"},
		{r, Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::evidence/ir-15/runs/20261205T120000Z-0a1b2c3d-verify.json", Context: create}, true, "a run record of the evidence at the prefix", "reader"},
		{r, Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::evidence/ir-15/snap-1/runs/x.json", Context: map[string][]string{"s3:ObjectCreationOperation": {"true"}}}, false, "a run record overwritten", "reader"},
		{r, Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::evidence/ir-15/snap-1/runs/x.json", Context: part}, false, "a multipart upload", "reader"},
		{r, Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::evidence/ir-16/runs/x.json", Context: create}, false, "a run record outside the prefix", "reader"},
		{r, Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::evidence/secret"}, false, "outside the prefix", "reader"},
	} {
		if got := c.p.Allows(c.rq); got != c.want {
			t.Errorf("%s: %s (%s %s %v): allowed %v, want %v", c.policyName, c.what, c.rq.Action, c.rq.Resource, c.rq.Context, got, c.want)
		}
	}
}

func TestS3OptionErrors(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Flows: Acquire, S3Bucket: "evidence"}, "--s3 names where --s3-write writes evidence and --s3-read reads it: add one of them"},
		{Options{Flows: S3Read, S3Bucket: "evidence", ObjectLock: "COMPLIANCE"}, "--object-lock and --legal-hold are the lock --s3-write writes evidence with: add --s3-write"},
		{Options{Flows: S3Read, LegalHold: true}, "add --s3-write"},
		{Options{Flows: S3Write, ObjectLock: "LEGAL"}, `--object-lock "LEGAL": governance or compliance`},
		{Options{Flows: S3Write, S3Prefix: "ir/"}, "--s3: a prefix without a bucket"},
		{Options{Flows: S3Write, S3Bucket: "Evidence"}, `bucket "Evidence" is not an S3 bucket name`},
		{Options{Flows: S3Write, S3Bucket: "*"}, "is not an S3 bucket name"},
		{Options{Flows: S3Write, S3Bucket: "evidence", S3Prefix: "ir-*/"}, "* and ? are wildcards in an ARN"},
		{Options{Flows: S3Write, S3Bucket: "evidence", S3Prefix: "${aws:username}/"}, "a policy variable"},
		{Options{Flows: S3Write, S3Bucket: "evidence", S3Prefix: "ir"}, `prefix "ir" does not end in /`},
	} {
		_, err := Build(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.o, err, c.want)
		}
	}
	for _, c := range []struct{ bucket, prefix, region, want string }{
		{"", "", "", "--bucket-policy is the policy of the bucket of --s3 s3://BUCKET/PREFIX/: add --s3"},
		{"evidence", "a?/", "", "wildcards"},
		{"evidence", "", "europe", `--region "europe": not a Region name`},
	} {
		if _, err := BucketPolicy(c.bucket, c.prefix, c.region); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("BucketPolicy(%q, %q, %q): error %v, want %q", c.bucket, c.prefix, c.region, err, c.want)
		}
	}
}

// TestBucketPolicy evaluates the evidence bucket's policy: what it
// denies to everyone, and that it denies none of the writer's or the
// reader's requests over TLS.
func TestBucketPolicy(t *testing.T) {
	p, err := BucketPolicy("evidence", "ir-15/", "cn-north-1")
	if err != nil {
		t.Fatal(err)
	}
	const obj = "arn:aws-cn:s3:::evidence/ir-15/snap-1/evidence.json"
	tls := map[string][]string{"aws:SecureTransport": {"true"}}
	plain := map[string][]string{"aws:SecureTransport": {"false"}}
	for _, c := range []struct {
		rq   Request
		want bool
	}{
		{Request{Action: "s3:DeleteObject", Resource: obj, Context: tls}, true},
		{Request{Action: "s3:DeleteObjectVersion", Resource: obj, Context: tls}, true},
		{Request{Action: "s3:BypassGovernanceRetention", Resource: obj, Context: tls}, true},
		{Request{Action: "s3:PutObjectLegalHold", Resource: obj, Context: map[string][]string{"aws:SecureTransport": {"true"}, "s3:object-lock-legal-hold": {"OFF"}}}, true},
		{Request{Action: "s3:PutObjectLegalHold", Resource: obj, Context: map[string][]string{"aws:SecureTransport": {"true"}, "s3:object-lock-legal-hold": {"ON"}}}, false},
		{Request{Action: "s3:GetObject", Resource: obj, Context: plain}, true},
		{Request{Action: "s3:ListBucket", Resource: "arn:aws-cn:s3:::evidence", Context: plain}, true},
		{Request{Action: "s3:GetObject", Resource: "arn:aws-cn:s3:::evidence/other/x", Context: plain}, true},
		{Request{Action: "s3:DeleteObject", Resource: "arn:aws-cn:s3:::evidence/other/x", Context: tls}, false},
		{Request{Action: "s3:GetObject", Resource: obj, Context: tls}, false},
		{Request{Action: "s3:PutObject", Resource: obj, Context: tls}, false},
		{Request{Action: "s3:PutObjectRetention", Resource: obj, Context: tls}, false},
	} {
		if got := p.Denies(c.rq); got != c.want {
			t.Errorf("%s %s %v: denied %v, want %v", c.rq.Action, c.rq.Resource, c.rq.Context, got, c.want)
		}
	}
	for _, st := range p.Statement {
		if st.Effect != "Deny" || !slices.Equal(st.Principal, Values{"*"}) || st.Purpose == "" {
			t.Errorf("%s: %+v", st.Sid, st)
		}
	}
	if p.Allows(Request{Action: "s3:GetObject", Resource: obj, Context: tls}) {
		t.Error("a bucket policy of denials allows a request")
	}
}

// s3Calls maps each S3 API call internal/s3store makes to the IAM
// actions it needs (the Service Authorization Reference: HeadObject is
// s3:GetObject, ListObjectsV2 s3:ListBucket, the multipart calls but
// AbortMultipartUpload s3:PutObject); PutObject and
// CreateMultipartUpload with a lock need the lock's actions too, which
// TestS3LockActions checks.
var s3Calls = map[string]string{
	"AbortMultipartUpload":       "s3:AbortMultipartUpload",
	"CompleteMultipartUpload":    "s3:PutObject",
	"CreateMultipartUpload":      "s3:PutObject",
	"GetObject":                  "s3:GetObject",
	"GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
	"HeadObject":                 "s3:GetObject",
	"ListObjectsV2":              "s3:ListBucket",
	"PutObject":                  "s3:PutObject",
	"PutObjectLegalHold":         "s3:PutObjectLegalHold",
	"PutObjectRetention":         "s3:PutObjectRetention",
	"UploadPart":                 "s3:PutObject",
}

// TestS3StoreCalls reads internal/s3store, the only package that talks
// to S3, and checks that every S3 API method it uses (c.api.X) is in
// s3Calls and granted to the writer with a lock, and that it never
// asks for a governance bypass: a call added there without its action
// here fails.
func TestS3StoreCalls(t *testing.T) {
	files, err := filepath.Glob("../s3store/*.go")
	if err != nil {
		t.Fatal(err)
	}
	called := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(parsed, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if inner, ok := n.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "api" {
					called[n.Sel.Name] = true
				}
			case *ast.Ident:
				if strings.Contains(n.Name, "Bypass") || strings.HasPrefix(n.Name, "DeleteObject") {
					t.Errorf("%s: %s: evidence is never deleted, nor its retention bypassed", f, n.Name)
				}
			}
			return true
		})
	}
	if len(called) < 8 {
		t.Fatalf("only %d S3 calls found in internal/s3store: %v", len(called), called)
	}
	p, err := Build(Options{Flows: S3Write | S3Read, ObjectLock: "GOVERNANCE", LegalHold: true})
	if err != nil {
		t.Fatal(err)
	}
	granted := actions(p)
	for call := range called {
		a, ok := s3Calls[call]
		switch {
		case !ok:
			t.Errorf("internal/s3store calls %s: give its IAM action in s3Calls and the policy", call)
		case !slices.Contains(granted, a):
			t.Errorf("internal/s3store calls %s, which needs %s: the writer's policy does not grant it", call, a)
		}
	}
	for call := range s3Calls {
		if !called[call] {
			t.Errorf("s3Calls maps %s, which internal/s3store no longer calls", call)
		}
	}
}
