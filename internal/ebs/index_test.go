package ebs_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// recordingAPI answers every listing with one page of a 1 GiB volume
// holding block 7, and records the indexes requests carried.
type recordingAPI struct {
	ebs.API
	volumeGiB int64
	starts    []int32 // StartingBlockIndex of each List call, -1 when absent
	gets      []int32
}

func (r *recordingAPI) ListSnapshotBlocks(_ context.Context, in *ebsapi.ListSnapshotBlocksInput, _ ...func(*ebsapi.Options)) (*ebsapi.ListSnapshotBlocksOutput, error) {
	start := int32(-1)
	if in.StartingBlockIndex != nil {
		start = *in.StartingBlockIndex
	}
	r.starts = append(r.starts, start)
	out := &ebsapi.ListSnapshotBlocksOutput{BlockSize: aws.Int32(block.Size), VolumeSize: aws.Int64(r.volumeGiB)}
	if start <= 7 {
		out.Blocks = []types.Block{{BlockIndex: aws.Int32(7), BlockToken: aws.String("t7")}}
	}
	return out, nil
}

func (r *recordingAPI) GetSnapshotBlock(_ context.Context, in *ebsapi.GetSnapshotBlockInput, _ ...func(*ebsapi.Options)) (*ebsapi.GetSnapshotBlockOutput, error) {
	r.gets = append(r.gets, *in.BlockIndex)
	return nil, errors.New("not served")
}

// An index beyond the volume, or beyond 32 bits, is refused before any
// request carries it; it is never truncated.
func TestIndexesAreNeverTruncated(t *testing.T) {
	ctx := context.Background()
	for _, idx := range []int64{2048, 1 << 31, 1 << 32, math.MaxInt64, -1} {
		api := &recordingAPI{volumeGiB: 1}
		s := &ebs.Snapshot{API: api, ID: "snap-0a", Policy: fast}
		_, _, _, err := s.Ref(ctx, idx)
		var beyond *block.BeyondVolumeError
		if !errors.As(err, &beyond) || beyond.Index != idx || beyond.Slots != 2048 {
			t.Errorf("Ref(%d): %v, want a BeyondVolumeError of 2048 slots", idx, err)
		}
		if len(api.starts) != 1 || api.starts[0] != -1 {
			t.Errorf("Ref(%d): List calls started at %v, want one from the start", idx, api.starts)
		}
		if idx < 0 {
			continue
		}
		err = s.List(ctx, idx, func(ebs.Page) error { return nil })
		if idx > math.MaxInt32 && (!errors.As(err, &beyond) || len(api.starts) != 1) {
			t.Errorf("List(%d): %v after calls %v, want a refusal before any call", idx, err, api.starts)
		}
		if _, err := s.Fetch(ctx, block.Ref{Index: idx, Token: "t"}, make([]byte, block.Size)); idx > math.MaxInt32 && (!errors.As(err, &beyond) || len(api.gets) != 0) {
			t.Errorf("Fetch(%d): %v after Gets %v, want a refusal before any call", idx, err, api.gets)
		}
	}
	// Within the volume, Ref answers from the first page when it can.
	api := &recordingAPI{volumeGiB: 1}
	s := &ebs.Snapshot{API: api, ID: "snap-0a", Policy: fast}
	ref, next, ok, err := s.Ref(ctx, 7)
	if err != nil || !ok || ref.Index != 7 || next != 7 || len(api.starts) != 1 {
		t.Errorf("Ref(7): %+v %d %v %v after %v", ref, next, ok, err, api.starts)
	}
	_, next, ok, err = s.Ref(ctx, 3)
	if err != nil || ok || next != 7 {
		t.Errorf("Ref(3): next %d, ok %v, %v", next, ok, err)
	}
	api.starts = nil
	_, next, ok, err = s.Ref(ctx, 100)
	if err != nil || ok || next != -1 || len(api.starts) != 2 || api.starts[1] != 100 {
		t.Errorf("Ref(100): next %d, ok %v, %v after %v", next, ok, err, api.starts)
	}
}

// A listing that claims a volume bigger than any EBS volume is refused.
func TestListRefusesHugeVolume(t *testing.T) {
	for _, gib := range []int64{block.MaxVolumeGiB + 1, 99999999999, math.MaxInt64, 0, -5} {
		s := &ebs.Snapshot{API: &recordingAPI{volumeGiB: gib}, ID: "snap-0a", Policy: fast}
		if err := s.List(context.Background(), 0, func(ebs.Page) error { return nil }); err == nil {
			t.Errorf("volume of %d GiB: no error", gib)
		}
	}
}
