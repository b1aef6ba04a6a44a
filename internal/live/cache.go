package live

import (
	"container/list"
	"sync"
)

// blockCache is an LRU of fetched blocks holding at most max of them.
// Cached data is never written again, so a reader copies from it without
// a lock.
type blockCache struct {
	mu    sync.Mutex
	max   int
	items map[int64]*list.Element // of *cached
	order list.List               // most recently used at the front
}

type cached struct {
	index int64
	data  []byte
}

func newBlockCache(max int) *blockCache {
	return &blockCache{max: max, items: map[int64]*list.Element{}}
}

func (c *blockCache) get(i int64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[i]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cached).data, true
}

// has reports whether block i is cached, without touching its recency.
func (c *blockCache) has(i int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[i]
	return ok
}

func (c *blockCache) add(i int64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[i]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.items[i] = c.order.PushFront(&cached{index: i, data: data})
	for c.order.Len() > c.max {
		old := c.order.Remove(c.order.Back()).(*cached)
		delete(c.items, old.index)
	}
}

func (c *blockCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *blockCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.items)
	c.order.Init()
}

// group runs one call per key at a time: callers that ask for a key
// while its call runs wait for it and share its result (singleflight).
type group[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*call[V]
}

type call[V any] struct {
	done chan struct{}
	val  V
	err  error
}

// do runs fn for key unless a call for key is running, in which case it
// waits for that call; shared says so.
func (g *group[K, V]) do(key K, fn func() (V, error)) (v V, err error, shared bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[K]*call[V]{}
	}
	if c, ok := g.calls[key]; ok {
		g.mu.Unlock()
		<-c.done
		return c.val, c.err, true
	}
	c := &call[V]{done: make(chan struct{})}
	g.calls[key] = c
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	}()
	c.val, c.err = fn()
	return c.val, c.err, false
}

// busy reports whether a call for key is running.
func (g *group[K, V]) busy(key K) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.calls[key]
	return ok
}
