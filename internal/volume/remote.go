package volume

import (
	"context"
	"fmt"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

// remote is evidence in a bucket (S3) read as a volume: the manifest is
// read and checked once, as a stream, into an index of its leaves
// (store.RemoteIndex: no entry per block is kept; a leaf's entries are
// read back, checked, when a block of it is read), and each block is
// fetched (a GET of its object), checked against its stored SHA-256 and
// decoded when read, through the block cache. What it keeps grows with
// the volume only as the ranges of listed blocks (16 bytes per run of
// contiguous blocks) and the index (~60 bytes per 10,000 blocks).
type remote struct {
	ctx    context.Context
	b      bucket.Bucket
	meta   store.Meta
	unseal store.Unseal
	index  *store.RemoteIndex
	ranges []Range
	size   int64
	cache  *blockCache
}

// openRemote opens the evidence in b.
func openRemote(ctx context.Context, b bucket.Bucket, o Options) (*remote, error) {
	meta, err := store.OpenRemote(ctx, b)
	if err != nil {
		return nil, err
	}
	if o.SnapshotID != "" && meta.SnapshotID != o.SnapshotID {
		return nil, &store.OtherSnapshotError{Dir: b.String(), Have: meta.SnapshotID, Want: o.SnapshotID}
	}
	v := &remote{ctx: ctx, b: b, meta: meta, size: meta.VolumeSizeGiB << 30}
	v.index, err = store.OpenRemoteIndex(ctx, b, meta, func(e manifest.Entry) error {
		v.ranges = appendRange(v.ranges, Range{e.Index * block.Size, block.Size})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the manifest of %s: %w", b, markCorrupt(err))
	}
	if meta.Codec != "none" || meta.Encryption != "none" {
		if o.Unseal == nil {
			return nil, fmt.Errorf("%s stores its blocks as codec %s, encryption %s: %w", b, meta.Codec, meta.Encryption, store.ErrNeedKey)
		}
		if v.unseal, err = o.Unseal(&store.Evidence{Dir: b.String(), Meta: meta}); err != nil {
			return nil, err
		}
	}
	v.cache = newBlockCache(v.size, o.CacheBlocks, v.load)
	return v, nil
}

func (v *remote) SnapshotID() string                      { return v.meta.SnapshotID }
func (v *remote) Size() int64                             { return v.size }
func (v *remote) Ranges() ([]Range, error)                { return v.ranges, nil }
func (v *remote) ReadAt(p []byte, off int64) (int, error) { return v.cache.readAt(p, off) }
func (v *remote) Close() error                            { v.cache.close(); return nil }

// BlockSums returns the AWS SHA-256 of each block of read that the
// manifest lists (triage's report.ChecksumManifest).
func (v *remote) BlockSums(read []int64) (map[int64]block.Sum, error) {
	out := make(map[int64]block.Sum, len(read))
	for _, i := range read {
		e, ok, err := v.index.Entry(v.ctx, i)
		if err != nil {
			return nil, markCorrupt(err)
		}
		if ok {
			s, err := e.Sum()
			if err != nil {
				return nil, fmt.Errorf("manifest entry of block %d: %w", i, err)
			}
			out[i] = s
		}
	}
	return out, nil
}

// load fills buf with block i, verified; an unlisted block stays zeros.
func (v *remote) load(i int64, buf []byte) error {
	e, ok, err := v.index.Entry(v.ctx, i)
	if err != nil {
		return markCorrupt(err)
	}
	if !ok {
		return nil
	}
	stored, err := store.GetRemoteStored(v.ctx, v.b, e)
	if err != nil {
		return markCorrupt(err)
	}
	data, err := store.Decode(e, stored, v.unseal, buf)
	if err != nil {
		return markCorrupt(err)
	}
	if len(data) > 0 && &data[0] != &buf[0] {
		copy(buf, data)
	}
	return nil
}
