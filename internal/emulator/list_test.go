package emulator_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// sparseImage lists 350 blocks spread over a 2 GiB image.
func sparseImage(t *testing.T) (string, []int64) {
	blocks := make(map[int64][]byte)
	var want []int64
	for k := int64(0); k < 350; k++ {
		i := k*11 + k%3 // 0, 12, 24, 33, ...: ascending, uneven gaps
		blocks[i] = pattern(byte(k))
		want = append(want, i)
	}
	return writeImage(t, "sparse.raw", 2<<30, blocks), want
}

func TestPagination(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{})
	c := emulatortest.Client(t, ep)
	path, want := sparseImage(t)
	if err := s.AddRawImage("snap-0a", path, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}

	l := listAll(t, c, "snap-0a", 100, 0)
	if !sameInts(l.indexes(), want) {
		t.Fatalf("listed %d blocks %v..., want %d %v...", len(l.blocks), l.indexes()[:5], len(want), want[:5])
	}
	if l.pages != 4 { // 350 blocks at 100 a page
		t.Errorf("pages = %d, want 4", l.pages)
	}
	if l.volume != 2 {
		t.Errorf("VolumeSize = %d, want 2", l.volume)
	}

	// Below 100 is served as 100; above 10,000 as 10,000.
	if l := listAll(t, c, "snap-0a", 5, 0); l.pages != 4 || !sameInts(l.indexes(), want) {
		t.Errorf("MaxResults 5: %d pages, %d blocks; want 4 pages, %d blocks", l.pages, len(l.blocks), len(want))
	}
	if l := listAll(t, c, "snap-0a", 20000, 0); l.pages != 1 || !sameInts(l.indexes(), want) {
		t.Errorf("MaxResults 20000: %d pages, %d blocks; want 1 page, %d blocks", l.pages, len(l.blocks), len(want))
	}
	// No MaxResults: the default page of 10,000.
	if l := listAll(t, c, "snap-0a", 0, 0); l.pages != 1 || !sameInts(l.indexes(), want) {
		t.Errorf("no MaxResults: %d pages, %d blocks; want 1 page, %d blocks", l.pages, len(l.blocks), len(want))
	}

	// StartingBlockIndex between listed blocks and on one.
	for _, start := range []int32{1, 12, 2000, 3840} {
		k, _ := slices.BinarySearch(want, int64(start))
		l := listAll(t, c, "snap-0a", 100, start)
		if !sameInts(l.indexes(), want[k:]) {
			t.Errorf("StartingBlockIndex %d: %d blocks from %v, want %d from %d", start, len(l.blocks), l.indexes()[:1], len(want[k:]), want[k])
		}
	}
	// Past the last block and past the volume: empty, no NextToken.
	for _, start := range []int32{3850, 4096, 1 << 30} {
		l := listAll(t, c, "snap-0a", 100, start)
		if len(l.blocks) != 0 || l.pages != 1 {
			t.Errorf("StartingBlockIndex %d: %d blocks in %d pages, want none in 1", start, len(l.blocks), l.pages)
		}
	}

	// With a NextToken, StartingBlockIndex is ignored.
	ctx := context.Background()
	p1, err := c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0a"), MaxResults: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0a"),
		MaxResults: aws.Int32(100), NextToken: p1.NextToken, StartingBlockIndex: aws.Int32(3000)})
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(*p2.Blocks[0].BlockIndex); got != want[100] {
		t.Errorf("second page starts at %d, want %d (StartingBlockIndex ignored)", got, want[100])
	}
	// A page token belongs to its snapshot.
	if err := s.AddSynthetic("snap-0b=2GiB"); err != nil {
		t.Fatal(err)
	}
	_, err = c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0b"), NextToken: p1.NextToken})
	var ve *types.ValidationException
	if !errors.As(err, &ve) || ve.Reason != types.ValidationExceptionReasonInvalidPageToken {
		t.Errorf("another snapshot's NextToken: %v, want INVALID_PAGE_TOKEN", err)
	}
}

