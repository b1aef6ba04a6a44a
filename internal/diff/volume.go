package diff

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

// Volume is a snapshot's bytes.
type Volume interface {
	io.ReaderAt
	Size() int64
}

// Source is an opened evidence directory or image of a snapshot.
type Source interface {
	Volume
	io.Closer
	// SnapshotID is the snapshot an evidence directory holds; "" for an
	// image, which does not say.
	SnapshotID() string
}

// SourceError is a failure to read a snapshot's bytes: a stored block
// that does not verify, an unreadable file, a failed fetch. MapFiles
// stops on it rather than reporting a file system it could not map.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

func sourceErr(err error) error {
	var se *SourceError
	if err == nil || errors.Is(err, io.EOF) || errors.As(err, &se) {
		return err
	}
	return &SourceError{err}
}

// ewfSignature opens every E01 segment (EWF specification, section 2.1).
const ewfSignature = "EVF\x09\x0d\x0a\xff\x00"

// Open opens an evidence directory, a raw image (split or not) or an E01
// image (every chunk checked as it is read).
// unseal decodes compressed or encrypted evidence; nil reads plain
// evidence only.
func Open(path string, unseal store.Unseal) (Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return OpenEvidence(path, unseal)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, len(ewfSignature))
	n, _ := io.ReadFull(f, head)
	f.Close()
	if string(head[:n]) == ewfSignature {
		r, err := ewf.Open(path)
		if err != nil {
			return nil, err
		}
		return imageSource{r}, nil
	}
	r, err := raw.Open(path)
	if err != nil {
		return nil, err
	}
	return imageSource{r}, nil
}

// imageSource is a raw or E01 image.
type imageSource struct {
	r interface {
		io.ReaderAt
		io.Closer
		Size() int64
	}
}

func (s imageSource) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.r.ReadAt(p, off)
	return n, sourceErr(err)
}
func (s imageSource) Size() int64        { return s.r.Size() }
func (s imageSource) Close() error       { return s.r.Close() }
func (s imageSource) SnapshotID() string { return "" }

// blockCache keeps the most recently used blocks of a volume.
type blockCache struct {
	mu     sync.Mutex
	max    int
	tick   uint64
	blocks map[int64]*cached
}

type cached struct {
	data []byte
	used uint64
}

// cacheBlocks is how many 512 KiB blocks a volume keeps: 16 MiB, enough
// for the inode tables or MFT a file system map walks through in order.
const cacheBlocks = 32

func newBlockCache() *blockCache {
	return &blockCache{max: cacheBlocks, blocks: make(map[int64]*cached, cacheBlocks)}
}

// readAt serves p at off from blocks that load fills; size bounds the
// volume.
func (c *blockCache) readAt(p []byte, off, size int64, load func(index int64, buf []byte) error) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	n := 0
	for n < len(p) {
		if off >= size {
			return n, io.EOF
		}
		idx, within := off/block.Size, off%block.Size
		data, err := c.get(idx, load)
		if err != nil {
			return n, sourceErr(err)
		}
		m := copy(p[n:], data[within:min(block.Size, within+size-off)])
		n += m
		off += int64(m)
	}
	return n, nil
}

func (c *blockCache) get(idx int64, load func(index int64, buf []byte) error) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	if b, ok := c.blocks[idx]; ok {
		b.used = c.tick
		return b.data, nil
	}
	var buf []byte
	if len(c.blocks) >= c.max {
		oldest, at := int64(-1), ^uint64(0)
		for i, b := range c.blocks {
			if b.used < at {
				oldest, at = i, b.used
			}
		}
		buf = c.blocks[oldest].data
		delete(c.blocks, oldest)
	} else {
		buf = make([]byte, block.Size)
	}
	clear(buf)
	if err := load(idx, buf); err != nil {
		return nil, err
	}
	c.blocks[idx] = &cached{data: buf, used: c.tick}
	return buf, nil
}

// bucketBlocks is how many block indexes share one entry of the manifest
// index: the offset of their first line. 1,024 entries are about 400 KiB
// of manifest, read again whenever a block of theirs is first needed.
const bucketBlocks = 1024

// Evidence reads an evidence directory as the volume it holds. The
// manifest is read once, checked against its SHA-256, and indexed by
// offset (a few bytes per thousand blocks, so any volume size fits);
// each block is verified when it is first read, stored bytes and then
// the block's own SHA-256, exactly as export does. Blocks the snapshot
// does not list read as zeros.
type Evidence struct {
	ev      *store.Evidence
	unseal  store.Unseal
	f       *os.File
	size    int64
	buckets map[int64]int64

	mu      sync.Mutex
	entries map[int64]map[int64]manifest.Entry // loaded buckets
	loaded  []int64                            // their order of loading
	stored  bytes.Buffer
	out     []byte
	cache   *blockCache
}

// loadedBuckets is how many manifest buckets stay parsed: 8,192 blocks
// (4 GiB of volume) around where a file-system map is reading.
const loadedBuckets = 8

