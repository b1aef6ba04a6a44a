package preserve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/report"
)

// Snapshot is one preserved snapshot: its instance, device and volume,
// state, lock, shares and copies, and the snapshot to acquire.
type Snapshot = report.PreservedSnapshot

// Result is what a preservation did.
type Result struct {
	// Snapshots are every snapshot made (or chosen), in target order.
	Snapshots []Snapshot
	// Record is the custody record; Save writes it.
	Record *report.Preservation
}

// Save writes the custody record (preservation.json and
// preservation.txt) into dir, which must exist.
func (r *Result) Save(dir string) error {
	r.Record.Snapshots = r.Snapshots
	return r.Record.Save(dir)
}

// Run preserves targets (instance and volume ids) as o says: snapshots,
// tags, waits, copies, locks and shares, recording every call. It checks
// targets and o before any call, and then returns nil and the error if
// they are refused. After the first call it always returns a Result,
// whose record holds what was done, also when it returns an error.
func Run(ctx context.Context, cfg aws.Config, targets []string, o Options) (*Result, error) {
	return run(ctx, cfg, targets, o, "snapshot")
}

// Latest is Run without making snapshots: for each target volume it
// takes the newest completed snapshot owned by the account, then copies,
// locks and shares as o says. A volume with none is an error of kind
// ebs.KindNotFound.
func Latest(ctx context.Context, cfg aws.Config, targets []string, o Options) (*Result, error) {
	o.Wait = true
	return run(ctx, cfg, targets, o, "use-latest")
}

