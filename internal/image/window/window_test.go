package window

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/sink"
)

type recorder struct {
	mu    sync.Mutex
	order []int64
	data  map[int64]byte
}

func (r *recorder) WriteBlock(index int64, p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.order = append(r.order, index)
	r.data[index] = p[0]
	return nil
}

func (r *recorder) Close() (sink.Result, error) { return sink.Result{}, nil }

func (r *recorder) Abort() error { return nil }

func TestReordersUnderConcurrency(t *testing.T) {
	const n = 2000
	rec := &recorder{data: map[int64]byte{}}
	w := New(rec, 16)
	var listed []int64
	for i := int64(0); i < n; i++ {
		if i%3 != 1 { // gaps, as unlisted blocks
			w.Announce(i)
			listed = append(listed, i)
		}
	}
	// Workers take blocks in listing order but finish in random order.
	work := make(chan int64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if rand.IntN(4) == 0 {
					for range rand.IntN(1000) {
						_ = rand.Int()
					}
				}
				if err := w.Put(block.Block{Index: i, Data: []byte{byte(i)}}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for _, i := range listed {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := w.Done(); err != nil {
		t.Fatal(err)
	}
	if len(rec.order) != len(listed) {
		t.Fatalf("wrote %d blocks, want %d", len(rec.order), len(listed))
	}
	for k, i := range rec.order {
		if i != listed[k] || rec.data[i] != byte(i) {
			t.Fatalf("position %d: block %d (data %d), want %d", k, i, rec.data[i], listed[k])
		}
	}
	if w.Peak() > 16 {
		t.Fatalf("held %d blocks, bound 16", w.Peak())
	}
}

func TestCancelWakesWaiters(t *testing.T) {
	w := New(&recorder{data: map[int64]byte{}}, 1)
	for i := int64(0); i < 3; i++ {
		w.Announce(i)
	}
	if err := w.Put(block.Block{Index: 1, Data: []byte{1}}); err != nil { // held: the window is now full
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- w.Put(block.Block{Index: 2, Data: []byte{2}}) }() // waits for room
	w.Cancel()
	if err := <-done; err != ErrCanceled {
		t.Fatalf("waiting Put after Cancel: %v", err)
	}
	if err := w.Done(); err == nil {
		t.Fatal("Done with blocks missing reported no error")
	}
}
