package emulator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// changeKind is what ListChangedBlocks says about one index.
type changeKind int

const (
	onlyFirst changeKind = iota + 1
	onlySecond
	both
)

type changeEntry struct {
	kind          changeKind
	first, second string // tokens
}

// listChanges follows NextToken to the end of a ListChangedBlocks run.
func listChanges(t *testing.T, c *ebs.Client, first, second string, maxResults int32) (map[int64]changeEntry, []int64, int) {
	t.Helper()
	in := &ebs.ListChangedBlocksInput{SecondSnapshotId: aws.String(second), MaxResults: aws.Int32(maxResults)}
	if first != "" {
		in.FirstSnapshotId = aws.String(first)
	}
	out := make(map[int64]changeEntry)
	var order []int64
	pages := 0
	for {
		page, err := c.ListChangedBlocks(context.Background(), in)
		if err != nil {
			t.Fatalf("ListChangedBlocks %s %s: %v", first, second, err)
		}
		pages++
		for _, b := range page.ChangedBlocks {
			e := changeEntry{first: aws.ToString(b.FirstBlockToken), second: aws.ToString(b.SecondBlockToken)}
			switch {
			case e.first != "" && e.second != "":
				e.kind = both
			case e.first != "":
				e.kind = onlyFirst
			case e.second != "":
				e.kind = onlySecond
			default:
				t.Fatalf("block %d has no token", *b.BlockIndex)
			}
			i := int64(*b.BlockIndex)
			if len(order) > 0 && i <= order[len(order)-1] {
				t.Fatalf("index %d after %d", i, order[len(order)-1])
			}
			order = append(order, i)
			out[i] = e
		}
		if page.NextToken == nil {
			return out, order, pages
		}
		in.NextToken = page.NextToken
	}
}

// expectChanges derives the changes from full listings and block contents.
func expectChanges(t *testing.T, c *ebs.Client, first, second string) map[int64]changeKind {
	t.Helper()
	la, lb := listAll(t, c, first, 10000, 0), listAll(t, c, second, 10000, 0)
	want := make(map[int64]changeKind)
	inB := make(map[int64]string)
	for _, b := range lb.blocks {
		inB[int64(*b.BlockIndex)] = *b.BlockToken
		want[int64(*b.BlockIndex)] = onlySecond
	}
	for _, b := range la.blocks {
		i := int64(*b.BlockIndex)
		tb, ok := inB[i]
		if !ok {
			want[i] = onlyFirst
			continue
		}
		delete(want, i)
		if !bytes.Equal(mustGet(t, c, first, i, *b.BlockToken), mustGet(t, c, second, i, tb)) {
			want[i] = both
		}
	}
	return want
}

// checkChanges compares a ListChangedBlocks run with the expectation and
// fetches a few blocks through the tokens it gave.
func checkChanges(t *testing.T, c *ebs.Client, first, second string, want map[int64]changeKind) {
	t.Helper()
	got, order, pages := listChanges(t, c, first, second, 100)
	counts := map[changeKind]int{}
	for i, k := range want {
		counts[k]++
		if got[i].kind != k {
			t.Errorf("%s→%s block %d: kind %d, want %d", first, second, i, got[i].kind, k)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s→%s: %d changes, want %d", first, second, len(got), len(want))
	}
	if len(want) > 100 && pages < 2 {
		t.Errorf("%d changes in %d pages at 100 a page", len(want), pages)
	}
	for _, k := range []changeKind{onlyFirst, onlySecond, both} {
		if counts[k] == 0 {
			t.Errorf("%s→%s: no change of kind %d; the fixture should have all three", first, second, k)
		}
	}
	// The tokens fetch the blocks they name.
	for n, i := range order {
		if n%7 != 0 {
			continue
		}
		e := got[i]
		if e.first != "" {
			mustGet(t, c, first, i, e.first)
		}
		if e.second != "" {
			mustGet(t, c, second, i, e.second)
		}
	}
}

func TestChangedBlocksSynthetic(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{})
	c := emulatortest.Client(t, ep)
	for _, add := range []func() error{
		func() error { return s.AddSynthetic("snap-0a=1GiB,0.05,3") },
		func() error { return s.AddChild("snap-0b=child-of:snap-0a,0.5,9") },
		func() error { return s.AddChild("snap-0c=child-of:snap-0b,0.3,9") }, // same seed, next generation
		func() error { return s.AddSynthetic("snap-0d=1GiB,0.05,3") },
	} {
		if err := add(); err != nil {
			t.Fatal(err)
		}
	}
	want := expectChanges(t, c, "snap-0a", "snap-0b")
	checkChanges(t, c, "snap-0a", "snap-0b", want)
	// Reversed: what was only in the first is only in the second.
	rev := make(map[int64]changeKind)
	for i, k := range want {
		rev[i] = map[changeKind]changeKind{onlyFirst: onlySecond, onlySecond: onlyFirst, both: both}[k]
	}
	checkChanges(t, c, "snap-0b", "snap-0a", rev)
	// Across two generations.
	checkChanges(t, c, "snap-0a", "snap-0c", expectChanges(t, c, "snap-0a", "snap-0c"))

	// Without a first snapshot: every block of the second.
	got, _, _ := listChanges(t, c, "", "snap-0b", 1000)
	l := listAll(t, c, "snap-0b", 10000, 0)
	if len(got) != len(l.blocks) {
		t.Errorf("no first snapshot: %d entries, want %d", len(got), len(l.blocks))
	}
	for _, i := range l.indexes() {
		if got[i].kind != onlySecond {
			t.Errorf("no first snapshot: block %d kind %d", i, got[i].kind)
		}
	}
	// A snapshot against itself: nothing.
	if got, _, _ := listChanges(t, c, "snap-0b", "snap-0b", 1000); len(got) != 0 {
		t.Errorf("self: %d changes", len(got))
	}
	// Same spec, separate lineage.
	_, err := c.ListChangedBlocks(context.Background(), &ebs.ListChangedBlocksInput{
		FirstSnapshotId: aws.String("snap-0a"), SecondSnapshotId: aws.String("snap-0d")})
	var ve *types.ValidationException
	if !errors.As(err, &ve) || ve.Reason != types.ValidationExceptionReasonUnrelatedSnapshots {
		t.Errorf("unrelated: %v", err)
	}
}

