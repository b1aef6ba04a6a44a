package live

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// Random reads, across blocks, chunks, holes and the end, give exactly
// the raw image's bytes, and Ranges gives exactly its blocks.
func TestReadsGiveExactBytes(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{chunk: 100})
	if v.Size() != gib {
		t.Fatalf("size %d, want %d", v.Size(), gib)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for k := 0; k < 150; k++ {
		var off int64
		if k%2 == 0 { // near an allocated block, so most reads hit data
			off = rawLayout[rng.IntN(len(rawLayout))]*block.Size + rng.Int64N(2*block.Size) - block.Size
		} else {
			off = rng.Int64N(gib)
		}
		off = max(0, off)
		n := rng.IntN(3*block.Size) + 1
		p := make([]byte, n)
		got, err := v.ReadAt(p, off)
		want := min(int64(n), gib-off)
		if int(want) != got || (want < int64(n)) != (err == io.EOF) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d", n, off, got, err, want)
		}
		if !bytes.Equal(p[:got], e.want(t, off, got)) {
			t.Fatalf("ReadAt(%d bytes at %d): wrong bytes", n, off)
		}
	}
	// The partial block and the last block of the volume, whole.
	for _, i := range []int64{rawPartial, 2047} {
		if !bytes.Equal(readBlock(t, v, i), e.want(t, i*block.Size, block.Size)) {
			t.Fatalf("block %d: wrong bytes", i)
		}
	}
	got, err := v.Ranges()
	if err != nil {
		t.Fatal(err)
	}
	if want := rawRanges(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Ranges\n got %v\nwant %v", got, want)
	}
}

// Reads at and past the end, zero-length reads and a negative offset.
func TestReadEdges(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{})
	p := make([]byte, 20)
	if n, err := v.ReadAt(p, gib-10); n != 10 || err != io.EOF {
		t.Fatalf("read across the end: %d, %v; want 10, EOF", n, err)
	}
	if !bytes.Equal(p[:10], e.want(t, gib-10, 10)) {
		t.Fatal("read across the end: wrong bytes")
	}
	for _, off := range []int64{gib, gib + 1, 1 << 50} {
		if n, err := v.ReadAt(p, off); n != 0 || err != io.EOF {
			t.Fatalf("read at %d: %d, %v; want 0, EOF", off, n, err)
		}
	}
	if n, err := v.ReadAt(nil, 5); n != 0 || err != nil {
		t.Fatalf("zero-length read: %d, %v", n, err)
	}
	if _, err := v.ReadAt(p, -1); err == nil {
		t.Fatal("a negative offset was accepted")
	}
}

// Holes read as zeros without a Get, and a listed chunk is not listed
// again for them.
func TestHolesCostNoRequest(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{chunk: 100})
	lists := e.lists()
	for _, i := range []int64{4, 6, 13, 50, 98} { // holes of chunk 0
		if !bytes.Equal(readBlock(t, v, i), make([]byte, block.Size)) {
			t.Fatalf("hole %d is not zeros", i)
		}
	}
	if g := e.gets(); g != 0 {
		t.Fatalf("%d Gets for holes, want 0", g)
	}
	if l := e.lists(); l != lists {
		t.Fatalf("%d Lists for holes of a listed chunk, want none", l-lists)
	}
	if s := v.Stats(); s.Holes != 5 || s.GetCalls != 0 || s.Fetched != 0 {
		t.Fatalf("stats %+v, want 5 holes and no Get", s)
	}
	// The first page, of 100 blocks, held all 36: it listed the volume.
	if s := v.Stats(); s.ListedChunks != 21 || s.ListCalls != 1 {
		t.Fatalf("stats %+v: want all 21 chunks known from one List", s)
	}
}

