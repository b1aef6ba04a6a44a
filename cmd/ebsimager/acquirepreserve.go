package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/preserve"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// preserveFlags are the flags of the preservation step that acquire
// shares with snapshot; they apply only to instance and volume targets.
var preserveFlags = []string{"exclude-boot", "device", "tag", "wait", "no-wait", "timeout", "lock", "lock-duration",
	"cool-off", "share-with", "copy", "kms-key", "copy-region", "use-latest"}

// checkPreserve checks the preservation flags before anything is done:
// refused without an instance or volume target, and --no-wait always
// (acquire reads completed snapshots only).
func (o *acquireOptions) checkPreserve(cmd *cobra.Command, targets []string) error {
	if cmd.Flags().Changed("no-wait") {
		return usagef("--no-wait applies to snapshot: acquire reads completed snapshots only")
	}
	if len(preserveTargets(targets)) > 0 {
		_, err := o.preserve.options()
		return err
	}
	for _, name := range preserveFlags {
		if cmd.Flags().Changed(name) {
			return usagef("--%s applies to instance (i-…) and volume (vol-…) targets, which are preserved first", name)
		}
	}
	return nil
}

// preserveTargets are the instance and volume targets of a case.
func preserveTargets(targets []string) []string {
	var out []string
	for _, t := range targets {
		if k, _ := casework.KindOf(t); k != casework.KindSnapshot {
			out = append(out, t)
		}
	}
	return out
}

// preserveCase returns the snapshots of the case's instance and volume
// targets. They are those that an earlier run of the same case recorded
// in DIR/preservation.json (it stopped before case.json): nothing is
// made again. Else the preservation step makes them now (or, with
// --use-latest, chooses the newest completed ones), and its record goes
// into DIR, saved after every request. With an error, the snapshots made
// so far are returned too. stopped says why a recorded preservation
// taken up again did not end well.
func preserveCase(ctx context.Context, cmd *cobra.Command, aws *awsOptions, o *acquireOptions, targets []string) (_ []casework.Preserved, stopped string, _ error) {
	found, err := casework.ReadPreservation(o.out, targets)
	if err != nil {
		return nil, "", err
	}
	if found != nil && len(found.Snapshots) > 0 {
		return found.Snapshots, found.Stopped, nil
	}
	if found != nil {
		if _, err := casework.SetAsidePreservation(o.out); err != nil {
			return nil, "", fmt.Errorf("setting aside the record of a preservation that made nothing: %w", err)
		}
	}
	po, err := o.preserve.options()
	if err != nil {
		return nil, "", err
	}
	po.Case = report.CaseFromFields(o.caseMeta.fields())
	po.Checkpoint = func(r *report.Preservation) error { return r.Save(o.out) }
	cfg, err := aws.config(ctx)
	if err != nil {
		return nil, "", err
	}
	if w := lockWarning(po); w != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), w)
	}
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.json, 5*time.Second)
	po.Progress = func(p preserve.Progress) { status.Update(preservationLine(p)) }
	run := preserve.Run
	if o.useLatest {
		run = preserve.Latest
	}
	res, err := run(ctx, cfg, targets, po)
	status.Done("")
	if res == nil {
		return nil, "", preserveError(err, "")
	}
	if serr := res.Save(o.out); serr != nil {
		return nil, "", errors.Join(preserveError(err, ""), fmt.Errorf("saving the custody record in %s: %w", o.out, serr))
	}
	out := make([]casework.Preserved, len(res.Snapshots))
	for i, s := range res.Snapshots {
		out[i] = casework.Preserved{InstanceID: s.InstanceID, Device: s.Device, VolumeID: s.VolumeID, SnapshotID: s.Acquire}
	}
	if err != nil {
		return out, "", preserveError(err, o.out)
	}
	return out, "", nil
}
