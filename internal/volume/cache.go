package volume

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
)

// DefaultCacheBlocks is how many 512 KiB blocks an evidence volume or an
// Overlay keeps decoded: 16 MiB, enough for the inode tables or the MFT
// that a file-system map walks through in order.
const DefaultCacheBlocks = 32

// blockCache keeps the most recently used blocks of a volume, each
// loaded (read, decoded and verified) once however many readers want it
// at the same time. It holds at most max blocks that no reader is
// copying from; a block being copied is never reused under the reader.
type blockCache struct {
	size int64 // the volume's size in bytes
	load func(index int64, buf []byte) error

	mu     sync.Mutex
	closed bool
	max    int
	tick   uint64
	blocks map[int64]*slot
	spare  [][]byte // buffers of evicted blocks, to reuse
}

// slot is one block: loading until ready is closed, then data or err.
type slot struct {
	data  []byte
	err   error
	ready chan struct{}
	used  uint64
	refs  int // readers copying from data
}

// newBlockCache returns a cache over a volume of size bytes whose blocks
// load fills (buf holds block.Size zeros; a hole leaves them). load may
// run for several blocks at once.
func newBlockCache(size int64, max int, load func(index int64, buf []byte) error) *blockCache {
	if max <= 0 {
		max = DefaultCacheBlocks
	}
	return &blockCache{size: size, load: load, max: max, blocks: make(map[int64]*slot, max)}
}

// readAt serves p at off, block by block, with io.ReaderAt's semantics.
func (c *blockCache) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading at offset %d: negative offset", off)
	}
	n := 0
	for n < len(p) {
		if off >= c.size {
			return n, io.EOF
		}
		idx, within := off/block.Size, off%block.Size
		s, err := c.get(idx)
		if err != nil {
			return n, err
		}
		m := copy(p[n:], s.data[within:min(block.Size, within+c.size-off)])
		c.release(s)
		n += m
		off += int64(m)
	}
	return n, nil
}

// get returns block idx, loaded, with a reference the caller releases.
func (c *blockCache) get(idx int64) (*slot, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	c.tick++
	if s, ok := c.blocks[idx]; ok {
		s.refs++
		s.used = c.tick
		c.mu.Unlock()
		<-s.ready
		if s.err != nil {
			c.release(s)
			return nil, s.err
		}
		return s, nil
	}
	s := &slot{ready: make(chan struct{}), used: c.tick, refs: 1}
	c.blocks[idx] = s
	buf := c.buffer()
	c.mu.Unlock()

	err := c.load(idx, buf)
	c.mu.Lock()
	if err != nil {
		s.err = err
		delete(c.blocks, idx) // the next reader tries again
		if len(c.spare) < 2 {
			c.spare = append(c.spare, buf)
		}
	} else {
		s.data = buf
	}
	close(s.ready)
	c.mu.Unlock()
	if err != nil {
		c.release(s)
		return nil, err
	}
	return s, nil
}

// buffer returns a zeroed block buffer, evicting the least recently used
// idle block when the cache is full. c.mu is held.
func (c *blockCache) buffer() []byte {
	for len(c.blocks) > c.max {
		var (
			oldest int64 = -1
			at           = ^uint64(0)
		)
		for i, s := range c.blocks {
			if s.refs == 0 && s.used < at {
				oldest, at = i, s.used
			}
		}
		if oldest < 0 {
			break
		}
		c.spare = append(c.spare, c.blocks[oldest].data)
		delete(c.blocks, oldest)
	}
	if n := len(c.spare); n > 0 {
		buf := c.spare[n-1]
		c.spare = c.spare[:n-1]
		clear(buf)
		// More than one spare only after a failed load: let the rest go.
		c.spare = c.spare[:0]
		return buf
	}
	// Every block is in use by a reader: the cache grows by one for as
	// long as that lasts (at most one block per concurrent reader).
	return make([]byte, block.Size)
}

// errClosed is a read after Close.
var errClosed = errors.New("reading a closed volume")

// close drops the cached blocks; reads fail from now on.
func (c *blockCache) close() {
	c.mu.Lock()
	c.closed = true
	c.blocks, c.spare = nil, nil
	c.mu.Unlock()
}

// release drops a reader's reference to s.
func (c *blockCache) release(s *slot) {
	c.mu.Lock()
	s.refs--
	c.mu.Unlock()
}
