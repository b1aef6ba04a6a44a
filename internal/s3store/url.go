package s3store

import (
	"fmt"
	"net"
	"strings"
	"unicode"
)

// URL is a parsed "s3://bucket/prefix/": Prefix is empty (the bucket's
// root) or ends in "/".
type URL struct {
	Bucket, Prefix string
}

// String returns the URL as ParseURL reads it.
func (u URL) String() string { return "s3://" + u.Bucket + "/" + u.Prefix }

// Key returns the key of name under the prefix.
func (u URL) Key(name string) string { return u.Prefix + name }

// IsURL reports whether s names S3 (starts with "s3://").
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

// maxKeyLen is S3's limit on a key's length in bytes.
const maxKeyLen = 1024

// ParseURL parses "s3://bucket/prefix/". The bucket name must follow
// S3's rules for new buckets (3-63 characters of lowercase letters,
// digits, dots and hyphens; beginning and ending with a letter or digit;
// no "..", not an IP address, none of the reserved prefixes and
// suffixes). The prefix is given a trailing slash; it may not hold an
// empty segment ("a//b"), a "." or ".." segment, a control character or
// a backslash, and leaves room under S3's 1024-byte key limit for the
// evidence's names.
func ParseURL(s string) (URL, error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return URL{}, fmt.Errorf("%q is not an s3:// URL", s)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if err := checkBucket(bucket); err != nil {
		return URL{}, fmt.Errorf("%s: %w", s, err)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if err := checkPrefix(prefix); err != nil {
		return URL{}, fmt.Errorf("%s: %w", s, err)
	}
	return URL{Bucket: bucket, Prefix: prefix}, nil
}

func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("bucket name %q may hold only lowercase letters, digits, dots and hyphens", b)
		}
	}
	if !alnum(b[0]) || !alnum(b[len(b)-1]) {
		return fmt.Errorf("bucket name %q must begin and end with a letter or a digit", b)
	}
	if strings.Contains(b, "..") || strings.Contains(b, ".-") || strings.Contains(b, "-.") {
		return fmt.Errorf("bucket name %q may not hold \"..\", \".-\" or \"-.\"", b)
	}
	if net.ParseIP(b) != nil {
		return fmt.Errorf("bucket name %q may not be an IP address", b)
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(b, p) {
			return fmt.Errorf("bucket name %q may not begin with %q", b, p)
		}
	}
	for _, x := range []string{"-s3alias", "--ol-s3", "--x-s3", "--table-s3", ".mrap"} {
		if strings.HasSuffix(b, x) {
			return fmt.Errorf("bucket name %q may not end with %q", b, x)
		}
	}
	return nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// prefixRoom is what the evidence's longest names need under the prefix
// (a block file's leaf path and name, a sealed suffix, a journal batch).
const prefixRoom = 256

func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > maxKeyLen-prefixRoom {
		return fmt.Errorf("prefix is %d bytes long; at most %d leave room for the evidence's names", len(p), maxKeyLen-prefixRoom)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("prefix %q begins with an empty segment", p)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		switch seg {
		case "":
			return fmt.Errorf("prefix %q holds an empty segment", p)
		case ".", "..":
			return fmt.Errorf("prefix %q holds a %q segment", p, seg)
		}
	}
	for _, r := range p {
		if r == unicode.ReplacementChar || unicode.IsControl(r) || r == '\\' {
			return fmt.Errorf("prefix %q holds a control character, a backslash or invalid UTF-8", p)
		}
	}
	return nil
}
