package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/image"
)

// TestVerifyE01DamagedDigest damages the digest section of an exported
// E01 (one byte of its SHA-1, so its Adler-32 no longer matches). verify
// used to drop the SHA-1 line and say OK on the strength of the hash
// section's MD5; now the hash that cannot be read is a failure, named.
func TestVerifyE01DamagedDigest(t *testing.T) {
	t.Parallel()
	const snap = "snap-0e0100000000000e1"
	_, endpoint := startEmulator(t, emulator.Options{}, snap+"=1GiB,0.01,5")
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snap, "--out", ev, "--quiet")
	img := filepath.Join(dir, "img")
	c.ok("export", ev, "--format", "e01", "--out", img, "--quiet")
	b, err := os.ReadFile(img + ".E01")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(b, []byte("digest\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	if i < 0 {
		t.Fatal("no digest section")
	}
	const descriptorSize = 76
	b[i+descriptorSize+20] ^= 0x10 // a byte of the SHA-1
	if err := os.WriteFile(img+".E01", b, 0o600); err != nil {
		t.Fatal(err)
	}
	// A hash file beside the image that holds no hash is no silent
	// omission either.
	if err := os.WriteFile(img+".sha256", []byte("# emptied\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.fails(exitMismatch, "verification FAILED: the MD5 and SHA-1 cannot be read from the digest section of img.E01 at offset", "verify", img+".E01")
	if !strings.Contains(r.stderr, "the SHA-256 is missing from "+img+".sha256, which holds no hash") {
		t.Errorf("verify does not name the empty hash file:\n%s", r.stderr)
	}
	if strings.Contains(r.stdout, "verification OK") {
		t.Errorf("verify says OK:\n%s", r.stdout)
	}
	for _, want := range []string{
		"NOT COMPARED: the stored SHA-1 cannot be read (E01 digest section)",
		"NOT COMPARED: the stored MD5 cannot be read (E01 digest section)",
		"matches (E01 hash section)", "DAMAGED: ", "digest section at offset", "checksum mismatch",
		"NOT COMPARED: the stored SHA-256 cannot be read (" + img + ".sha256)", "matches (" + img + ".sha1)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = c.run("verify", img+".E01", "--json")
	if r.code != exitMismatch {
		t.Fatalf("verify --json: exit %d, want %d\n%s", r.code, exitMismatch, r.stderr)
	}
	var res image.Verification
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, r.stdout)
	}
	unreadable := map[string]bool{}
	for _, ch := range res.Checks {
		if ch.Error != "" {
			unreadable[ch.Algorithm] = true
			if ch.OK || ch.Stored != "" || (ch.Where != "E01 digest section" && ch.Where != img+".sha256") {
				t.Errorf("unreadable check %+v", ch)
			}
		}
	}
	if res.OK || !unreadable["md5"] || !unreadable["sha1"] || !unreadable["sha256"] || len(unreadable) != 3 || len(res.Problems) != 1 {
		t.Errorf("verify --json: ok %v, unreadable %v, problems %q; want not ok, the digest's md5 and sha1 and the sha256 file unreadable, one problem", res.OK, unreadable, res.Problems)
	}
}
