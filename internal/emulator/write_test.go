package emulator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

func TestWriteRoundTrip(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{})
	c := emulatortest.Client(t, ep)
	ctx := context.Background()
	st, err := c.StartSnapshot(ctx, &ebs.StartSnapshotInput{
		VolumeSize:  aws.Int64(2),
		Description: aws.String("round trip"),
		Tags:        []types.Tag{{Key: aws.String("case"), Value: aws.String("42")}},
		ClientToken: aws.String("token-1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(st.SnapshotId)
	if !block.ValidSnapshotID(id) || len(id) != len("snap-")+17 || st.Status != types.StatusPending ||
		aws.ToInt32(st.BlockSize) != block.Size || aws.ToInt64(st.VolumeSize) != 2 ||
		aws.ToString(st.Description) != "round trip" || len(st.Tags) != 1 || aws.ToString(st.OwnerId) == "" ||
		st.StartTime == nil || st.SseType != types.SSETypeNone {
		t.Fatalf("StartSnapshot: %+v", st)
	}
	// The same ClientToken returns the same snapshot.
	again, err := c.StartSnapshot(ctx, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(2), ClientToken: aws.String("token-1")})
	if err != nil || aws.ToString(again.SnapshotId) != id {
		t.Fatalf("idempotent StartSnapshot: %v, %v", aws.ToString(again.SnapshotId), err)
	}

	// Reads of a pending snapshot fail.
	if _, err := c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id)}); err == nil {
		t.Error("listing a pending snapshot succeeded")
	}

	put := func(i int32, data []byte, checksum string, length int32) error {
		_, err := c.PutSnapshotBlock(ctx, &ebs.PutSnapshotBlockInput{
			SnapshotId: aws.String(id), BlockIndex: aws.Int32(i), BlockData: bytes.NewReader(data),
			DataLength: aws.Int32(length), Checksum: aws.String(checksum),
			ChecksumAlgorithm: types.ChecksumAlgorithmChecksumAlgorithmSha256,
		})
		return err
	}
	good := pattern(9)
	sum := sha256.Sum256(good)
	other := sha256.Sum256(pattern(8))
	for name, err := range map[string]error{
		"bad checksum":   put(3, good, b64(other[:]), block.Size),
		"short body":     put(3, good[:1000], b64(sum[:]), 1000),
		"bad length":     put(3, good, b64(sum[:]), block.Size-1),
		"past volume":    put(4096, good, b64(sum[:]), block.Size),
		"not base64 sum": put(3, good, "not-base64!", block.Size),
	} {
		var ve *types.ValidationException
		if !errors.As(err, &ve) || status(err) != 400 {
			t.Errorf("%s: %v, want ValidationException", name, err)
		}
	}
	var ve *types.ValidationException
	if err := put(3, good, b64(other[:]), block.Size); !errors.As(err, &ve) || ve.Reason != types.ValidationExceptionReasonInvalidParameterValue {
		t.Errorf("bad checksum: %v, want INVALID_PARAMETER_VALUE", err)
	}
	if s.Counters().Count(emulator.OpPutSnapshotBlock, "ValidationException") != 6 {
		t.Errorf("counters: %s", s.Counters())
	}

	blocks := map[int64][]byte{3: good, 0: pattern(1), 4095: make([]byte, block.Size)} // a zero block is kept: it was written
	for i, b := range blocks {
		sum := sha256.Sum256(b)
		if err := put(int32(i), b, b64(sum[:]), block.Size); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	complete := func(count int32, checksum string) error {
		_, err := c.CompleteSnapshot(ctx, &ebs.CompleteSnapshotInput{
			SnapshotId: aws.String(id), ChangedBlocksCount: aws.Int32(count), Checksum: aws.String(checksum),
			ChecksumAlgorithm:         types.ChecksumAlgorithmChecksumAlgorithmSha256,
			ChecksumAggregationMethod: types.ChecksumAggregationMethodChecksumAggregationLinear,
		})
		return err
	}
	agg := sha256.New()
	for _, i := range []int64{0, 3, 4095} {
		s := sha256.Sum256(blocks[i])
		agg.Write(s[:])
	}
	linear := b64(agg.Sum(nil))
	wrongOrder := sha256.New()
	for _, i := range []int64{3, 0, 4095} {
		s := sha256.Sum256(blocks[i])
		wrongOrder.Write(s[:])
	}
	if err := complete(3, b64(wrongOrder.Sum(nil))); !errors.As(err, &ve) {
		t.Errorf("checksum in the wrong order: %v, want ValidationException", err)
	}
	if err := complete(2, linear); !errors.As(err, &ve) {
		t.Errorf("wrong ChangedBlocksCount: %v, want ValidationException", err)
	}
	if err := complete(3, linear); err != nil {
		t.Fatalf("CompleteSnapshot: %v", err)
	}
	if err := put(5, good, b64(sum[:]), block.Size); !errors.As(err, &ve) {
		t.Errorf("put after completion: %v, want ValidationException", err)
	}

	l := listAll(t, c, id, 100, 0)
	if !sameInts(l.indexes(), []int64{0, 3, 4095}) || l.volume != 2 {
		t.Fatalf("listed %v volume %d", l.indexes(), l.volume)
	}
	for _, i := range l.indexes() {
		if got := mustGet(t, c, id, i, l.token(i)); !bytes.Equal(got, blocks[i]) {
			t.Errorf("block %d differs", i)
		}
	}

	// A parent must be completed, and no larger than the child.
	if _, err := c.StartSnapshot(ctx, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1), ParentSnapshotId: aws.String(id)}); !errors.As(err, &ve) ||
		ve.Reason != types.ValidationExceptionReasonInvalidVolumeSize {
		t.Errorf("child smaller than its parent: %v", err)
	}
	if _, err := c.StartSnapshot(ctx, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(0)}); !errors.As(err, &ve) {
		t.Errorf("volume size 0: %v", err)
	}
}