func run(ctx context.Context, cfg aws.Config, targets []string, o Options, mode string) (*Result, error) {
	if err := CheckTargets(targets); err != nil {
		return nil, err
	}
	if err := o.Check(); err != nil {
		return nil, err
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PollInterval == 0 {
		o.PollInterval = 5 * time.Second // EC2's own waiters poll every 15s; progress wants more
	}
	rec := report.NewPreservation(o.Tool, time.Now())
	rec.Case, rec.Region, rec.Endpoint = o.Case, cfg.Region, endpoint(cfg, cfg.Region)
	rec.Targets = slices.Clone(targets)
	rec.Options = o.record(mode, cfg.Region, o.Timeout)
	res := &Result{Record: rec}
	p := &preservation{c: newCaller(cfg, rec), o: &o, res: res, region: cfg.Region, started: time.Now()}
	if o.Checkpoint != nil {
		p.c.checkpoint = func() error {
			rec.Snapshots, rec.Outcome = res.Snapshots, OutcomeRunning
			return o.Checkpoint(rec)
		}
	}
	err := p.run(ctx, targets, mode)
	rec.Run.FinishedAt = time.Now()
	rec.Snapshots = res.Snapshots
	rec.Outcome = report.OutcomeOK
	if err != nil {
		rec.Outcome, rec.Error = report.OutcomeFailed, err.Error()
		if len(res.Snapshots) > 0 {
			rec.Notes = append(rec.Notes, fmt.Sprintf("the preservation failed after %d snapshots were made or chosen: they are listed here as they were when it stopped", len(res.Snapshots)))
		}
	}
	return res, err
}

// endpoint is where region's EC2 requests go, for the record.
func endpoint(cfg aws.Config, region string) string {
	if cfg.BaseEndpoint != nil {
		return *cfg.BaseEndpoint
	}
	return "https://ec2." + region + ".amazonaws.com"
}

// preservation is one run.
type preservation struct {
	c       *caller
	o       *Options
	res     *Result
	region  string
	started time.Time
}

// volume is one volume to preserve.
type volume struct {
	instance, device, id string
	root                 bool
	encrypted            bool
	kmsKey               string
}

// target is a target resolved to its volumes.
type target struct {
	id      string
	volumes []volume // chosen, in device order
	all     []volume // every attached EBS volume (instances)
}

func (p *preservation) run(ctx context.Context, ids []string, mode string) error {
	p.identify(ctx)
	targets, err := p.resolve(ctx, ids)
	if err != nil {
		return err
	}
	if len(p.o.ShareWith) > 0 && !p.o.Copy {
		for _, t := range targets {
			for _, v := range t.volumes {
				if v.encrypted && AWSManagedKey(v.kmsKey) {
					return &Error{Target: v.id, Kind: ebs.KindInvalid, Hint: copyHint,
						Err: fmt.Errorf("volume %s is encrypted under the AWS managed key %s, so its snapshots cannot be shared; nothing was made", v.id, v.kmsKey)}
				}
			}
		}
	}
	if mode == "use-latest" {
		err = p.latest(ctx, targets)
	} else {
		err = p.create(ctx, targets)
	}
	if err != nil || !p.o.Wait {
		return err
	}
	if err := p.wait(ctx, "snapshots", p.region, p.originals()); err != nil {
		return err
	}
	if p.o.Copy {
		if err := p.copy(ctx); err != nil {
			return err
		}
	}
	if p.o.Lock != "" {
		if err := p.lock(ctx); err != nil {
			return err
		}
	}
	if len(p.o.ShareWith) > 0 {
		return p.share(ctx)
	}
	return nil
}

// identify records who the caller is; a denied or failed call is
// recorded and does not stop the preservation.
func (p *preservation) identify(ctx context.Context) {
	id, err := do(ctx, p.c, request{api: report.APIGetCallerIdentity, region: p.region}, p.c.sts().GetCallerIdentity,
		&sts.GetCallerIdentityInput{}, func(o *sts.GetCallerIdentityOutput) string { return aws.ToString(o.Arn) })
	if err != nil {
		p.res.Record.Notes = append(p.res.Record.Notes, "STS GetCallerIdentity gave no answer (see the calls), so the record does not say which AWS identity made the snapshots")
		return
	}
	p.res.Record.CallerIdentity = &report.CallerIdentity{Account: aws.ToString(id.Account), ARN: aws.ToString(id.Arn), UserID: aws.ToString(id.UserId)}
}

// originals are pointers to the snapshots made or chosen.
func (p *preservation) originals() []*Snapshot {
	out := make([]*Snapshot, len(p.res.Snapshots))
	for i := range p.res.Snapshots {
		out[i] = &p.res.Snapshots[i]
	}
	return out
}

// add records a snapshot made or chosen.
func (p *preservation) add(v volume, id string, info snapInfo) {
	s := Snapshot{InstanceID: v.instance, Device: v.device, VolumeID: v.id, SnapshotID: id, Region: p.region,
		Encrypted: v.encrypted, KMSKeyID: v.kmsKey, Acquire: id}
	info.apply(&s)
	p.res.Snapshots = append(p.res.Snapshots, s)
}

// snapInfo is what an EC2 answer says of a snapshot.
type snapInfo struct {
	state, progress, kmsKey, message string
	started                          time.Time
	encrypted                        *bool
	tags                             []ec2types.Tag
}

func (i snapInfo) apply(s *Snapshot) {
	if i.state != "" {
		s.State, s.Progress = i.state, i.progress
	}
	if !i.started.IsZero() {
		s.StartTime = i.started.UTC()
	}
	if i.encrypted != nil {
		s.Encrypted = *i.encrypted
	}
	if i.kmsKey != "" {
		s.KMSKeyID = i.kmsKey
	}
	if i.tags != nil {
		s.Tags = reportTags(i.tags)
	}
}

func reportTags(tags []ec2types.Tag) []report.Tag {
	out := make([]report.Tag, 0, len(tags))
	for _, t := range tags {
		out = append(out, report.Tag{Key: aws.ToString(t.Key), Value: aws.ToString(t.Value)})
	}
	slices.SortStableFunc(out, func(a, b report.Tag) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func ec2Tags(tags []report.Tag) []ec2types.Tag {
	out := make([]ec2types.Tag, len(tags))
	for i, t := range tags {
		out[i] = ec2types.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)}
	}
	return out
}

func tagSpec(tags []report.Tag) []ec2types.TagSpecification {
	return []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: ec2Tags(tags)}}
}

// checkSnapshotID refuses an id in an answer that is not a snapshot id:
// answers come from outside.
func checkSnapshotID(api, id string) error {
	if !block.ValidSnapshotID(id) {
		return &Error{API: api, Kind: ebs.KindOther, Err: fmt.Errorf("the answer names %q, which is not a snapshot id", id)}
	}
	return nil
}

