package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/preflight"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// acquireArgs accepts one or more words that look like targets (their
// ids are checked later, a malformed one being exit 7), or none with
// --targets FILE.
func acquireArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 && !cmd.Flags().Changed("targets") {
		return errors.New("no target")
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "snap-") && !strings.HasPrefix(a, "vol-") && !strings.HasPrefix(a, "i-") {
			return fmt.Errorf("%q is not a target", a)
		}
	}
	return nil
}

// caseTargets returns the targets of a case, or none when the command
// acquires one snapshot into --out DIR or --image FILE as it always did.
// The case layout is chosen by --targets FILE, by more than one target,
// or by any instance or volume target.
func (o *acquireOptions) caseTargets(args []string) ([]string, error) {
	targets := args
	if o.targets != "" {
		f, err := os.Open(o.targets)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		listed, err := casework.ReadTargets(o.targets, f)
		if err != nil {
			return nil, err
		}
		targets = append(append([]string(nil), args...), listed...)
	}
	if o.targets == "" && len(args) == 1 && strings.HasPrefix(args[0], "snap-") {
		return nil, nil
	}
	if err := casework.CheckTargets(targets); err != nil {
		return nil, err
	}
	return targets, nil
}

// checkCase refuses the flags that apply to one snapshot only.
func (o *acquireOptions) checkCase() error {
	switch {
	case o.out == "":
		return usagef("a case (several targets, an instance or a volume, or --targets) is acquired into --out DIR or s3://bucket/prefix/; --image applies to a single snapshot")
	case o.base != "":
		return usagef("--base applies to a single snapshot")
	case o.seal.encrypting() && len(o.seal.recipients) == 0 && len(o.seal.recipientsFiles) == 0 && o.seal.passphraseFile == "":
		return usagef("--encrypt in a case needs --recipient, --recipients-file or --passphrase-file: a passphrase would be asked once per volume")
	}
	return nil
}

// runCase acquires every snapshot of targets into DIR/<snapshot-id>/ (or
// s3://bucket/case/<snapshot-id>/) at once and records the case: DIR's
// case.json and case.txt, or in S3 the objects casework.Bucket writes.
func runCase(ctx context.Context, cmd *cobra.Command, aws *awsOptions, targets []string, o *acquireOptions) (*casework.Case, error) {
	place, done, err := openCasePlace(ctx, aws, o)
	if err != nil {
		return nil, err
	}
	defer done()
	c, err := planCase(ctx, cmd, aws, o, place, targets)
	if err != nil {
		return c, err
	}
	c.AccountRate = o.account.Rate()
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.json, 5*time.Second)
	var last string // written by the progress goroutine, read after Run returns
	runErr := casework.Run(ctx, c, caseAcquirer(aws, o, casePreflight(ctx, aws, c)), casework.Options{
		Code:     func(err error) int { return exitCode(ctx, err) },
		Progress: drawCase(status, &last),
	})
	status.Done(last)
	if _, err := place.Save(c); err != nil {
		return c, unrecordedError{fmt.Errorf("recording the case: %w", err)}
	}
	if o.json {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(c); err != nil {
			return c, err
		}
	} else if err := c.WriteText(cmd.OutOrStdout()); err != nil {
		return c, err
	}
	if runErr != nil {
		return c, withHint(runErr, "run the same command again: every volume resumes, and complete ones are checked and left as they are")
	}
	return c, nil
}

// openCasePlace opens where the case is recorded: DIR, locked for the
// run (done unlocks it), or the prefix of --out s3://… (openCaseBucket).
func openCasePlace(ctx context.Context, aws *awsOptions, o *acquireOptions) (_ casework.Place, done func(), _ error) {
	if o.s3.on() {
		p, err := openCaseBucket(ctx, aws, o)
		return p, func() {}, err
	}
	if _, err := os.Stat(filepath.Join(o.out, store.MetaName)); err == nil {
		return nil, nil, fmt.Errorf("%s is the evidence directory of one snapshot; a case needs a directory of its own: %w", o.out, os.ErrExist)
	}
	unlock, err := lockEvidenceDir(o.out, "acquire")
	if err != nil {
		return nil, nil, err
	}
	return casework.Dir(o.out), unlock, nil
}

// planCase returns the case to resume, or plans a new one: its
// instance and volume targets preserved first (see preserveCase). The
// plan is recorded before anything is acquired, so that a rerun finds
// the same snapshots and never makes new ones; a preservation that
// stopped part way records the snapshots it made, and its error.
func planCase(ctx context.Context, cmd *cobra.Command, aws *awsOptions, o *acquireOptions, place casework.Place, targets []string) (*casework.Case, error) {
	c, err := place.Load(targets)
	if c != nil && len(preserveTargets(targets)) > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: resuming the case in %s: acquiring the snapshots it recorded; nothing is preserved again\n", o.out)
	}
	if err != nil || c != nil {
		return c, err
	}
	var preserved []casework.Preserved
	var record, stopped string
	var preserveErr error
	if pt := preserveTargets(targets); len(pt) > 0 {
		preserved, record, stopped, preserveErr = preserveCase(ctx, cmd, aws, o, place, pt)
		if len(preserved) == 0 {
			return nil, preserveErr
		}
	}
	c = casework.New(targets, casework.PlanVolumes(targets, preserved), toolVersion(), time.Now().UTC())
	c.Preservation = record
	if preserveErr != nil {
		stopped = preserveErr.Error()
	}
	c.PreservationError = stopped
	if preserveErr != nil {
		// The run ends here: its record says what the preservation made.
		if _, err := place.Save(c); err != nil {
			return nil, errors.Join(preserveErr, fmt.Errorf("recording the case's plan: %w", err))
		}
		return c, preserveErr
	}
	if err := place.SavePlan(c); err != nil {
		return nil, fmt.Errorf("recording the case's plan: %w", err)
	}
	return c, nil
}

