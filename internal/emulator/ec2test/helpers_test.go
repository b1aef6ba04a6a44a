// Package ec2test tests the emulator's EC2 side through the real AWS SDK
// EC2 client. It holds only tests, apart from the emulator package, so
// that the emulator's own test binary does not build the EC2 SDK.
package ec2test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ec2Client is an EC2 client for endpoint in region (us-east-1 when
// empty), with static fake credentials and no retries.
func ec2Client(endpoint, region string) *ec2.Client {
	if region == "" {
		region = "us-east-1"
	}
	return ec2.NewFromConfig(aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("emulator", "emulator", ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	})
}

// apiError returns the code and message of an API error.
func apiError(t *testing.T, err error) (code, msg string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an API error, got %v", err)
	}
	return ae.ErrorCode(), ae.ErrorMessage()
}

// httpStatus returns the HTTP status of a failed call, 0 for none.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// ebsReason returns the type and reason of an EBS direct API error.
func ebsReason(err error) (string, string) {
	var (
		ad *ebstypes.AccessDeniedException
		ve *ebstypes.ValidationException
		nf *ebstypes.ResourceNotFoundException
	)
	switch {
	case errors.As(err, &ad):
		return "AccessDeniedException", string(ad.Reason)
	case errors.As(err, &ve):
		return "ValidationException", string(ve.Reason)
	case errors.As(err, &nf):
		return "ResourceNotFoundException", string(nf.Reason)
	}
	return "", ""
}

// listErr lists the first page of a snapshot's blocks and returns the
// error, nil when it lists.
func listErr(c *ebs.Client, id string) error {
	_, err := c.ListSnapshotBlocks(context.Background(), &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id)})
	return err
}
