package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// Evidence in an object store (S3): the same names as an evidence
// directory under a bucket's prefix, each object written once. There is
// no rename and no append, so (see internal/s3store/DESIGN-S3.md):
//
//   - a block object is PUT once to its final key, with the stored bytes'
//     SHA-256, which the store checks on arrival: nothing half-written or
//     altered ever carries a final name;
//   - a leaf's journal is a set of immutable batch objects,
//     LEAF/.journal.RUN-SEQ, each written after the blocks it names;
//   - the manifest and its .sha256 are written last, once.
//
// A rerun lists the prefix and reads the journal batches: a block counts
// as stored when its journal line names it and the store's checksum of
// its object matches the line; a block object no line names is checked
// (its bytes against the store's checksum and its name, or for a sealed
// block the store's checksum and the metadata written with it) and
// adopted. Nothing is ever overwritten or deleted: an object that does
// not verify stops the run (ConflictError).

// Metadata names written with each block object (x-amz-meta-…).
const (
	MetaSHA256     = "ebsimager-sha256"     // the block's SHA-256 as served, hex
	MetaLength     = "ebsimager-length"     // its length as served
	MetaCodec      = "ebsimager-codec"      // the stored form's codec
	MetaEncryption = "ebsimager-encryption" // and encryption
)

const (
	remoteBatch   = 64      // journal lines per batch object at most
	maxMetaObject = 1 << 20 // evidence.json, a .sha256: far beyond any honest size
	journalPrefix = journalName + "."
	// maxPendingLeaves is how many leaves may hold journal lines not yet
	// in a batch: past it, the lowest leaf's are written (blocks come in
	// ascending order, so writers touch few leaves at once).
	maxPendingLeaves = 16
	// maxLeafKeys bounds the keys of one leaf a listing may return: its
	// blocks and its journal batches (an honest run writes at most
	// leafSize/remoteBatch+1 batches per leaf).
	maxLeafKeys = 2*leafSize + 10000
	// maxLinesPerBlock bounds the distinct journal lines of one block
	// that a leaf's batches may hold (an honest bucket holds one).
	maxLinesPerBlock = 4
)

// ConflictError says that an object of the evidence holds other bytes
// than the ones this run would write under its key, and cannot be
// overwritten: nothing was changed.
type ConflictError struct{ Where, Key, Reason string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s%s: %s; objects are never overwritten or deleted: check it, or acquire under another prefix", e.Where, e.Key, e.Reason)
}

// Is makes a ConflictError match ErrNotEvidence (exit status "conflict").
func (e *ConflictError) Is(target error) bool { return target == ErrNotEvidence }

// Remote is evidence in an object store, open for writing. Its memory is
// bounded whatever the volume's size: a bit per block slot (what is
// stored), the journal lines of at most maxPendingLeaves leaves not yet
// in a batch, and, while it opens or closes, one leaf's listing and
// journal lines. It keeps no manifest entry: Close reads the journal
// batches back leaf by leaf, in index order, and streams the manifest
// into the bucket (bucket.Bucket.Create).
type Remote struct {
	ctx  context.Context
	b    bucket.Bucket
	meta Meta
	form codec.Form
	seal Sealer
	run  string

	prior *prior
	kept  Kept

	mu      sync.Mutex
	done    []uint64                    // a bit per block slot: stored
	vouched []block.Sum                 // per leaf: the XOR of the SHA-256 of each stored block's entry
	pending map[string][]manifest.Entry // journal lines not yet in a batch, by leaf
	seq     int
	resumed int64

	// Started and Finished are the times the manifest records.
	Started, Finished time.Time
	ended             bool
	summary           Summary
}

var _ sink.Sink = (*Remote)(nil)

// CreateRemote opens the evidence of meta.SnapshotID in b, starting it
// (evidence.json, written once) or resuming what b holds. ctx bounds
// every request of the Remote's life.
func CreateRemote(ctx context.Context, b bucket.Bucket, meta Meta, o Options) (*Remote, error) {
	if o.Force {
		return nil, errors.New("--force cannot replace evidence in a bucket: its objects are never deleted; acquire under another prefix")
	}
	if o.seal == nil {
		o.seal = SealerFor(o.Form, o.SealTo)
	}
	meta.Format = metaFormat
	meta.Codec, meta.Encryption = o.Form.Fields()
	if meta.CreatedAt.IsZero() {
		meta.CreatedAt = time.Now().UTC()
	}
	var run [4]byte
	rand.Read(run[:])
	r := &Remote{ctx: ctx, b: b, meta: meta, form: o.Form, seal: o.seal, run: hex.EncodeToString(run[:]), Started: time.Now(),
		pending: map[string][]manifest.Entry{},
		done:    make([]uint64, (block.Slots(meta.VolumeSizeGiB)+63)/64),
		vouched: make([]block.Sum, (block.Slots(meta.VolumeSizeGiB)+leafSize-1)/leafSize)}
	if err := r.openMeta(); err != nil {
		return nil, err
	}
	if err := r.scan(); err != nil {
		return nil, err
	}
	return r, nil
}

