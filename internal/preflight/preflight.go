package preflight

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/awsctx"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/report"
)

// MaxSnapshots bounds the snapshots one Check takes: ids come from the
// command line or a --targets file.
const MaxSnapshots = 10000

// batchSize is the ids of one DescribeSnapshots request: EC2 takes a
// list of ids in one call, and a few hundred keep the request (a form
// field per id) and the answer small.
const batchSize = 200

// probePolicy makes one attempt of the KMS probe's List call per try of
// awsctx.Retried, whose policy retries it as it retries the context
// calls: it is one small request; a failure that persists is recorded
// and blocks nothing.
var probePolicy = ebs.Policy{MaxAttempts: 1, MaxThrottled: 1}

// Result is the pre-flight's verdict on one snapshot.
type Result struct {
	Snapshot string
	Region   string
	// Checked is whether EC2 DescribeSnapshots answered for the snapshot;
	// when not, Calls says why, and only the direct APIs' own refusals
	// can be explained.
	Checked bool
	// Info is DescribeSnapshots' answer, as the chain-of-custody record
	// keeps it; nil when not Checked.
	Info *report.SnapshotInfo
	// OutpostARN is set for a local snapshot on AWS Outposts.
	OutpostARN string
	// Public is whether createVolumePermission names the group all;
	// PublicChecked whether DescribeSnapshotAttribute answered.
	Public, PublicChecked bool
	// Calls are the calls made about the snapshot, DescribeSnapshots
	// first, as the record lists them.
	Calls []report.Call
	// Err is why the snapshot cannot be read; nil when nothing the
	// pre-flight saw stops it.
	Err *Error
}

// Described is what the chain-of-custody record keeps of r:
// DescribeSnapshots' answer and the calls made.
func (r Result) Described() *awsctx.Described {
	return &awsctx.Described{Snapshot: r.Info, Calls: slices.Clone(r.Calls)}
}

// ec2API is the part of the EC2 client the pre-flight calls, in the
// SDK's signatures.
type ec2API interface {
	DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DescribeSnapshotAttribute(context.Context, *ec2.DescribeSnapshotAttributeInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error)
}

// checker makes the pre-flight's calls.
type checker struct {
	ec2    ec2API
	ebs    ebs.API
	region string
	probe  bool // make the KMS probe (a first List page) of encrypted snapshots
}

// Check tells, before any block is fetched, whether each snapshot of ids
// can be read through the EBS direct APIs, with cfg as the acquisition
// loaded it: one DescribeSnapshots for up to 200 snapshots, then for
// each snapshot nothing stops yet, DescribeSnapshotAttribute
// createVolumePermission (is it public?) and, for an encrypted one, the
// first page of ListSnapshotBlocks (may the caller use its KMS key?).
// It returns a Result per id, in order, and the join of their Errs
// (each an *Error); a call that is denied or fails is recorded in the
// Result and stops nothing. Only ids that are not snapshot ids, more
// than MaxSnapshots of them, or the end of ctx fail Check itself.
func Check(ctx context.Context, cfg aws.Config, ids []string) ([]Result, error) {
	c := checker{ec2: awsctx.EC2(cfg), ebs: ebs.NewClient(cfg), region: cfg.Region, probe: true}
	return c.check(ctx, ids)
}

// Diagnose explains err, a refusal of the direct APIs while reading
// snapshot id with no pre-flight before it (a snapshot read live): it
// asks EC2 then, and returns the *Error when there is a reason, else
// err. It asks nothing when err is not such a refusal.
func Diagnose(ctx context.Context, cfg aws.Config, id string, err error) error {
	switch ebs.KindOf(err) {
	case ebs.KindInvalid, ebs.KindNotFound, ebs.KindAccessDenied:
	default:
		return err
	}
	if block.CheckSnapshotID(id) != nil {
		return err
	}
	c := checker{ec2: awsctx.EC2(cfg), region: cfg.Region} // the refusal is the probe
	rs, cerr := c.check(ctx, []string{id})
	if cerr != nil && rs == nil {
		return err
	}
	if rs[0].Err != nil {
		rs[0].Err.Cause = err
		return rs[0].Err
	}
	return Explain(err, rs[0])
}

func (c checker) check(ctx context.Context, ids []string) ([]Result, error) {
	if len(ids) > MaxSnapshots {
		return nil, fmt.Errorf("checking %d snapshots: at most %d at once", len(ids), MaxSnapshots)
	}
	for _, id := range ids {
		if err := block.CheckSnapshotID(id); err != nil {
			return nil, err
		}
	}
	results := make([]Result, len(ids))
	byID := make(map[string][]int, len(ids))
	var unique []string
	for i, id := range ids {
		results[i] = Result{Snapshot: id, Region: c.region}
		if _, seen := byID[id]; !seen {
			unique = append(unique, id)
		}
		byID[id] = append(byID[id], i)
	}
	answers := make(map[string]*Result, len(unique))
	for start := 0; start < len(unique); start += batchSize {
		c.describe(ctx, unique[start:min(start+batchSize, len(unique))], answers)
	}
	var errs []error
	for _, id := range unique {
		r := answers[id]
		if r.Err = r.verdict(); r.Err == nil && r.Checked {
			c.public(ctx, r)
		}
		if r.Err == nil && r.Checked && r.Info.Encrypted && c.probe {
			c.kms(ctx, r)
		}
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
		for _, i := range byID[id] {
			results[i] = *r
		}
	}
	if err := ctx.Err(); err != nil {
		return results, err
	}
	return results, errors.Join(errs...)
}

