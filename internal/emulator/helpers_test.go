package emulator_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/block"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// listing is every block of a ListSnapshotBlocks run.
type listing struct {
	blocks []types.Block
	pages  int
	volume int64
	expiry time.Time
}

func (l listing) indexes() []int64 {
	out := make([]int64, len(l.blocks))
	for i, b := range l.blocks {
		out[i] = int64(*b.BlockIndex)
	}
	return out
}

func (l listing) token(index int64) string {
	for _, b := range l.blocks {
		if int64(*b.BlockIndex) == index {
			return *b.BlockToken
		}
	}
	return ""
}

// listAll follows NextToken to the end, checking the fixed fields of each
// page and that indexes ascend.
func listAll(t *testing.T, c *ebs.Client, snap string, maxResults int32, start int32, optFns ...func(*ebs.Options)) listing {
	t.Helper()
	var l listing
	in := &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(snap)}
	if maxResults > 0 {
		in.MaxResults = aws.Int32(maxResults)
	}
	if start > 0 {
		in.StartingBlockIndex = aws.Int32(start)
	}
	last := int64(-1)
	for {
		out, err := c.ListSnapshotBlocks(context.Background(), in, optFns...)
		if err != nil {
			t.Fatalf("ListSnapshotBlocks %s page %d: %v", snap, l.pages+1, err)
		}
		l.pages++
		if got := aws.ToInt32(out.BlockSize); got != block.Size {
			t.Fatalf("BlockSize = %d, want %d", got, block.Size)
		}
		l.volume = aws.ToInt64(out.VolumeSize)
		l.expiry = aws.ToTime(out.ExpiryTime)
		for _, b := range out.Blocks {
			if int64(*b.BlockIndex) <= last {
				t.Fatalf("page %d: index %d after %d", l.pages, *b.BlockIndex, last)
			}
			last = int64(*b.BlockIndex)
		}
		l.blocks = append(l.blocks, out.Blocks...)
		if out.NextToken == nil {
			return l
		}
		in.NextToken = out.NextToken
		if l.pages > 100000 {
			t.Fatal("listing does not end")
		}
	}
}

// fetched is one GetSnapshotBlock response, read to the end.
type fetched struct {
	body     []byte
	length   int32
	checksum string
	alg      types.ChecksumAlgorithm
	readErr  error
}

// verify checks the three things EBS-API.md says a client must check.
func (f fetched) verify() error {
	if f.readErr != nil {
		return f.readErr
	}
	if f.alg != types.ChecksumAlgorithmChecksumAlgorithmSha256 {
		return errors.New("algorithm " + string(f.alg))
	}
	if int(f.length) != len(f.body) || f.length <= 0 || f.length > block.Size {
		return errors.New("data length disagrees with the body")
	}
	sum := sha256.Sum256(f.body)
	if base64.StdEncoding.EncodeToString(sum[:]) != f.checksum {
		return errors.New("checksum mismatch")
	}
	return nil
}

func getBlock(c *ebs.Client, snap string, index int64, token string, optFns ...func(*ebs.Options)) (fetched, error) {
	out, err := c.GetSnapshotBlock(context.Background(), &ebs.GetSnapshotBlockInput{
		SnapshotId: aws.String(snap),
		BlockIndex: aws.Int32(int32(index)),
		BlockToken: aws.String(token),
	}, optFns...)
	if err != nil {
		return fetched{}, err
	}
	defer out.BlockData.Close()
	body, rerr := io.ReadAll(out.BlockData)
	return fetched{body: body, length: aws.ToInt32(out.DataLength), checksum: aws.ToString(out.Checksum),
		alg: out.ChecksumAlgorithm, readErr: rerr}, nil
}

// mustGet fetches and verifies a block.
func mustGet(t *testing.T, c *ebs.Client, snap string, index int64, token string) []byte {
	t.Helper()
	f, err := getBlock(c, snap, index, token)
	if err != nil {
		t.Fatalf("GetSnapshotBlock %s/%d: %v", snap, index, err)
	}
	if err := f.verify(); err != nil {
		t.Fatalf("GetSnapshotBlock %s/%d: %v", snap, index, err)
	}
	return f.body
}

// status returns the HTTP status of an SDK error.
func status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
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

// writeImage writes a file of size bytes holding the given blocks and
// zeros (holes) elsewhere.
func writeImage(t *testing.T, name string, size int64, blocks map[int64][]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		off := i * block.Size
		n := min(int64(len(b)), size-off)
		if _, err := f.WriteAt(b[:n], off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func sameInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func b64(p []byte) string { return base64.StdEncoding.EncodeToString(p) }
