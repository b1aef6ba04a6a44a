package live

import (
	"bytes"
	"context"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// Prefetch fetches each allocated block under the ranges once, skips
// holes, and the reads after it make no request; the SumLog names each
// fetched block with the checksum of its bytes.
func TestPrefetch(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	var log SumLog
	snap := e.snapshot(t, rawID)
	v, err := Open(context.Background(), snap, log.Record(stack(snap)), Options{Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// Blocks 0-12 (4, 6 holes) and 99-100, given out of order and
	// overlapping; 2047 twice.
	rs := []volume.Range{{Off: 99 * block.Size, Len: 2 * block.Size}, {Off: 0, Len: 13 * block.Size},
		{Off: 5*block.Size + 7, Len: 10}, {Off: 2047 * block.Size, Len: 1}, {Off: 2047*block.Size + 9, Len: 1}}
	before := e.gets()
	if err := v.Prefetch(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	want := []int64{0, 1, 2, 3, 5, 7, 8, 9, 10, 11, 12, 99, 100, 2047}
	if got := e.gets() - before; got != int64(len(want)) {
		t.Fatalf("prefetch made %d Gets, want %d", got, len(want))
	}
	for _, i := range want {
		if got := readBlock(t, v, i); !bytes.Equal(got, e.want(t, i*block.Size, block.Size)) {
			t.Fatalf("block %d differs", i)
		}
	}
	if got := e.gets() - before; got != int64(len(want)) {
		t.Fatalf("reads after prefetch made %d more Gets", got-int64(len(want)))
	}
	sums := log.Sums()
	if len(sums) != len(want) {
		t.Fatalf("logged %d sums, want %d", len(sums), len(want))
	}
	for _, i := range want {
		if sums[i] != block.SumOf(e.want(t, i*block.Size, block.Size)) && i != rawPartial {
			t.Fatalf("block %d: logged sum %s is not its data's", i, sums[i])
		}
	}
	if got := log.Indexes(); len(got) != len(want) || got[0] != 0 || got[len(got)-1] != 2047 {
		t.Fatalf("indexes %v", got)
	}
}

// Prefetch fetches at most CacheBlocks blocks, the first in volume
// order, so it never evicts its own.
func TestPrefetchCacheBound(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{CacheBytes: 4 * block.Size, Readahead: -1})
	if v.CacheBlocks() != 4 {
		t.Fatalf("CacheBlocks %d, want 4", v.CacheBlocks())
	}
	before := e.gets()
	if err := v.Prefetch(context.Background(), []volume.Range{{Off: 0, Len: 2048 * block.Size}}); err != nil {
		t.Fatal(err)
	}
	if got := e.gets() - before; got != 4 {
		t.Fatalf("prefetch made %d Gets, want 4", got)
	}
	for _, i := range []int64{0, 1, 2, 3} {
		readBlock(t, v, i)
	}
	if got := e.gets() - before; got != 4 {
		t.Fatalf("reads of the prefetched blocks made %d more Gets", got-4)
	}
	v.Close()
	if err := v.Prefetch(context.Background(), []volume.Range{{Off: 0, Len: 1}}); err == nil {
		t.Fatal("prefetch after Close: no error")
	}
}