// casePreflight is the pre-flight of every snapshot of c at once, before
// any block is fetched, by snapshot id: one whose snapshot cannot be read
// fails at once (exit 15, or 5 for its KMS key) while the others go on.
// When the pre-flight itself cannot run, each volume makes its own.
func casePreflight(ctx context.Context, aws *awsOptions, c *casework.Case) map[string]*preflight.Result {
	cfg, err := aws.config(ctx)
	if err != nil {
		return nil
	}
	ids := make([]string, len(c.Volumes))
	for i, v := range c.Volumes {
		ids[i] = v.SnapshotID
	}
	rs, _ := preflight.Check(ctx, cfg, ids) // each Result carries its own error
	if len(rs) != len(ids) {
		return nil
	}
	out := make(map[string]*preflight.Result, len(rs))
	for i := range rs {
		out[ids[i]] = &rs[i]
	}
	return out
}

// caseAcquirer acquires one volume of a case into its own evidence
// directory, exactly as `acquire SNAPSHOT --out DIR/SNAPSHOT` would, after
// the case's pre-flight of it (pre; nil: its own).
func caseAcquirer(aws *awsOptions, o *acquireOptions, pre map[string]*preflight.Result) casework.Acquirer {
	return func(ctx context.Context, v casework.Volume, progress func(acquire.Progress)) (casework.Result, error) {
		one := *o
		if err := one.volumeOut(v.Directory); err != nil {
			return casework.Result{}, err
		}
		before := o.account.Stats()[v.SnapshotID]
		sum, err := acquireSnapshot(ctx, aws, v.SnapshotID, &one, pre[v.SnapshotID], progress)
		res := volumeResult(sum)
		res.AccountTurns = o.account.Stats()[v.SnapshotID] - before
		return res, err
	}
}

// volumeOut points the options of a case at the evidence of one of its
// volumes: DIR/<dir>, or s3://bucket/case/<dir>/.
func (o *acquireOptions) volumeOut(dir string) error {
	if !o.s3.on() {
		o.out = filepath.Join(o.out, dir)
		return nil
	}
	u, err := s3store.ParseURL(o.s3.url.String() + dir + "/")
	if err != nil {
		return err
	}
	o.out, o.s3.url = u.String(), u
	return nil
}

// volumeResult is a case's record of one snapshot's summary.
func volumeResult(s acquireSummary) casework.Result {
	return casework.Result{
		ManifestSHA256: s.ManifestSHA256,
		Blocks:         s.Blocks, Fetched: s.Fetched, Kept: s.Resumed,
		FailedBlocks: int64(len(s.FailedBlocks)) + s.FailedBlocksUnlisted,
		Bytes:        s.Bytes, Seconds: s.Seconds,
		ListCalls: s.Counts.ListCalls, GetCalls: s.Counts.GetCalls,
		Retries: s.Counts.TotalRetries(), RetriesByKind: s.Counts.Retries,
	}
}

// drawCase returns what redraws the status from every volume's counters:
// one line, each volume by its device (or snapshot id) and how far it
// is, then the totals; *last is the latest line, which the command
// leaves on the screen (and in a log) when the case ends: the line of a
// case whose volumes have all ended is drawn only then, once.
func drawCase(status *ui.Status, last *string) func([]casework.Progress) {
	started := time.Now()
	return func(vols []casework.Progress) {
		*last = caseLine(vols, time.Since(started))
		for _, v := range vols {
			if v.Status == casework.StatusPending {
				status.Update(*last)
				return
			}
		}
	}
}

func caseLine(vols []casework.Progress, elapsed time.Duration) string {
	var parts []string
	var bytes, retries, failed int64
	for _, v := range vols {
		label := v.Device
		if label == "" {
			label = v.SnapshotID
		}
		p := v.Progress
		bytes, retries, failed = bytes+p.Bytes, retries+p.Counts.TotalRetries(), failed+p.Failed
		switch {
		case v.Status != casework.StatusPending:
			parts = append(parts, label+" "+v.Status)
		case !p.ListingDone:
			parts = append(parts, fmt.Sprintf("%s %d/listing…", label, p.Stored+p.Skipped))
		default:
			parts = append(parts, fmt.Sprintf("%s %d/%d", label, p.Stored+p.Skipped, p.Listed))
		}
	}
	return fmt.Sprintf("%s  %s  %s  retries %d  failed %d", strings.Join(parts, " · "), ui.Bytes(bytes), ui.Rate(bytes, elapsed), retries, failed)
}
