package s3store

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ebsimager/ebsimager/internal/ebs"
)

func TestParseURL(t *testing.T) {
	good := []struct{ in, bucket, prefix string }{
		{"s3://evidence-bucket", "evidence-bucket", ""},
		{"s3://evidence-bucket/", "evidence-bucket", ""},
		{"s3://evidence.bucket-01/case-7/snap-0123", "evidence.bucket-01", "case-7/snap-0123/"},
		{"s3://abc/a/b/c/", "abc", "a/b/c/"},
		{"s3://abc/été/", "abc", "été/"},
	}
	for _, g := range good {
		u, err := ParseURL(g.in)
		if err != nil || u.Bucket != g.bucket || u.Prefix != g.prefix {
			t.Errorf("ParseURL(%q) = %+v, %v; want bucket %q prefix %q", g.in, u, err, g.bucket, g.prefix)
		}
	}
	if u, _ := ParseURL("s3://abc/x/y"); u.String() != "s3://abc/x/y/" || u.Key("manifest.jsonl") != "x/y/manifest.jsonl" {
		t.Errorf("String/Key = %q, %q", u.String(), u.Key("manifest.jsonl"))
	}
	bad := map[string]string{
		"/tmp/evidence":                   "not an s3:// URL",
		"s3://":                           "3 to 63",
		"s3://ab/":                        "3 to 63",
		"s3://" + strings.Repeat("a", 64): "3 to 63",
		"s3://Evidence/":                  "lowercase",
		"s3://evi_dence/":                 "lowercase",
		"s3://-evidence/":                 "begin and end",
		"s3://evidence./":                 "begin and end",
		"s3://evi..dence/":                `".."`,
		"s3://evi.-dence/":                `".."`,
		"s3://192.168.1.2/":               "IP address",
		"s3://xn--bucket/":                `"xn--"`,
		"s3://sthree-bucket/":             `"sthree-"`,
		"s3://bucket-s3alias/":            `"-s3alias"`,
		"s3://bucket--ol-s3/":             `"--ol-s3"`,
		"s3://bucket//a/":                 "empty segment",
		"s3://bucket/a//b/":               "empty segment",
		"s3://bucket/a/../b/":             `".." segment`,
		"s3://bucket/./b/":                `"." segment`,
		"s3://bucket/a\x00b/":             "control character",
		"s3://bucket/a\nb/":               "control character",
		"s3://bucket/a\x7fb/":             "control character",
		"s3://bucket/a\\b/":               "backslash",
		"s3://bucket/a\xffb/":             "invalid UTF-8",
		"s3://bucket/" + strings.Repeat("p", 800) + "/": "room for the evidence's names",
	}
	for in, want := range bad {
		if u, err := ParseURL(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseURL(%q) = %+v, %v; want an error saying %q", in, u, err, want)
		}
	}
}

func TestIPEndpoint(t *testing.T) {
	for ep, want := range map[string]bool{
		"http://127.0.0.1:9000": true, "http://[::1]:9000": true, "https://10.0.0.5": true, "http://localhost:4566": true,
		"https://s3.eu-west-1.amazonaws.com": false, "https://minio.example.com": false, "": false,
	} {
		if got := ipEndpoint(ep); got != want {
			t.Errorf("ipEndpoint(%q) = %v, want %v", ep, got, want)
		}
	}
}

// apiError is S3's answer with code and HTTP status, as the SDK wraps it.
func apiError(code string, status int) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err: &smithy.GenericAPIError{Code: code, Message: "m"}},
	}}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want ebs.Kind
	}{
		{apiError("SlowDown", 503), ebs.KindThrottle},
		{apiError("", 503), ebs.KindThrottle},
		{apiError("", 429), ebs.KindThrottle},
		{apiError("InternalError", 500), ebs.KindTransient},
		{apiError("", 502), ebs.KindTransient},
		{apiError("RequestTimeout", 400), ebs.KindTransient},
		{apiError("BadDigest", 400), ebs.KindCorrupt},
		{apiError("AccessDenied", 403), ebs.KindAccessDenied},
		{apiError("", 403), ebs.KindAccessDenied},
		{apiError("NoSuchBucket", 404), ebs.KindNotFound},
		{apiError("NoSuchKey", 404), ebs.KindNotFound},
		{apiError("PreconditionFailed", 412), ebs.KindInvalid},
		{apiError("InvalidArgument", 400), ebs.KindInvalid},
		{&tooLargeError{size: 10, max: 1}, ebs.KindInvalid},
		{context.Canceled, ebs.KindCanceled},
		{errors.New("connection reset by peer"), ebs.KindTransient},
	}
	for _, c := range cases {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if !preconditionFailed(apiError("PreconditionFailed", 412)) || !preconditionFailed(apiError("ConditionalRequestConflict", 409)) || preconditionFailed(apiError("AccessDenied", 403)) {
		t.Error("preconditionFailed sorts 412/409 wrong")
	}
	// A denial names the bucket, the key and the action, and stays an
	// access denial for the exit code.
	err := fail("PutObject", "evidence", "case/blocks/x", apiError("AccessDenied", 403))
	var d *DeniedError
	if !errors.As(err, &d) || ebs.KindOf(err) != ebs.KindAccessDenied ||
		!strings.Contains(err.Error(), "s3:PutObject on bucket evidence, key case/blocks/x denied") {
		t.Errorf("fail(AccessDenied) = %v (kind %v)", err, ebs.KindOf(err))
	}
	err = fail("GetObject", "evidence", "k", apiError("NoSuchKey", 404))
	if !errors.Is(err, ErrNotFound) || ebs.KindOf(err) != ebs.KindNotFound {
		t.Errorf("fail(NoSuchKey) = %v", err)
	}
	if err := fail("ListObjectsV2", "evidence", "", apiError("NoSuchBucket", 404)); !strings.Contains(err.Error(), "bucket evidence") {
		t.Errorf("fail(NoSuchBucket) = %v", err)
	}
}
