package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/image"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// verifyImage recomputes an image's hashes and compares them with every
// record of them: inside an E01, and in the hash files beside the image.
func verifyImage(cmd *cobra.Command, path string, asJSON, quiet bool) error {
	status := ui.NewStatus(cmd.ErrOrStderr(), quiet || asJSON, 5*time.Second)
	res, err := image.Verify(path, func(done, total int64) {
		status.Update(fmt.Sprintf("verified %s of %s", ui.Bytes(done), ui.Bytes(total)))
	})
	status.Done("")
	var bad *image.HashFileError
	if errors.As(err, &bad) {
		return mismatchError{fmt.Sprintf("verification FAILED: %v", err)}
	}
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printImageVerification(w, res)
	}
	if why := res.Failure(); why != "" {
		return mismatchError{"verification FAILED: " + why}
	}
	if !asJSON {
		fmt.Fprintln(w, "verification OK")
	}
	return nil
}

// printImageVerification prints the damage, then each hash compared.
func printImageVerification(w io.Writer, res *image.Verification) {
	fmt.Fprintf(w, "%s: %s image, %s\n", res.Image, res.Format, imageSizeText(res.Segments, res.Size))
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
			verdict = "NOT COMPARED: the stored " + image.HashName(c.Algorithm) + " cannot be read"
		case !c.OK:
			verdict = "DIFFERS from " + c.Stored
		}
		fmt.Fprintf(w, "  %-7s %s %s (%s)\n", c.Algorithm, computed, verdict, c.Where)
	}
}
