package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

type verifyOptions struct {
	asJSON      bool
	quiet       bool
	noRecord    bool
	s3PathStyle bool
	keys        openOptions
	snap        snapshotCheckOptions
}

const verifyExitCodes = `EXIT STATUS
  0    everything matched every record of it
  1    other error (for example: DIR is not an evidence directory)
  2    bad flags or arguments
  3    DIR's acquisition has not completed (no manifest yet), or with
       --against-snapshot --full, some blocks could not be fetched (named)
  4    verification failed: the differences are named
  5, 6, 7, 11, 15
       with --against-snapshot: access denied, no such snapshot, an
       invalid request, an AWS quota exhausted, a snapshot the EBS direct
       APIs cannot read (archived since, for one: restore it first)
  9    local I/O error: DIR or IMAGE missing or unreadable
  10   the key (--identity or the passphrase) opens none of the
       encrypted blocks, or is missing where one is needed
  12   busy: another ebsimager process (named by PID) is writing DIR
  13   verified OK, but the verification could not be appended to
       report.json (the warning says why); see --no-record
  130  interrupted`

func newVerifyCommand(aws *awsOptions) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify DIR|IMAGE|s3://BUCKET/PREFIX/",
		Short: "Re-check an evidence directory against its manifest, or an image against its hashes",
		Long: `Re-hash every stored block against the manifest and against its file name,
check that no block is missing or extra and that the manifest itself is
intact (its SHA-256 file, its header, its totals). Then compare the
manifest with every record of it kept apart from it: the SHA-256 and
totals the chain-of-custody record (report.json) holds from the
acquisition, or from the last conversion, whose starting manifest must be
the one recorded before it; and the leaf journals, entry by entry. Every
difference is named, with the record it disagrees with. Evidence without
a report.json or without journals is said to be so.

With --against-snapshot, the snapshot itself is listed again (AWS access
needed, through --region/--endpoint-url as for acquire) and must list
exactly the manifest's block indexes; with --full as well, every block is
fetched again and the checksum AWS serves it with compared with the
manifest's, as dc3dd and Guymager verify their source. The calls and
their estimated cost are printed before any is made.

The verdict is printed first. It is then appended to report.json as a
step of the record; --no-record appends nothing (read-only media). The
directory is locked while it is verified: evidence another ebsimager
process is writing is refused rather than judged half-written.

Given an image instead (raw FILE, split FILE.001, or BASE.E01), verify
recomputes its MD5, SHA-1 and SHA-256 and compares them with every record
of them: the hashes stored inside an E01 (every section's own checksum,
its tables and table2 copies, and every chunk are checked too; a damaged
section, or a stored hash that cannot be read, fails verification) and the
.md5/.sha1/.sha256 files beside the image.

Given s3://bucket/prefix/, the evidence in S3 is verified as a directory
is (--against-snapshot too), and each object also against the SHA-256 S3
keeps for it (the checksum S3 verified when it arrived). Objects in the
bucket are written once, so nothing is appended to its record: the step is
written as an object of its own, runs/<time>-<tag>-verify.json under the
prefix (exit 13 if it cannot be; --no-record writes nothing).

Encrypted evidence can be verified without any key: every stored file is
checked against the SHA-256 of its stored bytes in the manifest. With
--identity or the passphrase, each block's content is also checked against
the SHA-256 AWS served it with.

` + verifyExitCodes,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.snap.full && !o.snap.against {
				return usagef("--full applies to --against-snapshot")
			}
			if (cmd.Flags().Changed("workers") || cmd.Flags().Changed("max-rate") || cmd.Flags().Changed("max-attempts")) && !o.snap.full {
				return usagef("--workers, --max-rate and --max-attempts apply to --against-snapshot --full")
			}
			if s3store.IsURL(args[0]) {
				return runVerifyS3(cmd, aws, args[0], o)
			}
			if o.s3PathStyle {
				return usagef("--s3-path-style applies to s3://bucket/prefix/")
			}
			fi, err := os.Stat(args[0])
			if err != nil {
				return err
			}
			if !fi.IsDir() {
				if o.snap.against || o.noRecord {
					return usagef("--against-snapshot and --no-record apply to an evidence directory, not to an image")
				}
				return verifyImage(cmd, args[0], o.asJSON, o.quiet)
			}
			return runVerifyDir(cmd, aws, args[0], o)
		},
	}
	o.keys.addFlags(cmd)
	f := cmd.Flags()
	f.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress")
	f.BoolVar(&o.noRecord, "no-record", false, "do not append the verification to report.json (for read-only media), nor write its run object in S3")
	f.BoolVar(&o.s3PathStyle, "s3-path-style", false, "for s3://bucket/prefix/: address the bucket in the path (automatic for an IP-address or localhost endpoint)")
	o.snap.addFlags(cmd)
	return cmd
}