// openMeta writes evidence.json, or reads the one there and resumes it.
func (r *Remote) openMeta() error {
	data, err := r.b.Get(r.ctx, MetaName, maxMetaObject)
	if errors.Is(err, bucket.ErrNotFound) {
		keys, err := r.b.List(r.ctx, "", 16)
		if err != nil && !strings.Contains(err.Error(), "more than") {
			return err
		}
		if err != nil || slices.ContainsFunc(keys, func(l bucket.Listed) bool { return l.Key != KeyName }) {
			return fmt.Errorf("%s: holds objects but no evidence.json: %w", r.b, ErrNotEvidence)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r.meta); err != nil {
			return err
		}
		err = r.b.PutNew(r.ctx, MetaName, buf.Bytes(), sha256.Sum256(buf.Bytes()), nil)
		if !errors.Is(err, bucket.ErrExists) { // else another run wrote it meanwhile: read it
			return err
		}
		if data, err = r.b.Get(r.ctx, MetaName, maxMetaObject); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	var old Meta
	if err := json.Unmarshal(data, &old); err != nil {
		return metaDamage(err.Error())
	}
	if old.Format != metaFormat {
		return fmt.Errorf("%s: format %q, this tool reads %q", MetaName, old.Format, metaFormat)
	}
	if err := checkMeta(old); err != nil {
		return err
	}
	switch {
	case old.SnapshotID != r.meta.SnapshotID || old.VolumeSizeGiB != r.meta.VolumeSizeGiB || old.BlockSize != r.meta.BlockSize:
		return &OtherSnapshotError{Dir: r.b.String(), Have: old.SnapshotID, Want: r.meta.SnapshotID}
	case old.Codec != r.meta.Codec || old.Encryption != r.meta.Encryption:
		return fmt.Errorf("%s stores blocks as codec %s, encryption %s; this run asks for %s, %s: resume with the same --compress/--encrypt",
			r.b, old.Codec, old.Encryption, r.meta.Codec, r.meta.Encryption)
	}
	r.meta = old // written once: a rerun keeps it as it is
	return r.readPrior()
}

// readPrior reads the manifest of complete evidence, if there is one.
func (r *Remote) readPrior() error {
	bound := block.Slots(r.meta.VolumeSizeGiB)*manifest.MaxLine + 2*manifest.MaxLine
	rd, err := bucket.NewReader(r.ctx, r.b, ManifestName, bound)
	if errors.Is(err, bucket.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	mr, err := manifest.NewReader(rd)
	if err != nil {
		return fmt.Errorf("%s%s: %w", r.b, ManifestName, err)
	}
	d := newEntryDigest()
	for {
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s%s: %w", r.b, ManifestName, err)
		}
		if err := d.add(e); err != nil {
			return err
		}
	}
	r.prior = &prior{sum: mr.Sum(), trailer: mr.Trailer(), entries: d.sum()}
	return nil
}

// Name returns the key of a block, relative to the prefix.
func (r *Remote) Name(index int64, sum block.Sum) string {
	return path.Join(leafKey(index), block.FileName(block.FileInfo{
		Index: index, Snapshot: r.meta.SnapshotID, Sum: sum, VolumeGiB: r.meta.VolumeSizeGiB, BlockSize: r.meta.BlockSize,
	})+r.form.Suffix())
}

func leafKey(index int64) string {
	return fmt.Sprintf("%s/%02d/%04d", blocksDir, index/(leafSize*topSize), index/leafSize%topSize)
}

// scan finds what earlier runs stored (see the comment at the top),
// leaf by leaf.
func (r *Remote) scan() error {
	leaves, err := r.leaves()
	if err != nil {
		return err
	}
	for _, leaf := range leaves {
		if err := r.scanLeaf(leafDir(leaf)); err != nil {
			return err
		}
		if err := r.flushExcess(r.ctx, ""); err != nil {
			return err
		}
	}
	return nil
}

// leafDir is the key of leaf number n (blocks n*leafSize onwards).
func leafDir(n int64) string { return leafKey(n * leafSize) }

// leaves lists the leaves under blocks/ that hold objects, in index
// order, two levels of listing bounded by the volume's size; any other
// key there is refused.
func (r *Remote) leaves() ([]int64, error) {
	nleaves := (block.Slots(r.meta.VolumeSizeGiB) + leafSize - 1) / leafSize
	ntops := (nleaves + topSize - 1) / topSize
	keys, tops, err := r.b.ListLevel(r.ctx, blocksDir+"/", int(ntops)+16)
	if err != nil {
		return nil, err
	}
	if len(keys) > 0 {
		return nil, &ConflictError{Where: r.b.String(), Key: keys[0].Key, Reason: "not a name this tool writes"}
	}
	var out []int64
	for _, top := range tops {
		t, ok := parseLevel(top, blocksDir+"/", 2)
		if !ok || t >= ntops {
			return nil, &ConflictError{Where: r.b.String(), Key: top, Reason: "not a name this tool writes"}
		}
		keys, dirs, err := r.b.ListLevel(r.ctx, top, topSize+16)
		if err != nil {
			return nil, err
		}
		if len(keys) > 0 {
			return nil, &ConflictError{Where: r.b.String(), Key: keys[0].Key, Reason: "not a name this tool writes"}
		}
		for _, d := range dirs {
			n, ok := parseLevel(d, top, 4)
			if !ok || t*topSize+n >= nleaves {
				return nil, &ConflictError{Where: r.b.String(), Key: d, Reason: "not a name this tool writes"}
			}
			out = append(out, t*topSize+n)
		}
	}
	return out, nil
}

// parseLevel reads the number of dir, parent followed by width digits
// and a slash.
func parseLevel(dir, parent string, width int) (int64, bool) {
	rest, ok := strings.CutPrefix(dir, parent)
	if !ok || len(rest) != width+1 || rest[width] != '/' {
		return 0, false
	}
	n, err := strconv.ParseUint(rest[:width], 10, 32)
	return int64(n), err == nil
}

// listLeaf lists the objects of leaf: its block objects and its journal
// batch keys, refusing any other name.
func (r *Remote) listLeaf(ctx context.Context, leaf string) (blocks, batches []bucket.Listed, err error) {
	keys, err := r.b.List(ctx, leaf+"/", maxLeafKeys)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		name := strings.TrimPrefix(k.Key, leaf+"/")
		switch {
		case strings.Contains(name, "/"):
			return nil, nil, &ConflictError{Where: r.b.String(), Key: k.Key, Reason: "not a name this tool writes"}
		case strings.HasPrefix(name, journalPrefix):
			batches = append(batches, k)
		default:
			blocks = append(blocks, k)
		}
	}
	return blocks, batches, nil
}

