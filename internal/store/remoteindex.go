package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// RemoteIndex reads the entries of the manifest of evidence in a bucket
// on demand, so that a reader of a large volume keeps no entry per
// block: it holds, per leaf of leafSize blocks that has entries, where
// their lines lie in manifest.jsonl and a SHA-256 of the entries read
// there when the index was made (~60 bytes per 10,000 blocks), and a
// cache of the last remoteIndexCache leaves' entries. A leaf is read
// back with one ranged GET, and refused unless it holds the same
// entries (ErrCorrupt): a manifest changed after it was checked is
// never believed.
type RemoteIndex struct {
	b     bucket.Bucket
	meta  Meta
	spans map[int64]leafSpan
	// Blocks is how many entries the manifest holds.
	Blocks int64

	mu    sync.Mutex
	cache []cachedLeaf // most recently used last
}

// remoteIndexCache is how many leaves' entries a RemoteIndex keeps
// (about 4 MiB each).
const remoteIndexCache = 4

type leafSpan struct {
	off, end int64     // the leaf's lines in the manifest
	n        int       // its entries
	sum      block.Sum // of its entries, as entriesDigest hashes them
}

type cachedLeaf struct {
	leaf    int64
	entries []manifest.Entry
}

// OpenRemoteIndex reads the manifest of complete evidence in b once, as
// a stream: checked against evidence.json, each entry's name, and its
// .sha256 object; each entry is given to each (if not nil) in index
// order, and the index of the leaves is kept. ErrIncomplete when there
// is no manifest.
func OpenRemoteIndex(ctx context.Context, b bucket.Bucket, meta Meta, each func(manifest.Entry) error) (*RemoteIndex, error) {
	rd, err := bucket.NewReader(ctx, b, ManifestName, remoteManifestMax(meta))
	if errors.Is(err, bucket.ErrNotFound) {
		return nil, ErrIncomplete
	}
	if err != nil {
		return nil, err
	}
	ix := &RemoteIndex{b: b, meta: meta, spans: map[int64]leafSpan{}}
	h := sha256.New()
	tee := io.TeeReader(rd, h)
	perr := ix.read(tee, each)
	if perr != nil {
		if _, err := io.Copy(io.Discard, tee); err != nil {
			return nil, err
		}
	}
	// A manifest that does not match its .sha256 is reported as such,
	// before anything its entries say.
	if err := checkRemoteSum(ctx, b, hex.EncodeToString(h.Sum(nil))); err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	return ix, nil
}

// read indexes the manifest read from r.
func (ix *RemoteIndex) read(r io.Reader, each func(manifest.Entry) error) error {
	ev := &Evidence{Meta: ix.meta}
	mr, err := manifest.NewReader(r)
	if err != nil {
		return err
	}
	if err := ev.checkHeader(mr.Header()); err != nil {
		return err
	}
	var (
		cur  = int64(-1)
		span leafSpan
		d    = newEntryDigest()
	)
	closeSpan := func() {
		if cur >= 0 {
			span.sum = d.sum()
			ix.spans[cur] = span
		}
	}
	for {
		start := mr.Offset()
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			closeSpan()
			return nil
		}
		if err != nil {
			return err
		}
		if err := ev.checkEntry(e); err != nil {
			return err
		}
		if leaf := e.Index / leafSize; leaf != cur {
			closeSpan()
			cur, span, d = leaf, leafSpan{off: start}, newEntryDigest()
		}
		if err := d.add(e); err != nil {
			return err
		}
		span.end, span.n = mr.Offset(), span.n+1
		ix.Blocks++
		if each != nil {
			if err := each(e); err != nil {
				return err
			}
		}
	}
}

// Entry returns the entry of block i, and whether the manifest lists it.
func (ix *RemoteIndex) Entry(ctx context.Context, i int64) (manifest.Entry, bool, error) {
	es, err := ix.leaf(ctx, i/leafSize)
	if err != nil {
		return manifest.Entry{}, false, err
	}
	lo, hi := 0, len(es)
	for lo < hi {
		m := (lo + hi) / 2
		if es[m].Index < i {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(es) && es[lo].Index == i {
		return es[lo], true, nil
	}
	return manifest.Entry{}, false, nil
}

// leaf returns the entries of leaf, from the cache or read back.
func (ix *RemoteIndex) leaf(ctx context.Context, leaf int64) ([]manifest.Entry, error) {
	span, ok := ix.spans[leaf]
	if !ok {
		return nil, nil
	}
	ix.mu.Lock()
	for k, c := range ix.cache {
		if c.leaf == leaf {
			ix.cache = append(append(ix.cache[:k:k], ix.cache[k+1:]...), c)
			ix.mu.Unlock()
			return c.entries, nil
		}
	}
	ix.mu.Unlock()
	es, err := ix.readLeaf(ctx, leaf, span)
	if err != nil {
		return nil, err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if len(ix.cache) == remoteIndexCache {
		ix.cache = append(ix.cache[:0:0], ix.cache[1:]...)
	}
	ix.cache = append(ix.cache, cachedLeaf{leaf, es})
	return es, nil
}

// readLeaf reads the lines of leaf back and checks that they hold the
// entries indexed.
func (ix *RemoteIndex) readLeaf(ctx context.Context, leaf int64, span leafSpan) ([]manifest.Entry, error) {
	data, err := ix.b.GetRange(ctx, ManifestName, span.off, span.end-span.off)
	if err != nil {
		return nil, err
	}
	changed := func(what string) error {
		return fmt.Errorf("%s%s: %w: the entries of blocks %d to %d %s since it was read",
			ix.b, ManifestName, manifest.ErrCorrupt, leaf*leafSize, (leaf+1)*leafSize-1, what)
	}
	ev := &Evidence{Meta: ix.meta}
	slots := block.Slots(ix.meta.VolumeSizeGiB)
	es := make([]manifest.Entry, 0, span.n)
	d := newEntryDigest()
	for len(data) > 0 {
		line, rest, ok := bytes.Cut(data, []byte("\n"))
		if !ok || len(es) == span.n {
			return nil, changed("changed")
		}
		data = rest
		e, err := manifest.ParseEntry(bytes.TrimSuffix(line, []byte("\r")), slots)
		if err != nil || e.Index/leafSize != leaf || len(es) > 0 && e.Index <= es[len(es)-1].Index || ev.checkEntry(e) != nil {
			return nil, changed("changed")
		}
		d.add(e)
		es = append(es, e)
	}
	if len(es) != span.n || d.sum() != span.sum {
		return nil, changed("changed")
	}
	return es, nil
}
