package raw

import (
	"sync"
	"sync/atomic"
)

// writebackEvery is how many bytes written start the kernel's write-back
// of an image's dirty pages. Without it a machine with plenty of memory
// keeps a whole image dirty (write-back starts at a share of RAM) and the
// final fsync writes all of it while the user waits; with it the disk
// writes while the download runs and the fsync finds little left.
const writebackEvery = 64 << 20

// writeback starts write-back of a set of segments in its own goroutine,
// each time writebackEvery more bytes have been written. It never waits
// for the disk in a writer's path, and it is only a head start: Close
// still syncs every segment.
type writeback struct {
	segs    *segments
	written atomic.Int64
	kick    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func startWriteback(s *segments) *writeback {
	wb := &writeback{segs: s, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(wb.done)
		for range wb.kick {
			for _, f := range s.files {
				startFileWriteback(f)
			}
		}
	}()
	return wb
}

// wrote counts n bytes written and kicks write-back at each threshold.
func (wb *writeback) wrote(n int) {
	after := wb.written.Add(int64(n))
	if after/writebackEvery != (after-int64(n))/writebackEvery {
		select {
		case wb.kick <- struct{}{}:
		default: // one is pending already
		}
	}
}

// stop ends the goroutine and waits for it, before the files are synced
// or closed. It may be called more than once.
func (wb *writeback) stop() {
	wb.once.Do(func() {
		close(wb.kick)
		<-wb.done
	})
}
