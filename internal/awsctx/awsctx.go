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
	retryDelay     = 250 * time.Millisecond // before the first retry, doubled after
)

// Gather asks STS who the caller is and EC2 what the snapshot is, with
// cfg as the acquisition loaded it, and records each answer or why there
// is none. It never fails: a denied or broken call is recorded in Calls.
func Gather(ctx context.Context, cfg aws.Config, snapshotID string) Context {
	c := Context{Region: cfg.Region, Endpoint: ebs.Endpoint(cfg)}

	// The SDK's own retryer is off: the retries are call's.
	stsClient := sts.NewFromConfig(cfg, func(o *sts.Options) { o.Retryer = aws.NopRetryer{} })
	var id *report.CallerIdentity
	c.Calls = append(c.Calls, call(ctx, report.APIGetCallerIdentity, func(ctx context.Context) error {
		out, err := stsClient.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return err
		}
		id = &report.CallerIdentity{Account: aws.ToString(out.Account), ARN: aws.ToString(out.Arn), UserID: aws.ToString(out.UserId)}
		return nil
	}))
	c.CallerIdentity = id

	ec2Client := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.Retryer = aws.NopRetryer{} })
	var snap *report.SnapshotInfo
	c.Calls = append(c.Calls, call(ctx, report.APIDescribeSnapshots, func(ctx context.Context) error {
		out, err := ec2Client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapshotID}})
		if err != nil {
			return err
		}
		for _, s := range out.Snapshots {
			if aws.ToString(s.SnapshotId) == snapshotID {
				snap = snapshotInfo(s)
				return nil
			}
		}
		return fmt.Errorf("the answer lists %d snapshots, none of them %s", len(out.Snapshots), snapshotID)
	}))
	c.Snapshot = snap
	return c
}

// call runs fn with a timeout per attempt, retrying what may pass, and
// records the outcome.
func call(ctx context.Context, api string, fn func(context.Context) error) report.Call {
	rec := report.Call{API: api}
	delay := retryDelay
	for {
		rec.Attempts++
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := fn(actx)
		cancel()
		if err == nil {
			rec.Outcome, rec.Code, rec.Error = report.OutcomeOK, "", ""
			return rec
		}
		rec.Outcome, rec.Code, rec.Error = report.OutcomeFailed, "", err.Error()
		var ae smithy.APIError
		if errors.As(err, &ae) {
			rec.Code, rec.Error = ae.ErrorCode(), ae.ErrorMessage()
			if denied(ae.ErrorCode()) {
				rec.Outcome = report.OutcomeDenied
				return rec
			}
		}
		if rec.Attempts >= attempts || !retryable(err) || ctx.Err() != nil {
			return rec
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return rec
		case <-t.C:
		}
		delay *= 2
	}
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

// snapshotInfo converts EC2's answer.
func snapshotInfo(s ec2types.Snapshot) *report.SnapshotInfo {
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