func TestChangedBlocksRawPair(t *testing.T) {
	base := map[int64][]byte{0: pattern(1), 3: pattern(2), 5: pattern(3), 8: pattern(4), 300: pattern(5)}
	next := map[int64][]byte{0: pattern(1), 3: pattern(20), 8: pattern(4), 9: pattern(6), 300: pattern(5), 301: pattern(7)}
	next[5] = make([]byte, len(pattern(0))) // overwritten with zeros: not listed any more
	parent := writeImage(t, "parent.raw", 1<<30, base)
	child := writeImage(t, "child.raw", 1<<30, next)
	s, ep := emulatortest.Start(t, emulator.Options{})
	c := emulatortest.Client(t, ep)
	if err := s.AddRawImage("snap-0a", parent, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRawImage("snap-0b", child, emulator.RawOptions{Parent: "snap-0a"}); err != nil {
		t.Fatal(err)
	}
	// A synthetic child of the raw child: compared by content against raw.
	if err := s.AddChild("snap-0c=child-of:snap-0b,0.01,4"); err != nil {
		t.Fatal(err)
	}
	got, order, _ := listChanges(t, c, "snap-0a", "snap-0b", 100)
	want := map[int64]changeKind{3: both, 5: onlyFirst, 9: onlySecond, 301: onlySecond}
	if len(got) != len(want) {
		t.Errorf("raw pair: changes at %v, want 3, 5, 9, 301", order)
	}
	for i, k := range want {
		if got[i].kind != k {
			t.Errorf("raw pair block %d: kind %d, want %d", i, got[i].kind, k)
		}
	}
	if b := mustGet(t, c, "snap-0a", 3, got[3].first); !bytes.Equal(b, pattern(2)) {
		t.Error("FirstBlockToken of block 3 fetched the wrong bytes")
	}
	if b := mustGet(t, c, "snap-0b", 3, got[3].second); !bytes.Equal(b, pattern(20)) {
		t.Error("SecondBlockToken of block 3 fetched the wrong bytes")
	}
	want0c := expectChanges(t, c, "snap-0a", "snap-0c")
	gotc, _, _ := listChanges(t, c, "snap-0a", "snap-0c", 1000)
	if len(gotc) != len(want0c) {
		t.Errorf("raw grandparent to synthetic grandchild: %d changes, want %d", len(gotc), len(want0c))
	}
	for i, k := range want0c {
		if gotc[i].kind != k {
			t.Errorf("raw grandparent to synthetic grandchild, block %d: kind %d, want %d", i, gotc[i].kind, k)
		}
	}
}

// putBlocks writes blocks through the SDK and completes the snapshot with
// a LINEAR checksum.
func putBlocks(t *testing.T, c *ebs.Client, id string, blocks map[int64][]byte, optFns ...func(*ebs.Options)) {
	t.Helper()
	ctx := context.Background()
	var idx []int64
	for i := range blocks {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	agg := sha256.New()
	for _, i := range idx {
		sum := sha256.Sum256(blocks[i])
		agg.Write(sum[:])
		_, err := c.PutSnapshotBlock(ctx, &ebs.PutSnapshotBlockInput{
			SnapshotId:        aws.String(id),
			BlockIndex:        aws.Int32(int32(i)),
			BlockData:         bytes.NewReader(blocks[i]),
			DataLength:        aws.Int32(int32(len(blocks[i]))),
			Checksum:          aws.String(b64(sum[:])),
			ChecksumAlgorithm: types.ChecksumAlgorithmChecksumAlgorithmSha256,
		}, optFns...)
		if err != nil {
			t.Fatalf("PutSnapshotBlock %s/%d: %v", id, i, err)
		}
	}
	out, err := c.CompleteSnapshot(ctx, &ebs.CompleteSnapshotInput{
		SnapshotId:                aws.String(id),
		ChangedBlocksCount:        aws.Int32(int32(len(idx))),
		Checksum:                  aws.String(b64(agg.Sum(nil))),
		ChecksumAlgorithm:         types.ChecksumAlgorithmChecksumAlgorithmSha256,
		ChecksumAggregationMethod: types.ChecksumAggregationMethodChecksumAggregationLinear,
	}, optFns...)
	if err != nil {
		t.Fatalf("CompleteSnapshot %s: %v", id, err)
	}
	if out.Status != types.StatusCompleted {
		t.Fatalf("CompleteSnapshot %s: status %s", id, out.Status)
	}
}

func TestChangedBlocksWriteAPI(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{})
	c := emulatortest.Client(t, ep)
	ctx := context.Background()
	start := func(parent string) string {
		in := &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1)}
		if parent != "" {
			in.ParentSnapshotId = aws.String(parent)
		}
		out, err := c.StartSnapshot(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.ParentSnapshotId) != parent {
			t.Errorf("ParentSnapshotId %q, want %q", aws.ToString(out.ParentSnapshotId), parent)
		}
		return aws.ToString(out.SnapshotId)
	}
	p := start("")
	putBlocks(t, c, p, map[int64][]byte{0: pattern(1), 1: pattern(2), 2: pattern(3)})
	ch := start(p)
	putBlocks(t, c, ch, map[int64][]byte{1: pattern(9), 4: pattern(5), 2: pattern(3)}) // 2 rewritten with the same bytes
	// The child inherits block 0 from its parent.
	l := listAll(t, c, ch, 100, 0)
	if !sameInts(l.indexes(), []int64{0, 1, 2, 4}) {
		t.Errorf("child lists %v, want 0 1 2 4", l.indexes())
	}
	if !bytes.Equal(mustGet(t, c, ch, 0, l.token(0)), pattern(1)) {
		t.Error("inherited block 0 differs")
	}
	// Rewritten blocks count as changed, as EBS tracks writes.
	got, order, _ := listChanges(t, c, p, ch, 100)
	want := map[int64]changeKind{1: both, 2: both, 4: onlySecond}
	if len(got) != len(want) {
		t.Errorf("parent→child changes at %v, want 1 2 4", order)
	}
	for i, k := range want {
		if got[i].kind != k {
			t.Errorf("parent→child block %d: kind %d, want %d", i, got[i].kind, k)
		}
	}
	// Reversed, block 4 is only in the first.
	got, _, _ = listChanges(t, c, ch, p, 100)
	if got[4].kind != onlyFirst || got[1].kind != both || len(got) != 3 {
		t.Errorf("child→parent: %v", got)
	}
	if !bytes.Equal(mustGet(t, c, ch, 4, got[4].first), pattern(5)) {
		t.Error("FirstBlockToken of block 4 fetched the wrong bytes")
	}
	// A write-API child of a synthetic snapshot.
	if err := s.AddSynthetic("snap-0a=1GiB,0.2,5"); err != nil {
		t.Fatal(err)
	}
	sc := start("snap-0a")
	lp := listAll(t, c, "snap-0a", 10000, 0)
	first := lp.indexes()[0]
	putBlocks(t, c, sc, map[int64][]byte{first: pattern(7)})
	got, _, _ = listChanges(t, c, "snap-0a", sc, 1000)
	if len(got) != 1 || got[first].kind != both {
		t.Errorf("synthetic parent, one block rewritten: %v", got)
	}
	if n := len(listAll(t, c, sc, 10000, 0).blocks); n != len(lp.blocks) {
		t.Errorf("child lists %d blocks, parent %d", n, len(lp.blocks))
	}
}
