package ebs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/block"
)

// flakyAPI is an EBS API of a 1 GiB snapshot listing blocks 0 to 9 (a
// page of pageSize at a time) whose requests fail by script: each List
// call takes the next error of listErrs, each GetSnapshotBlock attempt
// the next of getErrs[index]. A block token is good only if it is
// "fresh"; a page token only once (a second use of one is expired). It
// records the requests and the most GetSnapshotBlock calls in flight.
type flakyAPI struct {
	mu       sync.Mutex
	listErrs []error
	getErrs  map[int32][]error
	pageSize int32
	used     map[string]bool // page tokens already served
	listed   []string        // "start=N" or "token=T" per List call
	gets     int
	inflight int
	peak     int
}

const flakyBlocks = 10

func blockData(i int32) []byte { return bytes.Repeat([]byte{byte(i + 1)}, block.Size) }

func (f *flakyAPI) list(in *ebsapi.ListSnapshotBlocksInput) (*ebsapi.ListSnapshotBlocksOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	start, what := aws.ToInt32(in.StartingBlockIndex), fmt.Sprintf("start=%d", aws.ToInt32(in.StartingBlockIndex))
	if in.NextToken != nil {
		what = "token=" + *in.NextToken
		if f.used[*in.NextToken] {
			f.listed = append(f.listed, what)
			return nil, &types.ValidationException{Message: aws.String("expired"), Reason: types.ValidationExceptionReasonInvalidPageToken}
		}
		fmt.Sscanf(*in.NextToken, "p%d", &start)
	}
	f.listed = append(f.listed, what)
	if len(f.listErrs) > 0 {
		err := f.listErrs[0]
		f.listErrs = f.listErrs[1:]
		return nil, err
	}
	if in.NextToken != nil {
		f.used[*in.NextToken] = true
	}
	out := &ebsapi.ListSnapshotBlocksOutput{BlockSize: aws.Int32(block.Size), VolumeSize: aws.Int64(1)}
	end := min(start+f.pageSize, flakyBlocks)
	for i := start; i < end; i++ {
		out.Blocks = append(out.Blocks, types.Block{BlockIndex: aws.Int32(i), BlockToken: aws.String("fresh")})
	}
	if end < flakyBlocks {
		out.NextToken = aws.String(fmt.Sprintf("p%d", end))
	}
	return out, nil
}

func (f *flakyAPI) ListSnapshotBlocks(_ context.Context, in *ebsapi.ListSnapshotBlocksInput, _ ...func(*ebsapi.Options)) (*ebsapi.ListSnapshotBlocksOutput, error) {
	return f.list(in)
}

func (f *flakyAPI) ListChangedBlocks(_ context.Context, in *ebsapi.ListChangedBlocksInput, _ ...func(*ebsapi.Options)) (*ebsapi.ListChangedBlocksOutput, error) {
	out, err := f.list(&ebsapi.ListSnapshotBlocksInput{SnapshotId: in.SecondSnapshotId, StartingBlockIndex: in.StartingBlockIndex, NextToken: in.NextToken})
	if err != nil {
		return nil, err
	}
	c := &ebsapi.ListChangedBlocksOutput{BlockSize: out.BlockSize, VolumeSize: out.VolumeSize, NextToken: out.NextToken}
	for _, b := range out.Blocks {
		c.ChangedBlocks = append(c.ChangedBlocks, types.ChangedBlock{BlockIndex: b.BlockIndex, SecondBlockToken: b.BlockToken})
	}
	return c, nil
}

func (f *flakyAPI) GetSnapshotBlock(_ context.Context, in *ebsapi.GetSnapshotBlockInput, _ ...func(*ebsapi.Options)) (*ebsapi.GetSnapshotBlockOutput, error) {
	i := aws.ToInt32(in.BlockIndex)
	f.mu.Lock()
	f.gets++
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	var err error
	if errs := f.getErrs[i]; len(errs) > 0 {
		err, f.getErrs[i] = errs[0], errs[1:]
	}
	f.mu.Unlock()
	time.Sleep(time.Millisecond) // long enough for the callers to overlap
	f.mu.Lock()
	f.inflight--
	f.mu.Unlock()
	if err == nil && aws.ToString(in.BlockToken) != "fresh" {
		err = &types.ValidationException{Message: aws.String("stale"), Reason: types.ValidationExceptionReasonInvalidBlockToken}
	}
	if err != nil {
		return nil, err
	}
	data := blockData(i)
	sum := sha256.Sum256(data)
	return &ebsapi.GetSnapshotBlockOutput{
		BlockData: io.NopCloser(bytes.NewReader(data)), DataLength: aws.Int32(block.Size),
		Checksum: aws.String(base64.StdEncoding.EncodeToString(sum[:])), ChecksumAlgorithm: types.ChecksumAlgorithmChecksumAlgorithmSha256,
	}, nil
}