// OpenEvidence opens a complete evidence directory.
func OpenEvidence(dir string, unseal store.Unseal) (*Evidence, error) {
	ev, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, store.ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, store.ErrIncomplete)
	}
	if err != nil {
		return nil, err
	}
	e := &Evidence{ev: ev, unseal: unseal, f: f, size: ev.Meta.VolumeSizeGiB << 30, buckets: map[int64]int64{},
		entries: map[int64]map[int64]manifest.Entry{}, out: make([]byte, block.Size), cache: newBlockCache()}
	if err := e.index(); err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the manifest of %s: %w", dir, err)
	}
	return e, nil
}

// maxManifestLine bounds a manifest line; entries are ~400 bytes.
const maxManifestLine = 64 << 10

// entryPrefix starts every block line manifest.Writer encodes.
const entryPrefix = `{"type":"block","index":`

func (e *Evidence) index() error {
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(e.f, h), maxManifestLine)
	var (
		off, count int64
		last       = int64(-1)
		ended      bool
	)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, io.EOF) && len(line) == 0 {
			break
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
		if ended {
			return fmt.Errorf("line %d: %w: lines after the trailer", lineNo, manifest.ErrCorrupt)
		}
		switch {
		case lineNo == 1:
			var hd manifest.Header
			if err := json.Unmarshal(line, &hd); err != nil || hd.Type != "header" || hd.Format != manifest.Format {
				return fmt.Errorf("line 1: %w: not a %s header", manifest.ErrCorrupt, manifest.Format)
			}
			m := e.ev.Meta
			if hd.SnapshotID != m.SnapshotID || hd.VolumeSizeGiB != m.VolumeSizeGiB || hd.BlockSize != m.BlockSize || m.BlockSize != block.Size {
				return &store.Mismatch{Index: -1, Name: store.ManifestName, What: fmt.Sprintf("manifest header (%s, %d GiB, %d) disagrees with %s (%s, %d GiB, %d)",
					hd.SnapshotID, hd.VolumeSizeGiB, hd.BlockSize, store.MetaName, m.SnapshotID, m.VolumeSizeGiB, m.BlockSize)}
			}
		default:
			idx, isBlock, err := lineIndex(line)
			if err != nil {
				return fmt.Errorf("line %d: %w", lineNo, err)
			}
			if !isBlock {
				var t manifest.Trailer
				if err := json.Unmarshal(line, &t); err != nil || t.Type != "end" || t.Blocks != count {
					return fmt.Errorf("line %d: %w: trailer does not match %d entries", lineNo, manifest.ErrCorrupt, count)
				}
				ended = true
				break
			}
			if idx <= last || idx >= block.Slots(e.ev.Meta.VolumeSizeGiB) {
				return fmt.Errorf("line %d: %w: index %d after %d, or beyond the volume", lineNo, manifest.ErrCorrupt, idx, last)
			}
			last = idx
			count++
			if _, ok := e.buckets[idx/bucketBlocks]; !ok {
				e.buckets[idx/bucketBlocks] = off
			}
		}
		off += int64(len(line))
	}
	if !ended {
		return fmt.Errorf("%w: no trailer: truncated", manifest.ErrCorrupt)
	}
	return e.checkSum(h.Sum(nil))
}