func TestSyntheticListing(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{})
	c := emulatortest.Client(t, ep)
	for _, spec := range []string{"snap-01=1GiB", "snap-02=1GiB,0.25,3", "snap-03=1GiB,0", "snap-04=64TiB,1,5", "snap-05=64TiB,0.0001,5"} {
		if err := s.AddSynthetic(spec); err != nil {
			t.Fatal(err)
		}
	}
	if l := listAll(t, c, "snap-01", 1000, 0); len(l.blocks) != 2048 || l.pages != 3 || l.volume != 1 {
		t.Errorf("full 1 GiB: %d blocks in %d pages, volume %d; want 2048 in 3, 1", len(l.blocks), l.pages, l.volume)
	}
	l := listAll(t, c, "snap-02", 10000, 0)
	if n := len(l.blocks); n < 2048/4-80 || n > 2048/4+80 { // binomial(2048, 0.25): sd 19.6
		t.Errorf("fraction 0.25: %d blocks, want about 512", n)
	}
	if l := listAll(t, c, "snap-03", 0, 0); len(l.blocks) != 0 || l.pages != 1 {
		t.Errorf("fraction 0: %d blocks in %d pages, want none in 1", len(l.blocks), l.pages)
	}

	// 64 TiB: the first page is full, the last page ends the listing.
	ctx := context.Background()
	out, err := c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-04")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Blocks) != 10000 || out.NextToken == nil || aws.ToInt64(out.VolumeSize) != 65536 {
		t.Errorf("64 TiB: %d blocks, NextToken %v, VolumeSize %d", len(out.Blocks), out.NextToken != nil, aws.ToInt64(out.VolumeSize))
	}
	last := int32(block.Slots(65536) - 50)
	out, err = c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-04"), StartingBlockIndex: aws.Int32(last)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Blocks) != 50 || out.NextToken != nil || *out.Blocks[49].BlockIndex != int32(block.Slots(65536)-1) {
		t.Errorf("64 TiB tail: %d blocks, NextToken %v", len(out.Blocks), out.NextToken != nil)
	}
	// Sparse 64 TiB: pages stop at the scan bound and may be short, but
	// the NextToken keeps the listing going.
	out, err = c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-05")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Blocks) == 0 || len(out.Blocks) >= 10000 || out.NextToken == nil {
		t.Errorf("sparse 64 TiB first page: %d blocks, NextToken %v; want a short page with a token", len(out.Blocks), out.NextToken != nil)
	}
}

func TestBlockTokens(t *testing.T) {
	clk := newClock()
	s, ep := emulatortest.Start(t, emulator.Options{Now: clk.Now})
	c := emulatortest.Client(t, ep)
	if err := s.AddSynthetic("snap-0a=1GiB"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSynthetic("snap-0b=1GiB"); err != nil {
		t.Fatal(err)
	}
	l := listAll(t, c, "snap-0a", 10000, 0)
	if want := clk.Now().Add(7 * 24 * time.Hour); !l.expiry.Equal(want) {
		t.Errorf("ExpiryTime = %v, want %v", l.expiry, want)
	}
	tok := l.token(5)
	for _, b := range l.blocks {
		if n := len(*b.BlockToken); n > 256 || !validTokenChars(*b.BlockToken) {
			t.Fatalf("token %q: %d characters", *b.BlockToken, n)
		}
	}
	mustGet(t, c, "snap-0a", 5, tok)

	bad := map[string]struct {
		snap  string
		index int64
		token string
	}{
		"another block":    {"snap-0a", 6, tok},
		"another snapshot": {"snap-0b", 5, tok},
		"garbage":          {"snap-0a", 5, "bm90IGEgdG9rZW4="},
		"empty":            {"snap-0a", 5, ""},
		"flipped":          {"snap-0a", 5, flip(tok)},
	}
	for name, b := range bad {
		_, err := getBlock(c, b.snap, b.index, b.token)
		var ve *types.ValidationException
		if !errors.As(err, &ve) || ve.Reason != types.ValidationExceptionReasonInvalidBlockToken || status(err) != 400 {
			t.Errorf("%s: %v, want ValidationException INVALID_BLOCK_TOKEN 400", name, err)
		}
	}

	// Valid until the expiry second, not at it.
	clk.Advance(7*24*time.Hour - time.Second)
	mustGet(t, c, "snap-0a", 5, tok)
	clk.Advance(time.Second)
	_, err := getBlock(c, "snap-0a", 5, tok)
	var ve *types.ValidationException
	if !errors.As(err, &ve) || ve.Reason != types.ValidationExceptionReasonInvalidBlockToken {
		t.Errorf("expired block token: %v, want INVALID_BLOCK_TOKEN", err)
	}
}

func validTokenChars(s string) bool {
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '=') {
			return false
		}
	}
	return true
}

