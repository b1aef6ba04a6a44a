package live

import "sync"

// maxStreams is how many sequential readers are told apart at once: a
// file-system walk interleaves a few.
const maxStreams = 4

// streams tells sequential readers apart: a read that starts in or just
// after the last block some earlier read ended in continues that
// reader's stream.
type streams struct {
	mu   sync.Mutex
	s    [maxStreams]stream
	tick int64
}

type stream struct {
	last  int64 // the last block read
	run   int   // consecutive reads that moved on to a new block
	ahead int64 // the last block scheduled ahead
	used  int64 // tick of the last read; 0: unused
}

// next records a read of blocks first..last and returns the blocks to
// fetch ahead of it, from..to inclusive (from > to: none).
func (ss *streams) next(first, last int64, window int) (from, to int64) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.tick++
	var s *stream
	for k := range ss.s {
		c := &ss.s[k]
		if c.used != 0 && (first == c.last || first == c.last+1) && last >= c.last {
			s = c
			break
		}
	}
	if s == nil { // a new stream, in the least recently used slot
		s = &ss.s[0]
		for k := range ss.s {
			if ss.s[k].used < s.used {
				s = &ss.s[k]
			}
		}
		*s = stream{last: last, run: 1, ahead: last}
	} else if last > s.last {
		s.last = last
		s.run++
	}
	s.used = ss.tick
	// Readahead starts at the third block read in sequence, so that a
	// reader probing two neighbouring blocks fetches nothing it did not
	// ask for, and doubles with every read after that.
	if s.run < 3 {
		return 1, 0
	}
	w := int64(window)
	if s.run-2 < 20 {
		w = min(w, 1<<(s.run-2))
	}
	from, to = max(s.ahead, last)+1, last+w
	if to >= from {
		s.ahead = to
	}
	return from, to
}

// readahead schedules the allocated blocks after a read of first..last
// that continues a sequential stream: never a hole, never past the end,
// never one cached or already being fetched, and at most Workers fetches
// at once. A read never waits for it.
func (v *Volume) readahead(first, last int64) {
	if v.o.Readahead < 0 {
		return
	}
	from, to := v.seq.next(first, last, v.o.Readahead)
	to = min(to, v.slots-1)
	if from > to {
		return
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		for i := from; i <= to; i++ {
			allocated, err := v.allocated(v.ctx, i)
			if err != nil {
				return // the reader will meet the error itself
			}
			if !allocated || v.cache.has(i) || v.gets.busy(i) {
				continue
			}
			select {
			case v.ra <- struct{}{}:
			case <-v.ctx.Done():
				return
			}
			v.wg.Add(1)
			go func() {
				defer v.wg.Done()
				defer func() { <-v.ra }()
				v.block(v.ctx, i, true) //nolint:errcheck // the reader will meet the error itself
			}()
		}
	}()
}