// lineIndex returns the index of a block line, or isBlock=false for
// another line.
func lineIndex(line []byte) (int64, bool, error) {
	if rest, ok := bytes.CutPrefix(line, []byte(entryPrefix)); ok {
		end := bytes.IndexByte(rest, ',')
		if end > 0 {
			if n, err := strconv.ParseInt(string(rest[:end]), 10, 64); err == nil {
				return n, true, nil
			}
		}
	}
	var v struct {
		Type  string `json:"type"`
		Index int64  `json:"index"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return 0, false, fmt.Errorf("%w: %v", manifest.ErrCorrupt, err)
	}
	return v.Index, v.Type == "block", nil
}

func (e *Evidence) checkSum(sum []byte) error {
	data, err := os.ReadFile(filepath.Join(e.ev.Dir, store.ManifestSumName))
	if err != nil {
		return &store.Mismatch{Index: -1, Name: store.ManifestSumName, What: fmt.Sprintf("manifest checksum file unreadable: %v", err)}
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 || fields[1] != store.ManifestName {
		return &store.Mismatch{Index: -1, Name: store.ManifestSumName, What: "malformed manifest checksum file"}
	}
	if got := hex.EncodeToString(sum); fields[0] != got {
		return &store.Mismatch{Index: -1, Name: store.ManifestName, What: fmt.Sprintf("manifest sha256 %s, %s says %s", got, store.ManifestSumName, fields[0])}
	}
	return nil
}

// SnapshotID implements Source.
func (e *Evidence) SnapshotID() string { return e.ev.Meta.SnapshotID }

// Size implements Volume: VolumeSize GiB.
func (e *Evidence) Size() int64 { return e.size }

// Close closes the manifest.
func (e *Evidence) Close() error { return e.f.Close() }

// ReadAt implements io.ReaderAt.
func (e *Evidence) ReadAt(p []byte, off int64) (int, error) {
	return e.cache.readAt(p, off, e.size, e.load)
}

// load fills buf with block index, verified.
func (e *Evidence) load(index int64, buf []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	entries, err := e.bucket(index / bucketBlocks)
	if err != nil {
		return err
	}
	ent, ok := entries[index]
	if !ok {
		return nil // not listed: zeros
	}
	if err := e.ev.ReadStored(ent, &e.stored); err != nil {
		return err
	}
	data, err := store.Decode(ent, e.stored.Bytes(), e.unseal, e.out)
	if err != nil {
		return err
	}
	copy(buf, data)
	return nil
}

// bucket returns the manifest entries of bucket b.
func (e *Evidence) bucket(b int64) (map[int64]manifest.Entry, error) {
	if m, ok := e.entries[b]; ok {
		return m, nil
	}
	m := map[int64]manifest.Entry{}
	if off, ok := e.buckets[b]; ok {
		br := bufio.NewReaderSize(io.NewSectionReader(e.f, off, 1<<62), maxManifestLine)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) == 0 && errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading the manifest: %w", err)
			}
			var ent manifest.Entry
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ent); err != nil {
				var t manifest.Trailer
				if json.Unmarshal(line, &t) == nil && t.Type == "end" {
					break
				}
				return nil, fmt.Errorf("%w: %v", manifest.ErrCorrupt, err)
			}
			if ent.Type != "block" || ent.Index/bucketBlocks != b {
				break
			}
			if err := e.checkEntry(ent); err != nil {
				return nil, err
			}
			m[ent.Index] = ent
		}
	}
	if len(e.loaded) >= loadedBuckets {
		delete(e.entries, e.loaded[0])
		e.loaded = e.loaded[1:]
	}
	e.entries[b] = m
	e.loaded = append(e.loaded, b)
	return m, nil
}

// checkEntry checks that an entry names the file its fields imply, inside
// its leaf directory, as verify does.
func (e *Evidence) checkEntry(ent manifest.Entry) error {
	meta := e.ev.Meta
	dir, base := filepath.Split(filepath.FromSlash(ent.Name))
	fi, _, err := block.ParseFileName(base)
	switch {
	case filepath.Clean(dir) != store.LeafDir(ent.Index):
		return &store.Mismatch{Index: ent.Index, Name: ent.Name, What: "stored outside its leaf directory " + store.LeafDir(ent.Index)}
	case err != nil:
		return &store.Mismatch{Index: ent.Index, Name: ent.Name, What: err.Error()}
	case fi.Index != ent.Index || fi.Snapshot != meta.SnapshotID || fi.Sum.Hex() != ent.SHA256 ||
		fi.VolumeGiB != meta.VolumeSizeGiB || fi.BlockSize != meta.BlockSize:
		return &store.Mismatch{Index: ent.Index, Name: ent.Name, What: "file name disagrees with the manifest entry"}
	}
	return nil
}

// Fetch returns block index of the new snapshot, verified, in buf (which
// holds block.Size bytes); the result may be a prefix of buf.
type Fetch func(ctx context.Context, index int64, buf []byte) ([]byte, error)

// Overlay is the new snapshot's volume made from the base's and the
// changes: an unchanged block is the base's, a removed one reads as
// zeros, and an added or changed one is fetched, once, when first read.
type Overlay struct {
	ctx     context.Context
	base    Volume
	size    int64
	d       *Diff
	fetch   Fetch
	cache   *blockCache
	mu      sync.Mutex
	fetched int64
}

// NewOverlay returns the new snapshot of d over base. ctx bounds every
// fetch.
func NewOverlay(ctx context.Context, base Volume, d *Diff, fetch Fetch) *Overlay {
	return &Overlay{ctx: ctx, base: base, size: d.VolumeGiB << 30, d: d, fetch: fetch, cache: newBlockCache()}
}

// Size implements Volume.
func (o *Overlay) Size() int64 { return o.size }

// Fetched returns how many blocks were fetched.
func (o *Overlay) Fetched() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetched
}

// ReadAt implements io.ReaderAt.
func (o *Overlay) ReadAt(p []byte, off int64) (int, error) {
	return o.cache.readAt(p, off, o.size, o.load)
}

func (o *Overlay) load(index int64, buf []byte) error {
	switch o.d.KindAt(index) {
	case Removed:
		return nil
	case Added, Changed:
		data, err := o.fetch(o.ctx, index, buf)
		if err != nil {
			return fmt.Errorf("fetching block %d of %s: %w", index, o.d.Snapshot, err)
		}
		if len(data) > 0 && &data[0] != &buf[0] {
			copy(buf, data)
		}
		clear(buf[len(data):])
		o.mu.Lock()
		o.fetched++
		o.mu.Unlock()
		return nil
	}
	n, err := o.base.ReadAt(buf, index*block.Size)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	clear(buf[n:])
	return nil
}
