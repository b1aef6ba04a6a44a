package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/preserve"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

type snapshotOptions struct {
	preserveOptions
	caseMeta
	record string
	quiet  bool
	json   bool
	s3     s3Options // --record s3://bucket/prefix/
}

func newSnapshotCommand(aws *awsOptions) *cobra.Command {
	o := &snapshotOptions{}
	cmd := &cobra.Command{
		Use:   "snapshot TARGET... [flags]",
		Short: "Preserve instances and volumes as tagged, completed, optionally locked and shared snapshots",
		Long: `Snapshot each TARGET: an instance (i-…) as one crash-consistent set of
snapshots of every attached EBS volume, root included (EC2 CreateSnapshots;
--exclude-boot and --device narrow it), or a volume (vol-…) as one snapshot.

Every snapshot is tagged with the case fields (--case-number,
--evidence-number, --examiner), the tool and its version, the time (RFC 3339,
UTC), and its instance, device and volume (tag keys ebsimager:…), plus any
--tag KEY=VALUE; its Description names the case.

By default the command waits until every snapshot is completed, at most
--timeout. Then, in this order: --copy --kms-key KEY copies each snapshot
encrypted under a customer managed key (into --copy-region); --lock locks the
snapshot, or its copy, with EBS Snapshot Lock; --share-with gives an account
createVolumePermission on it, and reads the permission back. A snapshot
encrypted under the AWS managed key (aws/ebs) cannot be shared: copy it.

A compliance lock cannot be removed or shortened by anyone once its cool-off
period ends (at once without --cool-off), and the snapshot cannot be deleted,
and is billed, until the lock expires.

Every AWS request (with its request id, time, attempts and answer) and the
caller identity are recorded in DIR/preservation.json and preservation.txt
(--record DIR; default ./preservation-<UTC time>), saved after every request
and when the command ends, also when it fails part way: the record then says
which snapshots exist.

With --record s3://bucket/prefix/, the record goes to S3 as objects
written once, each with its SHA-256 checked by S3: preservation.json and
preservation.txt when the command ends having made a snapshot; while it
runs, the record each time its snapshots change (one is made, completes,
is copied, locked, shared), as runs/<time>-<tag>-snapshot.json, as is
the final record of a run that made none. A prefix that holds a
preservation record already is refused. --object-lock, --retain-until,
--retain-days and --legal-hold lock every object, as acquire's do.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			po, err := o.options()
			if err != nil {
				return err
			}
			po.Case = report.CaseFromFields(o.caseMeta.fields())
			if err := preserve.CheckTargets(args); err != nil {
				return err
			}
			return runSnapshot(cmd, aws, args, po, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.record, "record", "", "directory for the custody record (default: ./preservation-<UTC time>, created), or s3://bucket/prefix/")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress")
	f.BoolVar(&o.json, "json", false, "print the snapshots as JSON")
	o.preserveOptions.addFlags(cmd)
	o.caseMeta.addFlags(cmd)
	o.s3.addFlags(cmd)
	return cmd
}

func runSnapshot(cmd *cobra.Command, aws *awsOptions, targets []string, po preserve.Options, o *snapshotOptions) error {
	ctx := cmd.Context()
	cfg, err := aws.config(ctx)
	if err != nil {
		return err
	}
	place, err := o.recordPlace(cmd, aws)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	if w := lockWarning(po); w != "" {
		fmt.Fprintln(stderr, w)
	}
	status := ui.NewStatus(stderr, o.quiet, 10*time.Second)
	last := ""
	po.Progress = func(p preserve.Progress) {
		last = preservationLine(p)
		status.Update(last)
	}
	po.Checkpoint = place.Checkpoint
	res, err := preserve.Run(ctx, cfg, targets, po)
	if !status.TTY() {
		last = "" // a log has its lines; the result follows on stdout
	}
	status.Done(last)
	if res == nil {
		if dir, ok := place.(casework.Dir); ok {
			os.Remove(string(dir)) // nothing was asked of AWS: no record to keep
		}
		return preserveError(err, "")
	}
	res.Record.Snapshots = res.Snapshots
	name, serr := place.SavePreservation(res.Record)
	if serr != nil {
		return errors.Join(preserveError(err, ""), fmt.Errorf("saving the custody record in %s: %w", place, serr))
	}
	if err != nil {
		return preserveError(err, place.String())
	}
	record := place.String() + name
	if dir, ok := place.(casework.Dir); ok {
		record = filepath.Join(string(dir), name)
	}
	if o.json {
		return printSnapshotsJSON(cmd.OutOrStdout(), res.Snapshots, record)
	}
	printSnapshots(cmd.OutOrStdout(), res.Snapshots, record)
	return nil
}

// recordPlace is where the preservation record goes: --record DIR
// (recordDir), or a prefix of --record s3://bucket/prefix/ that holds no
// preservation record yet (its objects written once, as a case's).
func (o *snapshotOptions) recordPlace(cmd *cobra.Command, aws *awsOptions) (casework.Place, error) {
	o.s3.flag = "record"
	if err := o.s3.check(cmd, o.record, time.Now()); err != nil {
		return nil, err
	}
	if !o.s3.on() {
		dir, err := recordDir(o.record, time.Now())
		if err != nil {
			return nil, err
		}
		o.record = dir // for snapshotInterrupted
		return casework.Dir(dir), nil
	}
	ctx := cmd.Context()
	cfg, err := aws.config(ctx)
	if err != nil {
		return nil, err
	}
	c := s3store.New(cfg, s3store.Options{PathStyle: o.s3.pathStyle})
	if !o.s3.lock.IsZero() {
		if err := c.CheckObjectLock(ctx, o.s3.url.Bucket); err != nil {
			return nil, err
		}
	}
	b := c.Bucket(o.s3.url, o.s3.lock)
	if err := casework.CheckNoPreservation(ctx, b); err != nil {
		return nil, err
	}
	return casework.NewBucket(ctx, b), nil
}

// recordDir makes the record's directory (0700): dir, or a new
// preservation-<UTC time> here. An existing directory is used unless it
// holds a record already.
func recordDir(dir string, now time.Time) (string, error) {
	if dir == "" {
		dir = "preservation-" + now.UTC().Format("20060102T150405Z")
	}
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		if _, serr := os.Stat(filepath.Join(dir, report.PreservationJSONName)); serr == nil {
			return "", fmt.Errorf("%s already holds a preservation record: %w", dir, fs.ErrExist)
		}
		err = nil
	}
	if err != nil {
		return "", fmt.Errorf("making the record directory: %w", err)
	}
	return dir, nil
}

// snapshotInterrupted says what an interrupted snapshot command left.
func snapshotInterrupted(cmd *cobra.Command) string {
	where := "its --record directory"
	if f := cmd.Flags().Lookup("record"); f != nil && f.Value.String() != "" {
		where = f.Value.String()
	}
	return "the custody record in " + where + " lists every snapshot made before the interruption; " +
		"running the same command again makes new snapshots"
}

// lockWarning is said before any lock is made.
func lockWarning(o preserve.Options) string {
	switch o.Lock {
	case preserve.LockCompliance:
		when := "at once"
		if o.CoolOffHours > 0 {
			when = fmt.Sprintf("after the %d-hour cool-off period", o.CoolOffHours)
		}
		return fmt.Sprintf("ebsimager: WARNING: a compliance lock cannot be undone: %s nobody, not even the account's root user, "+
			"can remove it or shorten it, and the snapshots cannot be deleted for %d days, until it expires; they are billed until then",
			when, o.LockDays)
	case preserve.LockGovernance:
		return fmt.Sprintf("ebsimager: a governance lock keeps the snapshots from deletion for %d days; "+
			"a user allowed ec2:UnlockSnapshot can still remove it", o.LockDays)
	}
	return ""
}

func preservationLine(p preserve.Progress) string {
	var parts []string
	for _, s := range p.Pending {
		parts = append(parts, fmt.Sprintf("%s %s %s", s.SnapshotID, s.State, s.Progress))
	}
	line := fmt.Sprintf("%s: %d of %d completed after %s", p.Stage, p.Done, p.Total, ui.Duration(p.Elapsed))
	if len(parts) > 0 {
		line += "; waiting for " + strings.Join(parts, ", ")
	}
	return line
}

// printSnapshots writes one line per snapshot, and the record's place.
func printSnapshots(w io.Writer, snaps []preserve.Snapshot, record string) {
	for _, s := range snaps {
		where := s.VolumeID
		if s.InstanceID != "" {
			where = fmt.Sprintf("%s %s %s", s.InstanceID, s.Device, s.VolumeID)
		}
		line := fmt.Sprintf("%s  %s  %s %s", s.SnapshotID, where, s.State, s.Progress)
		for _, c := range s.Copies {
			line += fmt.Sprintf("  copy %s in %s %s", c.SnapshotID, c.Region, c.State)
		}
		line += lockShareText(s.Lock, s.Shares)
		for _, c := range s.Copies {
			line += lockShareText(c.Lock, c.Shares)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "record: %s\n", record)
}

func lockShareText(l *report.SnapshotLock, shares []string) string {
	s := ""
	if l != nil {
		s += fmt.Sprintf("  locked %s until %s", l.State, l.ExpiresOn.UTC().Format(time.RFC3339))
	}
	if len(shares) > 0 {
		s += "  shared with " + strings.Join(shares, " ")
	}
	return s
}

// snapshotsJSON is what --json prints.
type snapshotsJSON struct {
	Snapshots []preserve.Snapshot `json:"snapshots"`
	Record    string              `json:"record"`
}

func printSnapshotsJSON(w io.Writer, snaps []preserve.Snapshot, record string) error {
	if snaps == nil {
		snaps = []preserve.Snapshot{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(snapshotsJSON{Snapshots: snaps, Record: record})
}

// preserveError adds a hint to an error of the preservation, and says
// where its record is.
func preserveError(err error, dir string) error {
	if dir != "" {
		err = fmt.Errorf("%w\nthe custody record, with every snapshot made so far, is in %s", err, dir)
	}
	var pe *preserve.Error
	if !errors.As(err, &pe) {
		return err
	}
	switch {
	case pe.Hint != "":
		return withHint(err, pe.Hint)
	case pe.Kind == ebs.KindAccessDenied:
		return withHint(err, "the caller needs "+pe.API+" (ebsimager policy --snapshot prints the policy)")
	case pe.Kind == ebs.KindNotFound:
		return withHint(err, "check the id and --region")
	}
	return err
}

// preserveExit is the exit code of an error of the preservation, if it
// is one.
func preserveExit(err error) (int, bool) {
	var pe *preserve.Error
	if !errors.As(err, &pe) {
		return 0, false
	}
	switch pe.Kind {
	case ebs.KindAccessDenied:
		return exitDenied, true
	case ebs.KindNotFound:
		return exitNotFound, true
	case ebs.KindInvalid:
		return exitInvalid, true
	case ebs.KindQuota:
		return exitQuota, true
	}
	return exitError, true
}
