package preserve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/ebsimager/ebsimager/internal/awsctx"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/report"
)

// Retry policy of the preservation requests: a few retries with backoff
// for what may succeed, as awsctx.Classify sorts it. A request that makes
// something (CreateSnapshots, CreateSnapshot, CopySnapshot) has no
// idempotency token, so it is tried again only after EC2 said it was
// throttled or unavailable: a timeout may hide a snapshot made, and a
// second try would make another.
var (
	attempts   = 5
	retryBase  = 500 * time.Millisecond
	sleep      func(ctx context.Context, d time.Duration) error // nil: the policy's timer; tests record the waits
	maxSummary = 2000                                           // characters of a call's request or answer kept in the record
)

// caller makes every AWS request of a preservation and records each in
// rec.
type caller struct {
	cfg     aws.Config
	rec     *report.Preservation
	clients map[string]*ec2.Client // by Region
	// checkpoint, if set, saves the record after each request.
	checkpoint func() error
}

func newCaller(cfg aws.Config, rec *report.Preservation) *caller {
	return &caller{cfg: cfg, rec: rec, clients: map[string]*ec2.Client{}}
}

// ec2 returns the EC2 client of region, with the SDK's retryer off (the
// retries are the policy's) and the request id captured for the record.
func (c *caller) ec2(region string) *ec2.Client {
	if cl, ok := c.clients[region]; ok {
		return cl
	}
	cl := awsctx.EC2(c.cfg, func(o *ec2.Options) {
		o.Region = region
		o.APIOptions = append(o.APIOptions, captureRequestID)
	})
	c.clients[region] = cl
	return cl
}

func (c *caller) sts() *sts.Client {
	return sts.NewFromConfig(c.cfg, func(o *sts.Options) {
		o.Retryer = aws.NopRetryer{}
		o.APIOptions = append(o.APIOptions, captureRequestID)
	})
}

// request is one AWS request to make and record.
type request struct {
	api, region, target string
	// asked is what the record says was asked.
	asked string
	// creates marks a request that makes something: see attempts.
	creates bool
	// eventual marks a request about something just made, which EC2 may
	// not know yet (it is eventually consistent): not found is retried.
	eventual bool
}

// do makes the request call(in) under the retry policy, each attempt
// under awsctx.Recorded's timeout, and appends it to the record with the
// summary returned gives of its answer.
func do[In, Out, Opt any](ctx context.Context, c *caller, r request, call func(context.Context, In, ...Opt) (Out, error), in In, returned func(Out) string) (Out, error) {
	rec := report.APICall{Call: report.Call{API: r.api}, Region: r.region, Request: bounded(r.asked), StartedAt: time.Now().UTC()}
	var requestID string
	withID := func(ctx context.Context, in In, opts ...Opt) (Out, error) {
		requestID = ""
		out, err := call(context.WithValue(ctx, requestIDKey{}, &requestID), in, opts...)
		var re *awshttp.ResponseError
		if requestID == "" && errors.As(err, &re) {
			requestID = re.ServiceRequestID()
		}
		return out, err
	}
	classify := awsctx.Classify
	if r.creates {
		classify = classifyCreate
	}
	if r.eventual {
		classify = classifyEventual
	}
	p := ebs.Policy{MaxAttempts: attempts, MaxThrottled: attempts, Base: retryBase, Classify: classify, Sleep: sleep}
	out, err := ebs.Wrap(p, nil, awsctx.Recorded(&rec.Call, withID))(ctx, in)
	rec.DurationSeconds = time.Since(rec.StartedAt).Seconds()
	rec.RequestID = requestID
	if err == nil && returned != nil {
		rec.Returned = bounded(returned(out))
	}
	c.rec.Calls = append(c.rec.Calls, rec)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		} else {
			err = apiError(r.api, r.target, err)
		}
	}
	if c.checkpoint != nil {
		if cerr := c.checkpoint(); cerr != nil {
			return out, errors.Join(err, fmt.Errorf("recording %s: %w", r.api, cerr))
		}
	}
	return out, err
}

// classifyCreate retries a request that makes something only when EC2
// answered that it did not do it: throttled or unavailable.
func classifyCreate(err error) ebs.Kind {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch code := ae.ErrorCode(); {
		case code == "RequestLimitExceeded" || strings.Contains(code, "Throttl") || code == "ServiceUnavailable" || code == "Unavailable":
			return ebs.KindTransient
		}
	}
	if k := awsctx.Classify(err); k != ebs.KindTransient {
		return k
	}
	return ebs.KindOther
}

// classifyEventual retries not found as well.
func classifyEventual(err error) ebs.Kind {
	var ae smithy.APIError
	if errors.As(err, &ae) && codeKind(ae.ErrorCode()) == ebs.KindNotFound {
		return ebs.KindTransient
	}
	return awsctx.Classify(err)
}

type requestIDKey struct{}

// captureRequestID is a deserialize middleware that hands the response's
// request id (as the SDK decoded it, from an answer or an error) to the
// *string in the context, if any.
func captureRequestID(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("EbsimagerRequestID",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
			middleware.DeserializeOutput, middleware.Metadata, error,
		) {
			out, md, err := next.HandleDeserialize(ctx, in)
			if p, ok := ctx.Value(requestIDKey{}).(*string); ok {
				if id, ok := awsmiddleware.GetRequestIDMetadata(md); ok {
					*p = id
				}
			}
			return out, md, err
		}), middleware.Before)
}

// bounded cuts s to maxSummary characters: answers come from outside.
func bounded(s string) string {
	if len(s) <= maxSummary {
		return s
	}
	cut := maxSummary
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
