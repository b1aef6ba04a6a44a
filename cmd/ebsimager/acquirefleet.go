package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// fleetWorker is one worker of an indexed job (Kubernetes Indexed Job,
// AWS Batch array job): acquire --targets FILE takes only the target at
// its index, into --out expanded as a template.
type fleetWorker struct {
	file   string // --targets
	index  int
	from   string // --index, JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX
	target string
	out    string // --out as given (the template)
}

// pickWorker sets o.fleet when this acquire is a worker of an indexed
// job: --targets FILE with --index, JOB_COMPLETION_INDEX or
// AWS_BATCH_JOB_ARRAY_INDEX. It picks the worker's target and expands
// --out into o.out. An --out template outside a worker is refused.
func (o *acquireOptions) pickWorker(cmd *cobra.Command, args []string) error {
	index, from, ok, err := casework.WorkerIndex(o.index, cmd.Flags().Changed("index"), os.Getenv)
	switch {
	case o.targets == "" && cmd.Flags().Changed("index"):
		return usagef("--index picks one target of --targets FILE")
	case o.targets == "" || !ok:
		if casework.IsTemplate(o.out) {
			return usagef("--out %q: {…} placeholders apply to a worker of an indexed job (--targets FILE with --index, %s or %s)",
				o.out, casework.EnvJobCompletionIndex, casework.EnvBatchArrayIndex)
		}
		return nil
	case err != nil:
		return err
	case len(args) > 0:
		return usagef("a worker of an indexed job (%s) takes its target from --targets FILE only, not from the command line", from)
	case o.out == "":
		return usagef("a worker of an indexed job writes to --out (a template, e.g. DIR/{target}); --image applies to a single snapshot")
	}
	targets, err := readTargetsFile(o.targets)
	if err != nil {
		return err
	}
	target, err := casework.Pick(o.targets, targets, index)
	if err != nil {
		return err
	}
	if err := casework.CheckTemplate(o.out, targets); err != nil {
		return usageError{err}
	}
	snapshot := ""
	if strings.HasPrefix(target, "snap-") {
		snapshot = target
	}
	o.fleet = &fleetWorker{file: o.targets, index: index, from: from, target: target, out: o.out}
	o.out = casework.Expand(o.out, target, snapshot, index)
	return nil
}

// readTargetsFile reads the ids of a --targets file.
func readTargetsFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return casework.ReadTargets(name, f)
}

// caseTargets is the worker's case: none for a snapshot target (one
// evidence directory at --out), else the instance or the volume alone.
func (w *fleetWorker) caseTargets() []string {
	if strings.HasPrefix(w.target, "snap-") {
		return nil
	}
	return []string{w.target}
}

