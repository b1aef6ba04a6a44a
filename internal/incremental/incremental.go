package incremental

import (
	"context"
	"errors"
	"fmt"
	mathbits "math/bits"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/store"
)

// Base is the base of an incremental acquisition: the evidence of an
// earlier snapshot of the volume, and what the acquisition did with it.
type Base struct {
	base *store.Base
	copy bool

	changed  []uint64 // bitmap over the volume's slots: listed as added, changed or removed
	nChanged int64

	reused, linked, copied int64
	// bad are the base blocks that did not match the base's manifest:
	// not reused, fetched from the snapshot instead (refetch).
	bad []int64
}

// Open opens the evidence in dir as the base of an acquisition stored in
// form for recipients; copy copies the unchanged blocks instead of
// hard-linking them. Evidence imported from the original tool is refused
// with a *store.ImportedBaseError.
func Open(dir string, copy bool, form codec.Form, recipients []string) (*Base, error) {
	b, err := store.OpenBase(dir)
	if err != nil {
		return nil, err
	}
	return newBase(b, copy, form, recipients)
}

// OpenBucket opens the evidence in b (S3) as the base of an acquisition
// stored in form for recipients, as Open opens a directory. Its blocks
// are always copied: each object is read and checked against the base's
// manifest before it is stored again.
func OpenBucket(ctx context.Context, b bucket.Bucket, form codec.Form, recipients []string) (*Base, error) {
	base, err := store.OpenBaseBucket(ctx, b)
	if err != nil {
		return nil, err
	}
	return newBase(base, true, form, recipients)
}

func newBase(b *store.Base, copy bool, form codec.Form, recipients []string) (*Base, error) {
	if err := b.CheckForm(form, recipients); err != nil {
		return nil, err
	}
	return &Base{base: b, copy: copy}, nil
}

// Dir is the base's evidence directory.
func (in *Base) Dir() string { return in.base.Dir }

// SnapshotID is the snapshot the base holds.
func (in *Base) SnapshotID() string { return in.base.Meta.SnapshotID }

// Source returns snap as a source that lists through ListChangedBlocks
// from the base's snapshot: the blocks snap lists (added or changed),
// each with the second snapshot's token. Every listed index, removed ones
// too, is marked changed, so the base's copy of it is not reused. Its
// Info refuses a snapshot of another volume size than the base's.
func (in *Base) Source(snap *ebs.Snapshot) *acquire.Snapshot {
	return acquire.NewSnapshot(snap).Listing(func(ctx context.Context, start int64, fn func(ebs.Page) error) error {
		return snap.Changes(ctx, in.base.Meta.SnapshotID, start, func(cp ebs.ChangePage) error {
			if in.changed == nil {
				if err := in.checkInfo(cp.Info); err != nil {
					return err
				}
				in.changed = make([]uint64, (cp.Slots()+63)/64)
			}
			p := ebs.Page{Info: cp.Info, Expiry: cp.Expiry, More: cp.More, Next: cp.Next}
			for _, c := range cp.Changes {
				in.changed[c.Index/64] |= 1 << (c.Index % 64)
				in.nChanged++
				if c.SecondToken != "" {
					p.Refs = append(p.Refs, block.Ref{Index: c.Index, Token: c.SecondToken})
				}
			}
			return fn(p)
		})
	})
}

// checkInfo refuses a base of another volume size or block size.
func (in *Base) checkInfo(info ebs.Info) error {
	m := in.base.Meta
	if info.VolumeGiB != m.VolumeSizeGiB || info.BlockSize != m.BlockSize {
		return fmt.Errorf("base %s holds a %d GiB volume in %d-byte blocks, %s is %d GiB in %d-byte blocks: not the same volume",
			in.base.Dir, m.VolumeSizeGiB, m.BlockSize, info.SnapshotID, info.VolumeGiB, info.BlockSize)
	}
	return nil
}

func (in *Base) isChanged(index int64) bool {
	return index/64 < int64(len(in.changed)) && in.changed[index/64]&(1<<(index%64)) != 0
}

// dest is the evidence an incremental acquisition completes: an
// evidence directory or evidence in a bucket.
type dest struct {
	has func(index int64) bool
	// link takes a base directory's file into an evidence directory
	// (hard-linked, or copied); nil for evidence in a bucket.
	link func(e manifest.Entry, src string, copy bool) (linked bool, err error)
	// put stores a base block's stored bytes, read and checked.
	put  func(e manifest.Entry, data []byte) error
	sink sink.Sink
}

// Complete makes st complete once the changed blocks are in it: it takes
// every unchanged block of the base into st, then fetches from snap the
// unchanged blocks whose base copy did not match the base's manifest,
// under o's limits. res is the run of the changed blocks; Complete adds
// what it fetched, and the reuse to its time.
func (in *Base) Complete(ctx context.Context, snap *ebs.Snapshot, st *store.Store, o acquire.Options, res *acquire.Result) error {
	return in.complete(ctx, snap, dest{has: st.Has, link: st.Reuse, put: st.ReuseStored, sink: st.Sink()}, o, res)
}

// CompleteRemote is Complete for evidence in a bucket (S3): every
// unchanged block of the base is read, checked against the base's
// manifest, and written once to r with its stored SHA-256.
func (in *Base) CompleteRemote(ctx context.Context, snap *ebs.Snapshot, r *store.Remote, o acquire.Options, res *acquire.Result) error {
	return in.complete(ctx, snap, dest{has: r.Has, put: r.ReuseStored, sink: r}, o, res)
}

