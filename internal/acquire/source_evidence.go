package acquire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

// evidencePage is how many manifest entries one page of an evidence
// listing holds: a page's tokens are the entries themselves (a few
// hundred bytes each), so a page costs a few hundred KiB.
const evidencePage = 1000

// Evidence is a complete evidence directory as a Source: its manifest
// lists the blocks, in index order, and a fetch reads a block's stored
// file, checks its size and SHA-256 against the manifest entry, and
// decodes it to the block as it was served, checked against that SHA-256
// too (store.ReadStored, store.Decode): every read of evidence is
// verified. The manifest itself is checked against its header and, once
// listed to the end, its checksum file: a listing that does not match
// fails before its last page is handed out. Export (evidence to an
// image) and conversions (evidence to a new form of itself) run on it.
//
// A block's token is its manifest entry, so that a fetch needs nothing
// but its ref. Fetches fail for good, never to be retried: what is stored
// does not change when read again.
type Evidence struct {
	ev     *store.Evidence
	unseal store.Unseal
	// Check, when set, is called with each block's manifest entry before
	// its file is read; an error fails the fetch.
	Check func(manifest.Entry) error

	stored atomic.Int64
}

var _ Source = (*Evidence)(nil)

// NewEvidence returns ev as a Source whose sealed blocks unseal opens.
func NewEvidence(ev *store.Evidence, unseal store.Unseal) *Evidence {
	return &Evidence{ev: ev, unseal: unseal}
}

// Info is what evidence.json says of the volume.
func (s *Evidence) Info(context.Context) (ebs.Info, error) {
	return ebs.Info{SnapshotID: s.ev.Meta.SnapshotID, VolumeGiB: s.ev.Meta.VolumeSizeGiB, BlockSize: s.ev.Meta.BlockSize}, nil
}

// List streams the manifest's entries from index start in pages.
func (s *Evidence) List(ctx context.Context, start int64, fn func(ebs.Page) error) error {
	mr, c, err := s.ev.Manifest()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := s.ev.CheckHeader(mr.Header()); err != nil {
		return err
	}
	info, _ := s.Info(ctx)
	page := ebs.Page{Info: info}
	proved := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if e.Index < start {
			continue
		}
		token, err := json.Marshal(e)
		if err != nil {
			return err
		}
		ref := block.Ref{Index: e.Index, Token: string(token)}
		if !proved && e.Encryption != "none" {
			// The first sealed block is opened here, before any page is
			// handed out: a wrong key then names that block, whichever
			// worker would have met a sealed block first.
			proved = true
			if _, err := (evidenceFetcher{s}).Fetch(ctx, ref, make([]byte, block.Size)); err != nil {
				return err
			}
		}
		page.Refs = append(page.Refs, ref)
		if len(page.Refs) == evidencePage {
			page.More = true
			if err := fn(page); err != nil {
				return err
			}
			page.Refs = make([]block.Ref, 0, evidencePage)
		}
	}
	if err := s.ev.CheckManifestSum(mr.Sum()); err != nil {
		return err
	}
	page.More = false
	return fn(page)
}

// Fetcher reads blocks from the directory. Reads of local files need no
// rate, concurrency or account limit beyond the run's workers: the
// options are not used.
func (s *Evidence) Fetcher(ebs.FetchOptions) ebs.Fetcher { return evidenceFetcher{s} }

// Counts is empty: reading evidence makes no requests.
func (s *Evidence) Counts() ebs.Counts { return ebs.Counts{} }

// StoredBytes returns the stored bytes of the block files read so far.
func (s *Evidence) StoredBytes() int64 { return s.stored.Load() }

var storedPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

type evidenceFetcher struct{ s *Evidence }

// Fetch reads, checks and decodes the block ref names into buf, which
// must hold block.Size bytes.
func (f evidenceFetcher) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	s := f.s
	if err := ctx.Err(); err != nil {
		return block.Block{}, err
	}
	var e manifest.Entry
	if err := json.Unmarshal([]byte(ref.Token), &e); err != nil || e.Index != ref.Index {
		return block.Block{}, fmt.Errorf("block %d: not a ref listed by this evidence", ref.Index)
	}
	if s.Check != nil {
		if err := s.Check(e); err != nil {
			return block.Block{}, err
		}
	}
	if err := s.ev.CheckEntry(e); err != nil {
		return block.Block{}, err
	}
	stored := storedPool.Get().(*bytes.Buffer)
	defer storedPool.Put(stored)
	if err := s.ev.ReadStored(e, stored); err != nil {
		return block.Block{}, err
	}
	s.stored.Add(e.Size)
	data, err := store.Decode(e, stored.Bytes(), s.unseal, buf)
	if err != nil {
		return block.Block{}, err
	}
	if len(data) > 0 && &data[0] != &buf[0] {
		// A plain block is the stored bytes themselves: copy it out of
		// the pooled buffer.
		data = buf[:copy(buf, data)]
	}
	sum, err := e.Sum()
	if err != nil {
		return block.Block{}, err
	}
	return block.Block{Index: e.Index, Data: data, Sum: sum}, nil
}
