package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// hashCheck is one recomputed hash and what it was compared with.
type hashCheck struct {
	Algorithm string `json:"algorithm"`
	Computed  string `json:"computed"`
	Stored    string `json:"stored"`
	Where     string `json:"where"`           // "E01 digest section", "E01 hash section" or the hash file
	Error     string `json:"error,omitempty"` // why the stored hash cannot be read
	OK        bool   `json:"ok"`
}

type imageVerifyResult struct {
	OK       bool        `json:"ok"`
	Image    string      `json:"image"`
	Format   string      `json:"format"`
	Segments []string    `json:"segments"`
	Size     int64       `json:"size"`
	Checks   []hashCheck `json:"checks"`
	Problems []string    `json:"problems,omitempty"` // damage found in the image's structure or chunks
}

var rawSegment = regexp.MustCompile(`\.\d{3,}$`)

// verifyImage recomputes an image's hashes and compares them with every
// record of them: inside an E01, and in the hash files beside the image.
func verifyImage(cmd *cobra.Command, path string, asJSON, quiet bool) error {
	status := ui.NewStatus(cmd.ErrOrStderr(), quiet || asJSON, 5*time.Second)
	progress := func(done, total int64) {
		status.Update(fmt.Sprintf("verified %s of %s", ui.Bytes(done), ui.Bytes(total)))
	}
	var (
		res  imageVerifyResult
		base string
		sums map[string]string
	)
	if isE01(path) {
		rep, err := ewf.Check(path, progress)
		status.Done("")
		if err != nil {
			return err
		}
		res = imageVerifyResult{Image: path, Format: "e01", Segments: rep.Segments, Size: rep.Size}
		for _, p := range rep.Problems {
			res.Problems = append(res.Problems, p.Error())
		}
		if rep.Read {
			sums = map[string]string{digest.MD5: hex.EncodeToString(rep.MD5[:]), digest.SHA1: hex.EncodeToString(rep.SHA1[:]), digest.SHA256: hex.EncodeToString(rep.SHA256[:])}
		}
		for _, h := range rep.Stored {
			c := hashCheck{Algorithm: h.Algorithm, Computed: sums[h.Algorithm], Where: "E01 " + h.Section + " section", OK: rep.Matches(h)}
			if h.Err != nil {
				c.Error = fmt.Sprintf("cannot be read from the %s: %v", h.Where(), h.Err)
			} else {
				c.Stored = hex.EncodeToString(h.Sum)
			}
			res.Checks = append(res.Checks, c)
		}
		base = e01Base(path)
	} else {
		r, err := raw.Open(path)
		if err != nil {
			return err
		}
		defer r.Close()
		set, err := digest.New(digest.Algorithms()...)
		if err != nil {
			return err
		}
		buf := make([]byte, 4<<20)
		for off := int64(0); off < r.Size(); {
			n, err := r.ReadAt(buf[:min(int64(len(buf)), r.Size()-off)], off)
			if n > 0 {
				set.Write(buf[:n])
				off += int64(n)
				progress(off, r.Size())
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if n == 0 {
				break
			}
		}
		status.Done("")
		sums = set.Sums()
		res = imageVerifyResult{Image: path, Format: "raw", Segments: r.Files(), Size: r.Size()}
		base = rawSegment.ReplaceAllString(path, "")
	}
	for _, alg := range digest.Algorithms() {
		name := digest.FileName(base, alg)
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			// A record that exists but cannot be read fails verification.
			res.Checks = append(res.Checks, hashCheck{Algorithm: alg, Computed: sums[alg], Where: name, Error: fmt.Sprintf("cannot be read from %s: %v", name, err)})
			continue
		}
		entries, err := digest.Parse(f)
		f.Close()
		if err != nil {
			return mismatchError{fmt.Sprintf("verification FAILED: %s: %v", name, err)}
		}
		found := false
		for _, e := range entries {
			if e.Sum != "" {
				found = true
				res.Checks = append(res.Checks, hashCheck{Algorithm: alg, Computed: sums[alg], Stored: e.Sum, Where: name, OK: sums[alg] != "" && e.Sum == sums[alg]})
			}
		}
		if !found {
			res.Checks = append(res.Checks, hashCheck{Algorithm: alg, Computed: sums[alg], Where: name, Error: fmt.Sprintf("is missing from %s, which holds no hash", name)})
		}
	}
	res.OK = len(res.Checks) > 0 && len(res.Problems) == 0
	// Hashes that cannot be read, grouped by the reason (one per section):
	// "the MD5 and SHA-1 cannot be read from the digest section of …".
	var reasons []string
	algs := map[string][]string{}
	for _, c := range res.Checks {
		res.OK = res.OK && c.OK
		if c.Error != "" {
			if algs[c.Error] == nil {
				reasons = append(reasons, c.Error)
			}
			algs[c.Error] = append(algs[c.Error], hashName(c.Algorithm))
		}
	}
	var unreadable []string
	for _, r := range reasons {
		unreadable = append(unreadable, fmt.Sprintf("the %s %s", strings.Join(algs[r], " and "), r))
	}
	w := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "%s: %s image, %s\n", path, res.Format, imageSizeText(res.Segments, res.Size))
		for _, p := range res.Problems {
			fmt.Fprintf(w, "  DAMAGED: %s\n", p)
		}
		for _, c := range res.Checks {
			computed := c.Computed
			if computed == "" {
				computed = "(not computed)"
			}
			verdict := "matches"
			switch {
			case c.Computed == "":
				verdict = "NOT COMPARED: the media cannot be read"
			case c.Error != "":
				verdict = "NOT COMPARED: the stored " + hashName(c.Algorithm) + " cannot be read"
			case !c.OK:
				verdict = "DIFFERS from " + c.Stored
			}
			fmt.Fprintf(w, "  %-7s %s %s (%s)\n", c.Algorithm, computed, verdict, c.Where)
		}
	}
	switch {
	case len(unreadable) > 0:
		return mismatchError{fmt.Sprintf("verification FAILED: %s", strings.Join(unreadable, "; "))}
	case len(res.Problems) > 0:
		return mismatchError{fmt.Sprintf("verification FAILED: %s is damaged: %s", path, res.Problems[0])}
	case len(res.Checks) == 0:
		return mismatchError{fmt.Sprintf("verification FAILED: %s has no recorded hash to compare with (no hash files beside it)", path)}
	case !res.OK:
		return mismatchError{fmt.Sprintf("verification FAILED: %s does not match its recorded hashes", path)}
	}
	if !asJSON {
		fmt.Fprintln(w, "verification OK")
	}
	return nil
}

// hashName is how messages name a hash algorithm: "SHA-1" for "sha1".
func hashName(alg string) string {
	return strings.Replace(strings.ToUpper(alg), "SHA", "SHA-", 1)
}
