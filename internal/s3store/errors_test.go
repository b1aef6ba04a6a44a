package s3store

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ebsimager/ebsimager/internal/ebs"
)

// fakeS3 answers every request with the answers in order, then 200. moto
// neither throttles nor denies, so these two behaviours of S3 are
// played by this in-process server.
func fakeS3(t *testing.T, answers ...func(w http.ResponseWriter)) (*Client, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if i := int(n.Add(1)) - 1; i < len(answers) {
			answers[i](w)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""), BaseEndpoint: aws.String(srv.URL)}
	return New(cfg, Options{Policy: ebs.Policy{MaxAttempts: 3, Base: time.Millisecond, ThrottleBase: time.Millisecond}}), &n
}

func s3Error(status int, code string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>m</Message></Error>`)
	}
}

func TestThrottlesAreRetried(t *testing.T) {
	c, n := fakeS3(t, s3Error(503, "SlowDown"), s3Error(503, "ServiceUnavailable"), s3Error(500, "InternalError"))
	body := []byte("block")
	if _, err := c.PutNew(context.Background(), "bucket", "k", body, sha256.Sum256(body), nil, Lock{}); err != nil {
		t.Fatalf("PutNew after two throttles and a server error: %v", err)
	}
	if got := n.Load(); got != 4 {
		t.Errorf("%d requests, want 4", got)
	}
	if r := c.Stats().Retries; r["throttle"] != 2 || r["transient"] != 1 {
		t.Errorf("retries %v, want 2 throttles and 1 transient", r)
	}
}

func TestDeniedNamesBucketAndAction(t *testing.T) {
	c, n := fakeS3(t, s3Error(403, "AccessDenied"))
	body := []byte("block")
	_, err := c.PutNew(context.Background(), "evidence-bucket", "case/blocks/00/0000/x", body, sha256.Sum256(body), nil, Lock{})
	var d *DeniedError
	if !errors.As(err, &d) || d.Bucket != "evidence-bucket" || d.Action != "PutObject" || ebs.KindOf(err) != ebs.KindAccessDenied ||
		!strings.Contains(err.Error(), "s3:PutObject on bucket evidence-bucket, key case/blocks/00/0000/x denied") {
		t.Errorf("PutNew denied: %v", err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("a denial was tried %d times, want once", got)
	}
	c, _ = fakeS3(t, s3Error(403, "AccessDenied"))
	if err := c.CheckObjectLock(context.Background(), "evidence-bucket"); !strings.Contains(err.Error(), "s3:GetObjectLockConfiguration on bucket evidence-bucket denied") {
		t.Errorf("CheckObjectLock denied: %v", err)
	}
}

func TestLockCheck(t *testing.T) {
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		l    Lock
		want string
	}{
		{Lock{}, ""},
		{Lock{LegalHold: true}, ""},
		{Lock{Mode: Governance, RetainUntil: now.Add(time.Hour)}, ""},
		{Lock{Mode: Compliance, RetainUntil: now.Add(time.Hour), LegalHold: true}, ""},
		{Lock{Mode: Governance}, "not in the future"},
		{Lock{Mode: Compliance, RetainUntil: now}, "not in the future"},
		{Lock{RetainUntil: now.Add(time.Hour)}, "needs a lock mode"},
		{Lock{Mode: "FOREVER", RetainUntil: now.Add(time.Hour)}, `lock mode "FOREVER"`},
	} {
		err := c.l.Check(now)
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v.Check = %v, want %q", c.l, err, c.want)
		}
	}
}
