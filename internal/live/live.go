package live

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/cost"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// Defaults of Options.
const (
	// DefaultCacheBytes bounds the block cache: 512 blocks.
	DefaultCacheBytes = 256 << 20
	// DefaultTokenBytes bounds the block tokens kept: a few chunks of
	// 10,000 tokens of up to 256 bytes each.
	DefaultTokenBytes = 8 << 20
	// DefaultReadahead is the most blocks fetched ahead of a sequential
	// reader: 8 MiB.
	DefaultReadahead = 16
	// DefaultWorkers bounds the fetches one read makes at once, and
	// separately those readahead makes.
	DefaultWorkers = 8
)

// chunkSlots is the block slots one listing chunk covers: the largest
// page ListSnapshotBlocks serves, so a chunk is one List call however
// full it is, and a whole 16 TiB volume is the 3,356 calls of a full
// listing.
const chunkSlots = ebs.MaxPage

// Options configures a Volume. The zero value takes every default.
type Options struct {
	// CacheBytes bounds the memory of cached blocks; 0 means
	// DefaultCacheBytes. At least one block is always cached.
	CacheBytes int64
	// TokenBytes bounds the memory of cached block tokens; 0 means
	// DefaultTokenBytes. The chunk in use is always kept.
	TokenBytes int64
	// Readahead is the most allocated blocks fetched ahead of a
	// sequential reader; 0 means DefaultReadahead, below 0 none.
	Readahead int
	// Workers bounds concurrent fetches of one read, and of readahead;
	// 0 means DefaultWorkers.
	Workers int
	// Evidence, when set, is called once with the snapshot's sizes and
	// returns where every fetched block is also stored (see EvidenceDir).
	Evidence func(ebs.Info) (Evidence, error)
	// Region prices the requests in Stats; empty means us-east-1's prices.
	Region string
	// Now is the clock that block token expiry is checked against;
	// default time.Now.
	Now func() time.Time

	chunk int64 // slots per listing chunk; tests make it small
}

// Evidence receives verified blocks; *store.Store is one.
type Evidence interface {
	// Has reports whether block index is already stored.
	Has(index int64) bool
	// Put stores a verified block whose data hashes to sum.
	Put(index int64, sum block.Sum, data []byte) error
	// Close makes what was stored durable.
	Close() error
}

// Volume is a snapshot read lazily through the EBS direct APIs. It is
// safe for concurrent use.
type Volume struct {
	snap  *ebs.Snapshot
	fetch ebs.Fetcher
	o     Options
	info  ebs.Info
	size  int64
	slots int64

	idx    *index
	tokens *tokenCache
	cache  *blockCache
	lists  group[int64, *tokenSet]
	gets   group[int64, []byte]
	ev     Evidence
	prices cost.Prices
	priced bool // the Region's own prices, not assumed

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	mu     sync.RWMutex // held shared by reads, exclusively by Close
	closed bool
	wg     sync.WaitGroup // readahead
	ra     chan struct{}  // readahead fetch slots
	seq    streams

	fetched, bytes, hits, shared, holes, ahead, stored atomic.Int64
}

var (
	_ volume.Volume     = (*Volume)(nil)
	_ volume.Identified = (*Volume)(nil)
)

