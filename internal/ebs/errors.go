package ebs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Kind sorts an error by what the caller should do about it.
type Kind int

const (
	// KindOther is an error this package cannot classify; not retried.
	KindOther Kind = iota
	// KindTransient covers 5xx, dropped connections, timeouts and
	// truncated bodies: retried with backoff.
	KindTransient
	// KindThrottle is RequestThrottledException or ThrottlingException:
	// retried with backoff, and the limiter slows down (see Limiter).
	KindThrottle
	// KindCorrupt is a body that failed verification: retried.
	KindCorrupt
	// KindBlockToken is ValidationException INVALID_BLOCK_TOKEN: re-list
	// the block, then retry with the fresh token.
	KindBlockToken
	// KindPageToken is ValidationException INVALID_PAGE_TOKEN: restart the
	// listing after the last block seen.
	KindPageToken
	// KindAccessDenied is AccessDeniedException: permanent.
	KindAccessDenied
	// KindNotFound is ResourceNotFoundException: permanent.
	KindNotFound
	// KindInvalid is any other ValidationException: permanent.
	KindInvalid
	// KindQuota is ServiceQuotaExceededException: permanent.
	KindQuota
	// KindCanceled is the caller's context ending.
	KindCanceled
)

var kindNames = [...]string{"other", "transient", "throttle", "corrupt", "block-token", "page-token", "access-denied", "not-found", "invalid", "quota", "canceled"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Retryable reports whether an error of kind k may succeed if tried again.
func (k Kind) Retryable() bool {
	switch k {
	case KindTransient, KindThrottle, KindCorrupt, KindBlockToken, KindPageToken:
		return true
	}
	return false
}

// VerifyError reports a GetSnapshotBlock response whose headers or body
// did not pass verification. Its kind is KindCorrupt.
type VerifyError struct {
	Index  int64
	Reason string
	Sum    *block.ChecksumError // set for a digest mismatch
}

func (e *VerifyError) Error() string {
	if e.Sum != nil {
		return fmt.Sprintf("verifying block %d: %v", e.Index, e.Sum)
	}
	return fmt.Sprintf("verifying block %d: %s", e.Index, e.Reason)
}

func (e *VerifyError) Unwrap() error {
	if e.Sum != nil {
		return e.Sum
	}
	return nil
}

// KindOf classifies err.
func KindOf(err error) Kind {
	if err == nil {
		return KindOther
	}
	if errors.Is(err, context.Canceled) {
		return KindCanceled
	}
	var ve *VerifyError
	if errors.As(err, &ve) {
		return KindCorrupt
	}
	var (
		denied    *types.AccessDeniedException
		notFound  *types.ResourceNotFoundException
		invalid   *types.ValidationException
		throttled *types.RequestThrottledException
		quota     *types.ServiceQuotaExceededException
		internal  *types.InternalServerException
	)
	switch {
	case errors.As(err, &denied):
		return KindAccessDenied
	case errors.As(err, &notFound):
		return KindNotFound
	case errors.As(err, &throttled):
		return KindThrottle
	case errors.As(err, &quota):
		return KindQuota
	case errors.As(err, &internal):
		return KindTransient
	case errors.As(err, &invalid):
		switch invalid.Reason {
		case types.ValidationExceptionReasonInvalidBlockToken:
			return KindBlockToken
		case types.ValidationExceptionReasonInvalidPageToken:
			return KindPageToken
		}
		return KindInvalid
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ThrottlingException", "TooManyRequestsException", "SlowDown":
			return KindThrottle
		case "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
			"MissingAuthenticationTokenException", "ExpiredTokenException", "IncompleteSignature":
			return KindAccessDenied
		}
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		switch status := resp.HTTPStatusCode(); {
		case status == 429:
			return KindThrottle
		case status >= 500:
			return KindTransient
		case status == 403:
			return KindAccessDenied
		case status == 404:
			return KindNotFound
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return KindTransient
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return KindTransient
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return KindTransient
	}
	// The SDK wraps connection resets and broken bodies in its own
	// request-send and deserialization errors.
	var sendErr *smithy.OperationError
	if errors.As(err, &sendErr) {
		msg := sendErr.Err.Error()
		for _, s := range []string{"connection reset", "broken pipe", "EOF", "timeout", "deserialization failed", "send request", "connection refused"} {
			if strings.Contains(msg, s) {
				return KindTransient
			}
		}
	}
	return KindOther
}

// Reason returns the EBS error reason (e.g. DEPENDENCY_ACCESS_DENIED) of
// err, or "".
func Reason(err error) string {
	var (
		denied    *types.AccessDeniedException
		notFound  *types.ResourceNotFoundException
		invalid   *types.ValidationException
		throttled *types.RequestThrottledException
		quota     *types.ServiceQuotaExceededException
	)
	switch {
	case errors.As(err, &denied):
		return string(denied.Reason)
	case errors.As(err, &notFound):
		return string(notFound.Reason)
	case errors.As(err, &invalid):
		return string(invalid.Reason)
	case errors.As(err, &throttled):
		return string(throttled.Reason)
	case errors.As(err, &quota):
		return string(quota.Reason)
	}
	return ""
}
