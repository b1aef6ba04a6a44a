package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// runVerifyS3 verifies evidence in S3 (verify s3://bucket/prefix/): every
// object against the manifest, and against the SHA-256 S3 keeps for it;
// with --against-snapshot, the manifest against the snapshot too. Objects
// in the bucket are written once, so the verification is recorded as a
// run object of its own, runs/<time>-<tag>-verify.json (unless
// --no-record), holding the step a directory's record would gain.
func runVerifyS3(cmd *cobra.Command, aws *awsOptions, url string, o *verifyOptions) error {
	started := time.Now()
	b, err := openS3(cmd.Context(), aws, url, o.s3PathStyle)
	if err != nil {
		return err
	}
	u := b.URL()
	meta, err := store.OpenRemote(cmd.Context(), b)
	if err != nil {
		return err
	}
	ev := &store.Evidence{Dir: u.String(), Meta: meta, Bucket: b}
	unseal, err := o.keys.unseal(ev, false)
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
	if err := compareWithRecordS3(cmd.Context(), b, ev, res); err != nil {
		return err
	}
	var snapCheck *report.SnapshotCheck
	if o.snap.against {
		if snapCheck, err = o.snap.run(cmd, aws, ev, res); err != nil {
			return err
		}
	}
	if res.KeyOpensNone && res.OK() {
		// A wrong key is not tampering: nothing is recorded.
		return wrongKeyError{fmt.Errorf("the key given does not open this evidence: none of its %d encrypted blocks opened with it (their stored bytes match the manifest)", res.KeyRejected)}
	}
	w := cmd.OutOrStdout()
	if !o.asJSON {
		printVerifyResult(w, u.String(), contentSource(meta), res, snapCheck) // the verdict first, whatever happens to the record
	}
	var run store.RunObject
	var recErr error
	if !o.noRecord {
		run, recErr = recordVerifyS3(cmd, b, verifyStep(u.String(), started, res, snapCheck), started)
	}
	if o.asJSON {
		out := verifyS3Output{verifyOutput: verifyOutput{OK: res.OK() && (snapCheck == nil || snapCheck.FailedCount == 0), VerifyResult: res,
			Snapshot: snapCheck, Recorded: !o.noRecord && recErr == nil}}
		if run.Key != "" {
			out.Run = &run
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else if run.Key != "" && !o.quiet {
		fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: recorded as %s%s (sha256 %s)\n", u, run.Key, run.SHA256)
	}
	return verifyS3Verdict(cmd, u, res, snapCheck, recErr)
}

// verifyS3Output is what --json prints for evidence in S3: the run
// object the verification was recorded in, beside verify's output.
type verifyS3Output struct {
	verifyOutput
	Run *store.RunObject `json:"run,omitempty"`
}

// maxRecordObject bounds a report.json object read from a bucket
// (verify's comparison, a conversion's source record).
const maxRecordObject = 64 << 20

// compareWithRecordS3 compares the manifest with the report.json object
// beside it, as compareWithRecord does with a directory's; only a
// request that failed is an error.
func compareWithRecordS3(ctx context.Context, b *s3store.Bucket, ev *store.Evidence, res *store.VerifyResult) error {
	data, err := b.Get(ctx, report.JSONName, maxRecordObject)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		compareWithLoaded(ev, res, nil, report.ErrNoReport)
	case err != nil && !strings.HasSuffix(err.Error(), "refused"):
		return err
	case err != nil:
		compareWithLoaded(ev, res, nil, err)
	default:
		rec, err := report.Parse(data)
		compareWithLoaded(ev, res, rec, err)
	}
	return nil
}

// recordVerifyS3 writes the step of this verification as a run object of
// the evidence in b.
func recordVerifyS3(cmd *cobra.Command, b *s3store.Bucket, step report.Step, started time.Time) (store.RunObject, error) {
	body, err := json.MarshalIndent(step, "", "  ")
	if err != nil {
		return store.RunObject{}, err
	}
	return store.PutRun(cmd.Context(), b, report.StepVerify, started, append(body, '\n'))
}

// verifyS3Verdict is the exit of a verification of evidence in S3, as a
// directory's: failed (4), incomplete (3), or verified but not recorded
// (13).
func verifyS3Verdict(cmd *cobra.Command, u s3store.URL, res *store.VerifyResult, snapCheck *report.SnapshotCheck, recErr error) error {
	if recErr != nil {
		recErr = fmt.Errorf("warning: the verification was not recorded in %s: %w", u, recErr)
	}
	if !res.OK() || snapCheck != nil && snapCheck.FailedCount > 0 {
		if recErr != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: %v\n", recErr)
		}
	}
	if !res.OK() {
		return mismatchError{fmt.Sprintf("verification FAILED: %s in %s", ui.Plural(int64(len(res.Problems))+res.MoreProblems, "problem"), u)}
	}
	if snapCheck != nil && snapCheck.FailedCount > 0 {
		return withHint(&acquire.IncompleteError{Failed: snapFailed(snapCheck)}, "the evidence itself matched; run the same command again to compare the blocks that could not be fetched")
	}
	if recErr != nil {
		return unrecordedError{withHint(recErr, "the evidence verified; with credentials that cannot write to the bucket, pass --no-record")}
	}
	return nil
}
