package live

import (
	"container/list"
	"sort"
	"sync"
	"time"
)

// maxTokenLen bounds a block token taken from a listing: the EBS API
// model gives BlockToken a maximum length of 256.
const maxTokenLen = 256

// tokenSet holds the block tokens one listing of a chunk gave, packed:
// a fully allocated chunk of 10,000 slots costs its token bytes plus
// 60 KiB, not 10,000 strings and a map.
type tokenSet struct {
	chunk  int64
	expiry time.Time // the earliest expiry of its pages; zero: not given
	offs   []uint16  // slot offsets within the chunk, ascending
	ends   []uint32  // where each token ends in data
	data   []byte
}

// token returns the token of the slot at offset off in the chunk.
func (t *tokenSet) token(off int64) (string, bool) {
	k := sort.Search(len(t.offs), func(k int) bool { return int64(t.offs[k]) >= off })
	if k == len(t.offs) || int64(t.offs[k]) != off {
		return "", false
	}
	from := uint32(0)
	if k > 0 {
		from = t.ends[k-1]
	}
	return string(t.data[from:t.ends[k]]), true
}

// size is the memory the set holds, near enough.
func (t *tokenSet) size() int64 {
	return int64(cap(t.offs)*2 + cap(t.ends)*4 + cap(t.data))
}

// expired reports whether the tokens will have expired by now plus a
// margin that leaves a fetch time to use them.
func (t *tokenSet) expired(now time.Time) bool {
	return !t.expiry.IsZero() && !now.Add(tokenMargin).Before(t.expiry)
}

// tokenMargin is how long before their expiry tokens are listed again: a
// fetch under retry can take about a minute (ebs.Policy's defaults).
const tokenMargin = 2 * time.Minute

// tokenCache keeps the token sets of recently used chunks within a
// memory bound, least recently used evicted first. The set just added is
// always kept, whatever its size.
type tokenCache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	sets  map[int64]*list.Element // of *tokenSet
	order list.List               // most recently used at the front
}

func newTokenCache(max int64) *tokenCache {
	return &tokenCache{max: max, sets: map[int64]*list.Element{}}
}

// get returns chunk c's tokens unless they are absent or expired.
func (tc *tokenCache) get(c int64, now time.Time) *tokenSet {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	e, ok := tc.sets[c]
	if !ok {
		return nil
	}
	t := e.Value.(*tokenSet)
	if t.expired(now) {
		tc.remove(e)
		return nil
	}
	tc.order.MoveToFront(e)
	return t
}

// put keeps t, replacing any older set of its chunk, and evicts what no
// longer fits.
func (tc *tokenCache) put(t *tokenSet) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if e, ok := tc.sets[t.chunk]; ok {
		tc.remove(e)
	}
	tc.sets[t.chunk] = tc.order.PushFront(t)
	tc.used += t.size()
	for tc.used > tc.max && tc.order.Len() > 1 {
		tc.remove(tc.order.Back())
	}
}

// drop forgets t if it is still the set kept for its chunk (its tokens
// were refused); a newer set listed meanwhile stays.
func (tc *tokenCache) drop(t *tokenSet) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if e, ok := tc.sets[t.chunk]; ok && e.Value.(*tokenSet) == t {
		tc.remove(e)
	}
}

func (tc *tokenCache) remove(e *list.Element) {
	t := tc.order.Remove(e).(*tokenSet)
	delete(tc.sets, t.chunk)
	tc.used -= t.size()
}

// stats returns the chunks and bytes held.
func (tc *tokenCache) stats() (chunks int, bytes int64) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.order.Len(), tc.used
}
