package image_test

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/image"
)

// A split raw image verifies against the hash files beside it; a changed
// byte, a missing record and a malformed record each fail, saying why.
func TestVerifyRaw(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i * 31)
	}
	base := filepath.Join(dir, "disk.raw")
	for i, part := range [][]byte{data[:1024], data[1024:2048], data[2048:]} {
		if err := os.WriteFile(base+".00"+string(rune('1'+i)), part, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m, s := md5.Sum(data), sha256.Sum256(data)
	if err := digest.WriteHashFile(digest.FileName(base, digest.MD5), digest.Entry{Sum: hex.EncodeToString(m[:]), Name: "-"}); err != nil {
		t.Fatal(err)
	}
	if err := digest.WriteHashFile(digest.FileName(base, digest.SHA256), digest.Entry{Sum: hex.EncodeToString(s[:]), Name: "-"}); err != nil {
		t.Fatal(err)
	}
	var done int64
	res, err := image.Verify(base+".001", func(d, total int64) { done = d })
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Failure() != "" || res.Format != "raw" || res.Size != 3000 || len(res.Segments) != 3 || len(res.Checks) != 2 || done != 3000 {
		t.Fatalf("intact image: %+v (%q), progress %d", res, res.Failure(), done)
	}
	for _, c := range res.Checks {
		if !c.OK || c.Computed != c.Stored || c.Error != "" {
			t.Fatalf("check %+v", c)
		}
	}

	// One byte changed in the last segment.
	last := base + ".003"
	if err := os.WriteFile(last, append([]byte{data[2048] ^ 1}, data[2049:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = image.Verify(base+".001", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || !strings.HasSuffix(res.Failure(), "does not match its recorded hashes") || res.Checks[0].OK || res.Checks[1].OK {
		t.Fatalf("changed image: %+v (%q)", res, res.Failure())
	}

	// A hash file that holds no hash, and one that cannot be parsed.
	os.Remove(digest.FileName(base, digest.MD5))
	if err := os.WriteFile(digest.FileName(base, digest.SHA256), []byte("# a comment only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err = image.Verify(base+".001", nil); err != nil || res.OK || !strings.Contains(res.Failure(), "the SHA-256 is missing from") {
		t.Fatalf("empty hash file: %+v, %v", res, err)
	}
	if err := os.WriteFile(digest.FileName(base, digest.SHA256), []byte("not a hash line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var bad *image.HashFileError
	if _, err = image.Verify(base+".001", nil); !errors.As(err, &bad) || bad.Name != digest.FileName(base, digest.SHA256) {
		t.Fatalf("malformed hash file: %v", err)
	}
	os.Remove(digest.FileName(base, digest.SHA256))
	if res, err = image.Verify(base+".001", nil); err != nil || res.OK || !strings.Contains(res.Failure(), "has no recorded hash") {
		t.Fatalf("no hash file: %+v, %v", res, err)
	}
}
