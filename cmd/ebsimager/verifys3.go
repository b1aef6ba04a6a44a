package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// runVerifyS3 verifies evidence in S3 (verify s3://bucket/prefix/): every
// object against the manifest, and against the SHA-256 S3 keeps for it.
// Nothing is appended to its record: objects in the bucket are written
// once.
func runVerifyS3(cmd *cobra.Command, aws *awsOptions, url string, o *verifyOptions) error {
	if o.snap.against {
		return usagef("--against-snapshot is not supported for evidence in S3 yet")
	}
	b, err := openS3(cmd.Context(), aws, url, o.s3PathStyle)
	if err != nil {
		return err
	}
	u := b.URL()
	meta, err := store.OpenRemote(cmd.Context(), b)
	if err != nil {
		return err
	}
	unseal, err := o.keys.unseal(&store.Evidence{Meta: meta}, false)
	if err != nil {
		return err
	}
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.asJSON, 5*time.Second)
	res, err := store.VerifyRemote(cmd.Context(), b, meta, rejectingKey(unseal), func(done int64) {
		if done%256 == 0 {
			status.Update(fmt.Sprintf("verified %d blocks", done))
		}
	})
	status.Done("")
	if err != nil {
		return err
	}
	if res.KeyOpensNone && res.OK() {
		return wrongKeyError{fmt.Errorf("the key given does not open this evidence: none of its %d encrypted blocks opened with it (their stored bytes match the manifest)", res.KeyRejected)}
	}
	w := cmd.OutOrStdout()
	if o.asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(verifyOutput{OK: res.OK(), VerifyResult: res}); err != nil {
			return err
		}
	} else {
		printVerifyResult(w, u.String(), contentSource(meta), res, nil)
	}
	if !res.OK() {
		return mismatchError{fmt.Sprintf("verification FAILED: %s in %s", ui.Plural(int64(len(res.Problems))+res.MoreProblems, "problem"), u)}
	}
	return nil
}
