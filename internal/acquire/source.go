package acquire

import (
	"context"
	"errors"
	"sync"

	"github.com/ebsimager/ebsimager/internal/ebs"
)

// Source is where a run's blocks come from: a snapshot through the EBS
// direct APIs, or any other holder of verified blocks.
type Source interface {
	// Info says what volume the source holds. A caller learns it first
	// and opens its sink for it (an image of that size) before Run.
	Info(ctx context.Context) (ebs.Info, error)
	// List calls fn with pages of the blocks to fetch, from index start
	// upwards, in ascending order.
	List(ctx context.Context, start int64, fn func(ebs.Page) error) error
	// Fetcher returns the source's verified fetch, with its own retries,
	// under the limits of o that apply to it (o.Limiter's bound in
	// flight, at most o.MaxRate fetches a second, o.Account's turns; see
	// ebs.NewFetcher). Run calls it once.
	Fetcher(o ebs.FetchOptions) ebs.Fetcher
	// Counts returns the requests made so far.
	Counts() ebs.Counts
}

// errStop ends a listing early on purpose.
var errStop = errors.New("stop")

// Snapshot is an EBS snapshot as a Source: ListSnapshotBlocks lists it,
// and GetSnapshotBlock fetches through the verifying, retrying and
// limiting decorators of package ebs.
type Snapshot struct {
	snap  *ebs.Snapshot
	list  ListFunc
	first firstPage
}

var _ Source = (*Snapshot)(nil)

// NewSnapshot returns snap as a Source. snap.Stats, if set, counts its
// calls.
func NewSnapshot(snap *ebs.Snapshot) *Snapshot {
	if snap.Stats == nil {
		snap.Stats = &ebs.Stats{}
	}
	return &Snapshot{snap: snap, list: snap.List}
}

// Listing returns a Source that fetches as s does but lists with list:
// incremental acquisition lists only the changed blocks, through
// ListChangedBlocks. Info, too, comes from list's first page.
func (s *Snapshot) Listing(list ListFunc) *Snapshot {
	return &Snapshot{snap: s.snap, list: list}
}

// Info lists the snapshot's first page, which says its size, and keeps it
// for List: learning the size first costs no extra call.
func (s *Snapshot) Info(ctx context.Context) (ebs.Info, error) {
	return s.first.read(ctx, s.list)
}

// List lists the snapshot from index start (see ebs.Snapshot.List, or
// the list given to Listing),
// starting with the page Info kept when start is 0.
func (s *Snapshot) List(ctx context.Context, start int64, fn func(ebs.Page) error) error {
	return s.first.list(ctx, start, s.list, fn)
}

// Fetcher is the one fetch stack of a snapshot: a single verified
// GetSnapshotBlock attempt, under the adaptive limit, the account's turns
// and the rate cap, retried under the snapshot's policy with its tokens
// refreshed by listing again. The account knows it by o.Name, or by the
// snapshot's id when that is empty.
func (s *Snapshot) Fetcher(o ebs.FetchOptions) ebs.Fetcher {
	if o.Name == "" {
		o.Name = s.snap.ID
	}
	return ebs.NewFetcher(s.snap, o)
}

// Counts returns the snapshot's calls so far.
func (s *Snapshot) Counts() ebs.Counts { return s.snap.Stats.Counts() }

// ListFunc lists pages of blocks from index start upwards.
type ListFunc func(ctx context.Context, start int64, fn func(ebs.Page) error) error

// firstPage is the first page of a listing, read by Info and handed to
// the first List from index 0, so that learning a volume's size before
// opening its sink costs no call of its own. A listing goes on after it
// from the index after the last it covered (Page.Next), as after an
// expired page token.
type firstPage struct {
	mu   sync.Mutex
	page *ebs.Page
}

// read lists the first page with list and keeps it.
func (f *firstPage) read(ctx context.Context, list ListFunc) (ebs.Info, error) {
	var first *ebs.Page
	err := list(ctx, 0, func(p ebs.Page) error {
		first = &p
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return ebs.Info{}, err
	}
	if first == nil {
		return ebs.Info{}, errors.New("listing returned no page")
	}
	f.mu.Lock()
	f.page = first
	f.mu.Unlock()
	return first.Info, nil
}

// list lists from start with list, beginning with the kept first page
// (once) when start is 0.
func (f *firstPage) list(ctx context.Context, start int64, list ListFunc, fn func(ebs.Page) error) error {
	f.mu.Lock()
	p := f.page
	f.page = nil
	f.mu.Unlock()
	if p == nil || start != 0 {
		return list(ctx, start, fn)
	}
	if err := fn(*p); err != nil {
		return err
	}
	if !p.More {
		return nil
	}
	return list(ctx, p.Next, fn)
}