// verifyOutput is what --json prints.
type verifyOutput struct {
	OK bool `json:"ok"`
	*store.VerifyResult
	Snapshot *report.SnapshotCheck `json:"snapshot,omitempty"`
	Recorded bool                  `json:"recorded"`
}

func runVerifyDir(cmd *cobra.Command, aws *awsOptions, dir string, o *verifyOptions) error {
	started := time.Now()
	ev, err := store.Open(dir)
	if err != nil {
		return err
	}
	release, unlocked, err := ev.LockForVerify()
	if err != nil {
		return err
	}
	defer release()
	if unlocked != nil && !o.quiet && !o.asJSON {
		fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: note: verifying without a lock (%v)\n", unlocked)
	}
	unseal, err := o.keys.unseal(ev, false)
	if err != nil {
		return err
	}
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.asJSON, 5*time.Second)
	res, err := ev.Verify(cmd.Context(), rejectingKey(unseal), func(done int64) {
		if done%1024 == 0 {
			status.Update(fmt.Sprintf("verified %d blocks", done))
		}
	})
	status.Done("")
	if err != nil {
		return err
	}
	compareWithRecord(ev, res)
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
		printVerifyResult(w, dir, contentSource(ev.Meta), res, snapCheck) // the verdict first, whatever happens to the record
	}
	var recErr error
	if !o.noRecord {
		recErr = appendStep(dir, verifyStep(dir, started, res, snapCheck))
	}
	if o.asJSON {
		out := verifyOutput{OK: res.OK() && (snapCheck == nil || snapCheck.FailedCount == 0), VerifyResult: res, Snapshot: snapCheck, Recorded: !o.noRecord && recErr == nil}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	if recErr != nil {
		recErr = fmt.Errorf("warning: the verification was not appended to %s: %w", report.JSONName, recErr)
	}
	if !res.OK() {
		if recErr != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: %v\n", recErr)
		}
		return mismatchError{fmt.Sprintf("verification FAILED: %s in %s", ui.Plural(int64(len(res.Problems))+res.MoreProblems, "problem"), dir)}
	}
	if snapCheck != nil && snapCheck.FailedCount > 0 {
		if recErr != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: %v\n", recErr)
		}
		return withHint(&acquire.IncompleteError{Failed: snapFailed(snapCheck)},
			"the evidence itself matched; run the same command again to compare the blocks that could not be fetched")
	}
	if recErr != nil {
		// The verdict (OK) was printed; this is the separate warning.
		return unrecordedError{withHint(recErr, "the evidence verified; on read-only media, pass --no-record")}
	}
	return nil
}

// rejectingKey marks the errors of a key that does not open a block, so
// that Verify counts them apart from tampering.
func rejectingKey(u store.Unseal) store.Unseal {
	if u == nil {
		return nil
	}
	return func(src io.Reader, e manifest.Entry) (io.Reader, error) {
		r, err := u(src, e)
		if errors.Is(err, codec.ErrWrongKey) {
			err = fmt.Errorf("%w: %w", store.ErrKeyRejected, err)
		}
		return r, err
	}
}

// compareWithRecord compares the manifest with what report.json says it
// is. A missing or unreadable report.json is said, not judged: the
// evidence is what is verified.
func compareWithRecord(ev *store.Evidence, res *store.VerifyResult) {
	rec, err := report.Load(ev.Dir)
	compareWithLoaded(ev, res, rec, err)
}

// compareWithLoaded is compareWithRecord once the record is read (err
// matching fs.ErrNotExist: there is none).
func compareWithLoaded(ev *store.Evidence, res *store.VerifyResult, rec *report.Report, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		res.Record = &store.Comparison{Record: report.JSONName, Outcome: store.CompareNotPossible, Detail: "no " + report.JSONName + ": no acquisition record to compare with"}
		return
	}
	if err != nil {
		res.Record = &store.Comparison{Record: report.JSONName, Outcome: store.CompareNotPossible, Detail: fmt.Sprintf("unreadable: %v", err)}
		return
	}
	claim, err := rec.ManifestClaim()
	if err != nil {
		res.Problems = append(res.Problems, store.Problem{Index: -1, Name: report.JSONName, Kind: "record", Detail: err.Error()})
	}
	if claim == nil {
		res.Record = &store.Comparison{Record: report.JSONName, Outcome: store.CompareNotPossible, Detail: report.JSONName + " records no manifest to compare with"}
		return
	}
	ev.CompareRecord(res, store.ManifestRecord{Source: claim.Source + " in " + report.JSONName, SHA256: claim.SHA256, Blocks: claim.Blocks, Bytes: claim.Bytes})
}

