package awsctx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/report"
)

// Context is the AWS section of the chain-of-custody record.
type Context = report.AWS

// Retry policy of the context calls. They are two small requests made
// once per acquisition, so a few seconds of patience is plenty; a call
// that still fails is recorded, and the acquisition goes on without it.
var (
	attemptTimeout = 10 * time.Second       // per attempt; peers have hung forever without one
	attempts       = 3                      // the first try and two retries
	retryDelay     = 250 * time.Millisecond // the shortest wait before the first retry, doubled after
	// sleep waits between attempts; nil is the policy's timer. Tests
	// record the waits through it.
	sleep func(ctx context.Context, d time.Duration) error
)

// policy is the retry policy of the context calls: the EBS requests'
// (ebs.Policy, with its jittered backoff) with the budget above, one
// budget for throttles and errors alike, and this package's sorting of
// STS and EC2 errors.
func policy() ebs.Policy {
	return ebs.Policy{MaxAttempts: attempts, MaxThrottled: attempts, Base: 2 * retryDelay, Classify: Classify, Sleep: sleep}
}

// Gather asks STS who the caller is and EC2 what the snapshot is, with
// cfg as the acquisition loaded it, and records each answer or why there
// is none. It never fails: a denied or broken call is recorded in Calls.
func Gather(ctx context.Context, cfg aws.Config, snapshotID string) Context {
	return gather(ctx, cfg, snapshotID, nil)
}

// Described is what EC2 already said about a snapshot before the
// acquisition (the pre-flight asks DescribeSnapshots first): Snapshot is
// its answer, nil when there is none, and Calls the calls that asked,
// DescribeSnapshots among them, as they are to be recorded.
type Described struct {
	Snapshot *report.SnapshotInfo
	Calls    []report.Call
}

func gather(ctx context.Context, cfg aws.Config, snapshotID string, known *Described) Context {
	c := Context{Region: cfg.Region, Endpoint: ebs.Endpoint(cfg)}

	// The SDK's own retryer is off: the retries are the policy's.
	stsClient := sts.NewFromConfig(cfg, func(o *sts.Options) { o.Retryer = aws.NopRetryer{} })
	idCall := report.Call{API: report.APIGetCallerIdentity}
	id, err := Retried(ctx, &idCall, stsClient.GetCallerIdentity, &sts.GetCallerIdentityInput{})
	if err == nil {
		c.CallerIdentity = &report.CallerIdentity{Account: aws.ToString(id.Account), ARN: aws.ToString(id.Arn), UserID: aws.ToString(id.UserId)}
	}
	c.Calls = append(c.Calls, idCall)
	if known != nil {
		// Asking again would repeat the same call for the same answer.
		c.Snapshot = known.Snapshot
		c.Calls = append(c.Calls, known.Calls...)
		return c
	}

	ec2Client := EC2(cfg)
	snapCall := report.Call{API: report.APIDescribeSnapshots}
	describe := func(ctx context.Context, id string, opts ...func(*ec2.Options)) (*report.SnapshotInfo, error) {
		out, err := ec2Client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}}, opts...)
		if err != nil {
			return nil, err
		}
		for _, s := range out.Snapshots {
			if aws.ToString(s.SnapshotId) == id {
				return SnapshotInfo(s), nil
			}
		}
		return nil, fmt.Errorf("the answer lists %d snapshots, none of them %s", len(out.Snapshots), id)
	}
	c.Snapshot, _ = Retried(ctx, &snapCall, describe, snapshotID)
	c.Calls = append(c.Calls, snapCall)
	return c
}

// Start runs Gather in the background, so that the context calls go on
// while the acquisition runs; the function it returns waits for the
// answer.
func Start(ctx context.Context, cfg aws.Config, snapshotID string) func() Context {
	return StartDescribed(ctx, cfg, snapshotID, nil)
}

// StartDescribed is Start for a snapshot EC2 was already asked about
// (known, when not nil): its answer and calls are recorded as they are,
// and only STS is asked.
func StartDescribed(ctx context.Context, cfg aws.Config, snapshotID string, known *Described) func() Context {
	done := make(chan Context, 1)
	go func() { done <- gather(ctx, cfg, snapshotID, known) }()
	return func() Context { return <-done }
}

