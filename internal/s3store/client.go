package s3store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// Options configures New.
type Options struct {
	// PathStyle addresses the bucket in the path (endpoint/bucket/key)
	// rather than in the host name; New sets it by itself for an endpoint
	// whose host is an IP address or localhost (--s3-path-style).
	PathStyle bool
	// Policy retries every request; its Classify is replaced by the
	// S3 classification (Classify). The zero Policy is the default.
	Policy ebs.Policy
	// Stats counts the retries; nil counts nothing.
	Stats *ebs.Stats
}

// Client is an S3 client whose every request is retried under the
// policy, with the SDK's own retryer off.
type Client struct {
	api    *s3.Client
	policy ebs.Policy
	stats  *ebs.Stats
	// slow is the HTTP client of CompleteMultipartUpload, which may take
	// minutes before its answer starts (nil: the configuration's).
	slow aws.HTTPClient
	// PathStyle says whether the client addresses buckets in the path.
	PathStyle bool
	// Endpoint is the endpoint the client talks to, empty for AWS's.
	Endpoint string
}

// New returns a client for cfg: the standard credential chain and
// endpoint resolution (AWS_ENDPOINT_URL_S3 is honoured by the SDK's
// configuration loader), path-style addressing as Options says.
func New(cfg aws.Config, o Options) *Client {
	c := &Client{policy: o.Policy, stats: o.Stats}
	c.policy.Classify = Classify
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		c.slow = bc.WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = completeTimeout })
	}
	if c.stats == nil {
		c.stats = &ebs.Stats{}
	}
	c.api = s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.Retryer = aws.NopRetryer{}
		// Checksums are ours to give: the SDK adds none of its own.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		so.DisableLogOutputChecksumValidationSkipped = true
		so.UsePathStyle = o.PathStyle || ipEndpoint(aws.ToString(so.BaseEndpoint))
		c.PathStyle = so.UsePathStyle
		c.Endpoint = aws.ToString(so.BaseEndpoint)
	})
	return c
}

// completeTimeout bounds the wait for CompleteMultipartUpload's answer to
// start. S3 starts it at once and keeps the connection alive while it
// assembles the object ("could take several minutes"), but a store that
// answers only when done (moto takes over a minute for 1 GiB) would
// otherwise time out under the configuration's 60 s and retry a request
// that is still being served.
const completeTimeout = 15 * time.Minute

// ipEndpoint reports whether endpoint's host is an IP address or
// localhost, where virtual-hosted addressing cannot work.
func ipEndpoint(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := u.Hostname()
	return net.ParseIP(h) != nil || h == "localhost"
}

// Stats returns the retry counts.
func (c *Client) Stats() ebs.Counts { return c.stats.Counts() }

// DeniedError says that S3 refused an action on a bucket for lack of
// permission. ebs.KindOf sorts it as access denied.
type DeniedError struct {
	Bucket, Key, Action string
	Err                 error
}

func (e *DeniedError) Error() string {
	where := "bucket " + e.Bucket
	if e.Key != "" {
		where += ", key " + e.Key
	}
	return fmt.Sprintf("s3:%s on %s denied (check the bucket policy and the role's IAM policy): %v", e.Action, where, e.Err)
}

func (e *DeniedError) Unwrap() error { return e.Err }

// ErrExists says that a conditional write found the key taken; it is
// bucket.ErrExists.
var ErrExists = bucket.ErrExists

// ErrNotFound says that the key (or the bucket) does not exist; it is
// bucket.ErrNotFound.
var ErrNotFound = bucket.ErrNotFound

// errorCode returns S3's error code for err and the HTTP status, when
// there is an answer.
func errorCode(err error) (string, int) {
	var (
		code   string
		status int
	)
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

// Classify sorts an S3 error for the retry policy: SlowDown, 503 and 429
// are throttles; other 5xx, RequestTimeout, timeouts and broken
// connections are transient; a body S3 found altered on the way
// (BadDigest and its kin) is corrupt, and sent again; a denial, a
// missing bucket or key, and every other answer are permanent.
func Classify(err error) ebs.Kind {
	if errors.Is(err, context.Canceled) {
		return ebs.KindCanceled
	}
	var big *tooLargeError
	if errors.As(err, &big) {
		return ebs.KindInvalid
	}
	code, status := errorCode(err)
	switch code {
	case "SlowDown", "ServiceUnavailable", "Throttling", "ThrottlingException", "TooManyRequests", "RequestLimitExceeded":
		return ebs.KindThrottle
	case "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AccountProblem":
		return ebs.KindAccessDenied
	case "NoSuchBucket", "NoSuchKey", "NotFound", "NoSuchUpload", "NoSuchVersion":
		return ebs.KindNotFound
	case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "IncompleteBody":
		return ebs.KindCorrupt
	case "InternalError", "RequestTimeout", "OperationAborted":
		return ebs.KindTransient
	}
	switch {
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		return ebs.KindThrottle
	case status >= 500:
		return ebs.KindTransient
	case status == http.StatusForbidden:
		return ebs.KindAccessDenied
	case status == http.StatusNotFound:
		return ebs.KindNotFound
	case status != 0 || code != "":
		return ebs.KindInvalid
	}
	return ebs.KindTransient // no answer at all: a timeout, a refused or dropped connection
}

// preconditionFailed reports whether err is S3's answer to a conditional
// write whose key was taken (412, or 409 ConditionalRequestConflict when
// another conditional write of the key is under way).
func preconditionFailed(err error) bool {
	code, status := errorCode(err)
	return status == http.StatusPreconditionFailed || code == "PreconditionFailed" || code == "ConditionalRequestConflict"
}

// fail turns err from action on key into the package's errors: a denial
// names the bucket and the action, a missing key wraps ErrNotFound.
func fail(action, bucket, key string, err error) error {
	switch Classify(err) {
	case ebs.KindAccessDenied:
		return &DeniedError{Bucket: bucket, Key: key, Action: action, Err: err}
	case ebs.KindNotFound:
		what := "s3://" + bucket + "/" + key
		if code, _ := errorCode(err); code == "NoSuchBucket" {
			what = "bucket " + bucket
		}
		return fmt.Errorf("s3:%s: %s: %w (%w)", action, what, ErrNotFound, err)
	case ebs.KindCanceled:
		return err
	}
	if key == "" {
		return fmt.Errorf("s3:%s on bucket %s: %w", action, bucket, err)
	}
	return fmt.Errorf("s3:%s on s3://%s/%s: %w", action, bucket, strings.TrimPrefix(key, "/"), err)
}
