package preserve

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/ebs"
)

// Error is a request AWS refused or that failed, or input EC2 would
// refuse (API empty). Kind says what the caller should make of it:
// ebs.KindAccessDenied, KindNotFound, KindInvalid, KindQuota, or
// KindOther.
type Error struct {
	API    string // "ec2:CreateSnapshots"; empty for input refused before any call
	Target string // the id the request was about, if one
	Code   string // the AWS error code
	Kind   ebs.Kind
	// Hint is a suggestion for the user, if there is one.
	Hint string
	Err  error
}

func (e *Error) Error() string {
	if e.API == "" {
		return e.Err.Error()
	}
	what := e.API
	if e.Target != "" {
		what += " " + e.Target
	}
	switch e.Kind {
	case ebs.KindAccessDenied:
		return fmt.Sprintf("%s: access denied (the caller needs %s): %v", what, e.API, e.Err)
	case ebs.KindNotFound:
		return fmt.Sprintf("%s: not found: %v", what, e.Err)
	}
	return fmt.Sprintf("%s: %v", what, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func invalidf(target, format string, args ...any) error {
	return &Error{Target: target, Kind: ebs.KindInvalid, Err: fmt.Errorf(format, args...)}
}

// apiError wraps a failed request's error, sorted by its code.
func apiError(api, target string, err error) error {
	e := &Error{API: api, Target: target, Kind: ebs.KindOther, Err: err}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		e.Code = ae.ErrorCode()
		e.Err = errors.New(ae.ErrorCode() + ": " + ae.ErrorMessage())
		e.Kind = codeKind(e.Code)
	}
	if sharingRefused(err) {
		e.Kind, e.Hint = ebs.KindInvalid, copyHint
	}
	return e
}

// copyHint is the way out when a snapshot cannot be shared.
const copyHint = "a snapshot encrypted under the AWS managed key (aws/ebs) cannot be shared: " +
	"add --copy --kms-key KEY (a customer managed key the forensic account may use) to share a re-encrypted copy"

// codeKind sorts an EC2 or STS error code.
func codeKind(code string) ebs.Kind {
	switch {
	case code == "UnauthorizedOperation" || code == "AccessDenied" || code == "AccessDeniedException" ||
		code == "AuthFailure" || code == "InvalidClientTokenId" || code == "ExpiredToken":
		return ebs.KindAccessDenied
	case strings.HasSuffix(code, ".NotFound"):
		return ebs.KindNotFound
	case strings.HasSuffix(code, "LimitExceeded") && code != "RequestLimitExceeded":
		return ebs.KindQuota
	case code == "IncorrectState" || code == "OperationNotPermitted" || strings.HasPrefix(code, "InvalidParameter") ||
		strings.HasSuffix(code, ".Malformed") || strings.HasPrefix(code, "Invalid") || code == "MissingParameter":
		return ebs.KindInvalid
	}
	return ebs.KindOther
}

// sharingRefused reports whether err is EC2 refusing to share a snapshot
// encrypted under the AWS managed key. EC2 has said it in two ways:
// "InvalidParameter: Snapshots encrypted with the AWS Managed CMK can't
// be shared" and "OperationNotPermitted: Encrypted snapshots with EBS
// default key cannot be shared".
func sharingRefused(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	msg := strings.ToLower(strings.ReplaceAll(ae.ErrorMessage(), "’", "'"))
	return (strings.Contains(msg, "can't be shared") || strings.Contains(msg, "cannot be shared")) &&
		(strings.Contains(msg, "aws managed") || strings.Contains(msg, "default key") || strings.Contains(msg, "aws-managed"))
}

// NotCompletedError says which snapshots were not completed when the
// wait ended (--timeout), and how far each had got.
type NotCompletedError struct {
	Timeout time.Duration
	Pending []Snapshot
}

func (e *NotCompletedError) Error() string {
	var parts []string
	for _, s := range e.Pending {
		parts = append(parts, fmt.Sprintf("%s of %s is %s at %s", s.SnapshotID, describeVolume(s), s.State, orUnknown(s.Progress)))
	}
	return fmt.Sprintf("%d snapshots not completed within %s: %s", len(e.Pending), e.Timeout, strings.Join(parts, "; "))
}

// StateError says a snapshot went to the error state.
type StateError struct {
	Snapshot Snapshot
	Message  string // EC2's StateMessage
}

func (e *StateError) Error() string {
	return fmt.Sprintf("snapshot %s of %s failed: state %s: %s", e.Snapshot.SnapshotID, describeVolume(e.Snapshot), e.Snapshot.State, orUnknown(e.Message))
}

func describeVolume(s Snapshot) string {
	if s.InstanceID == "" {
		return s.VolumeID
	}
	return fmt.Sprintf("%s (%s %s)", s.VolumeID, s.InstanceID, s.Device)
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
