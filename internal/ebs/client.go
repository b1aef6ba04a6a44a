package ebs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
)

// Options selects the account, Region and endpoint to talk to.
type Options struct {
	Region   string // --region; else AWS_REGION or the profile's region
	Profile  string // --profile; else AWS_PROFILE or default
	Endpoint string // --endpoint-url; else AWS_ENDPOINT_URL(_EBS) as the SDK reads them
	// MaxConns sizes the HTTP connection pool. It must be at least the
	// worker count, or connections churn (EBS-API.md). Default 256.
	MaxConns int
	// ConnectTimeout bounds each TCP connect. Default 10s.
	ConnectTimeout time.Duration
}

// ErrNoRegion is returned when no Region is configured anywhere.
var ErrNoRegion = errors.New("no AWS Region configured")

// LoadConfig reads the standard AWS configuration chain (environment,
// shared config and credentials files, SSO and role-assuming profiles,
// IMDS) and applies o. The SDK's own retryer is switched off: retries
// are ours (see Policy), because the standard retryer's shared token
// bucket runs dry under many goroutines and then stops backing off.
func LoadConfig(ctx context.Context, o Options) (aws.Config, error) {
	if o.MaxConns <= 0 {
		o.MaxConns = 256 // above the largest worker count the limiter allows
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second // peers hung forever without one
	}
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = o.ConnectTimeout }).
		WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = o.MaxConns
			t.MaxIdleConnsPerHost = o.MaxConns
			t.MaxConnsPerHost = 0
			t.ResponseHeaderTimeout = 60 * time.Second
			t.DisableCompression = true // block bodies are binary; no gzip negotiation
		})
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, ErrNoRegion
	}
	if o.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(o.Endpoint)
	}
	return cfg, nil
}

// NewClient returns an EBS client for cfg.
func NewClient(cfg aws.Config) *ebsapi.Client {
	return ebsapi.NewFromConfig(cfg)
}

// Endpoint returns the endpoint the EBS client will use, for the record:
// the explicit one when set, else the public Regional endpoint.
func Endpoint(cfg aws.Config) string {
	if cfg.BaseEndpoint != nil {
		return *cfg.BaseEndpoint
	}
	return "https://ebs." + cfg.Region + ".amazonaws.com"
}
