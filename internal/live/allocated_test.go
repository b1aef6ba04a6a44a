package live

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
)

// wantAllocated is what Allocated(i) must say of the raw image.
func wantAllocated(i int64) (bool, int64) {
	k, found := slices.BinarySearch(rawLayout, i)
	if found {
		k++
	}
	if k < len(rawLayout) {
		return found, rawLayout[k]
	}
	return found, -1
}

// TestAllocated checks every slot of the raw image, with chunks of 100
// slots, so the next block is often in a later chunk (99, 100; 400 after
// 150; 2047 after 1019), and a read of each allocated block after it
// makes one Get and no List more.
func TestAllocated(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{chunk: 100, Readahead: -1})
	ctx := context.Background()
	for i := int64(0); i < 2048; i++ {
		ok, next, err := v.Allocated(ctx, i)
		wantOK, wantNext := wantAllocated(i)
		if err != nil || ok != wantOK || next != wantNext {
			t.Fatalf("Allocated(%d) = %v, %d, %v; want %v, %d", i, ok, next, err, wantOK, wantNext)
		}
	}
	if s := v.Stats(); s.ListedChunks != s.Chunks {
		t.Fatalf("listed %d of %d chunks", s.ListedChunks, s.Chunks)
	}
	lists, gets := e.lists(), e.gets()
	if gets != 0 {
		t.Fatalf("Allocated made %d Gets", gets)
	}
	for _, i := range []int64{1000, 2047} {
		if got, want := readBlock(t, v, i), e.want(t, i*block.Size, block.Size); string(got) != string(want) {
			t.Fatalf("block %d differs", i)
		}
	}
	if l, g := e.lists()-lists, e.gets()-gets; l != 0 || g != 2 {
		t.Fatalf("reading two blocks after Allocated: %d Lists, %d Gets; want 0, 2", l, g)
	}
	for _, i := range []int64{-1, 2048, 1 << 33} {
		var beyond *block.BeyondVolumeError
		if _, _, err := v.Allocated(ctx, i); !errors.As(err, &beyond) || beyond.Slots != 2048 {
			t.Fatalf("Allocated(%d): %v; want beyond the volume of 2048 blocks", i, err)
		}
	}
}

// TestAllocatedLists counts the Lists of one Allocated on a fresh
// volume, fully allocated, in chunks of 10,000 slots: Open lists chunk 0;
// another chunk costs one List, and so does the next block when it is in
// a chunk not listed yet.
func TestAllocatedLists(t *testing.T) {
	e := newEnv(t, emulator.Options{}, synthID+"=16GiB,1,3") // 32,768 slots
	for _, c := range []struct {
		index, next int64
		lists       int64 // after Open's
	}{
		{5, 6, 0},         // chunk 0, listed by Open
		{25000, 25001, 1}, // chunk 2
		{9999, 10000, 1},  // the next block is in chunk 1
		{32767, -1, 1},    // the last block: nothing after it
	} {
		v := e.open(t, synthID, Options{Readahead: -1})
		before := e.lists()
		ok, next, err := v.Allocated(context.Background(), c.index)
		if err != nil || !ok || next != c.next {
			t.Fatalf("Allocated(%d) = %v, %d, %v; want true, %d", c.index, ok, next, err, c.next)
		}
		if n := e.lists() - before; n != c.lists {
			t.Fatalf("Allocated(%d): %d Lists; want %d", c.index, n, c.lists)
		}
		v.Close()
	}
}

// TestLastPageListsTheRest: a listing whose page is the last records
// every chunk it covers, the one in progress included, so a sparse
// volume listed in one page costs no List more, to the last block.
func TestLastPageListsTheRest(t *testing.T) {
	e := newEnv(t, emulator.Options{}, synthID+"=16GiB,0.001,4") // about 30 blocks in 4 chunks
	v := e.open(t, synthID, Options{Readahead: -1})
	if s := v.Stats(); e.lists() != 1 || s.ListedChunks != s.Chunks || s.Chunks != 4 {
		t.Fatalf("Open: %d Lists, stats %+v; want 1 List and all 4 chunks listed", e.lists(), s)
	}
	r, err := v.Ranges()
	if err != nil || len(r) == 0 || e.lists() != 1 {
		t.Fatalf("Ranges %v, %v after %d Lists; want none more", r, err, e.lists())
	}
	last := (r[len(r)-1].End() - 1) / block.Size
	if ok, next, err := v.Allocated(context.Background(), last); !ok || next != -1 || err != nil || e.lists() != 1 {
		t.Fatalf("Allocated(%d) = %v, %d, %v after %d Lists", last, ok, next, err, e.lists())
	}
}
