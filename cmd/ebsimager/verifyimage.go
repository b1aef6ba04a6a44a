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
	Where     string `json:"where"` // "E01" or the hash file
	OK        bool   `json:"ok"`
}

type imageVerifyResult struct {
	OK       bool        `json:"ok"`
	Image    string      `json:"image"`
	Format   string      `json:"format"`
	Segments []string    `json:"segments"`
	Size     int64       `json:"size"`
	Checks   []hashCheck `json:"checks"`
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
		r, err := ewf.Open(path)
		if err != nil {
			return err
		}
		defer r.Close()
		vr, err := r.Verify(progress)
		status.Done("")
		if err != nil {
			return mismatchError{fmt.Sprintf("verification FAILED: %v", err)}
		}
		res = imageVerifyResult{Image: path, Format: "e01", Segments: r.Segments(), Size: r.Size()}
		sums = map[string]string{digest.MD5: hex.EncodeToString(vr.MD5[:]), digest.SHA1: hex.EncodeToString(vr.SHA1[:]), digest.SHA256: hex.EncodeToString(vr.SHA256[:])}
		if md5, ok := r.StoredMD5(); ok {
			res.Checks = append(res.Checks, hashCheck{digest.MD5, sums[digest.MD5], hex.EncodeToString(md5[:]), "E01", vr.MD5OK})
		}
		if sha1, ok := r.StoredSHA1(); ok {
			res.Checks = append(res.Checks, hashCheck{digest.SHA1, sums[digest.SHA1], hex.EncodeToString(sha1[:]), "E01", vr.SHA1OK})
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
			return err
		}
		entries, err := digest.Parse(f)
		f.Close()
		if err != nil {
			return mismatchError{fmt.Sprintf("verification FAILED: %s: %v", name, err)}
		}
		for _, e := range entries {
			if e.Sum != "" {
				res.Checks = append(res.Checks, hashCheck{alg, sums[alg], e.Sum, name, e.Sum == sums[alg]})
			}
		}
	}
	res.OK = len(res.Checks) > 0
	for _, c := range res.Checks {
		res.OK = res.OK && c.OK
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
		for _, c := range res.Checks {
			verdict := "matches"
			if !c.OK {
				verdict = "DIFFERS from " + c.Stored
			}
			fmt.Fprintf(w, "  %-7s %s %s (%s)\n", c.Algorithm, c.Computed, verdict, c.Where)
		}
	}
	switch {
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