// A chunk not listed yet costs one List, after which its holes cost
// nothing and its blocks one Get each.
func TestUnlistedChunk(t *testing.T) {
	e := newEnv(t, emulator.Options{}, synthID+"=1GiB,0.5,7")
	v := e.open(t, synthID, Options{chunk: 100, Readahead: -1})
	if s := v.Stats(); s.ListedChunks >= 18 {
		t.Fatalf("stats %+v: Open listed chunk 18 already; the test needs it unlisted", s)
	}
	l := e.lists()
	for i := int64(1800); i < 1900; i++ {
		readBlock(t, v, i)
	}
	s := v.Stats()
	if e.lists() != l+1 || s.Fetched != e.gets() || s.Fetched+s.Holes != 100 || s.Fetched == 0 || s.Holes == 0 {
		t.Fatalf("chunk 18: %d Lists, %d Gets, stats %+v; want 1 List, a Get per block and none per hole", e.lists()-l, e.gets(), s)
	}
}

// A read lists only its own chunk: a fully allocated volume is not
// listed beyond what is read, and only Ranges lists the rest, skipping
// what is known.
func TestListingIsLazy(t *testing.T) {
	e := newEnv(t, emulator.Options{}, synthID+"=16GiB,1,3") // 32,768 slots: chunks of 10,000
	v := e.open(t, synthID, Options{Readahead: -1})
	if l := e.lists(); l != 1 {
		t.Fatalf("Open made %d Lists, want 1", l)
	}
	readBlock(t, v, 25000)
	readBlock(t, v, 25001)
	readBlock(t, v, 3)
	if l, g := e.lists(), e.gets(); l != 2 || g != 3 {
		t.Fatalf("three reads in two chunks: %d Lists, %d Gets; want 2 and 3", l, g)
	}
	if s := v.Stats(); s.ListedChunks != 2 || s.Chunks != 4 || s.ListCalls != 2 {
		t.Fatalf("stats %+v: want 2 of 4 chunks listed in 2 calls", s)
	}
	got, err := v.Ranges()
	if err != nil {
		t.Fatal(err)
	}
	if want := []volume.Range{{Off: 0, Len: 16 * gib}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Ranges %v, want %v", got, want)
	}
	// Chunk 1 (one page, after which chunk 2 is known: the walk stops)
	// and chunk 3 (one page).
	if l := e.lists(); l != 4 {
		t.Fatalf("Ranges: %d Lists in all, want 4", l)
	}
	if _, err := v.Ranges(); err != nil || e.lists() != 4 {
		t.Fatalf("a second Ranges listed again (%d Lists, %v)", e.lists(), err)
	}
}

// Ranges of a sparse snapshot matches a listing through the bare SDK.
func TestRangesOfSparseSnapshot(t *testing.T) {
	e := newEnv(t, emulator.Options{}, synthID+"=2GiB,0.3,9")
	v := e.open(t, synthID, Options{chunk: 300})
	readBlock(t, v, 1500) // one chunk in the middle known before the walk
	got, err := v.Ranges()
	if err != nil {
		t.Fatal(err)
	}
	var want []volume.Range
	c := emulatortest.Client(t, e.endpoint)
	var token *string
	for {
		out, err := c.ListSnapshotBlocks(context.Background(), &ebsapi.ListSnapshotBlocksInput{SnapshotId: aws.String(synthID), NextToken: token, MaxResults: aws.Int32(10000)})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range out.Blocks {
			off := int64(*b.BlockIndex) * block.Size
			if k := len(want) - 1; k >= 0 && want[k].End() == off {
				want[k].Len += block.Size
			} else {
				want = append(want, volume.Range{Off: off, Len: block.Size})
			}
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Ranges gives %d extents, the listing %d", len(got), len(want))
	}
}

// Concurrent misses of one block make one Get.
func TestConcurrentMissesShareOneGet(t *testing.T) {
	e := newEnv(t, emulator.Options{Latency: 100 * time.Millisecond})
	v := e.open(t, rawID, Options{Readahead: -1})
	const readers = 16
	var wg sync.WaitGroup
	results := make([][]byte, readers)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 4096)
			if _, err := v.ReadAt(p, 7*block.Size+int64(r)*4096); err != nil {
				t.Error(err)
			}
			results[r] = p
		}()
	}
	wg.Wait()
	for r, p := range results {
		if !bytes.Equal(p, e.want(t, 7*block.Size+int64(r)*4096, 4096)) {
			t.Fatalf("reader %d: wrong bytes", r)
		}
	}
	if g := e.srv.BlockGets(rawID, 7); g != 1 {
		t.Fatalf("%d readers made %d Gets of block 7, want 1", readers, g)
	}
	if s := v.Stats(); s.Fetched != 1 || s.Hits+s.Shared != readers-1 {
		t.Fatalf("stats %+v: want 1 fetch and %d hits or shared", s, readers-1)
	}
}

