package preflight

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ebsimager/ebsimager/internal/ebs"
)

// Reason is why a snapshot cannot be read through the EBS direct APIs.
type Reason string

// The reasons, as records and --json name them.
const (
	Pending   Reason = "pending"                   // state pending: not completed yet
	NotDone   Reason = "not-completed-error-state" // state error (or another that is not completed)
	Archived  Reason = "archived"                  // storage tier archive
	Public    Reason = "public"                    // createVolumePermission group all
	Outpost   Reason = "outpost"                   // a local snapshot on AWS Outposts
	KMSDenied Reason = "kms-denied"                // encrypted, and the caller may not use its KMS key
)

// Error says why a snapshot cannot be read and what to do about it.
type Error struct {
	Snapshot string
	Reason   Reason
	// KMSKey is the snapshot's KMS key (its ARN as EC2 gives it), when
	// known; set for KMSDenied, and for any encrypted snapshot.
	KMSKey string
	// State and Progress are EC2's, for Pending and NotDone.
	State, Progress string
	// OutpostARN is the Outpost of an Outposts local snapshot.
	OutpostARN string
	// Region is the snapshot's Region, for the hint's commands.
	Region string
	// Cause is the refusal of the direct APIs that this explains, nil
	// when EC2's answer alone tells.
	Cause error
}

func (e *Error) Error() string {
	var msg string
	switch e.Reason {
	case Pending:
		msg = fmt.Sprintf("snapshot %s is still pending%s: the EBS direct APIs read only completed snapshots", e.Snapshot, progressText(e.Progress))
	case NotDone:
		state := e.State
		if state == "" {
			state = "error" // the refusal said so; EC2 was not asked
		}
		msg = fmt.Sprintf("snapshot %s is in state %s, not completed: the EBS direct APIs read only completed snapshots", e.Snapshot, state)
	case Archived:
		msg = fmt.Sprintf("snapshot %s is in the archive storage tier: the EBS direct APIs cannot read an archived snapshot", e.Snapshot)
	case Public:
		msg = fmt.Sprintf("snapshot %s is public: the EBS direct APIs do not read public snapshots", e.Snapshot)
	case Outpost:
		where := ""
		if e.OutpostARN != "" {
			where = " (" + e.OutpostARN + ")"
		}
		msg = fmt.Sprintf("snapshot %s is a local snapshot on AWS Outposts%s: the EBS direct APIs do not read Outposts local snapshots", e.Snapshot, where)
	case KMSDenied:
		key := "its KMS key"
		if e.KMSKey != "" {
			key = "KMS key " + e.KMSKey
		}
		msg = fmt.Sprintf("snapshot %s is encrypted, and the caller may not use %s (kms:Decrypt denied: DEPENDENCY_ACCESS_DENIED)", e.Snapshot, key)
	default:
		msg = fmt.Sprintf("snapshot %s cannot be read through the EBS direct APIs (%s)", e.Snapshot, e.Reason)
	}
	return msg
}

// Unwrap returns the refusal of the direct APIs, if any.
func (e *Error) Unwrap() error { return e.Cause }

// Hint says what to do, with the AWS CLI commands that do it.
func (e *Error) Hint() string {
	region := e.Region
	if region == "" {
		region = "REGION"
	}
	switch e.Reason {
	case Pending:
		return fmt.Sprintf("wait until it completes (aws ec2 wait snapshot-completed --snapshot-ids %s), then run the same command again", e.Snapshot)
	case NotDone:
		return "a snapshot that failed never completes: take a new snapshot of the volume (ebsimager snapshot vol-…) and acquire that"
	case Archived:
		return fmt.Sprintf("restore it first: aws ec2 restore-snapshot-tier --snapshot-id %s --temporary-restore-days 7 "+
			"(or --permanent-restore); a restore takes up to 72 hours, and aws ec2 describe-snapshot-tier-status shows it; then run the same command again", e.Snapshot)
	case Public:
		return fmt.Sprintf("copy it into your account first (aws ec2 copy-snapshot --source-region %s --source-snapshot-id %s), then acquire the copy", region, e.Snapshot)
	case Outpost:
		return fmt.Sprintf("copy it to the Region first (aws ec2 copy-snapshot --source-region %s --source-snapshot-id %s, with no --destination-outpost-arn), then acquire the copy", region, e.Snapshot)
	case KMSDenied:
		key := "the key"
		if e.KMSKey != "" {
			key = e.KMSKey
		}
		return fmt.Sprintf("grant the caller kms:Decrypt (and kms:DescribeKey) on %s in the key policy or a grant, "+
			"or have its owner copy the snapshot re-encrypted under a key the caller may use (ebsimager snapshot --copy --kms-key KEY)", key)
	}
	return ""
}

func progressText(p string) string {
	if p == "" {
		return ""
	}
	return " (" + p + " done)"
}

// Explain gives a refusal err of the EBS direct APIs for snapshot
// r.Snapshot its reason: from r, what the pre-flight learnt from EC2,
// when it has that, else from the refusal itself. An error it cannot
// explain (a denial by IAM, a snapshot that does not exist, a network
// error) is returned as it is; an *Error as well.
func Explain(err error, r Result) error {
	if err == nil {
		return nil
	}
	var known *Error
	if errors.As(err, &known) {
		return err
	}
	kind := ebs.KindOf(err)
	switch kind {
	case ebs.KindAccessDenied, ebs.KindInvalid, ebs.KindNotFound:
	default:
		return err
	}
	explained := func(reason Reason) error {
		e := r.newError(reason)
		e.Cause = err
		return e
	}
	if kind == ebs.KindAccessDenied && ebs.Reason(err) == "DEPENDENCY_ACCESS_DENIED" {
		return explained(KMSDenied)
	}
	if e := r.verdict(); e != nil {
		e.Cause = err
		return e
	}
	if r.Public {
		return explained(Public)
	}
	if kind == ebs.KindAccessDenied {
		return err // a denial by IAM says so itself
	}
	if reason, ok := fromMessage(err); ok {
		return explained(reason)
	}
	return err
}

// fromMessage reads the reason from the words of a refusal, for when
// EC2 could not be asked: AWS documents no reason code for these.
func fromMessage(err error) (Reason, bool) {
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "archive"):
		return Archived, true
	case strings.Contains(msg, "outpost"):
		return Outpost, true
	case strings.Contains(msg, "public"):
		return Public, true
	case strings.Contains(msg, "error state"):
		return NotDone, true
	case strings.Contains(msg, "pending"), strings.Contains(msg, "not completed"), strings.Contains(msg, "not yet completed"):
		return Pending, true
	}
	return "", false
}