func newFlaky(pageSize int32, listErrs ...error) *flakyAPI {
	return &flakyAPI{listErrs: listErrs, pageSize: pageSize, getErrs: map[int32][]error{}, used: map[string]bool{}}
}

var errUnrelated = &types.ValidationException{Message: aws.String("x"), Reason: types.ValidationExceptionReasonUnrelatedSnapshots}

// Listing goes through the retry decorator: a List call that fails with a
// server error or a throttle is made again, each attempt counts as a List
// call and each retry is counted by kind; a permanent error is not
// retried. Without the decorator the first failure would end the walk.
func TestListRetriesThroughDecorator(t *testing.T) {
	for _, walk := range []string{"List", "Changes"} {
		api := newFlaky(100, status(503), errThrottle, status(500))
		stats := &Stats{}
		s := &Snapshot{API: api, ID: "snap-0a", Policy: Policy{Sleep: noSleep}, Stats: stats}
		var got []int64
		var err error
		if walk == "List" {
			err = s.List(context.Background(), 0, func(p Page) error {
				for _, r := range p.Refs {
					got = append(got, r.Index)
				}
				return nil
			})
		} else {
			err = s.Changes(context.Background(), "", 0, func(p ChangePage) error {
				for _, c := range p.Changes {
					got = append(got, c.Index)
				}
				return nil
			})
		}
		if err != nil || len(got) != flakyBlocks {
			t.Fatalf("%s after three failures: %v, %d blocks", walk, err, len(got))
		}
		c := stats.Counts()
		if c.ListCalls != 4 || c.Retries["transient"] != 2 || c.Retries["throttle"] != 1 || c.TotalRetries() != 3 {
			t.Fatalf("%s: counts %+v, want 4 List calls and retries transient 2, throttle 1", walk, c)
		}
		if want := []string{"start=0", "start=0", "start=0", "start=0"}; !slices.Equal(api.listed, want) {
			t.Fatalf("%s: requests %q, want %q", walk, api.listed, want)
		}
	}

	// The same budget as a fetch: MaxAttempts attempts, then the error.
	api := newFlaky(100, status(500), status(500), status(500), status(500))
	stats := &Stats{}
	s := &Snapshot{API: api, ID: "snap-0a", Policy: Policy{Sleep: noSleep, MaxAttempts: 3}, Stats: stats}
	err := s.List(context.Background(), 0, func(Page) error { return nil })
	if KindOf(err) != KindTransient || len(api.listed) != 3 || stats.Counts().Retries["transient"] != 2 {
		t.Fatalf("exhausted: %v after %d calls, %+v", err, len(api.listed), stats.Counts())
	}

	// A permanent error is returned at once.
	api = newFlaky(100, errUnrelated)
	err = (&Snapshot{API: api, ID: "snap-0a", Policy: Policy{Sleep: noSleep}}).Changes(context.Background(), "snap-0b", 0, func(ChangePage) error { return nil })
	if Reason(err) != "UNRELATED_SNAPSHOTS" || len(api.listed) != 1 {
		t.Fatalf("permanent: %v after %d calls", err, len(api.listed))
	}
}

// An expired page token is not a retry: the decorator hands it back at
// once, and the walk lists again from the block after the last it saw.
func TestListPageTokenExpiryThroughDecorator(t *testing.T) {
	api := newFlaky(4)
	api.used["p4"] = true // the first page's NextToken will have expired
	stats := &Stats{}
	s := &Snapshot{API: api, ID: "snap-0a", Policy: Policy{Sleep: noSleep}, Stats: stats}
	var got []int64
	err := s.List(context.Background(), 0, func(p Page) error {
		for _, r := range p.Refs {
			got = append(got, r.Index)
		}
		return nil
	})
	if err != nil || !slices.Equal(got, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("List across an expired page token: %v, %v", err, got)
	}
	if want := []string{"start=0", "token=p4", "start=4", "token=p8"}; !slices.Equal(api.listed, want) {
		t.Fatalf("requests %q, want %q", api.listed, want)
	}
	if c := stats.Counts(); c.ListCalls != 4 || c.TotalRetries() != 0 {
		t.Fatalf("counts %+v, want 4 List calls and no retry", c)
	}
}