// EC2 returns an EC2 client for cfg with the SDK's own retryer off: the
// retries are the policy's (see Retried). optFns apply after, as the SDK
// applies them (a Region, middleware).
func EC2(cfg aws.Config, optFns ...func(*ec2.Options)) *ec2.Client {
	return ec2.NewFromConfig(cfg, append([]func(*ec2.Options){func(o *ec2.Options) { o.Retryer = aws.NopRetryer{} }}, optFns...)...)
}

// Retried makes the request call(in) through two decorators: the retry
// policy of the context calls around a recorder that gives each attempt
// its own timeout and keeps the last outcome in rec. Other packages that
// ask EC2 for the record (the pre-flight) call it, so that every such
// call is retried and recorded alike.
func Retried[In, Out, Opt any](ctx context.Context, rec *report.Call, call func(context.Context, In, ...Opt) (Out, error), in In) (Out, error) {
	return ebs.Wrap(policy(), nil, Recorded(rec, call))(ctx, in)
}

// Recorded decorates call: each attempt runs under attemptTimeout and is
// counted in rec, which keeps the outcome of the last one. Package
// preserve records its requests through it too.
func Recorded[In, Out, Opt any](rec *report.Call, call func(context.Context, In, ...Opt) (Out, error)) func(context.Context, In, ...Opt) (Out, error) {
	return func(ctx context.Context, in In, opts ...Opt) (Out, error) {
		rec.Attempts++
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		out, err := call(actx, in, opts...)
		rec.Outcome, rec.Code, rec.Error = report.OutcomeOK, "", ""
		if err != nil {
			rec.Outcome, rec.Error = report.OutcomeFailed, err.Error()
			var ae smithy.APIError
			if errors.As(err, &ae) {
				rec.Code, rec.Error = ae.ErrorCode(), ae.ErrorMessage()
				if denied(ae.ErrorCode()) {
					rec.Outcome = report.OutcomeDenied
				}
			}
		}
		return out, err
	}
}

// Classify sorts an STS or EC2 error for the policy: a denial and an
// answer that will not change are permanent, everything retryable is
// transient (one budget for all, as the calls are few).
func Classify(err error) ebs.Kind {
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae) && denied(ae.ErrorCode()):
		return ebs.KindAccessDenied
	case retryable(err):
		return ebs.KindTransient
	}
	return ebs.KindInvalid
}

// denied reports whether an error code means the caller lacks the
// permission: EC2 says UnauthorizedOperation, STS AccessDenied.
func denied(code string) bool {
	switch code {
	case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException":
		return true
	}
	return false
}

// retryable reports whether another attempt may succeed: a throttle, a
// server error, a timeout or a broken connection, but not an answer that
// will not change (a malformed id, a missing snapshot, bad credentials).
func retryable(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		if strings.Contains(code, "Throttl") || code == "RequestLimitExceeded" || code == "ServiceUnavailable" ||
			code == "InternalError" || code == "InternalFailure" || code == "Unavailable" {
			return true
		}
		var re *awshttp.ResponseError
		return errors.As(err, &re) && re.HTTPStatusCode() >= http.StatusInternalServerError
	}
	return true // no answer at all: a timeout, a refused or dropped connection
}

// SnapshotInfo converts EC2's answer.
func SnapshotInfo(s ec2types.Snapshot) *report.SnapshotInfo {
	info := &report.SnapshotInfo{
		SnapshotID:    aws.ToString(s.SnapshotId),
		VolumeID:      aws.ToString(s.VolumeId),
		State:         string(s.State),
		Progress:      aws.ToString(s.Progress),
		StartTime:     aws.ToTime(s.StartTime).UTC(),
		OwnerID:       aws.ToString(s.OwnerId),
		VolumeSizeGiB: int64(aws.ToInt32(s.VolumeSize)),
		Description:   aws.ToString(s.Description),
		Encrypted:     aws.ToBool(s.Encrypted),
		KMSKeyID:      aws.ToString(s.KmsKeyId),
		StorageTier:   string(s.StorageTier),
		Tags:          []report.Tag{},
	}
	for _, t := range s.Tags {
		info.Tags = append(info.Tags, report.Tag{Key: aws.ToString(t.Key), Value: aws.ToString(t.Value)})
	}
	slices.SortStableFunc(info.Tags, func(a, b report.Tag) int { return strings.Compare(a.Key, b.Key) })
	return info
}
