package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/iampolicy"
	"github.com/ebsimager/ebsimager/internal/s3store"
)

// s3Call is one request an S3 client made, as the recorder saw it.
type s3Call struct {
	method, bucket, key string
	query               url.Values
	header, answer      http.Header
	status              int
	body                []byte // the body of a PUT ?retention or ?legal-hold
}

// s3Recorder is a proxy in front of an S3 endpoint that keeps every
// request, so that a test can map each to the IAM actions it needs.
type s3Recorder struct {
	URL   string
	mu    sync.Mutex
	calls []s3Call
}

func newS3Recorder(t *testing.T, upstream string) *s3Recorder {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rec := &s3Recorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s3Call{method: r.Method, query: r.URL.Query(), header: r.Header.Clone()}
		// Path-style addressing (the endpoint is an IP address).
		c.bucket, c.key, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if r.Method == http.MethodPut && (c.query.Has("retention") || c.query.Has("legal-hold")) {
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			c.body = b
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(sw, r)
		c.status, c.answer = sw.status, w.Header().Clone()
		rec.mu.Lock()
		rec.calls = append(rec.calls, c)
		rec.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	rec.URL = srv.URL
	return rec
}

// take returns the calls so far and forgets them.
func (r *s3Recorder) take() []s3Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

var (
	retentionModeRE = regexp.MustCompile(`<Mode>([A-Z]+)</Mode>`)
	holdStatusRE    = regexp.MustCompile(`<Status>([A-Z]+)</Status>`)
)

// s3IAM is what IAM authorizes for one S3 request (the Service
// Authorization Reference and the S3 API reference), and the actions
// whose permission shows in its answer: op names the operation, ok is
// false for one no IAM action is known for.
//   - A request naming an object that S3 answers 404 also needs
//     s3:ListBucket, with the key as s3:prefix (without it S3 answers 403:
//     a caller may learn that a key is absent only if it may list it).
//   - A write carries s3:ObjectCreationOperation and, with the header,
//     s3:if-none-match.
//   - A PUT, or the start of a multipart upload, carrying a retention
//     or a legal hold also needs s3:PutObjectRetention or
//     s3:PutObjectLegalHold, with the mode or the status as condition
//     keys.
//   - HeadObject and GetObject show an object's retention and legal
//     hold only to a caller with s3:GetObjectRetention and
//     s3:GetObjectLegalHold: those are "shown", not required.
func s3IAM(c s3Call) (op string, reqs []iampolicy.Request, shown []string, ok bool) {
	bucketARN := "arn:aws:s3:::" + c.bucket
	objectARN := bucketARN + "/" + c.key
	on := func(action string, ctx map[string][]string) iampolicy.Request {
		res := objectARN
		if c.key == "" {
			res = bucketARN
		}
		return iampolicy.Request{Action: action, Resource: res, Context: ctx}
	}
	lockHeaders := func() []iampolicy.Request {
		var r []iampolicy.Request
		if m := c.header.Get("X-Amz-Object-Lock-Mode"); m != "" {
			r = append(r, on("s3:PutObjectRetention", map[string][]string{"s3:object-lock-mode": {m}}))
		}
		if h := c.header.Get("X-Amz-Object-Lock-Legal-Hold"); h != "" {
			r = append(r, on("s3:PutObjectLegalHold", map[string][]string{"s3:object-lock-legal-hold": {h}}))
		}
		return r
	}
	// s3:ObjectCreationOperation is true for the requests that create an
	// object (PutObject, CompleteMultipartUpload), false for the start
	// and the parts of a multipart upload; s3:if-none-match is the
	// header's value when the request has one.
	creation := func(creates bool) map[string][]string {
		ctx := map[string][]string{"s3:ObjectCreationOperation": {map[bool]string{true: "true", false: "false"}[creates]}}
		if v := c.header.Values("If-None-Match"); len(v) > 0 {
			ctx["s3:if-none-match"] = v
		}
		return ctx
	}
	read := func(name string) (string, []iampolicy.Request, []string, bool) {
		reqs := []iampolicy.Request{on("s3:GetObject", nil)}
		if c.status == http.StatusNotFound {
			reqs = append(reqs, iampolicy.Request{Action: "s3:ListBucket", Resource: bucketARN, Context: map[string][]string{"s3:prefix": {c.key}}})
		}
		var shown []string
		if c.answer.Get("X-Amz-Object-Lock-Mode") != "" {
			shown = append(shown, "s3:GetObjectRetention")
		}
		if c.answer.Get("X-Amz-Object-Lock-Legal-Hold") != "" {
			shown = append(shown, "s3:GetObjectLegalHold")
		}
		return name, reqs, shown, true
	}
	q := c.query
	switch {
	case c.key == "" && c.method == http.MethodGet && q.Get("list-type") == "2":
		var ctx map[string][]string
		if q.Has("prefix") {
			ctx = map[string][]string{"s3:prefix": {q.Get("prefix")}}
		}
		return "ListObjectsV2", []iampolicy.Request{on("s3:ListBucket", ctx)}, nil, true
	case c.key == "" && c.method == http.MethodGet && q.Has("object-lock"):
		return "GetObjectLockConfiguration", []iampolicy.Request{on("s3:GetBucketObjectLockConfiguration", nil)}, nil, true
	case c.key == "":
		return c.method + " bucket " + q.Encode(), nil, nil, false
	case c.method == http.MethodHead:
		return read("HeadObject")
	case c.method == http.MethodGet && q.Has("retention"):
		return "GetObjectRetention", []iampolicy.Request{on("s3:GetObjectRetention", nil)}, nil, true
	case c.method == http.MethodGet && q.Has("legal-hold"):
		return "GetObjectLegalHold", []iampolicy.Request{on("s3:GetObjectLegalHold", nil)}, nil, true
	case c.method == http.MethodGet && q.Has("uploadId"):
		return "ListParts", []iampolicy.Request{on("s3:ListMultipartUploadParts", nil)}, nil, true
	case c.method == http.MethodGet:
		return read("GetObject")
	case c.method == http.MethodPut && c.header.Get("X-Amz-Copy-Source") != "":
		return "CopyObject", nil, nil, false
	case c.method == http.MethodPut && q.Has("retention"):
		var mode []string
		if m := retentionModeRE.FindSubmatch(c.body); m != nil {
			mode = []string{string(m[1])}
		}
		return "PutObjectRetention", []iampolicy.Request{on("s3:PutObjectRetention", map[string][]string{"s3:object-lock-mode": mode})}, nil, true
	case c.method == http.MethodPut && q.Has("legal-hold"):
		var status []string
		if m := holdStatusRE.FindSubmatch(c.body); m != nil {
			status = []string{string(m[1])}
		}
		return "PutObjectLegalHold", []iampolicy.Request{on("s3:PutObjectLegalHold", map[string][]string{"s3:object-lock-legal-hold": status})}, nil, true
	case c.method == http.MethodPut && q.Has("uploadId"):
		return "UploadPart", []iampolicy.Request{on("s3:PutObject", creation(false))}, nil, true
	case c.method == http.MethodPut:
		return "PutObject", append([]iampolicy.Request{on("s3:PutObject", creation(true))}, lockHeaders()...), nil, true
	case c.method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload", append([]iampolicy.Request{on("s3:PutObject", creation(false))}, lockHeaders()...), nil, true
	case c.method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload", []iampolicy.Request{on("s3:PutObject", creation(true))}, nil, true
	case c.method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload", []iampolicy.Request{on("s3:AbortMultipartUpload", nil)}, nil, true
	case c.method == http.MethodDelete:
		return "DeleteObject", []iampolicy.Request{on("s3:DeleteObject", nil)}, nil, true
	}
	return c.method + " object " + q.Encode(), nil, nil, false
}

// checkS3Calls checks every call against p, both ways: each request it
// needs is allowed, and each action p allows was needed or shown by one
// of them. It returns the calls counted by operation.
func checkS3Calls(t *testing.T, name string, p *iampolicy.Policy, calls []s3Call) map[string]int {
	t.Helper()
	ops := map[string]int{}
	used := map[string]bool{}
	for _, c := range calls {
		op, reqs, shown, ok := s3IAM(c)
		ops[op]++
		if !ok {
			t.Errorf("%s: %s %s/%s: no IAM action is known for %s", name, c.method, c.bucket, c.key, op)
			continue
		}
		for _, rq := range reqs {
			used[rq.Action] = true
			if !p.Allows(rq) {
				t.Errorf("%s: %s of %s/%s: the policy does not allow %s on %s with %v", name, op, c.bucket, c.key, rq.Action, rq.Resource, rq.Context)
			}
		}
		for _, a := range shown {
			used[a] = true
		}
	}
	for _, st := range p.Statement {
		for _, a := range st.Action {
			if !used[a] {
				t.Errorf("%s: %s allows %s, which nothing needed", name, st.Sid, a)
			}
		}
	}
	return ops
}

// TestPolicyS3AllowsEveryCall writes evidence to a locked bucket on moto
// (acquire with a retention and a legal hold, its rerun, a conversion
// from S3 to S3, an E01 export to S3, and the multipart Upload that
// export to S3 uses, completed and aborted), then
// reads it (verify, export, inspect), recording every S3 request, and
// checks the writer's requests against the policy `policy --s3-write`
// prints and the reader's against `policy --s3-read`'s, both ways.
func TestPolicyS3AllowsEveryCall(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	s3Env(t, c)
	upstream := strings.TrimPrefix(c.env[len(c.env)-1], "AWS_ENDPOINT_URL_S3=")
	rec := newS3Recorder(t, upstream)
	c.env = append(c.env, "AWS_ENDPOINT_URL_S3="+rec.URL)

	const place = "s3://locked/ir-15/"
	u := place + snapA + "/"
	policy := func(args ...string) *iampolicy.Policy {
		var p iampolicy.Policy
		if err := json.Unmarshal([]byte(c.ok(append([]string{"policy", "--quiet", "--s3", place}, args...)...).stdout), &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	writer := policy("--s3-write", "--object-lock", "governance", "--legal-hold")
	reader := policy("--s3-read")

	// The writer: a new acquisition, its rerun, a multipart upload with
	// the lock (moto drops it, so Close sets it) and one aborted.
	c.ok("acquire", snapA, "--out", u, "--object-lock", "governance", "--retain-days", "1", "--legal-hold", "--quiet")
	c.ok("acquire", snapA, "--out", u, "--object-lock", "governance", "--retain-days", "1", "--legal-hold", "--quiet")
	c.ok("compress", u, "--out", place+snapA+"-zstd/", "--object-lock", "governance", "--retain-days", "1", "--legal-hold", "--quiet")
	c.ok("export", u, "--out", place+"images/"+snapA, "--format", "e01", "--object-lock", "governance", "--retain-days", "1", "--legal-hold", "--quiet")
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("emulator", "emulator", ""), BaseEndpoint: aws.String(rec.URL)}
	s3c := s3store.New(cfg, s3store.Options{})
	lock := s3store.Lock{Mode: s3store.Governance, RetainUntil: time.Now().Add(24 * time.Hour).Truncate(time.Second), LegalHold: true}
	image := bytes.Repeat([]byte("evidence"), (s3store.MinPartSize+1<<20)/8)
	for _, abort := range []bool{false, true} {
		up, err := s3c.NewUpload(context.Background(), "locked", "ir-15/export/"+snapA+".raw"+map[bool]string{true: ".aborted"}[abort], 0, nil, lock)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Write(image); err != nil {
			t.Fatal(err)
		}
		if abort {
			err = up.Abort()
		} else {
			_, err = up.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	ops := checkS3Calls(t, "writer", writer, rec.take())
	t.Logf("writer's requests by operation: %v", ops)
	for _, op := range []string{"GetObjectLockConfiguration", "PutObject", "HeadObject", "GetObject", "ListObjectsV2",
		"CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload", "PutObjectRetention", "PutObjectLegalHold"} {
		if ops[op] == 0 {
			t.Errorf("the writer made no %s request to check", op)
		}
	}

	// The reader.
	dir := t.TempDir()
	c.ok("verify", u, "--quiet")
	c.ok("export", u, "--out", filepath.Join(dir, "image.raw"), "--quiet")
	c.ok("inspect", u)
	ops = checkS3Calls(t, "reader", reader, rec.take())
	t.Logf("reader's requests by operation: %v", ops)
	for _, op := range []string{"HeadObject", "GetObject", "ListObjectsV2"} {
		if ops[op] == 0 {
			t.Errorf("the reader made no %s request to check", op)
		}
	}
	// The reader writes its run records, nothing of the evidence.
	for _, key := range []string{"evidence.json", "blocks/00/0000/x", "manifest.jsonl", "report.json"} {
		if reader.Allows(iampolicy.Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::locked/ir-15/" + snapA + "/" + key,
			Context: map[string][]string{"s3:if-none-match": {"*"}, "s3:ObjectCreationOperation": {"true"}}}) {
			t.Errorf("the reader's policy may write %s", key)
		}
	}
}

// TestPolicyS3Command checks the command's S3 flags: the evidence
// bucket's policy (a golden), and the refusals.
func TestPolicyS3Command(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "")
	r := c.ok("policy", "--bucket-policy", "--s3", "s3://evidence-bucket/ir-2026-15/")
	golden(t, "policy-bucket", r.stdout)
	if r.stderr != "" {
		t.Errorf("--bucket-policy: stderr %q", r.stderr)
	}
	if e := c.ok("policy", "--bucket-policy", "--s3", "s3://evidence-bucket/ir-2026-15/", "--explain"); e.stdout != r.stdout || strings.Count(e.stderr, "\n") != 3 {
		t.Errorf("--bucket-policy --explain: stderr\n%s", e.stderr)
	}
	// Notes: every bucket, the whole bucket; none with a prefix.
	if r := c.ok("policy", "--s3-read"); r.stderr != "ebsimager: note: the S3 statements allow every bucket: --s3 s3://BUCKET/PREFIX/ narrows them\n" {
		t.Errorf("policy --s3-read: stderr %q", r.stderr)
	}
	if r := c.ok("policy", "--s3-write", "--s3", "s3://evidence-bucket"); r.stderr != "ebsimager: note: the S3 statements allow the whole bucket evidence-bucket: a prefix in --s3 narrows them\n" ||
		!strings.Contains(r.stdout, `"arn:aws:s3:::evidence-bucket/*"`) || strings.Contains(r.stdout, "s3:prefix") {
		t.Errorf("policy --s3-write of a whole bucket:\n%s%s", r.stdout, r.stderr)
	}
	// --object-lock takes acquire's spelling.
	if a, b := c.ok("policy", "--s3-write", "--s3", "s3://e-b/p/", "--object-lock", "governance"), c.ok("policy", "--s3-write", "--s3", "s3://e-b/p/", "--object-lock", "GOVERNANCE"); a.stdout != b.stdout || !strings.Contains(a.stdout, `"s3:object-lock-mode": "GOVERNANCE"`) {
		t.Errorf("--object-lock governance:\n%s", a.stdout)
	}
	for _, f := range []struct{ want, args string }{
		{"--bucket-policy takes --s3 and --region only", "--bucket-policy --s3 s3://evidence-bucket/ --acquire"},
		{"--bucket-policy takes --s3 and --region only", "--bucket-policy --s3 s3://evidence-bucket/ --legal-hold"},
		{"--bucket-policy is the policy of the bucket of --s3 s3://BUCKET/PREFIX/: add --s3", "--bucket-policy"},
		{`--s3: "evidence-bucket" is not an s3:// URL`, "--s3-write --s3 evidence-bucket"},
		{`bucket name "Evidence"`, "--s3-write --s3 s3://Evidence/"},
		{"* and ? are wildcards in an ARN", "--s3-read --s3 s3://evidence-bucket/ir-*/"},
		{"--s3 names where --s3-write writes evidence and --s3-read reads it: add one of them", "--acquire --s3 s3://evidence-bucket/"},
		{"--object-lock and --legal-hold are the lock --s3-write writes evidence with: add --s3-write", "--s3-read --legal-hold"},
		{`--object-lock "LEGAL": governance or compliance`, "--s3-write --object-lock legal"},
	} {
		r := c.fails(exitUsage, f.want, append([]string{"policy"}, strings.Fields(f.args)...)...)
		if r.stdout != "" {
			t.Errorf("policy %s: a refused policy printed %q", f.args, r.stdout)
		}
	}
}