// Wrap puts any SDK-shaped call under a policy, with its own classifier.
func TestWrapClassify(t *testing.T) {
	errBusy, errFinal := errors.New("busy"), errors.New("final")
	var calls int
	call := func(_ context.Context, in string, opts ...int) (string, error) {
		calls++
		if calls < 3 {
			return "", errBusy
		}
		return in + fmt.Sprint(opts), nil
	}
	classify := func(err error) Kind {
		if errors.Is(err, errBusy) {
			return KindTransient
		}
		return KindInvalid
	}
	stats := &Stats{}
	out, err := Wrap(Policy{Sleep: noSleep, Classify: classify}, stats, call)(context.Background(), "in", 1, 2)
	if err != nil || out != "in[1 2]" || calls != 3 || stats.Counts().Retries["transient"] != 2 {
		t.Fatalf("Wrap: %q, %v after %d calls, %+v", out, err, calls, stats.Counts())
	}
	// Under the default classifier a plain error is KindOther: no retry.
	calls = 0
	_, err = Wrap(Policy{Sleep: noSleep}, nil, call)(context.Background(), "in")
	if !errors.Is(err, errBusy) || calls != 1 {
		t.Fatalf("default classifier: %v after %d calls", err, calls)
	}
	calls = 0
	final := func(context.Context, string, ...int) (string, error) { calls++; return "", errFinal }
	if _, err := Wrap(Policy{Sleep: noSleep, Classify: classify}, nil, final)(context.Background(), "in"); !errors.Is(err, errFinal) || calls != 1 {
		t.Fatalf("permanent under a classifier: %v after %d calls", err, calls)
	}
}

// NewFetcher builds the whole stack: verified fetches, retried, under
// the limiter's cap, with refused tokens refreshed by one re-list.
func TestNewFetcherStack(t *testing.T) {
	api := newFlaky(MaxPage)
	for i := int32(0); i < flakyBlocks; i++ {
		api.getErrs[i] = []error{status(500)}
	}
	stats := &Stats{}
	snap := &Snapshot{API: api, ID: "snap-0a", Policy: Policy{Sleep: noSleep}, Stats: stats}
	l := NewLimiter(2)
	f := NewFetcher(snap, FetchOptions{Limiter: l})
	var wg sync.WaitGroup
	errs := make([]error, flakyBlocks)
	for i := range int64(flakyBlocks) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := f.Fetch(context.Background(), block.Ref{Index: i, Token: "fresh"}, make([]byte, block.Size))
			if err == nil && !bytes.Equal(b.Data, blockData(int32(i))) {
				err = fmt.Errorf("block %d: wrong bytes", i)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if c := stats.Counts(); c.GetCalls != 2*flakyBlocks || c.Retries["transient"] != flakyBlocks || c.TotalRetries() != flakyBlocks {
		t.Fatalf("counts %+v, want %d Gets and %d transient retries", c, 2*flakyBlocks, flakyBlocks)
	}
	if api.peak > 2 || l.InFlight() != 0 {
		t.Fatalf("%d requests in flight under a limit of 2; %d slots still held", api.peak, l.InFlight())
	}

	// Stale tokens: the first refusal re-lists, and that one List call
	// refreshes the tokens of the blocks after it too.
	stats = &Stats{}
	snap = &Snapshot{API: api, ID: "snap-0a", Policy: Policy{Sleep: noSleep}, Stats: stats}
	f = NewFetcher(snap, FetchOptions{Limiter: NewLimiter(2)})
	for i := range int64(flakyBlocks) {
		b, err := f.Fetch(context.Background(), block.Ref{Index: i, Token: "stale"}, make([]byte, block.Size))
		if err != nil || !bytes.Equal(b.Data, blockData(int32(i))) {
			t.Fatalf("block %d with a stale token: %v", i, err)
		}
	}
	if c := stats.Counts(); c.GetCalls != 2*flakyBlocks || c.Retries["block-token"] != flakyBlocks || c.ListCalls != 1 || len(api.listed) != 1 {
		t.Fatalf("counts %+v after %q, want %d Gets, %d token refreshes and 1 List call", c, api.listed, 2*flakyBlocks, flakyBlocks)
	}

	// A rate cap sits inside the retries: the second attempt waits for
	// its slot, so a short deadline ends it before it is made.
	api = newFlaky(MaxPage)
	api.getErrs[0] = []error{status(500)}
	snap = &Snapshot{API: api, ID: "snap-0a", Policy: Policy{Sleep: noSleep}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := NewFetcher(snap, FetchOptions{MaxRate: MinRate}).Fetch(ctx, block.Ref{Index: 0, Token: "fresh"}, make([]byte, block.Size))
	if !errors.Is(err, context.DeadlineExceeded) || api.gets != 1 {
		t.Fatalf("rate-capped retry: %v after %d Gets, want a deadline after 1", err, api.gets)
	}

	// The zero options still verify and retry.
	api = newFlaky(MaxPage)
	api.getErrs[3] = []error{errThrottle, status(502)}
	snap = &Snapshot{API: api, ID: "snap-0a", Policy: Policy{Sleep: noSleep}}
	b, err := NewFetcher(snap, FetchOptions{}).Fetch(context.Background(), block.Ref{Index: 3, Token: "fresh"}, make([]byte, block.Size))
	if err != nil || !bytes.Equal(b.Data, blockData(3)) || b.Sum != block.Sum(sha256.Sum256(blockData(3))) || api.gets != 3 {
		t.Fatalf("zero options: %v after %d Gets", err, api.gets)
	}
}
