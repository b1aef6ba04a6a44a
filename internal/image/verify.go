package image

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
)

// HashCheck is one recomputed hash and what it was compared with.
type HashCheck struct {
	Algorithm string `json:"algorithm"`
	Computed  string `json:"computed"`
	Stored    string `json:"stored"`
	Where     string `json:"where"`           // "E01 digest section", "E01 hash section" or the hash file
	Error     string `json:"error,omitempty"` // why the stored hash cannot be read
	OK        bool   `json:"ok"`
}

// Verification is what Verify found (verify --json prints it).
type Verification struct {
	OK       bool        `json:"ok"`
	Image    string      `json:"image"`
	Format   string      `json:"format"`
	Segments []string    `json:"segments"`
	Size     int64       `json:"size"`
	Checks   []HashCheck `json:"checks"`
	Problems []string    `json:"problems,omitempty"` // damage found in the image's structure or chunks
}

// IsE01 reports whether path names an E01 set by its extension (.E01),
// as verify has always told them.
func IsE01(path string) bool { return strings.EqualFold(filepath.Ext(path), ".e01") }

var rawSegment = regexp.MustCompile(`\.\d{3,}$`)

// Verify recomputes the MD5, SHA-1 and SHA-256 of the image at path and
// compares them with every record of them: for an E01 (IsE01) the hashes
// its digest and hash sections store, every section's own checksum and
// every chunk checked as ewf.Check does; and the .md5/.sha1/.sha256 files
// beside the image. progress, if not nil, is called with the bytes read.
// The error is for an image that cannot be opened, or a hash file that
// cannot be parsed; anything that does not match is in the Verification.
func Verify(path string, progress func(done, total int64)) (*Verification, error) {
	var (
		res  *Verification
		sums map[string]string
		base string
		err  error
	)
	if IsE01(path) {
		res, sums, err = verifyE01(path, progress)
		base = strings.TrimSuffix(path, filepath.Ext(path))
	} else {
		res, sums, err = verifyRaw(path, progress)
		base = rawSegment.ReplaceAllString(path, "")
	}
	if err != nil {
		return nil, err
	}
	if err := res.compareFiles(base, sums); err != nil {
		return nil, err
	}
	res.OK = len(res.Checks) > 0 && len(res.Problems) == 0
	for _, c := range res.Checks {
		res.OK = res.OK && c.OK
	}
	return res, nil
}

func verifyE01(path string, progress func(done, total int64)) (*Verification, map[string]string, error) {
	rep, err := ewf.Check(path, progress)
	if err != nil {
		return nil, nil, err
	}
	res := &Verification{Image: path, Format: "e01", Segments: rep.Segments, Size: rep.Size}
	for _, p := range rep.Problems {
		res.Problems = append(res.Problems, p.Error())
	}
	var sums map[string]string
	if rep.Read {
		sums = map[string]string{digest.MD5: hex.EncodeToString(rep.MD5[:]), digest.SHA1: hex.EncodeToString(rep.SHA1[:]), digest.SHA256: hex.EncodeToString(rep.SHA256[:])}
	}
	for _, h := range rep.Stored {
		c := HashCheck{Algorithm: h.Algorithm, Computed: sums[h.Algorithm], Where: "E01 " + h.Section + " section", OK: rep.Matches(h)}
		if h.Err != nil {
			c.Error = fmt.Sprintf("cannot be read from the %s: %v", h.Where(), h.Err)
		} else {
			c.Stored = hex.EncodeToString(h.Sum)
		}
		res.Checks = append(res.Checks, c)
	}
	return res, sums, nil
}

func verifyRaw(path string, progress func(done, total int64)) (*Verification, map[string]string, error) {
	r, err := raw.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	sums, err := r.Sums(digest.Algorithms(), progress)
	if err != nil {
		return nil, nil, err
	}
	return &Verification{Image: path, Format: "raw", Segments: r.Files(), Size: r.Size()}, sums, nil
}

// HashFileError is a hash file beside the image that cannot be parsed:
// the image fails verification.
type HashFileError struct {
	Name string
	Err  error
}

func (e *HashFileError) Error() string { return fmt.Sprintf("%s: %v", e.Name, e.Err) }
func (e *HashFileError) Unwrap() error { return e.Err }

// compareFiles compares sums with the hash files beside the image at
// base (BASE.md5, …). A record that exists but cannot be read fails.
func (res *Verification) compareFiles(base string, sums map[string]string) error {
	for _, alg := range digest.Algorithms() {
		name := digest.FileName(base, alg)
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			res.Checks = append(res.Checks, HashCheck{Algorithm: alg, Computed: sums[alg], Where: name, Error: fmt.Sprintf("cannot be read from %s: %v", name, err)})
			continue
		}
		entries, err := digest.Parse(f)
		f.Close()
		if err != nil {
			return &HashFileError{Name: name, Err: err}
		}
		found := false
		for _, e := range entries {
			if e.Sum != "" {
				found = true
				res.Checks = append(res.Checks, HashCheck{Algorithm: alg, Computed: sums[alg], Stored: e.Sum, Where: name, OK: sums[alg] != "" && e.Sum == sums[alg]})
			}
		}
		if !found {
			res.Checks = append(res.Checks, HashCheck{Algorithm: alg, Computed: sums[alg], Where: name, Error: fmt.Sprintf("is missing from %s, which holds no hash", name)})
		}
	}
	return nil
}

// Failure says why the image failed verification, "" when it passed:
// hashes that cannot be read (grouped by the reason, one per section:
// "the MD5 and SHA-1 cannot be read from the digest section of …"),
// damage, no record at all, or hashes that differ.
func (res *Verification) Failure() string {
	var reasons []string
	algs := map[string][]string{}
	for _, c := range res.Checks {
		if c.Error != "" {
			if algs[c.Error] == nil {
				reasons = append(reasons, c.Error)
			}
			algs[c.Error] = append(algs[c.Error], HashName(c.Algorithm))
		}
	}
	var unreadable []string
	for _, r := range reasons {
		unreadable = append(unreadable, fmt.Sprintf("the %s %s", strings.Join(algs[r], " and "), r))
	}
	switch {
	case len(unreadable) > 0:
		return strings.Join(unreadable, "; ")
	case len(res.Problems) > 0:
		return fmt.Sprintf("%s is damaged: %s", res.Image, res.Problems[0])
	case len(res.Checks) == 0:
		return fmt.Sprintf("%s has no recorded hash to compare with (no hash files beside it)", res.Image)
	case !res.OK:
		return fmt.Sprintf("%s does not match its recorded hashes", res.Image)
	}
	return ""
}

// HashName is how messages name a hash algorithm: "SHA-1" for "sha1".
func HashName(alg string) string {
	return strings.Replace(strings.ToUpper(alg), "SHA", "SHA-", 1)
}