// Open reads snapshot snap lazily. It lists the first chunk of the
// volume, which gives its size; fetch fetches verified blocks (the ebs
// stack of retry, rate cap and adaptive limit that acquire uses, built
// over snap); nil means snap itself, one attempt per block. snap.Stats
// counts the requests; Open sets it when nil. ctx bounds every request
// the Volume makes, until Close.
func Open(ctx context.Context, snap *ebs.Snapshot, fetch ebs.Fetcher, o Options) (*Volume, error) {
	if snap.Stats == nil {
		snap.Stats = &ebs.Stats{}
	}
	if fetch == nil {
		fetch = snap
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.TokenBytes <= 0 {
		o.TokenBytes = DefaultTokenBytes
	}
	if o.Readahead == 0 {
		o.Readahead = DefaultReadahead
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.chunk <= 0 {
		o.chunk = chunkSlots
	}
	v := &Volume{snap: snap, fetch: fetch, o: o,
		tokens: newTokenCache(o.TokenBytes),
		cache:  newBlockCache(max(1, int(o.CacheBytes/block.Size))),
		ra:     make(chan struct{}, o.Workers),
	}
	v.prices, v.priced = cost.PricesFor(o.Region)
	v.ctx, v.cancel = context.WithCancel(ctx)
	if _, err := v.chunkTokens(v.ctx, 0); err != nil {
		v.cancel()
		return nil, err
	}
	if o.Evidence != nil {
		var err error
		if v.ev, err = o.Evidence(v.info); err != nil {
			v.cancel()
			return nil, fmt.Errorf("opening evidence of %s: %w", snap.ID, err)
		}
	}
	return v, nil
}

// Info returns the snapshot's sizes, as its listing reports them.
func (v *Volume) Info() ebs.Info { return v.info }

// SnapshotID returns the snapshot read (volume.Identified).
func (v *Volume) SnapshotID() string { return v.snap.ID }

// Size returns the volume's size in bytes.
func (v *Volume) Size() int64 { return v.size }

// errClosed is returned by reads after Close.
var errClosed = fmt.Errorf("reading a live snapshot: %w", os.ErrClosed)

// ReadAt reads len(p) bytes at off. Blocks in holes read as zeros without
// a request; every other block is fetched (or taken from the cache) and
// verified. A block that fails verification after every retry gives an
// error wrapping volume.ErrCorrupt, and n counts only the bytes before it.
func (v *Volume) ReadAt(p []byte, off int64) (int, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.closed {
		return 0, errClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("reading at offset %d: negative offset", off)
	}
	if off >= v.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > v.size-off {
		p, eof = p[:v.size-off], io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	first, last := off/block.Size, (off+int64(len(p))-1)/block.Size
	v.readahead(first, last)
	if first == last {
		if err := v.copyBlock(p, off, first); err != nil {
			return 0, err
		}
		return len(p), eof
	}
	// Several blocks: fetch them at once, and report the first failure.
	errs := make([]error, last-first+1)
	g := errgroup.Group{}
	g.SetLimit(v.o.Workers)
	for i := first; i <= last; i++ {
		g.Go(func() error {
			from, to := max(off, i*block.Size), min(off+int64(len(p)), (i+1)*block.Size)
			errs[i-first] = v.copyBlock(p[from-off:to-off], from, i)
			return nil
		})
	}
	g.Wait()
	for k, err := range errs {
		if err != nil {
			return int(max(0, (first+int64(k))*block.Size-off)), err
		}
	}
	return len(p), eof
}

// copyBlock fills dst with the bytes of block i from volume offset off.
func (v *Volume) copyBlock(dst []byte, off, i int64) error {
	data, err := v.block(v.ctx, i, false)
	if err != nil {
		return err
	}
	in := off - i*block.Size
	n := 0
	if in < int64(len(data)) {
		n = copy(dst, data[in:])
	}
	clear(dst[n:]) // a hole, or past a short block's data
	return nil
}

// block returns block i's data: nil for a hole. ahead marks readahead.
func (v *Volume) block(ctx context.Context, i int64, ahead bool) ([]byte, error) {
	if data, ok := v.cache.get(i); ok {
		v.hits.Add(1)
		return data, nil
	}
	allocated, err := v.allocated(ctx, i)
	if err != nil {
		return nil, err
	}
	if !allocated {
		if !ahead {
			v.holes.Add(1)
		}
		return nil, nil
	}
	data, err, shared := v.gets.do(i, func() ([]byte, error) { return v.get(ctx, i, ahead) })
	if shared {
		v.shared.Add(1)
	}
	return data, err
}

// get fetches allocated block i, stores it as evidence when asked, and
// caches it.
func (v *Volume) get(ctx context.Context, i int64, ahead bool) ([]byte, error) {
	if data, ok := v.cache.get(i); ok { // fetched just before this call started
		v.hits.Add(1)
		return data, nil
	}
	ref, ts, err := v.ref(ctx, i, false)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, block.Size)
	refreshed := v.tokenRefreshes()
	blk, err := v.fetch.Fetch(ctx, ref, buf)
	if err == nil && v.tokenRefreshes() != refreshed {
		// The fetch stack refreshed a refused token (or another fetch
		// did meanwhile): the chunk's other tokens are likely refused
		// too, so the chunk is listed again when next needed, rather
		// than each of its blocks being refused once.
		v.tokens.drop(ts)
	}
	if err != nil && ebs.KindOf(err) == ebs.KindBlockToken {
		// The chunk's tokens were refused: list the chunk again and try
		// once more with the fresh token.
		v.tokens.drop(ts)
		if ref, _, err = v.ref(ctx, i, true); err != nil {
			return nil, err
		}
		blk, err = v.fetch.Fetch(ctx, ref, buf)
	}
	if err != nil {
		var ve *ebs.VerifyError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("reading block %d of %s: %w: %w", i, v.snap.ID, volume.ErrCorrupt, err)
		}
		return nil, fmt.Errorf("reading block %d of %s: %w", i, v.snap.ID, err)
	}
	if blk.Index != i {
		return nil, fmt.Errorf("reading block %d of %s: fetched block %d", i, v.snap.ID, blk.Index)
	}
	v.fetched.Add(1)
	v.bytes.Add(int64(len(blk.Data)))
	if ahead {
		v.ahead.Add(1)
	}
	if v.ev != nil && !v.ev.Has(i) {
		if err := v.ev.Put(i, blk.Sum, blk.Data); err != nil {
			return nil, fmt.Errorf("storing block %d of %s as evidence: %w", i, v.snap.ID, err)
		}
		v.stored.Add(1)
	}
	v.cache.add(i, blk.Data)
	return blk.Data, nil
}

// tokenRefreshes counts the refused tokens the fetch stack has refreshed.
func (v *Volume) tokenRefreshes() int64 {
	return v.snap.Stats.Counts().Retries[ebs.KindBlockToken.String()]
}

// allocated reports whether block i is allocated, listing its chunk if
// that has not been done.
func (v *Volume) allocated(ctx context.Context, i int64) (bool, error) {
	if a, known := v.idx.test(i); known {
		return a, nil
	}
	if _, err := v.chunkTokens(ctx, i/v.o.chunk); err != nil {
		return false, err
	}
	a, _ := v.idx.test(i)
	return a, nil
}

// ref returns a token for block i from its chunk's tokens, listing the
// chunk when they are not kept or have expired; fresh lists it anyway.
func (v *Volume) ref(ctx context.Context, i int64, fresh bool) (block.Ref, *tokenSet, error) {
	c := i / v.o.chunk
	var ts *tokenSet
	if !fresh {
		ts = v.tokens.get(c, v.o.Now())
	}
	if ts == nil {
		var err error
		if ts, err = v.chunkTokens(ctx, c); err != nil {
			return block.Ref{}, nil, err
		}
	}
	tok, ok := ts.token(i - c*v.o.chunk)
	if !ok {
		return block.Ref{}, nil, fmt.Errorf("reading block %d of %s: no longer listed", i, v.snap.ID)
	}
	return block.Ref{Index: i, Token: tok}, ts, nil
}

// chunkTokens lists chunk c once however many callers ask at a time,
// records its allocation and keeps its tokens.
func (v *Volume) chunkTokens(ctx context.Context, c int64) (*tokenSet, error) {
	ts, err, _ := v.lists.do(c, func() (*tokenSet, error) {
		return v.walk(ctx, c, int32(min(v.o.chunk, ebs.MaxPage)), true, func(cur int64) bool { return cur > c })
	})
	return ts, err
}

// Ranges lists every chunk not yet listed and returns the allocated
// extents. The listing walks the snapshot with full pages, so a sparse
// volume takes as few calls as its blocks fill; no token is kept from it.
func (v *Volume) Ranges() ([]volume.Range, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.closed {
		return nil, errClosed
	}
	for c := v.idx.nextUnlisted(0); c >= 0; c = v.idx.nextUnlisted(c) {
		// Stop at a chunk already listed, and go on after it.
		if _, err := v.walk(v.ctx, c, ebs.MaxPage, false, v.idx.isListed); err != nil {
			return nil, err
		}
	}
	return v.idx.ranges(), nil
}

// Close stops readahead, releases the caches and closes the evidence.
// Reads after Close fail.
func (v *Volume) Close() error {
	v.cancel()
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	v.mu.Unlock()
	v.wg.Wait()
	v.cache.clear()
	if v.ev != nil {
		if err := v.ev.Close(); err != nil {
			return fmt.Errorf("closing evidence of %s: %w", v.snap.ID, err)
		}
	}
	return nil
}

// Stats counts what a Volume did.
type Stats struct {
	// ListCalls and GetCalls are the requests made, retries included.
	ListCalls int64            `json:"list_calls"`
	GetCalls  int64            `json:"get_calls"`
	Retries   map[string]int64 `json:"retries_by_kind"`
	// Fetched blocks were verified; Readahead of them were fetched ahead
	// of a reader. Bytes is their data.
	Fetched   int64 `json:"fetched_blocks"`
	Readahead int64 `json:"readahead_blocks"`
	Bytes     int64 `json:"fetched_bytes"`
	// Hits were served from the cache; Shared waited for a fetch another
	// read had started; Holes read as zeros without a request.
	Hits   int64 `json:"cache_hits"`
	Shared int64 `json:"shared_fetches"`
	Holes  int64 `json:"holes"`
	// Stored blocks went into the evidence directory.
	Stored int64 `json:"stored_blocks"`
	// ListedChunks of the volume's Chunks are known; TokenChunks of them
	// have their tokens kept, in TokenBytes; CachedBlocks are cached.
	ListedChunks int64 `json:"listed_chunks"`
	Chunks       int64 `json:"chunks"`
	TokenChunks  int   `json:"token_chunks"`
	TokenBytes   int64 `json:"token_bytes"`
	CachedBlocks int   `json:"cached_blocks"`
	// CostUSD prices the requests at list prices, every GetSnapshotBlock
	// call counted (AWS bills the blocks returned, so this is an upper
	// bound); PriceAssumed says the Region's prices were not known and
	// us-east-1's were used.
	CostUSD      float64 `json:"cost_usd"`
	PriceAssumed bool    `json:"price_assumed"`
}

// Stats returns the counts so far.
func (v *Volume) Stats() Stats {
	c := v.snap.Stats.Counts()
	tc, tb := v.tokens.stats()
	v.idx.mu.Lock()
	listed := v.idx.listed
	v.idx.mu.Unlock()
	return Stats{
		ListCalls: c.ListCalls, GetCalls: c.GetCalls, Retries: c.Retries,
		Fetched: v.fetched.Load(), Readahead: v.ahead.Load(), Bytes: v.bytes.Load(),
		Hits: v.hits.Load(), Shared: v.shared.Load(), Holes: v.holes.Load(), Stored: v.stored.Load(),
		ListedChunks: listed, Chunks: v.idx.chunks(), TokenChunks: tc, TokenBytes: tb, CachedBlocks: v.cache.len(),
		CostUSD:      float64(c.ListCalls)/1000*v.prices.ListPer1000 + float64(c.GetCalls)/1000*v.prices.GetPer1000,
		PriceAssumed: !v.priced,
	}
}
