package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error types, as the EBS Smithy model (and x-amzn-ErrorType) names them.
const (
	errAccessDenied  = "AccessDeniedException"
	errValidation    = "ValidationException"
	errNotFound      = "ResourceNotFoundException"
	errInternal      = "InternalServerException"
	errUnavailable   = "ServiceUnavailableException" // not modelled by EBS; AWS front ends send it with 503
	errQuota         = "ServiceQuotaExceededException"
	errMissingAuth   = "MissingAuthenticationTokenException" // AWS front ends, 403 without an Authorization header
	errIncompleteSig = "IncompleteSignatureException"
	errUnknownOp     = "UnknownOperationException"
)

// Reasons from the EBS model's *ExceptionReason enums.
const (
	reasonInvalidSnapshotID   = "INVALID_SNAPSHOT_ID"
	reasonInvalidBlockToken   = "INVALID_BLOCK_TOKEN"
	reasonInvalidPageToken    = "INVALID_PAGE_TOKEN"
	reasonInvalidBlock        = "INVALID_BLOCK"
	reasonUnrelated           = "UNRELATED_SNAPSHOTS"
	reasonInvalidParameter    = "INVALID_PARAMETER_VALUE"
	reasonInvalidVolumeSize   = "INVALID_VOLUME_SIZE"
	reasonSnapshotNotFound    = "SNAPSHOT_NOT_FOUND"
	reasonAccountThrottled    = "ACCOUNT_THROTTLED"
	reasonResourceThrottled   = "RESOURCE_LEVEL_THROTTLE"
	reasonUnauthorizedAccount = DenyUnauthorizedAccount
	reasonQuotaExceeded       = "DEPENDENCY_SERVICE_QUOTA_EXCEEDED"
)

// apiError is an error response: HTTP status, x-amzn-ErrorType, and a JSON
// body {"Message": …, "Reason": …} that the SDK decodes into the typed
// error of the same name.
type apiError struct {
	status  int
	typ     string
	reason  string
	message string
}

func (e *apiError) Error() string {
	if e.reason == "" {
		return e.typ + ": " + e.message
	}
	return e.typ + " (" + e.reason + "): " + e.message
}

// outcome is the counter key for e: "Type" or "Type/REASON".
func (e *apiError) outcome() string {
	if e.reason == "" {
		return e.typ
	}
	return e.typ + "/" + e.reason
}

func validation(reason, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: errValidation, reason: reason, message: msg}
}

func notFound(id string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: errNotFound, reason: reasonSnapshotNotFound,
		message: "The snapshot '" + id + "' does not exist."}
}

func accessDenied(reason, msg string) *apiError {
	return &apiError{status: http.StatusForbidden, typ: errAccessDenied, reason: reason, message: msg}
}

func internal(msg string) *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: errInternal, message: msg}
}

func unavailable() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, typ: errUnavailable, message: "Service Unavailable"}
}

// throttled builds the throttling error ThrottleAs asks for. EBS models
// RequestThrottledException as HTTP 400 with a reason; ThrottlingException
// is the generic AWS 429.
func throttled(as, reason, msg string) *apiError {
	if as == Throttling {
		return &apiError{status: http.StatusTooManyRequests, typ: Throttling, message: msg}
	}
	return &apiError{status: http.StatusBadRequest, typ: RequestThrottled, reason: reason, message: msg}
}

// writeError sends e.
func writeError(w http.ResponseWriter, e *apiError) {
	body := make([]byte, 0, 64+len(e.message))
	body = append(body, `{"Message":`...)
	body = appendJSONString(body, e.message)
	if e.reason != "" {
		body = append(body, `,"Reason":`...)
		body = appendJSONString(body, e.reason)
	}
	body = append(body, '}')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-Errortype", e.typ)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	w.Write(body) //nolint:errcheck // the client is gone; nothing to do
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil { // a string always marshals
		panic(err)
	}
	return append(b, q...)
}
