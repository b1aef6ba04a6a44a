// Package ec2test tests the emulator's EC2 side through the real AWS SDK
// EC2 client. It holds only tests, apart from the emulator package, so
// that the emulator's own test binary does not build the EC2 SDK.
package ec2test

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ebsimager/ebsimager/internal/block"
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

// pattern returns a block whose bytes are a function of seed.
func pattern(seed byte) []byte {
	p := make([]byte, block.Size)
	for i := range p {
		p[i] = byte(i*7) ^ seed
	}
	p[0] = seed | 1 // never all zero
	return p
}

// writeBlocks writes blocks into the image at path, creating it with size
// bytes (zeros elsewhere) when it does not exist.
func writeBlocks(t *testing.T, path string, size int64, blocks map[int64][]byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		if _, err := f.WriteAt(b, i*block.Size); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll lists a snapshot and fetches every listed block.
func readAll(t *testing.T, c *ebs.Client, id string) map[int64][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[int64][]byte{}
	in := &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id)}
	for {
		page, err := c.ListSnapshotBlocks(ctx, in)
		if err != nil {
			t.Fatalf("listing %s: %v", id, err)
		}
		for _, b := range page.Blocks {
			got, err := c.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(id),
				BlockIndex: b.BlockIndex, BlockToken: b.BlockToken})
			if err != nil {
				t.Fatalf("getting %s block %d: %v", id, aws.ToInt32(b.BlockIndex), err)
			}
			data, err := io.ReadAll(got.BlockData)
			got.BlockData.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[int64(aws.ToInt32(b.BlockIndex))] = data
		}
		if page.NextToken == nil {
			return out
		}
		in.NextToken = page.NextToken
	}
}

// changed lists the changed block indexes between two snapshots.
func changed(t *testing.T, c *ebs.Client, first, second string) []int64 {
	t.Helper()
	var out []int64
	in := &ebs.ListChangedBlocksInput{FirstSnapshotId: aws.String(first), SecondSnapshotId: aws.String(second)}
	for {
		page, err := c.ListChangedBlocks(context.Background(), in)
		if err != nil {
			t.Fatalf("changed blocks %s..%s: %v", first, second, err)
		}
		for _, b := range page.ChangedBlocks {
			out = append(out, int64(aws.ToInt32(b.BlockIndex)))
		}
		if page.NextToken == nil {
			return out
		}
		in.NextToken = page.NextToken
	}
}

// tagMap turns EC2 tags into a map.
func tagMap(tags []ec2types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}