// describe asks DescribeSnapshots about ids and fills answers. When EC2
// refuses the list because one id does not exist, it asks about each
// alone, so that the others are still checked.
func (c checker) describe(ctx context.Context, ids []string, answers map[string]*Result) {
	call := report.Call{API: report.APIDescribeSnapshots}
	out, err := awsctx.Retried(ctx, &call, c.ec2.DescribeSnapshots, &ec2.DescribeSnapshotsInput{SnapshotIds: ids})
	if err != nil && len(ids) > 1 && notFound(err) {
		for _, id := range ids {
			c.describe(ctx, []string{id}, answers)
			answers[id].Calls = slices.Insert(answers[id].Calls, 0, call)
		}
		return
	}
	found := map[string]ec2types.Snapshot{}
	if err == nil {
		for _, s := range out.Snapshots {
			if id := aws.ToString(s.SnapshotId); slices.Contains(ids, id) {
				found[id] = s
			}
		}
	}
	for _, id := range ids {
		r := &Result{Snapshot: id, Region: c.region, Calls: []report.Call{call}}
		s, ok := found[id]
		switch {
		case ok:
			r.Checked, r.Info, r.OutpostARN = true, awsctx.SnapshotInfo(s), aws.ToString(s.OutpostArn)
		case err == nil: // as awsctx.Gather records an answer without it
			r.Calls[0].Outcome = report.OutcomeFailed
			r.Calls[0].Error = fmt.Sprintf("the answer lists %d snapshots, none of them %s", len(out.Snapshots), id)
		}
		answers[id] = r
	}
}

// notFound reports whether EC2 said a snapshot of the request does not
// exist (or is not the caller's to see).
func notFound(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "InvalidSnapshot.NotFound"
}

// public asks whether r's snapshot is public; a refusal (only the owner
// may ask) leaves it unknown.
func (c checker) public(ctx context.Context, r *Result) {
	call := report.Call{API: report.APIDescribeSnapshotAttribute}
	out, err := awsctx.Retried(ctx, &call, c.ec2.DescribeSnapshotAttribute, &ec2.DescribeSnapshotAttributeInput{
		SnapshotId: aws.String(r.Snapshot), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission,
	})
	r.Calls = append(r.Calls, call)
	if err != nil {
		return
	}
	r.PublicChecked = true
	for _, p := range out.CreateVolumePermissions {
		if p.Group == ec2types.PermissionGroupAll {
			r.Public = true
			r.Err = r.newError(Public)
		}
	}
}

// kms lists the first page of r's encrypted snapshot, the cheapest
// request that reads through its KMS key, to learn before any Get
// whether the caller may use the key. Any other refusal is explained
// when it explains something, else recorded and left to the listing.
func (c checker) kms(ctx context.Context, r *Result) {
	call := report.Call{API: report.APIListSnapshotBlocks}
	probe := &ebs.Snapshot{API: c.ebs, ID: r.Snapshot, Stats: &ebs.Stats{}, Policy: probePolicy}
	list := func(ctx context.Context, s *ebs.Snapshot, _ ...struct{}) (ebs.Info, error) { return s.Info(ctx) }
	_, err := awsctx.Retried(ctx, &call, list, probe)
	r.Calls = append(r.Calls, call)
	var e *Error
	if errors.As(Explain(err, *r), &e) {
		r.Err = e
	}
}

// verdict is what DescribeSnapshots' answer alone says of r, or nil.
func (r Result) verdict() *Error {
	if !r.Checked {
		return nil
	}
	switch {
	case r.Info.State == string(ec2types.SnapshotStatePending):
		return r.newError(Pending)
	case r.Info.State != string(ec2types.SnapshotStateCompleted):
		return r.newError(NotDone)
	case r.Info.StorageTier == string(ec2types.StorageTierArchive):
		return r.newError(Archived)
	case r.OutpostARN != "":
		return r.newError(Outpost)
	}
	return nil
}

// newError is an *Error of r with reason.
func (r Result) newError(reason Reason) *Error {
	e := &Error{Snapshot: r.Snapshot, Reason: reason, Region: r.Region, OutpostARN: r.OutpostARN}
	if r.Info != nil {
		e.KMSKey, e.State, e.Progress = r.Info.KMSKeyID, r.Info.State, r.Info.Progress
	}
	return e
}