// scanLeaf finds what earlier runs stored in leaf.
func (r *Remote) scanLeaf(leaf string) error {
	blocks, batches, err := r.listLeaf(r.ctx, leaf)
	if err != nil {
		return err
	}
	journaled := map[string]manifest.Entry{}
	for _, k := range batches {
		err := r.readBatch(r.ctx, leaf, k, func(e manifest.Entry) error {
			journaled[e.Name] = e
			if len(journaled) > maxLinesPerBlock*leafSize {
				return &ConflictError{Where: r.b.String(), Key: k.Key, Reason: "more journal lines than the leaf can hold"}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// Check every block object, remoteVerifyWorkers at a time: a HEAD
	// each (and a GET for those no journal line names).
	found := make([]manifest.Entry, len(blocks))
	failed := make([]error, len(blocks))
	err = forEach(r.ctx, remoteVerifyWorkers, len(blocks), func(ctx context.Context, i int) error {
		k := blocks[i]
		var err error
		if e, ok := journaled[k.Key]; ok {
			found[i], err = e, r.checkKept(ctx, k, e)
		} else {
			found[i], err = r.adopt(ctx, k)
		}
		var req *requestError
		if errors.As(err, &req) {
			return req.err
		}
		failed[i] = err
		return nil
	})
	if err != nil {
		return err
	}
	for i, k := range blocks {
		e := found[i]
		if failed[i] != nil {
			return &ConflictError{Where: r.b.String(), Key: k.Key, Reason: failed[i].Error()}
		}
		if r.has(e.Index) {
			return &ConflictError{Where: r.b.String(), Key: k.Key, Reason: fmt.Sprintf("another object already holds block %d", e.Index)}
		}
		r.kept.Checked++
		if _, ok := journaled[k.Key]; !ok {
			r.kept.Adopted++
			r.pending[leaf] = append(r.pending[leaf], e)
		}
		r.mark(e.Index)
		r.vouch(e)
		r.resumed++
	}
	return nil
}

// requestError is a request to the store that failed, as opposed to an
// object that does not verify.
type requestError struct{ err error }

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

// forEach calls fn(i) for i in [0, n), workers at a time, and returns
// the first error, which stops the others.
func forEach(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func validLeafKey(leaf string) bool {
	parts := strings.Split(leaf, "/")
	if len(parts) != 3 || parts[0] != blocksDir || len(parts[1]) != 2 || len(parts[2]) != 4 {
		return false
	}
	_, err1 := strconv.ParseUint(parts[1], 10, 8)
	_, err2 := strconv.ParseUint(parts[2], 10, 16)
	return err1 == nil && err2 == nil
}

// readBatch reads one journal batch object of leaf, calling fn with
// each line, checked: a block of this evidence, in this leaf, in this
// form.
func (r *Remote) readBatch(ctx context.Context, leaf string, k bucket.Listed, fn func(manifest.Entry) error) error {
	data, err := r.b.Get(ctx, k.Key, leafSize*manifest.MaxLine)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		line, rest, ok := bytes.Cut(data, []byte("\n"))
		if !ok {
			return &ConflictError{Where: r.b.String(), Key: k.Key, Reason: "a journal batch whose last line is torn (batches are written whole)"}
		}
		data = rest
		var e manifest.Entry
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return &ConflictError{Where: r.b.String(), Key: k.Key, Reason: "a malformed journal line: " + err.Error()}
		}
		sum, err := e.Sum()
		if err != nil || e.Type != "block" || e.Index < 0 || e.Index >= block.Slots(r.meta.VolumeSizeGiB) || leafKey(e.Index) != leaf ||
			e.Name != r.Name(e.Index, sum) || !r.sameForm(e) || e.Size <= 0 || e.Size > manifest.MaxStoredSize || e.Length <= 0 || e.Length > block.Size {
			return &ConflictError{Where: r.b.String(), Key: k.Key, Reason: fmt.Sprintf("a journal line that does not describe a block of this evidence in this leaf (block %d)", e.Index)}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (r *Remote) sameForm(e manifest.Entry) bool {
	c, enc := r.form.Fields()
	return e.Codec == c && e.Encryption == enc
}

// checkKept checks a journaled block object: its size, and the store's
// checksum of it against the line's stored SHA-256 (the bytes hashed
// here when the store keeps no checksum).
func (r *Remote) checkKept(ctx context.Context, k bucket.Listed, e manifest.Entry) error {
	if r.seal == nil && (e.StoredSHA256 != e.SHA256 || int64(e.Length) != e.Size) {
		return errors.New("its journal line records different stored and served bytes for a plain block")
	}
	if k.Size != e.Size {
		return fmt.Errorf("%d bytes, its journal line says %d", k.Size, e.Size)
	}
	stored, err := r.storedSum(ctx, k.Key, e.Size)
	if err != nil {
		return err
	}
	if stored.Hex() != e.StoredSHA256 {
		return fmt.Errorf("stored sha256 %s, its journal line says %s", stored.Hex(), e.StoredSHA256)
	}
	return nil
}

// storedSum returns the SHA-256 the store keeps for key, or hashes its
// bytes when it keeps none.
func (r *Remote) storedSum(ctx context.Context, key string, size int64) (block.Sum, error) {
	o, err := r.b.Head(ctx, key)
	if err != nil {
		return block.Sum{}, &requestError{err}
	}
	if o.Size != size {
		return block.Sum{}, fmt.Errorf("%d bytes, expected %d", o.Size, size)
	}
	if o.HasSHA256 {
		return o.SHA256, nil
	}
	data, err := r.b.Get(ctx, key, manifest.MaxStoredSize)
	if err != nil {
		return block.Sum{}, &requestError{err}
	}
	return sha256.Sum256(data), nil
}

// adopt checks a block object no journal line names (a run stopped
// between its PUT and its batch) and returns its entry: a plain block's
// bytes must hash to the SHA-256 in its name; a sealed block's bytes to
// the store's checksum, and its metadata must name the same block.
func (r *Remote) adopt(ctx context.Context, k bucket.Listed) (manifest.Entry, error) {
	leaf, name := path.Split(k.Key)
	fi, suffix, err := block.ParseFileName(name)
	if err != nil {
		return manifest.Entry{}, errors.New("not a block file name")
	}
	if fi.Snapshot != r.meta.SnapshotID || fi.VolumeGiB != r.meta.VolumeSizeGiB || fi.BlockSize != r.meta.BlockSize ||
		suffix != r.form.Suffix() || leafKey(fi.Index)+"/" != leaf || fi.Index >= block.Slots(r.meta.VolumeSizeGiB) {
		return manifest.Entry{}, errors.New("not a block of this evidence, in this leaf, in this form")
	}
	if k.Size <= 0 || k.Size > manifest.MaxStoredSize {
		return manifest.Entry{}, fmt.Errorf("%d bytes: out of bounds", k.Size)
	}
	o, err := r.b.Head(ctx, k.Key)
	if err != nil {
		return manifest.Entry{}, &requestError{err}
	}
	data, err := r.b.Get(ctx, k.Key, manifest.MaxStoredSize)
	if err != nil {
		return manifest.Entry{}, &requestError{err}
	}
	got := block.Sum(sha256.Sum256(data))
	if o.HasSHA256 && o.SHA256 != got {
		return manifest.Entry{}, fmt.Errorf("its bytes hash to %s, the store's checksum says %s", got.Hex(), o.SHA256.Hex())
	}
	e := manifest.Entry{Type: "block", Index: fi.Index, SHA256: fi.Sum.Hex(), Name: r.Name(fi.Index, fi.Sum), Size: int64(len(data)), StoredSHA256: got.Hex()}
	e.Codec, e.Encryption = r.form.Fields()
	if r.seal == nil {
		if got != fi.Sum || len(data) > block.Size {
			return manifest.Entry{}, fmt.Errorf("content sha256 %s, its name says %s", got.Hex(), fi.Sum.Hex())
		}
		e.Length = len(data)
		return e, nil
	}
	// A sealed block cannot be checked without the key: the metadata
	// written with it, under the store's checksum, must name it.
	n, err := strconv.Atoi(o.Metadata[MetaLength])
	if !o.HasSHA256 || o.Metadata[MetaSHA256] != fi.Sum.Hex() || err != nil || n <= 0 || n > block.Size ||
		o.Metadata[MetaCodec] != e.Codec || o.Metadata[MetaEncryption] != e.Encryption {
		return manifest.Entry{}, errors.New("a sealed block without a journal line, a checksum kept by the store, or metadata naming it")
	}
	e.Length = n
	return e, nil
}

func (r *Remote) has(index int64) bool {
	return index >= 0 && index/64 < int64(len(r.done)) && r.done[index/64]&(1<<(index%64)) != 0
}

func (r *Remote) mark(index int64) {
	if index >= 0 && index/64 < int64(len(r.done)) {
		r.done[index/64] |= 1 << (index % 64)
	}
}

// vouch adds e, the entry of a block this run counts as stored (checked
// or written by it), to its leaf's digest: Close's manifest must hold
// exactly these entries, whatever the journal batches say by then.
func (r *Remote) vouch(e manifest.Entry) {
	d := entryHash(e)
	v := &r.vouched[e.Index/leafSize]
	for i := range v {
		v[i] ^= d[i]
	}
}

func entryHash(e manifest.Entry) block.Sum {
	line, _ := json.Marshal(e) // an Entry always marshals
	return sha256.Sum256(line)
}

// Meta returns what the evidence holds.
func (r *Remote) Meta() Meta { return r.meta }

// Resumed returns how many blocks earlier runs stored.
func (r *Remote) Resumed() int64 { return r.resumed }

// Kept says what CreateRemote found of earlier runs.
func (r *Remote) Kept() Kept { return r.kept }

// Caps implements sink.Sink: blocks in any order, and resumes.
func (r *Remote) Caps() sink.Caps { return sink.Caps{Resumes: true} }

// Has implements sink.Sink.
func (r *Remote) Has(index int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.has(index)
}

// Put implements sink.Sink: the block, sealed, is written once under its
// final key with its stored SHA-256, then journaled (a batch object per
// remoteBatch lines of a leaf).
func (r *Remote) Put(b block.Block) error {
	r.mu.Lock()
	ended := r.ended
	r.mu.Unlock()
	if ended {
		return sink.ErrClosed
	}
	if b.Index < 0 || b.Index >= block.Slots(r.meta.VolumeSizeGiB) {
		return fmt.Errorf("storing block %d: beyond the %d GiB volume", b.Index, r.meta.VolumeSizeGiB)
	}
	var buf bytes.Buffer
	size, stored, err := sealTo(&buf, b.Data, r.seal)
	if err != nil {
		return fmt.Errorf("storing block %d: %w", b.Index, err)
	}
	if r.seal == nil {
		stored = b.Sum
	}
	e := manifest.Entry{Type: "block", Index: b.Index, SHA256: b.Sum.Hex(), Length: len(b.Data), Name: r.Name(b.Index, b.Sum), Size: size, StoredSHA256: stored.Hex()}
	e.Codec, e.Encryption = r.form.Fields()
	return r.putEntry(e, buf.Bytes(), stored, "storing")
}

// putEntry writes a block's stored bytes once under e.Name, with the
// stored SHA-256 as S3's checksum and the content SHA-256, length and
// form as metadata, then journals e (a batch object per remoteBatch
// lines of a leaf). A key already there counts only if S3's checksum of
// it is the block's. verb names the step in errors.
func (r *Remote) putEntry(e manifest.Entry, data []byte, stored block.Sum, verb string) error {
	meta := map[string]string{MetaSHA256: e.SHA256, MetaLength: strconv.Itoa(e.Length)}
	if r.seal != nil {
		meta[MetaCodec], meta[MetaEncryption] = e.Codec, e.Encryption
	}
	err := r.b.PutNew(r.ctx, e.Name, data, stored, meta)
	if errors.Is(err, bucket.ErrExists) {
		// Stored meanwhile, or by a run that stopped before journaling
		// it and that this run's scan did not see: the same bytes?
		have, herr := r.storedSum(r.ctx, e.Name, e.Size)
		var req *requestError
		switch {
		case errors.As(herr, &req):
			return fmt.Errorf("%s block %d: %w", verb, e.Index, req.err)
		case herr != nil || have != stored:
			return &ConflictError{Where: r.b.String(), Key: e.Name, Reason: "the key holds other bytes than this block's"}
		}
		err = nil
	}
	if err != nil {
		return fmt.Errorf("%s block %d: %w", verb, e.Index, err)
	}
	leaf := leafKey(e.Index)
	r.mu.Lock()
	if !r.has(e.Index) { // else stored by this run already, with this entry
		r.mark(e.Index)
		r.vouch(e)
	}
	r.pending[leaf] = append(r.pending[leaf], e)
	var batch []manifest.Entry
	var seq int
	if len(r.pending[leaf]) >= remoteBatch {
		batch, seq = r.takeBatch(leaf)
	}
	r.mu.Unlock()
	if batch != nil {
		if err := r.writeBatch(r.ctx, leaf, seq, batch); err != nil {
			return err
		}
	}
	return r.flushExcess(r.ctx, leaf)
}

// takeBatch takes leaf's pending lines and a sequence number for them.
// r.mu is held.
func (r *Remote) takeBatch(leaf string) ([]manifest.Entry, int) {
	batch := r.pending[leaf]
	delete(r.pending, leaf)
	r.seq++
	return batch, r.seq
}

// writeBatch writes the journal batch object seq of leaf.
func (r *Remote) writeBatch(ctx context.Context, leaf string, seq int, batch []manifest.Entry) error {
	var buf bytes.Buffer
	for _, e := range batch {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	key := fmt.Sprintf("%s/%s%s-%06d", leaf, journalPrefix, r.run, seq)
	if err := r.b.PutNew(ctx, key, buf.Bytes(), sha256.Sum256(buf.Bytes()), nil); err != nil {
		return fmt.Errorf("journaling %d blocks: %w", len(batch), err)
	}
	return nil
}

// flushExcess writes the pending lines of the lowest leaves but except
// while more than maxPendingLeaves leaves have some.
func (r *Remote) flushExcess(ctx context.Context, except string) error {
	for {
		r.mu.Lock()
		if len(r.pending) <= maxPendingLeaves {
			r.mu.Unlock()
			return nil
		}
		var leaf string
		for l := range r.pending {
			if l != except && (leaf == "" || l < leaf) {
				leaf = l
			}
		}
		batch, seq := r.takeBatch(leaf)
		r.mu.Unlock()
		if err := r.writeBatch(ctx, leaf, seq, batch); err != nil {
			return err
		}
	}
}

// flush writes every pending journal line.
func (r *Remote) flush(ctx context.Context) error {
	r.mu.Lock()
	leaves := slices.Sorted(func(yield func(string) bool) {
		for l := range r.pending {
			if !yield(l) {
				return
			}
		}
	})
	r.mu.Unlock()
	var first error
	for _, leaf := range leaves {
		r.mu.Lock()
		batch, seq := r.takeBatch(leaf)
		r.mu.Unlock()
		if err := r.writeBatch(ctx, leaf, seq, batch); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (r *Remote) end() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return sink.ErrClosed
	}
	r.ended = true
	return nil
}

// Abort implements sink.Sink: every stored block stays, and its journal
// lines are written for the next run, even when the run was interrupted
// (they spare the next run reading the blocks back to adopt them).
func (r *Remote) Abort() error {
	if r.end() != nil {
		return nil
	}
	return r.flush(context.WithoutCancel(r.ctx))
}

// Close implements sink.Sink: it journals what is pending, then writes
// the manifest of every stored block and its .sha256, once. Complete
// evidence of exactly these blocks is left as it is (Unchanged); other
// complete evidence cannot be rewritten (ConflictError).
func (r *Remote) Close() (sink.Result, error) {
	if err := r.end(); err != nil {
		return sink.Result{}, err
	}
	if err := r.flush(r.ctx); err != nil {
		return sink.Result{}, err
	}
	finished := r.Finished
	if finished.IsZero() {
		finished = time.Now()
	}
	res := sink.Result{Files: []string{r.b.String() + ManifestName}, HashFiles: []string{r.b.String() + ManifestSumName}, Size: r.meta.VolumeSizeGiB << 30}
	if p := r.prior; p != nil {
		d := newEntryDigest()
		if err := r.eachEntry(r.ctx, d.add); err != nil {
			return sink.Result{}, err
		}
		if d.sum() != p.entries {
			return sink.Result{}, &ConflictError{Where: r.b.String(), Key: ManifestName, Reason: "complete evidence of other blocks is already there"}
		}
		r.summary = Summary{Trailer: p.trailer, ManifestSHA256: p.sum, Unchanged: true}
		res.Blocks, res.Manifest, res.Unchanged = p.trailer.Blocks, p.sum.Hex(), true
		return res, nil
	}
	h := manifest.Header{
		SnapshotID: r.meta.SnapshotID, Region: r.meta.Region, Endpoint: r.meta.Endpoint, Provenance: r.meta.Provenance, Source: r.meta.Source,
		VolumeSizeGiB: r.meta.VolumeSizeGiB, VolumeSizeBytes: r.meta.VolumeSizeGiB << 30, BlockSize: r.meta.BlockSize,
		ToolVersion: r.meta.ToolVersion, StartedAt: r.Started.UTC(), FinishedAt: finished.UTC(), ObjectLock: r.meta.ObjectLock,
	}
	sum, err := r.writeManifest(h)
	if err != nil {
		return sink.Result{}, fmt.Errorf("writing manifest: %w", err)
	}
	line := []byte(fmt.Sprintf("%s  %s\n", sum.ManifestSHA256.Hex(), ManifestName))
	if err := r.b.PutNew(r.ctx, ManifestSumName, line, sha256.Sum256(line), nil); err != nil {
		return sink.Result{}, fmt.Errorf("writing manifest checksum: %w", err)
	}
	r.summary = sum
	res.Blocks, res.Manifest = sum.Blocks, sum.ManifestSHA256.Hex()
	return res, nil
}

// writeManifest streams the manifest of every stored block into the
// bucket, once: it exists only if all of it was written.
func (r *Remote) writeManifest(h manifest.Header) (Summary, error) {
	w, err := r.b.Create(r.ctx, ManifestName, nil)
	if err != nil {
		return Summary{}, err
	}
	defer w.Abort()
	mw, err := manifest.NewWriter(w, h)
	if err != nil {
		return Summary{}, err
	}
	if err := r.eachEntry(r.ctx, mw.Add); err != nil {
		return Summary{}, err
	}
	var sum Summary
	if sum.Trailer, sum.ManifestSHA256, err = mw.Close(); err != nil {
		return Summary{}, err
	}
	_, stored, err := w.Close()
	if err != nil {
		return Summary{}, err
	}
	if stored != sum.ManifestSHA256 {
		return Summary{}, fmt.Errorf("the store hashed the manifest to %s, written as %s", stored.Hex(), sum.ManifestSHA256.Hex())
	}
	return sum, nil
}

// eachEntry calls fn with the entry of every stored block, in index
// order, read back from the journal batches leaf by leaf (see
// leafEntries): only one leaf's lines are in memory at a time.
func (r *Remote) eachEntry(ctx context.Context, fn func(manifest.Entry) error) error {
	slots := block.Slots(r.meta.VolumeSizeGiB)
	for leaf := int64(0); leaf*leafSize < slots; leaf++ {
		lo, hi := leaf*leafSize, min((leaf+1)*leafSize, slots)
		if !r.anyIn(lo, hi) {
			continue
		}
		es, err := r.leafEntries(ctx, leafDir(leaf), lo, hi)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// anyIn reports whether a block of [lo, hi) is stored.
func (r *Remote) anyIn(lo, hi int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := lo; i < hi; i++ {
		if i%64 == 0 && i+64 <= hi && r.done[i/64] == 0 {
			i += 63
			continue
		}
		if r.has(i) {
			return true
		}
	}
	return false
}

// leafEntries returns the entries of the stored blocks of leaf ([lo,
// hi)), in index order, from its journal batches. Every stored block
// must have a line, and its object must be listed with the line's size;
// and the entries must be the ones this run checked or wrote (the
// leaf's digest, see vouch): nothing written by another hand since
// enters the manifest.
// Lines of blocks this run does not count as stored (an earlier run's,
// whose object is gone) are left out. When the batches hold different
// lines for one stored block, the one whose stored SHA-256 the store
// keeps for its object is the block's (a HEAD); none or several is a
// conflict.
func (r *Remote) leafEntries(ctx context.Context, leaf string, lo, hi int64) ([]manifest.Entry, error) {
	blocks, batches, err := r.listLeaf(ctx, leaf)
	if err != nil {
		return nil, err
	}
	sizes := make(map[string]int64, len(blocks))
	for _, k := range blocks {
		sizes[k.Key] = k.Size
	}
	lines := map[int64][]manifest.Entry{}
	for _, k := range batches {
		err := r.readBatch(ctx, leaf, k, func(e manifest.Entry) error {
			if slices.Contains(lines[e.Index], e) {
				return nil
			}
			if len(lines[e.Index]) == maxLinesPerBlock {
				return &ConflictError{Where: r.b.String(), Key: k.Key, Reason: fmt.Sprintf("more than %d different journal lines for block %d", maxLinesPerBlock, e.Index)}
			}
			lines[e.Index] = append(lines[e.Index], e)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var (
		out []manifest.Entry
		got block.Sum
	)
	for i := lo; i < hi; i++ {
		if !r.Has(i) {
			continue
		}
		var keep []manifest.Entry
		for _, e := range lines[i] {
			if size, ok := sizes[e.Name]; ok && size == e.Size {
				keep = append(keep, e)
			}
		}
		if len(keep) > 1 {
			var match []manifest.Entry
			for _, e := range keep {
				stored, err := r.storedSum(ctx, e.Name, e.Size)
				var req *requestError
				if errors.As(err, &req) {
					return nil, req.err
				}
				if err == nil && stored.Hex() == e.StoredSHA256 {
					match = append(match, e)
				}
			}
			keep = match
		}
		if len(keep) != 1 {
			return nil, &ConflictError{Where: r.b.String(), Key: leaf, Reason: fmt.Sprintf("block %d is stored, but %d of its journal lines name its object as it is", i, len(keep))}
		}
		out = append(out, keep[0])
		d := entryHash(keep[0])
		for i := range got {
			got[i] ^= d[i]
		}
	}
	r.mu.Lock()
	want := r.vouched[lo/leafSize]
	r.mu.Unlock()
	if got != want {
		return nil, &ConflictError{Where: r.b.String(), Key: leaf, Reason: "its journal batches no longer hold the entries of the blocks this run stored or checked"}
	}
	return out, nil
}

// Summary is what Close wrote (or kept).
func (r *Remote) Summary() Summary { return r.summary }
