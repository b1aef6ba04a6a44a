package live

import (
	"context"
	"errors"
	"fmt"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// errStop ends a listing walk early.
var errStop = errors.New("stop")

// walk lists the snapshot from chunk c on, pageSize blocks a page, and
// records every chunk the listing passes in the index. A chunk is
// complete once its last slot or a block past it is listed, or the
// listing ends: a short or empty page says nothing of how far the
// service looked, so a sparse stretch is walked to its next block. done,
// asked after each page with the chunk in progress, ends the walk early.
// With keep, the tokens of every chunk completed are kept too, and
// those of chunk c are returned.
func (v *Volume) walk(ctx context.Context, c int64, pageSize int32, keep bool, done func(cur int64) bool) (*tokenSet, error) {
	var (
		cur        = c
		start, end int64
		bits       []uint64
		ts, first  *tokenSet
	)
	begin := func() {
		start, end = v.idx.span(cur)
		bits = make([]uint64, (end-start+63)/64)
		if keep {
			ts = &tokenSet{chunk: cur}
		}
	}
	// finish records chunk cur, and the chunks before chunk to as empty.
	finish := func(to int64) {
		v.idx.set(cur, bits)
		if keep && (cur == c || len(ts.offs) > 0) {
			v.tokens.put(ts)
			if cur == c {
				first = ts
			}
		}
		for cur++; cur < to; cur++ {
			v.idx.set(cur, nil)
		}
		if cur < v.idx.chunks() {
			begin()
		}
	}
	snap := *v.snap
	snap.PageSize = pageSize
	err := snap.List(ctx, c*v.o.chunk, func(p ebs.Page) error {
		if err := v.learn(p.Info); err != nil {
			return err
		}
		if bits == nil {
			begin()
		}
		for _, r := range p.Refs {
			if r.Index >= end {
				finish(r.Index / v.o.chunk)
			}
			if keep {
				if err := ts.add(r, start, p); err != nil {
					return err
				}
			}
			off := r.Index - start
			bits[off/64] |= 1 << (off % 64)
			if r.Index == end-1 {
				finish(cur + 1)
			}
		}
		// On the last page the listing ends anyway: going on records the
		// chunk in progress, which stopping here would leave unlisted.
		if cur >= v.idx.chunks() || (p.More && done(cur)) {
			return errStop
		}
		return nil
	})
	switch {
	case errors.Is(err, errStop):
	case err != nil:
		return nil, fmt.Errorf("listing blocks of %s from %d: %w", v.snap.ID, c*v.o.chunk, err)
	case cur < v.idx.chunks():
		finish(v.idx.chunks()) // the listing ended: nothing after its last block
	}
	if keep && first == nil {
		return nil, fmt.Errorf("listing blocks of %s from %d: the listing stopped before the end of the chunk", v.snap.ID, c*v.o.chunk)
	}
	return first, nil
}

// learn takes the volume's sizes from the first page listed, and refuses
// a later page that reports other sizes.
func (v *Volume) learn(info ebs.Info) error {
	if v.idx == nil { // Open's listing: nothing else runs yet
		v.info, v.size, v.slots = info, info.VolumeBytes(), info.Slots()
		v.idx = newIndex(v.slots, v.o.chunk)
		return nil
	}
	if info.VolumeGiB != v.info.VolumeGiB {
		return fmt.Errorf("volume size %d GiB, but %d GiB when first listed", info.VolumeGiB, v.info.VolumeGiB)
	}
	return nil
}

// add keeps r's token: r is in the chunk that starts at slot start, and
// listed in page p.
func (t *tokenSet) add(r block.Ref, start int64, p ebs.Page) error {
	if len(r.Token) > maxTokenLen {
		return fmt.Errorf("block %d: token of %d bytes, longer than the %d the API allows", r.Index, len(r.Token), maxTokenLen)
	}
	if !p.Expiry.IsZero() && (t.expiry.IsZero() || p.Expiry.Before(t.expiry)) {
		t.expiry = p.Expiry
	}
	t.offs = append(t.offs, uint16(r.Index-start))
	t.data = append(t.data, r.Token...)
	t.ends = append(t.ends, uint32(len(t.data)))
	return nil
}