// The cache holds at most its bound, least recently used evicted.
func TestCacheBound(t *testing.T) {
	e := newEnv(t, emulator.Options{}, synthID+"=1GiB,1,3")
	v := e.open(t, synthID, Options{CacheBytes: 4 * block.Size, Readahead: -1})
	first := readBlock(t, v, 0)
	for i := int64(1); i < 10; i += 2 { // not sequential: no readahead either way
		readBlock(t, v, i)
		if n := v.cache.len(); n > 4 {
			t.Fatalf("cache holds %d blocks, bound 4", n)
		}
	}
	g := e.gets()
	readBlock(t, v, 9) // most recent: cached
	if e.gets() != g {
		t.Fatal("the most recent block was fetched again")
	}
	if again := readBlock(t, v, 0); e.gets() != g+1 || !bytes.Equal(again, first) {
		t.Fatal("block 0, evicted, was not fetched again exactly")
	}
	if s := v.Stats(); s.Fetched != 7 || s.Hits != 1 || s.CachedBlocks != 4 {
		t.Fatalf("stats %+v: want 7 fetched, 1 hit, 4 cached", s)
	}
}

// Sequential reads start readahead of the allocated blocks after them,
// bounded by the window, never holes, never past the end.
func TestReadahead(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{chunk: 100, Readahead: 4})
	for i := int64(1000); i < 1008; i++ {
		if !bytes.Equal(readBlock(t, v, i), e.want(t, i*block.Size, block.Size)) {
			t.Fatalf("block %d: wrong bytes", i)
		}
	}
	v.settle()
	// The third read (1002) starts readahead; the last (1007) asks for
	// up to four blocks after it: 1011 at most.
	for i := int64(1000); i < 1020; i++ {
		want := 0
		if i <= 1011 {
			want = 1
		}
		if g := e.srv.BlockGets(rawID, i); g != want {
			t.Errorf("block %d: %d Gets, want %d", i, g, want)
		}
	}
	s := v.Stats()
	// Blocks 1008 to 1011 were fetched ahead; 1003 to 1007 by whichever
	// of the reader and readahead came first.
	if s.Readahead < 4 || s.Readahead > 9 || s.Fetched != 12 || s.GetCalls != 12 {
		t.Fatalf("stats %+v: want 12 fetched, 4 to 9 of them ahead", s)
	}
	// Blocks 7 to 12 run into holes (13 to 98): readahead skips them and
	// lists nothing new, Gets nothing but the blocks read.
	g := e.gets()
	for i := int64(7); i <= 12; i++ {
		readBlock(t, v, i)
	}
	v.settle()
	if d := e.gets() - g; d != 6 {
		t.Fatalf("reading blocks 7-12: %d Gets, want 6", d)
	}
	// The end of the volume: only block 2047 is allocated.
	g = e.gets()
	for i := int64(2040); i < 2048; i++ {
		readBlock(t, v, i)
	}
	v.settle()
	if d := e.gets() - g; d != 1 {
		t.Fatalf("reading the last blocks: %d Gets, want 1", d)
	}
	// Without readahead a read fetches exactly what it asks for.
	w := e.open(t, rawID, Options{chunk: 100, Readahead: -1})
	e.srv.ResetCounters()
	for i := int64(1000); i < 1010; i++ {
		readBlock(t, w, i)
	}
	if g := e.gets(); g != 10 {
		t.Fatalf("without readahead, 10 reads made %d Gets", g)
	}
}

