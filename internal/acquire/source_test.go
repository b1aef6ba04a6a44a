package acquire

import (
	"context"
	"slices"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// fakeListing serves pages of 3 indexes from a fixed list, each page
// covering up to its last index, and counts its calls.
type fakeListing struct {
	indexes []int64
	calls   []int64 // the start of each call
}

func (f *fakeListing) list(ctx context.Context, start int64, fn func(ebs.Page) error) error {
	f.calls = append(f.calls, start)
	info := ebs.Info{SnapshotID: "snap-0f", VolumeGiB: 1, BlockSize: block.Size}
	var rest []int64
	for _, i := range f.indexes {
		if i >= start {
			rest = append(rest, i)
		}
	}
	for len(rest) > 0 || start == 0 {
		n := min(3, len(rest))
		p := ebs.Page{Info: info, More: n < len(rest), Next: start}
		for _, i := range rest[:n] {
			p.Refs = append(p.Refs, block.Ref{Index: i})
			p.Next = i + 1
		}
		rest = rest[n:]
		if err := fn(p); err != nil {
			return err
		}
		if !p.More {
			return nil
		}
		f.calls = append(f.calls, p.Next) // the walk's next page, by token
	}
	return nil
}

func listed(t *testing.T, src Source, start int64) []int64 {
	t.Helper()
	var got []int64
	err := src.List(context.Background(), start, func(p ebs.Page) error {
		for _, r := range p.Refs {
			got = append(got, r.Index)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Info lists the first page once and List starts with it: learning the
// size first costs no call, and the listing goes on from where the page
// ended, each index once.
func TestSourceInfoKeepsFirstPage(t *testing.T) {
	for _, indexes := range [][]int64{{5, 9}, {1, 2, 3}, {0, 4, 7, 8, 20, 33, 40}} {
		f := &fakeListing{indexes: indexes}
		src := NewSnapshot(&ebs.Snapshot{ID: "snap-0f"}).Listing(f.list)
		info, err := src.Info(context.Background())
		if err != nil || info.VolumeGiB != 1 {
			t.Fatalf("Info: %+v, %v", info, err)
		}
		got := listed(t, src, 0)
		if !slices.Equal(got, indexes) {
			t.Fatalf("listed %v, want %v", got, indexes)
		}
		pages := (len(indexes) + 2) / 3
		if len(f.calls) != pages {
			t.Fatalf("%d pages listed in %d calls (%v), want one per page", pages, len(f.calls), f.calls)
		}
		// The page was handed over once: a second listing lists anew.
		if got := listed(t, src, 0); !slices.Equal(got, indexes) || len(f.calls) != 2*pages {
			t.Fatalf("second listing: %v in %d calls", got, len(f.calls))
		}
	}
}

// A listing from another start does not use the kept page.
func TestSourceInfoPageOnlyFromZero(t *testing.T) {
	f := &fakeListing{indexes: []int64{1, 2, 3, 10, 11}}
	src := NewSnapshot(&ebs.Snapshot{ID: "snap-0f"}).Listing(f.list)
	if _, err := src.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, src, 3); !slices.Equal(got, []int64{3, 10, 11}) {
		t.Fatalf("listed %v from 3", got)
	}
}
