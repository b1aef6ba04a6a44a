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
// targets, and the name of their preservation record. They are those
// that an earlier run of the same case recorded in place (it stopped
// before its case record): nothing is made again. Else the preservation
// step makes them now (or, with --use-latest, chooses the newest
// completed ones), its record checkpointed in place after every request
// (in a bucket: whenever its snapshots change) and saved there when it
// ends. With an error, the snapshots made so far are returned too.
// stopped says why a recorded preservation taken up again did not end
// well.
func preserveCase(ctx context.Context, cmd *cobra.Command, aws *awsOptions, o *acquireOptions, place casework.Place, targets []string) (_ []casework.Preserved, record, stopped string, _ error) {
	found, name, err := place.Preservation(targets)
	if err != nil {
		return nil, "", "", err
	}
	if found != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: acquiring the snapshots recorded in %s (%s); nothing is preserved again\n", place, name)
		return found.Snapshots, name, found.Stopped, nil
	}
	po, err := o.preserve.options()
	if err != nil {
		return nil, "", "", err
	}
	po.Case = report.CaseFromFields(o.caseMeta.fields())
	po.Checkpoint = place.Checkpoint
	cfg, err := aws.config(ctx)
	if err != nil {
		return nil, "", "", err
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
		return nil, "", "", preserveError(err, "")
	}
	res.Record.Snapshots = res.Snapshots
	name, serr := place.SavePreservation(res.Record)
	if serr != nil {
		return nil, "", "", errors.Join(preserveError(err, ""), fmt.Errorf("saving the custody record in %s: %w", place, serr))
	}
	out := make([]casework.Preserved, len(res.Snapshots))
	for i, s := range res.Snapshots {
		out[i] = casework.Preserved{InstanceID: s.InstanceID, Device: s.Device, VolumeID: s.VolumeID, SnapshotID: s.Acquire}
	}
	if len(out) == 0 {
		name = ""
	}
	if err != nil {
		return out, name, "", preserveError(err, place.String())
	}
	return out, name, "", nil
}