// maxVolumes bounds the volumes of one instance taken from an answer:
// EC2 attaches at most a few dozen (Nitro: up to 128).
const maxVolumes = 256

// describeSnapshots asks for the state of snapshots in region, keyed by
// id; snapshots EC2 does not list yet are absent.
func (p *preservation) describeSnapshots(ctx context.Context, region string, ids []string) (map[string]snapInfo, error) {
	out, err := do(ctx, p.c, request{api: "ec2:DescribeSnapshots", region: region, target: strings.Join(ids, " "), asked: strings.Join(ids, " ")},
		p.c.ec2(region).DescribeSnapshots, &ec2.DescribeSnapshotsInput{SnapshotIds: ids}, snapshotsSummary)
	if err != nil {
		return nil, err
	}
	m := map[string]snapInfo{}
	for _, s := range out.Snapshots {
		m[aws.ToString(s.SnapshotId)] = infoOf(s)
	}
	return m, nil
}

func infoOf(s ec2types.Snapshot) snapInfo {
	return snapInfo{state: string(s.State), progress: aws.ToString(s.Progress), kmsKey: aws.ToString(s.KmsKeyId),
		message: aws.ToString(s.StateMessage), started: aws.ToTime(s.StartTime), encrypted: s.Encrypted, tags: s.Tags}
}

func snapshotsSummary(o *ec2.DescribeSnapshotsOutput) string {
	var parts []string
	for _, s := range o.Snapshots {
		parts = append(parts, fmt.Sprintf("%s %s %s", aws.ToString(s.SnapshotId), s.State, aws.ToString(s.Progress)))
	}
	return orNothing(strings.Join(parts, ", "))
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// wait polls until every snapshot in snaps (all in region) is completed,
// at most the timeout from the start of the run; a snapshot in the
// error state is reported, the others still waited for.
func (p *preservation) wait(ctx context.Context, stage, region string, snaps []*Snapshot) error {
	deadline := p.started.Add(p.o.Timeout)
	// The first polls come quickly, for a snapshot that is fast (a
	// small or little-changed volume), then every PollInterval.
	interval := min(time.Second, p.o.PollInterval)
	var failed []error
	for {
		if asked := unfinished(snaps); len(asked) > 0 {
			ids := make([]string, len(asked))
			for i, s := range asked {
				ids[i] = s.SnapshotID
			}
			info, err := p.describeSnapshots(ctx, region, ids)
			var pe *Error
			if err != nil && !(errors.As(err, &pe) && pe.Kind == ebs.KindNotFound) {
				return err // not found: EC2 does not list a new snapshot yet; ask again
			}
			for _, s := range asked {
				if i, ok := info[s.SnapshotID]; ok {
					i.apply(s)
					if s.State == string(ec2types.SnapshotStateError) {
						failed = append(failed, &StateError{Snapshot: *s, Message: i.message})
					}
				}
			}
		}
		pending := unfinished(snaps)
		p.progress(stage, snaps, pending)
		if len(pending) == 0 {
			return errors.Join(failed...)
		}
		left := time.Until(deadline)
		if left <= 0 {
			e := &NotCompletedError{Timeout: p.o.Timeout}
			for _, s := range pending {
				e.Pending = append(e.Pending, *s)
			}
			return errors.Join(append(failed, e)...)
		}
		if err := ebs.Sleep(ctx, min(interval, left)); err != nil {
			return err
		}
		interval = min(2*interval, p.o.PollInterval)
	}
}

// unfinished are the snapshots neither completed nor failed.
func unfinished(snaps []*Snapshot) []*Snapshot {
	var out []*Snapshot
	for _, s := range snaps {
		if s.State != string(ec2types.SnapshotStateCompleted) && s.State != string(ec2types.SnapshotStateError) {
			out = append(out, s)
		}
	}
	return out
}

func (p *preservation) progress(stage string, snaps, pending []*Snapshot) {
	if p.o.Progress == nil {
		return
	}
	pr := Progress{Stage: stage, Done: len(snaps) - len(pending), Total: len(snaps), Elapsed: time.Since(p.started)}
	for _, s := range pending {
		pr.Pending = append(pr.Pending, *s)
	}
	p.o.Progress(pr)
}
