package main

import (
	mathbits "math/bits"

	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
)

// incremental is the base of an incremental acquisition (acquire --base):
// the evidence of an earlier snapshot of the volume. Only the blocks that
// ListChangedBlocks reports are fetched; the base's other blocks are
// hard-linked or copied into the new evidence.
type incremental struct {
	base *store.Base
	copy bool

	changed  []uint64 // bitmap over the volume's slots: listed as added, changed or removed
	nChanged int64

	reused, linked, copied int64
	// bad are the base blocks that did not match the base's manifest:
	// not reused, fetched from the snapshot instead (refetch).
	bad []int64
}

// openIncremental checks that dir can serve as the base of an acquisition
// of snapshot id into out, stored in form for recipients.
func openIncremental(dir, id, out string, copy bool, form codec.Form, recipients []string) (*incremental, error) {
	if same, err := samePath(dir, out); err != nil {
		return nil, err
	} else if same {
		return nil, usagef("--base and --out name the same directory %s", dir)
	}
	b, err := store.OpenBase(dir)
	var imported *store.ImportedBaseError
	if errors.As(err, &imported) {
		return nil, usageError{err}
	}
	if err != nil {
		return nil, err
	}
	if b.Meta.SnapshotID == id {
		return nil, usagef("base %s holds evidence of %s itself: give the evidence of an earlier snapshot of the volume", dir, id)
	}
	if err := b.CheckForm(form, recipients); err != nil {
		return nil, err
	}
	return &incremental{base: b, copy: copy}, nil
}

func samePath(a, b string) (bool, error) {
	aa, err := filepath.Abs(a)
	if err != nil {
		return false, err
	}
	bb, err := filepath.Abs(b)
	if err != nil {
		return false, err
	}
	return aa == bb, nil
}

// list lists the blocks of snap to fetch through ListChangedBlocks from
// the base's snapshot: those snap lists (added or changed), each with the
// second snapshot's token. Every listed index, removed ones too, is
// marked changed, so the base's copy of it is not reused.
func (in *incremental) list(snap *ebs.Snapshot) func(ctx context.Context, start int64, fn func(ebs.Page) error) error {
	return func(ctx context.Context, start int64, fn func(ebs.Page) error) error {
		return snap.Changes(ctx, in.base.Meta.SnapshotID, start, func(cp ebs.ChangePage) error {
			if in.changed == nil {
				if err := in.checkInfo(cp.Info); err != nil {
					return err
				}
				in.changed = make([]uint64, (cp.Slots()+63)/64)
			}
			p := ebs.Page{Info: cp.Info, Expiry: cp.Expiry}
			for _, c := range cp.Changes {
				in.changed[c.Index/64] |= 1 << (c.Index % 64)
				in.nChanged++
				if c.SecondToken != "" {
					p.Refs = append(p.Refs, block.Ref{Index: c.Index, Token: c.SecondToken})
				}
			}
			return fn(p)
		})
	}
}

// checkInfo refuses a base of another volume size or block size.
func (in *incremental) checkInfo(info ebs.Info) error {
	m := in.base.Meta
	if info.VolumeGiB != m.VolumeSizeGiB || info.BlockSize != m.BlockSize {
		return fmt.Errorf("base %s holds a %d GiB volume in %d-byte blocks, %s is %d GiB in %d-byte blocks: not the same volume",
			in.base.Dir, m.VolumeSizeGiB, m.BlockSize, info.SnapshotID, info.VolumeGiB, info.BlockSize)
	}
	return nil
}

func (in *incremental) isChanged(index int64) bool {
	return index/64 < int64(len(in.changed)) && in.changed[index/64]&(1<<(index%64)) != 0
}

// reuse puts every block of the base that did not change into st, unless
// st already holds it (an interrupted run of the same command).
func (in *incremental) reuse(ctx context.Context, st *store.Store) error {
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
		if st.Has(e.Index) {
			in.reused++
			return nil
		}
		linked, err := st.Reuse(e, filepath.Join(in.base.Dir, filepath.FromSlash(e.Name)), in.copy)
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

// refetch fetches from snap, into st, the unchanged blocks whose base
// copy did not match the base's manifest, listing the snapshot from the
// first of them; o is the acquisition's options.
func (in *incremental) refetch(ctx context.Context, snap *ebs.Snapshot, st *store.Store, o acquire.Options) (acquire.Result, error) {
	if len(in.bad) == 0 {
		return acquire.Result{}, nil
	}
	want := make(map[int64]bool, len(in.bad))
	for _, i := range in.bad {
		want[i] = true
	}
	o.Start, o.List, o.Listed = in.bad[0], nil, nil
	o.Want = func(i int64) bool { return want[i] }
	o.Open = func(ebs.Info) (acquire.Sink, error) { return st, nil }
	res, err := acquire.New(snap, o).Run(ctx)
	if err != nil {
		return res, err
	}
	for _, i := range in.bad {
		if !st.Has(i) {
			return res, fmt.Errorf("block %d of base %s does not match the base's manifest, and %s does not list it to fetch instead", i, in.base.Dir, snap.ID)
		}
	}
	return res, nil
}

// record is what the chain-of-custody record and the summary say of the
// base.
func (in *incremental) record() *report.Base {
	return &report.Base{
		Directory: in.base.Dir, SnapshotID: in.base.Meta.SnapshotID, ManifestSHA256: in.base.ManifestSHA256,
		ChangedBlocks: in.nChanged, ReusedBlocks: in.reused, LinkedBlocks: in.linked, CopiedBlocks: in.copied,
		RejectedBlocks: int64(len(in.bad)),
	}
}

// markChanged marks the blocks ListChangedBlocks listed on the record's
// block map, in ascending order.
func (inc *incremental) markChanged(m *report.BlockMap) error {
	m.ChangedBase = inc.base.Meta.SnapshotID
	for w, bits := range inc.changed {
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
