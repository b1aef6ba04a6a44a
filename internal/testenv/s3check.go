package testenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// S3Checksums puts, in front of the S3 server at upstream (moto), a
// proxy that does what moto 5 does not: refuse a PUT (an object or a
// part) whose body does not hash to its x-amz-checksum-sha256, with
// S3's answer (400 BadDigest), before the server sees it. moto stores
// the checksum it is given without checking it. It returns the proxy's
// endpoint URL; the proxy stops when the test ends.
func S3Checksums(t testing.TB, upstream string) string {
	t.Helper()
	return NewS3Proxy(t, upstream).URL
}

// S3Proxy is the proxy S3Checksums starts; it also counts the requests
// it passes on, by HTTP method.
type S3Proxy struct {
	URL    string
	mu     sync.Mutex
	counts map[string]int64
}

// Counts returns the requests seen so far by method, and resets them.
func (p *S3Proxy) Counts() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counts
	p.counts = map[string]int64{}
	return c
}

// NewS3Proxy starts the proxy of S3Checksums in front of upstream.
func NewS3Proxy(t testing.TB, upstream string) *S3Proxy {
	t.Helper()
	p := &S3Proxy{counts: map[string]int64{}}
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.counts[r.Method]++
		p.mu.Unlock()
		want := r.Header.Get("X-Amz-Checksum-Sha256")
		if r.Method != http.MethodPut || want == "" {
			proxy.ServeHTTP(w, r)
			return
		}
		if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
			http.Error(w, "S3Checksums: an aws-chunked body with a checksum header is not expected", http.StatusNotImplemented)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(body)
		if base64.StdEncoding.EncodeToString(sum[:]) != want {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+
				`<Error><Code>BadDigest</Code><Message>The SHA256 you specified did not match the calculated checksum.</Message></Error>`)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}