// runWorker acquires the worker's target, as `acquire SNAPSHOT --out
// OUT` or `acquire INSTANCE|VOLUME --out OUT` would, then writes this
// run's summary next to OUT (OUT.<start time>.summary.json), whatever
// the outcome.
func runWorker(ctx context.Context, cmd *cobra.Command, aws *awsOptions, targets []string, o *acquireOptions) error {
	w := o.fleet
	started := time.Now()
	s := &casework.WorkerSummary{
		ToolVersion: toolVersion(), Host: report.CollectHost().Hostname,
		TargetsFile: w.file, Index: w.index, IndexFrom: w.from, Target: w.target, Out: o.out,
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: worker %d (%s) of %s: %s into %s\n", w.index, w.from, w.file, w.target, o.out)
	var err error
	if targets == nil {
		var sum acquireSummary
		sum, err = acquireOne(ctx, cmd, aws, w.target, o)
		sum.SnapshotID = w.target
		s.Evidence = append(s.Evidence, snapshotEvidence(path.Base(strings.TrimRight(o.out, "/")), sum, err, exitCode(ctx, err)))
	} else {
		var c *casework.Case
		c, err = runCase(ctx, cmd, aws, targets, o)
		if c != nil {
			s.Evidence = caseEvidence(path.Base(strings.TrimRight(o.out, "/")), c)
		}
	}
	s.Finish(started, time.Now(), exitCode(ctx, err), err)
	summary := casework.SummaryPath(o.out, started)
	if serr := saveSummary(ctx, aws, o, s, summary); serr != nil {
		if err == nil {
			return unrecordedError{fmt.Errorf("the evidence is complete, but the worker summary %s could not be written: %w", summary, serr)}
		}
		return fmt.Errorf("%w\n(and writing the worker summary %s: %v)", err, summary, serr)
	}
	return err
}

// saveSummary writes the worker summary s to name: a file, or a
// write-once object beside the evidence in S3 (with the evidence's lock,
// its SHA-256 checked by S3 on arrival).
func saveSummary(ctx context.Context, aws *awsOptions, o *acquireOptions, s *casework.WorkerSummary, name string) error {
	if !s3store.IsURL(name) {
		return s.Save(name)
	}
	i := strings.LastIndexByte(name, '/')
	u, err := s3store.ParseURL(name[:i+1])
	if err != nil {
		return err
	}
	body, err := s.JSON()
	if err != nil {
		return err
	}
	cfg, err := aws.config(ctx)
	if err != nil {
		return err
	}
	b := s3store.New(cfg, s3store.Options{PathStyle: o.s3.pathStyle}).Bucket(u, o.s3.lock)
	return b.PutNew(ctx, name[i+1:], body, sha256.Sum256(body), nil)
}

// snapshotEvidence is the summary's entry of the evidence directory dir
// of one snapshot.
func snapshotEvidence(dir string, sum acquireSummary, err error, code int) casework.WorkerEvidence {
	status := casework.StatusComplete
	if err != nil {
		status = casework.StatusFailed
		if sum.FailedBlocks != nil {
			status = casework.StatusIncomplete
		}
	}
	return casework.WorkerEvidence{
		SnapshotID: sum.SnapshotID, Directory: dir, Status: status, ManifestSHA256: sum.ManifestSHA256,
		Blocks: sum.Blocks, Fetched: sum.Fetched, Bytes: sum.Bytes, Seconds: sum.Seconds,
		ListCalls: sum.Counts.ListCalls, GetCalls: sum.Counts.GetCalls, Retries: sum.Counts.TotalRetries(),
		Throttles: sum.Counts.Retries[casework.ThrottleKind], ExitCode: code,
	}
}

// caseEvidence is the summary's entries of a case's volumes, the case
// directory being dir.
func caseEvidence(dir string, c *casework.Case) []casework.WorkerEvidence {
	out := make([]casework.WorkerEvidence, len(c.Volumes))
	for i, v := range c.Volumes {
		out[i] = casework.WorkerEvidence{
			SnapshotID: v.SnapshotID, Directory: dir + "/" + v.Directory, Status: v.Status, ManifestSHA256: v.ManifestSHA256,
			Blocks: v.Blocks, Fetched: v.Fetched, Bytes: v.Bytes, Seconds: v.Seconds,
			ListCalls: v.ListCalls, GetCalls: v.GetCalls, Retries: v.Retries,
			Throttles: v.RetriesByKind[casework.ThrottleKind], ExitCode: v.ExitCode,
		}
	}
	return out
}

// acquireOne acquires snapshot id into o.out or o.image with the status
// line, and prints its summary as runAcquire does.
func acquireOne(ctx context.Context, cmd *cobra.Command, aws *awsOptions, id string, o *acquireOptions) (acquireSummary, error) {
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.json, 5*time.Second)
	sum, err := acquireSnapshot(ctx, aws, id, o, nil, drawProgress(status))
	status.Done("")
	if err != nil {
		// An incomplete run (FailedBlocks set, if empty) is summarized too.
		if o.json && sum.FailedBlocks != nil {
			if perr := printAcquireSummary(cmd.OutOrStdout(), sum, true); perr != nil {
				return sum, perr
			}
		}
		return sum, err
	}
	return sum, printAcquireSummary(cmd.OutOrStdout(), sum, o.json)
}
