package volume

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Concurrent readers of one block load it once; the cache never holds
// more than its bound of idle blocks; a failed load is not kept.
func TestBlockCache(t *testing.T) {
	var loads atomic.Int64
	gate := make(chan struct{})
	c := newBlockCache(100*block.Size, 4, func(i int64, buf []byte) error {
		loads.Add(1)
		if i == 0 {
			<-gate // hold the first load until every reader waits for it
		}
		if i == 13 {
			return errors.New("unreadable")
		}
		buf[0] = byte(i)
		return nil
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			p := make([]byte, 10)
			if n, err := c.readAt(p, 0); n != 10 || err != nil || p[0] != 0 {
				t.Errorf("readAt: %d, %v", n, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("8 readers of one block: %d loads", n)
	}
	p := make([]byte, 1)
	for i := int64(1); i < 40; i++ {
		if i == 13 {
			continue
		}
		if _, err := c.readAt(p, i*block.Size); err != nil || p[0] != byte(i) {
			t.Fatalf("block %d: %v, %d", i, err, p[0])
		}
	}
	if len(c.blocks) > 4 || loads.Load() != 39 {
		t.Fatalf("%d blocks cached (bound 4), %d loads", len(c.blocks), loads.Load())
	}
	for range 2 {
		if _, err := c.readAt(p, 13*block.Size); err == nil {
			t.Fatal("a failed load read")
		}
	}
	if loads.Load() != 41 {
		t.Fatalf("a failed load was kept: %d loads", loads.Load())
	}
	c.close()
	if _, err := c.readAt(p, 39*block.Size); !errors.Is(err, errClosed) {
		t.Fatalf("after close: %v", err)
	}
}