// flip changes one character in the middle of a token.
func flip(tok string) string {
	b := []byte(tok)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestPageTokenExpiry(t *testing.T) {
	clk := newClock()
	s, ep := emulatortest.Start(t, emulator.Options{Now: clk.Now})
	c := emulatortest.Client(t, ep)
	if err := s.AddSynthetic("snap-0a=1GiB"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p1, err := c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0a"), MaxResults: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Minute)
	if _, err := c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0a"), NextToken: p1.NextToken}); err != nil {
		t.Fatalf("NextToken after 59 minutes: %v", err)
	}
	clk.Advance(time.Minute)
	_, err = c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0a"), NextToken: p1.NextToken})
	var ve *types.ValidationException
	if !errors.As(err, &ve) || ve.Reason != types.ValidationExceptionReasonInvalidPageToken || status(err) != 400 {
		t.Errorf("NextToken after 60 minutes: %v, want INVALID_PAGE_TOKEN", err)
	}
	_, err = c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0a"), NextToken: aws.String(flip(*p1.NextToken))})
	if !errors.As(err, &ve) || ve.Reason != types.ValidationExceptionReasonInvalidPageToken {
		t.Errorf("tampered NextToken: %v, want INVALID_PAGE_TOKEN", err)
	}

	// Custom TTLs.
	clk2 := newClock()
	s2, ep2 := emulatortest.Start(t, emulator.Options{Now: clk2.Now, PageTokenTTL: time.Minute, BlockTokenTTL: time.Hour})
	c2 := emulatortest.Client(t, ep2)
	if err := s2.AddSynthetic("snap-0a=1GiB"); err != nil {
		t.Fatal(err)
	}
	p1, err = c2.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0a"), MaxResults: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	if want := clk2.Now().Add(time.Hour); !aws.ToTime(p1.ExpiryTime).Equal(want) {
		t.Errorf("ExpiryTime %v, want %v", aws.ToTime(p1.ExpiryTime), want)
	}
	clk2.Advance(time.Minute)
	if _, err := c2.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0a"), NextToken: p1.NextToken}); !errors.As(err, &ve) {
		t.Errorf("NextToken after PageTokenTTL: %v, want ValidationException", err)
	}
}

func TestInvalidateOnRelist(t *testing.T) {
	for _, invalidate := range []bool{false, true} {
		s, ep := emulatortest.Start(t, emulator.Options{InvalidateOnRelist: invalidate})
		c := emulatortest.Client(t, ep)
		if err := s.AddSynthetic("snap-0a=1GiB"); err != nil {
			t.Fatal(err)
		}
		if err := s.AddChild("snap-0b=child-of:snap-0a,0.5"); err != nil {
			t.Fatal(err)
		}
		old := listAll(t, c, "snap-0a", 100, 0) // several pages: one listing
		mustGet(t, c, "snap-0a", 0, old.token(0))
		mustGet(t, c, "snap-0a", 2047, old.token(2047)) // from the last page
		fresh := listAll(t, c, "snap-0a", 10000, 0)
		_, err := getBlock(c, "snap-0a", 0, old.token(0))
		var ve *types.ValidationException
		if invalidate {
			if !errors.As(err, &ve) || ve.Reason != types.ValidationExceptionReasonInvalidBlockToken {
				t.Errorf("old token after relisting: %v, want INVALID_BLOCK_TOKEN", err)
			}
		} else if err != nil {
			t.Errorf("old token after relisting without InvalidateOnRelist: %v", err)
		}
		mustGet(t, c, "snap-0a", 0, fresh.token(0))

		// ListChangedBlocks counts as a new listing of both snapshots.
		if _, err := c.ListChangedBlocks(context.Background(), &ebs.ListChangedBlocksInput{
			FirstSnapshotId: aws.String("snap-0a"), SecondSnapshotId: aws.String("snap-0b")}); err != nil {
			t.Fatal(err)
		}
		_, err = getBlock(c, "snap-0a", 0, fresh.token(0))
		if invalidate != (err != nil) {
			t.Errorf("InvalidateOnRelist=%v: token after ListChangedBlocks: %v", invalidate, err)
		}
	}
}