// A block that fails verification after every retry gives an error
// wrapping volume.ErrCorrupt and ebs.VerifyError, never its bytes, and
// is not cached.
func TestDamagedBlocks(t *testing.T) {
	faults := map[int64]string{5: emulator.FaultBadChecksum, 8: emulator.FaultCorrupt, 9: emulator.FaultBadLength}
	var fail []emulator.BlockFault
	for i, kind := range faults {
		fail = append(fail, emulator.BlockFault{Snapshot: rawID, Index: i, Error: kind})
	}
	e := newEnv(t, emulator.Options{Faults: emulator.Faults{FailBlocks: fail}})
	v := e.open(t, rawID, Options{Readahead: -1})
	for i, kind := range faults {
		p := make([]byte, block.Size)
		n, err := v.ReadAt(p, i*block.Size)
		var ve *ebs.VerifyError
		if !errors.Is(err, volume.ErrCorrupt) || !errors.As(err, &ve) || ve.Index != i || n != 0 {
			t.Fatalf("block %d (%s): %d, %v; want 0 and a verification error", i, kind, n, err)
		}
		if !bytes.Equal(p, make([]byte, block.Size)) {
			t.Fatalf("block %d (%s): bytes were written into the buffer", i, kind)
		}
	}
	// A read across good blocks up to a damaged one counts the good ones.
	p := make([]byte, 3*block.Size)
	n, err := v.ReadAt(p, 7*block.Size)
	if !errors.Is(err, volume.ErrCorrupt) || n != block.Size || !bytes.Equal(p[:n], e.want(t, 7*block.Size, n)) {
		t.Fatalf("read of blocks 7-9: %d, %v; want %d good bytes and a verification error", n, err, block.Size)
	}
	g := e.srv.BlockGets(rawID, 5)
	if _, err := v.ReadAt(make([]byte, 1), 5*block.Size); !errors.Is(err, volume.ErrCorrupt) || e.srv.BlockGets(rawID, 5) != g+fastPolicy.MaxAttempts {
		t.Fatalf("a damaged block read again: %v after %d more Gets, want ErrCorrupt after %d", err, e.srv.BlockGets(rawID, 5)-g, fastPolicy.MaxAttempts)
	}
}

// Tokens past their expiry are refreshed by listing their chunk again,
// before any Get is refused.
func TestExpiredTokensListedAgain(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, emulator.Options{Now: clock, BlockTokenTTL: time.Hour})
	v := e.open(t, rawID, Options{Now: clock, Readahead: -1})
	readBlock(t, v, 0)
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if !bytes.Equal(readBlock(t, v, 1), e.want(t, block.Size, block.Size)) {
		t.Fatal("block 1: wrong bytes")
	}
	c := e.srv.Counters()
	if l := c.Total(emulator.OpListSnapshotBlocks); l != 2 {
		t.Fatalf("%d Lists, want 2 (Open, then the chunk again)", l)
	}
	if g, ok := c.Total(emulator.OpGetSnapshotBlock), c.Count(emulator.OpGetSnapshotBlock, emulator.OutcomeOK); g != 2 || ok != 2 {
		t.Fatalf("%d Gets, %d of them ok; want 2, no token refused", g, ok)
	}
}