func (in *Base) complete(ctx context.Context, snap *ebs.Snapshot, d dest, o acquire.Options, res *acquire.Result) error {
	reuse := in.reuse
	if in.base.InBucket() || d.link == nil {
		reuse = in.reuseStored
	}
	if err := reuse(ctx, d); err != nil {
		return fmt.Errorf("taking unchanged blocks from %s: %w", in.base.Dir, err)
	}
	r2, err := in.refetch(ctx, snap, d, o)
	res.Stored, res.Bytes = res.Stored+r2.Stored, res.Bytes+r2.Bytes
	if len(in.bad) > 0 {
		res.Counts = r2.Counts
	}
	if err != nil {
		return fmt.Errorf("fetching the blocks of %s that did not match its manifest: %w", in.base.Dir, err)
	}
	res.Finished = time.Now() // the reuse is part of the acquisition
	return nil
}

// reuse puts every block of the base directory that did not change into
// the evidence directory, unless it already holds it (an interrupted run
// of the same command).
func (in *Base) reuse(ctx context.Context, d dest) error {
	if in.changed == nil {
		return fmt.Errorf("reusing blocks of %s: the changes were not listed", in.base.Dir)
	}
	return in.base.Entries(func(e manifest.Entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if in.isChanged(e.Index) {
			return nil
		}
		if d.has(e.Index) {
			in.reused++
			return nil
		}
		linked, err := d.link(e, in.base.Path(e), in.copy)
		var bad *store.BadSourceError
		if errors.As(err, &bad) {
			in.bad = append(in.bad, e.Index)
			return nil
		}
		if err != nil {
			return err
		}
		in.reused++
		if linked {
			in.linked++
		} else {
			in.copied++
		}
		return nil
	})
}

// reuseWorkers is how many base blocks reuseStored reads and stores at
// once: each is a GET or a PUT (or both) when a bucket is involved, so
// concurrency, not bandwidth, sets the pace.
const reuseWorkers = 16

// reuseStored puts every block of the base that did not change into d
// by its bytes, reuseWorkers at a time: read from the base (a bucket or
// a directory), checked against the base's manifest entry, and stored
// in d (a directory or a bucket), which checks them once more. A block
// that does not match is not stored: it is fetched from the snapshot
// (refetch).
func (in *Base) reuseStored(ctx context.Context, d dest) error {
	if in.changed == nil {
		return fmt.Errorf("reusing blocks of %s: the changes were not listed", in.base.Dir)
	}
	g, gctx := errgroup.WithContext(ctx)
	todo := make(chan manifest.Entry, reuseWorkers)
	var mu sync.Mutex
	for range reuseWorkers {
		g.Go(func() error {
			for e := range todo {
				data, err := in.base.ReadStored(gctx, e)
				if err == nil {
					err = d.put(e, data)
				}
				var bad *store.BadSourceError
				mu.Lock()
				switch {
				case errors.As(err, &bad):
					in.bad = append(in.bad, e.Index)
					err = nil
				case err == nil:
					in.reused++
					in.copied++
				}
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(todo)
		return in.base.Entries(func(e manifest.Entry) error {
			if in.isChanged(e.Index) {
				return nil
			}
			if d.has(e.Index) {
				mu.Lock()
				in.reused++
				mu.Unlock()
				return nil
			}
			select {
			case todo <- e:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	err := g.Wait()
	slices.Sort(in.bad) // refetch lists from the first
	return err
}

// refetch fetches from snap, into st, the unchanged blocks whose base
// copy did not match the base's manifest, listing the snapshot from the
// first of them; o is the acquisition's options.
func (in *Base) refetch(ctx context.Context, snap *ebs.Snapshot, d dest, o acquire.Options) (acquire.Result, error) {
	if len(in.bad) == 0 {
		return acquire.Result{}, nil
	}
	want := make(map[int64]bool, len(in.bad))
	for _, i := range in.bad {
		want[i] = true
	}
	o.Start, o.Progress = in.bad[0], nil
	o.Want = func(i int64) bool { return want[i] }
	// Into a second view of the evidence (Run neither closes nor aborts
	// it): the caller closes its own, once.
	res, err := acquire.New(acquire.NewSnapshot(snap), o).Run(ctx, d.sink)
	if err != nil {
		return res, err
	}
	for _, i := range in.bad {
		if !d.has(i) {
			return res, fmt.Errorf("block %d of base %s does not match the base's manifest, and %s does not list it to fetch instead", i, in.base.Dir, snap.ID)
		}
	}
	return res, nil
}

// Taken is how many blocks Complete took into the evidence beside the
// changed ones: reused from the base, or fetched because the base's copy
// was bad.
func (in *Base) Taken() int64 { return in.reused + int64(len(in.bad)) }

// Record is what the chain-of-custody record and the summary say of the
// base.
func (in *Base) Record() *report.Base {
	return &report.Base{
		Directory: in.base.Dir, SnapshotID: in.base.Meta.SnapshotID, ManifestSHA256: in.base.ManifestSHA256,
		ChangedBlocks: in.nChanged, ReusedBlocks: in.reused, LinkedBlocks: in.linked, CopiedBlocks: in.copied,
		RejectedBlocks: int64(len(in.bad)),
	}
}

// MarkChanged marks the blocks ListChangedBlocks listed on the record's
// block map, in ascending order.
func (in *Base) MarkChanged(m *report.BlockMap) error {
	m.ChangedBase = in.base.Meta.SnapshotID
	for w, bits := range in.changed {
		for bits != 0 {
			b := bits & -bits
			if err := m.AddChanged(int64(w)*64 + int64(mathbits.TrailingZeros64(b))); err != nil {
				return err
			}
			bits ^= b
		}
	}
	return nil
}
