package acquire

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
)

// sliceExpected yields fixed blocks.
type sliceExpected struct {
	idx  []int64
	sums []block.Sum
}

func (s *sliceExpected) Next() (int64, block.Sum, error) {
	if len(s.idx) == 0 {
		return 0, block.Sum{}, io.EOF
	}
	i, sum := s.idx[0], s.sums[0]
	s.idx, s.sums = s.idx[1:], s.sums[1:]
	return i, sum, nil
}

// Check names, by index, blocks the snapshot does not list, blocks it
// lists beyond those expected, and (Full) blocks served with another
// checksum; the calls are one List, and one Get per fetched block.
func TestCheck(t *testing.T) {
	e := newEnv(t, emulator.Options{}, "snap-0c0000000000000c1=1GiB,0.01,1")
	id := "snap-0c0000000000000c1"
	// What the snapshot really holds.
	var refs []int64
	var sums []block.Sum
	snap := e.snapshot(t, id)
	buf := make([]byte, block.Size)
	err := snap.List(context.Background(), 0, func(p ebs.Page) error {
		for _, r := range p.Refs {
			b, err := snap.Fetch(context.Background(), r, buf)
			if err != nil {
				return err
			}
			refs, sums = append(refs, r.Index), append(sums, b.Sum)
		}
		return nil
	})
	if err != nil || len(refs) < 5 {
		t.Fatalf("listing: %d blocks, %v", len(refs), err)
	}
	for _, full := range []bool{false, true} {
		// Expected: drop refs[1], add a block the snapshot does not list,
		// and change the checksum of refs[3].
		want := &sliceExpected{}
		absent := refs[len(refs)-1] + 1
		for i, idx := range refs {
			switch i {
			case 1:
				continue
			case 3:
				want.idx, want.sums = append(want.idx, idx), append(want.sums, block.SumOf([]byte("other")))
			default:
				want.idx, want.sums = append(want.idx, idx), append(want.sums, sums[i])
			}
		}
		want.idx, want.sums = append(want.idx, absent), append(want.sums, block.Sum{})
		r, err := Check(context.Background(), e.snapshot(t, id), want, CheckOptions{Full: full, Workers: 4})
		if err != nil {
			t.Fatal(err)
		}
		gets, differ := int64(0), "[]"
		if full {
			gets, differ = int64(len(refs)-1), fmt.Sprint([]int64{refs[3]})
		}
		if got := fmt.Sprint(r.Missing, r.Extra, r.Differ); got != fmt.Sprint([]int64{absent}, []int64{refs[1]})+" "+differ {
			t.Fatalf("full=%v: missing %v extra %v differ %v", full, r.Missing, r.Extra, r.Differ)
		}
		if r.Listed != int64(len(refs)) || r.Counts.ListCalls != 1 || r.Counts.GetCalls != gets || r.Fetched != gets || r.OK() {
			t.Fatalf("full=%v: %+v", full, r)
		}
	}
}