// A token the service refuses (here: another listing invalidated it)
// makes the Volume list the chunk again and retry, even under a bare
// fetcher that does not refresh tokens itself.
func TestRefusedTokensListedAgain(t *testing.T) {
	e := newEnv(t, emulator.Options{InvalidateOnRelist: true})
	snap := e.snapshot(t, rawID)
	v, err := Open(context.Background(), snap, nil, Options{Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	readBlock(t, v, 0)
	c := emulatortest.Client(t, e.endpoint)
	if _, err := c.ListSnapshotBlocks(context.Background(), &ebsapi.ListSnapshotBlocksInput{SnapshotId: aws.String(rawID)}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlock(t, v, 1), e.want(t, block.Size, block.Size)) {
		t.Fatal("block 1: wrong bytes")
	}
	s := v.Stats()
	refused := e.srv.Counters().Count(emulator.OpGetSnapshotBlock, "ValidationException/INVALID_BLOCK_TOKEN")
	if s.ListCalls != 2 || s.GetCalls != 3 || refused != 1 {
		t.Fatalf("stats %+v, %d refused: want 2 Lists, 3 Gets, 1 refused", s, refused)
	}
}

// Tokens are kept for a bounded set of chunks; an evicted chunk is
// listed again for a block, but its allocation is remembered, so its
// holes cost nothing.
func TestTokenMemoryBound(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{chunk: 100, TokenBytes: 1, Readahead: -1})
	readBlock(t, v, 150) // chunk 1: chunk 0's tokens go
	if n, _ := v.tokens.stats(); n != 1 {
		t.Fatalf("%d chunks of tokens kept, want 1", n)
	}
	l := e.lists()
	readBlock(t, v, 4) // a hole of chunk 0
	if e.lists() != l {
		t.Fatal("a hole of an evicted chunk was listed again")
	}
	if !bytes.Equal(readBlock(t, v, 3), e.want(t, 3*block.Size, block.Size)) || e.lists() != l+1 {
		t.Fatalf("block 3 of an evicted chunk: %d Lists, want 1", e.lists()-l)
	}
}

// Many readers at once, over the whole volume, get exact bytes.
func TestConcurrentReaders(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{chunk: 100, CacheBytes: 8 * block.Size})
	var wg sync.WaitGroup
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for k := 0; k < 40; k++ {
				off := rawLayout[rng.IntN(len(rawLayout))]*block.Size + rng.Int64N(block.Size)
				n := rng.IntN(2*block.Size) + 1
				p := make([]byte, n)
				got, err := v.ReadAt(p, off)
				if err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				if !bytes.Equal(p[:got], e.want(t, off, got)) {
					t.Errorf("reader %d: wrong bytes at %d", r, off)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestReadAfterClose(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{})
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ReadAt(make([]byte, 10), 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read after Close: %v, want os.ErrClosed", err)
	}
	if _, err := v.Ranges(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Ranges after Close: %v, want os.ErrClosed", err)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Open refuses a snapshot that does not exist, with the service's error.
func TestOpenMissingSnapshot(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	snap := e.snapshot(t, "snap-0000000000000dead")
	_, err := Open(context.Background(), snap, nil, Options{})
	if ebs.KindOf(err) != ebs.KindNotFound {
		t.Fatalf("Open of a missing snapshot: %v, want not found", err)
	}
}

// Tokens another listing invalidated cost one refused Get: the fetch
// stack refreshes that block's token, and the Volume then lists the
// chunk again instead of having each of its blocks refused once.
func TestInvalidatedTokensCostOneRefusal(t *testing.T) {
	e := newEnv(t, emulator.Options{InvalidateOnRelist: true}, synthID+"=1GiB,1,3")
	v := e.open(t, synthID, Options{chunk: 100, Readahead: -1})
	readBlock(t, v, 0)
	if _, err := emulatortest.Client(t, e.endpoint).ListSnapshotBlocks(context.Background(), &ebsapi.ListSnapshotBlocksInput{SnapshotId: aws.String(synthID)}); err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i < 50; i++ {
		readBlock(t, v, i)
	}
	c := e.srv.Counters()
	refused := c.Count(emulator.OpGetSnapshotBlock, "ValidationException/INVALID_BLOCK_TOKEN")
	// Lists: Open's, the other listing, the fetch stack's re-list of the
	// refused block, the chunk listed again.
	if l, g := c.Total(emulator.OpListSnapshotBlocks), c.Total(emulator.OpGetSnapshotBlock); refused != 1 || l != 4 || g != 51 {
		t.Fatalf("%d Lists, %d Gets, %d refused; want 4, 51 and 1", l, g, refused)
	}
}