// verifyStep is the record of this verification.
func verifyStep(dir string, started time.Time, res *store.VerifyResult, snap *report.SnapshotCheck) report.Step {
	step := newStep(report.StepVerify, started, nil)
	v := &report.Verify{Target: dir, OK: res.OK(), Blocks: res.Blocks, StoredChecked: res.StoredChecked,
		ContentChecked: res.ContentChecked, Encrypted: res.Encrypted, ManifestSHA256: res.ManifestSHA256,
		Problems: []report.Problem{}, MoreProblems: res.MoreProblems, Snapshot: snap}
	for _, p := range res.Problems {
		v.Problems = append(v.Problems, report.Problem(p))
	}
	for _, c := range []*store.Comparison{res.Record, &res.Journals} {
		if c != nil {
			v.Compared = append(v.Compared, report.Comparison(*c))
		}
	}
	if snap != nil {
		c := report.Comparison{Record: "snapshot", Outcome: report.CompareMatch}
		if snap.MissingCount+snap.ExtraCount+snap.DifferCount > 0 {
			c.Outcome = report.CompareDiffers
		} else if snap.FailedCount > 0 {
			c.Outcome, c.Detail = report.CompareNotPossible, fmt.Sprintf("%d blocks could not be fetched", snap.FailedCount)
		}
		v.Compared = append(v.Compared, c)
	}
	step.Verify = v
	switch {
	case !res.OK():
		step.Outcome, step.Error = report.OutcomeFailed, ui.Plural(int64(len(res.Problems))+res.MoreProblems, "problem")
	case snap != nil && snap.FailedCount > 0:
		v.OK = false
		step.Outcome, step.Error = report.OutcomeFailed, fmt.Sprintf("%d blocks of the snapshot could not be fetched to compare", snap.FailedCount)
	}
	return step
}

// printVerifyResult prints the problems, then the summary.
func printVerifyResult(w io.Writer, dir, source string, res *store.VerifyResult, snap *report.SnapshotCheck) {
	for _, p := range res.Problems {
		if p.Index >= 0 {
			fmt.Fprintf(w, "%-8s block %d  %s: %s\n", p.Kind, p.Index, p.Name, p.Detail)
		} else {
			fmt.Fprintf(w, "%-8s %s: %s\n", p.Kind, p.Name, p.Detail)
		}
	}
	if res.MoreProblems > 0 {
		fmt.Fprintf(w, "... and %s more\n", ui.Plural(res.MoreProblems, "problem"))
	}
	printVerifySummary(w, dir, source, res)
	for _, c := range []*store.Comparison{res.Record, &res.Journals} {
		if c != nil {
			printComparison(w, c.Record, c.Outcome, c.Detail)
		}
	}
	if snap != nil {
		printSnapshotCheck(w, snap)
	}
	if res.KeyOpensNone {
		fmt.Fprintf(w, "the key given opens none of the %d encrypted blocks: their content was not checked\n", res.KeyRejected)
	}
	switch {
	case !res.OK():
	case snap != nil && snap.FailedCount > 0:
		n := "blocks of the snapshot were"
		if snap.FailedCount == 1 {
			n = "block of the snapshot was"
		}
		fmt.Fprintf(w, "verification INCOMPLETE: %d %s not fetched, so not compared\n", snap.FailedCount, n)
	default:
		fmt.Fprintln(w, "verification OK")
	}
}

// snapFailed lists the blocks a snapshot check could not fetch.
func snapFailed(s *report.SnapshotCheck) []acquire.FailedBlock {
	out := make([]acquire.FailedBlock, len(s.Failed))
	for i, idx := range s.Failed {
		out[i] = acquire.FailedBlock{Index: idx, Err: errors.New("could not be fetched after every retry")}
	}
	return out
}

// printVerifySummary prints what was checked, and the manifest's SHA-256.
func printVerifySummary(w io.Writer, dir, source string, res *store.VerifyResult) {
	fmt.Fprintf(w, "%s: %d blocks in the manifest, %d stored files matched, %d block contents matched %s\n",
		dir, res.Blocks, res.StoredChecked, res.ContentChecked, source)
	if res.Encrypted > 0 && res.ContentChecked < res.Blocks && !res.KeyOpensNone {
		fmt.Fprintf(w, "%d blocks are encrypted: their stored bytes were checked; give --identity or the passphrase to check their content too\n", res.Encrypted)
	}
	fmt.Fprintf(w, "manifest sha256 %s\n", res.ManifestSHA256)
}

func printComparison(w io.Writer, record, outcome, detail string) {
	what := map[string]string{
		store.CompareMatch: "matches", store.CompareDiffers: "DIFFERS", store.CompareNotPossible: "not compared",
	}[outcome]
	if detail != "" {
		detail = " (" + detail + ")"
	}
	fmt.Fprintf(w, "compared with %s: %s%s\n", record, what, detail)
}
