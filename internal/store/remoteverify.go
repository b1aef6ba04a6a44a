package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// OpenRemote reads the evidence.json of evidence in a bucket.
func OpenRemote(ctx context.Context, b bucket.Bucket) (Meta, error) {
	data, err := b.Get(ctx, MetaName, maxMetaObject)
	if errors.Is(err, bucket.ErrNotFound) {
		return Meta{}, fmt.Errorf("%s: no %s: %w", b, MetaName, ErrNotEvidence)
	}
	if err != nil {
		return Meta{}, err
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, metaDamage(err.Error())
	}
	if m.Format != metaFormat {
		return Meta{}, fmt.Errorf("%s: format %q, this tool reads %q", MetaName, m.Format, metaFormat)
	}
	if err := checkMeta(m); err != nil {
		return Meta{}, err
	}
	return m, nil
}

// VerifyRemote re-checks evidence in a bucket as Verify checks a
// directory: the manifest against its .sha256 and evidence.json; every
// block object against its entry's size and stored SHA-256, both as the
// store keeps it (S3's checksum, which it verified on arrival) and as
// its bytes hash now; every block's content against the AWS SHA-256
// (encrypted blocks only when unseal can decrypt); no object missing or
// extra; and the manifest against the journal batches.
func VerifyRemote(ctx context.Context, b bucket.Bucket, meta Meta, unseal Unseal, progress func(done int64)) (*VerifyResult, error) {
	res := &VerifyResult{Problems: []Problem{}}
	ev := &Evidence{Meta: meta}
	// The manifest is read twice, as a stream: once for its SHA-256,
	// once for its entries (its bytes are never all in memory).
	sum, err := remoteManifestSum(ctx, b, meta)
	if err != nil {
		return nil, err
	}
	res.ManifestSHA256 = sum.Hex()
	if err := checkRemoteSum(ctx, b, res.ManifestSHA256); err != nil {
		res.add(problem(err, "manifest"))
	}
	// The objects are listed, and checked against the entries, leaf by
	// leaf: what is in memory at once is one leaf's.
	leaves, extras, err := listRemoteLeaves(ctx, b, meta)
	if err != nil {
		return nil, err
	}
	rd, err := bucket.NewReader(ctx, b, ManifestName, remoteManifestMax(meta))
	if err != nil {
		return nil, err
	}
	mr, err := manifest.NewReader(rd)
	if err != nil {
		res.add(Problem{Index: -1, Name: ManifestName, Kind: "manifest", Detail: err.Error()})
		return res, nil
	}
	if err := ev.checkHeader(mr.Header()); err != nil {
		res.add(problem(err, "manifest"))
	}
	w := &remoteWalk{ctx: ctx, b: b, ev: ev, unseal: unseal, progress: progress, res: res, mr: mr, extras: extras, jc: Comparison{Record: "journals"}}
	w.next()
	for k := 0; k < len(leaves) || w.ahead != nil; {
		leaf := int64(-1)
		switch {
		case w.ahead == nil:
			leaf = leaves[k]
		case k == len(leaves) || w.ahead.Index/leafSize < leaves[k]:
			leaf = w.ahead.Index / leafSize
		default:
			leaf = leaves[k]
		}
		hasObjects := k < len(leaves) && leaves[k] == leaf
		if hasObjects {
			k++
		}
		if err := w.leaf(leaf, hasObjects); err != nil {
			return nil, err
		}
	}
	if w.whole && sum != mr.Sum() {
		res.add(Problem{Index: -1, Name: ManifestName, Kind: "manifest", Detail: fmt.Sprintf("read twice, the manifest hashed to %s, then %s", sum.Hex(), mr.Sum().Hex())})
	}
	if res.KeyRejected > 0 && w.opened == 0 {
		res.KeyOpensNone = true
	}
	sort.Strings(w.extras)
	for _, k := range w.extras {
		res.add(Problem{Index: indexOf(path.Base(k)), Name: k, Kind: "extra", Detail: "object is not in the manifest"})
	}
	res.MoreProblems += w.moreExtras
	res.Journals = w.journals()
	return res, nil
}

// remoteWalk is VerifyRemote's walk of the manifest and the objects, one
// leaf at a time.
type remoteWalk struct {
	ctx      context.Context
	b        bucket.Bucket
	ev       *Evidence
	unseal   Unseal
	progress func(int64)
	res      *VerifyResult
	mr       *manifest.Reader
	ahead    *manifest.Entry // the next entry of the manifest, nil at its end
	whole    bool            // the manifest was read to its end
	done     int64           // objects checked
	opened   int64           // encrypted blocks opened
	// extras are the objects no entry names (at most maxProblems kept,
	// moreExtras counted past them).
	extras     []string
	moreExtras int64
	// The journal comparison, summed over the leaves.
	jc                             Comparison
	batches, differ, lines, listed int64
}

// next reads the next entry into w.ahead.
func (w *remoteWalk) next() {
	w.ahead = nil
	e, err := w.mr.Next()
	if errors.Is(err, io.EOF) {
		w.whole = true
		return
	}
	if err != nil {
		w.res.add(Problem{Index: -1, Name: ManifestName, Kind: "manifest", Detail: err.Error()})
		return
	}
	w.ahead = &e
}

// leaf checks the entries of leaf against its objects (listed when it
// has some) and its journal batches.
func (w *remoteWalk) leaf(leaf int64, hasObjects bool) error {
	objects := map[string]int64{}
	var batches []string
	if hasObjects {
		keys, err := w.b.List(w.ctx, leafDir(leaf)+"/", maxLeafKeys)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if strings.HasPrefix(path.Base(k.Key), journalPrefix) && path.Dir(k.Key) == leafDir(leaf) {
				batches = append(batches, k.Key)
			} else {
				objects[k.Key] = k.Size
			}
		}
	}
	listed := map[int64]manifest.Entry{}
	var checks []remoteCheck
	for w.ahead != nil && w.ahead.Index/leafSize == leaf {
		e := *w.ahead
		w.res.Blocks++
		w.res.Bytes += int64(e.Length)
		listed[e.Index] = e
		c := remoteCheck{e: e}
		if err := w.ev.checkEntry(e); err != nil {
			c.problem = ptr(problem(err, "mismatch"))
		} else if size, ok := objects[e.Name]; !ok {
			c.problem = &Problem{Index: e.Index, Name: e.Name, Kind: "missing", Detail: "block object is missing"}
		} else {
			c.size, c.fetch = size, true
		}
		delete(objects, e.Name)
		checks = append(checks, c)
		w.next()
	}
	if err := runRemoteChecks(w.ctx, w.b, w.unseal, checks, &w.done, w.progress); err != nil {
		return err
	}
	res := w.res
	for _, c := range checks {
		switch {
		case c.problem != nil:
			res.add(*c.problem)
			if c.storedOK {
				res.StoredChecked++
			}
		case c.encrypted:
			res.StoredChecked++
			res.Encrypted++
		case c.keyRejected:
			res.StoredChecked++
			res.KeyRejected++
		default:
			res.StoredChecked++
			res.ContentChecked++
			if c.e.Encryption != "none" {
				w.opened++
			}
		}
	}
	for k := range objects {
		w.extra(k)
	}
	w.compareBatches(batches, listed)
	return nil
}

func (w *remoteWalk) extra(key string) {
	if len(w.extras) < maxProblems {
		w.extras = append(w.extras, key)
	} else {
		w.moreExtras++
	}
}

// compareBatches compares the entries of one leaf with its journal
// batches: the last line per index must be its entry, and every entry
// must have a line.
func (w *remoteWalk) compareBatches(batches []string, listed map[int64]manifest.Entry) {
	w.batches += int64(len(batches))
	w.listed += int64(len(listed))
	if w.jc.Outcome != "" {
		return
	}
	journal := map[int64]manifest.Entry{}
	for _, k := range batches {
		data, err := w.b.Get(w.ctx, k, leafSize*manifest.MaxLine)
		if err != nil {
			w.jc.Outcome, w.jc.Detail = CompareNotPossible, err.Error()
			return
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			var e manifest.Entry
			if err := json.Unmarshal(line, &e); err != nil {
				w.jc.Outcome, w.jc.Detail = CompareDiffers, fmt.Sprintf("%s: a malformed line", k)
				return
			}
			journal[e.Index] = e
		}
	}
	for i, e := range listed {
		if j, ok := journal[i]; !ok || j != e {
			w.differ++
		}
	}
	w.lines += int64(len(journal))
}

// journals is the journal comparison over every leaf.
func (w *remoteWalk) journals() Comparison {
	c := w.jc
	switch {
	case c.Outcome != "":
	case w.batches == 0:
		c.Outcome, c.Detail = CompareNotPossible, "no journal batches"
	case w.differ > 0 || w.lines != w.listed:
		c.Outcome = CompareDiffers
		c.Detail = fmt.Sprintf("%d entries differ from their journal lines, %d lines in all for %d entries", w.differ, w.lines, w.listed)
	default:
		c.Outcome, c.Detail = CompareMatch, fmt.Sprintf("%d entries match their journal lines", w.listed)
	}
	return c
}

// listRemoteLeaves lists, one level at a time, the leaves under blocks/
// that hold objects, in index order, and the keys that lie outside any
// leaf (extras: at most maxProblems of them are returned, the listing is
// bounded by the volume's size).
func listRemoteLeaves(ctx context.Context, b bucket.Bucket, meta Meta) ([]int64, []string, error) {
	nleaves := (block.Slots(meta.VolumeSizeGiB) + leafSize - 1) / leafSize
	ntops := (nleaves + topSize - 1) / topSize
	var (
		leaves []int64
		extras []string
	)
	foreign := func(prefix string) error {
		keys, err := b.List(ctx, prefix, maxLeafKeys)
		if err != nil {
			return err
		}
		for _, k := range keys {
			extras = append(extras, k.Key)
		}
		return nil
	}
	keys, tops, err := b.ListLevel(ctx, blocksDir+"/", int(ntops)+maxProblems)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		extras = append(extras, k.Key)
	}
	for _, top := range tops {
		t, ok := parseLevel(top, blocksDir+"/", 2)
		if !ok || t >= ntops {
			if err := foreign(top); err != nil {
				return nil, nil, err
			}
			continue
		}
		keys, dirs, err := b.ListLevel(ctx, top, topSize+maxProblems)
		if err != nil {
			return nil, nil, err
		}
		for _, k := range keys {
			extras = append(extras, k.Key)
		}
		for _, d := range dirs {
			n, ok := parseLevel(d, top, 4)
			if !ok || t*topSize+n >= nleaves {
				if err := foreign(d); err != nil {
					return nil, nil, err
				}
				continue
			}
			leaves = append(leaves, t*topSize+n)
		}
		if len(extras) > maxLeafKeys {
			return nil, nil, fmt.Errorf("%s: more than %d objects outside the leaves of the evidence", b, maxLeafKeys)
		}
	}
	return leaves, extras, nil
}

// remoteManifestMax bounds the manifest of evidence of meta's volume.
func remoteManifestMax(meta Meta) int64 {
	return block.Slots(meta.VolumeSizeGiB)*manifest.MaxLine + 2*manifest.MaxLine
}

// remoteManifestSum reads the manifest in b as a stream and returns its
// SHA-256; ErrIncomplete when there is none.
func remoteManifestSum(ctx context.Context, b bucket.Bucket, meta Meta) (block.Sum, error) {
	rd, err := bucket.NewReader(ctx, b, ManifestName, remoteManifestMax(meta))
	if errors.Is(err, bucket.ErrNotFound) {
		return block.Sum{}, ErrIncomplete
	}
	if err != nil {
		return block.Sum{}, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, rd); err != nil {
		return block.Sum{}, err
	}
	var sum block.Sum
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// remoteVerifyWorkers is how many block objects VerifyRemote checks at
// once: each check is a HEAD and a GET, so concurrency, not bandwidth,
// sets the pace.
const remoteVerifyWorkers = 16

// remoteCheck is one manifest entry's check, and its outcome.
type remoteCheck struct {
	e           manifest.Entry
	size        int64 // as listed
	fetch       bool  // the object is to be read and checked
	problem     *Problem
	storedOK    bool // the stored bytes matched (a problem, if any, is the content's)
	encrypted   bool // not opened: no key
	keyRejected bool
}

func ptr[T any](v T) *T { return &v }

// runRemoteChecks checks the objects of checks, remoteVerifyWorkers at a
// time, filling in each outcome. An error that is not about the evidence
// (a request that failed) stops it.
func runRemoteChecks(ctx context.Context, b bucket.Bucket, unseal Unseal, checks []remoteCheck, done *int64, progress func(int64)) error {
	var mu sync.Mutex
	var todo []int
	for i := range checks {
		if checks[i].fetch {
			todo = append(todo, i)
		}
	}
	return forEach(ctx, remoteVerifyWorkers, len(todo), func(ctx context.Context, n int) error {
		out := decodeBufs.Get().(*[]byte)
		defer decodeBufs.Put(out)
		if err := checkRemoteBlock(ctx, b, unseal, &checks[todo[n]], *out); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		*done++
		if progress != nil {
			progress(*done)
		}
		return nil
	})
}

// decodeBufs hold decoded blocks, one per worker at a time.
var decodeBufs = sync.Pool{New: func() any { b := make([]byte, block.Size); return &b }}

// checkRemoteBlock reads and checks the object of c, recording what it
// found in c; it returns only errors that are not about the evidence.
func checkRemoteBlock(ctx context.Context, b bucket.Bucket, unseal Unseal, c *remoteCheck, out []byte) error {
	stored, err := readRemoteStored(ctx, b, c.e, c.size)
	if err != nil {
		var m *Mismatch
		if !errors.As(err, &m) {
			return err
		}
		c.problem = ptr(problem(err, "mismatch"))
		return nil
	}
	c.storedOK = true
	if c.e.Encryption != "none" && unseal == nil {
		c.encrypted = true
		return nil
	}
	if _, err := Decode(c.e, stored, unseal, out); err != nil {
		if errors.Is(err, ErrKeyRejected) {
			c.keyRejected = true
			return nil
		}
		c.problem = ptr(problem(err, "mismatch"))
	}
	return nil
}

func checkRemoteSum(ctx context.Context, b bucket.Bucket, got string) error {
	data, err := b.Get(ctx, ManifestSumName, maxMetaObject)
	if err != nil {
		return &Mismatch{Index: -1, Name: ManifestSumName, What: fmt.Sprintf("manifest checksum object unreadable: %v", err)}
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 || fields[1] != ManifestName {
		return &Mismatch{Index: -1, Name: ManifestSumName, What: "malformed manifest checksum object"}
	}
	if fields[0] != got {
		return &Mismatch{Index: -1, Name: ManifestName, What: fmt.Sprintf("manifest sha256 %s, %s says %s", got, ManifestSumName, fields[0])}
	}
	return nil
}

// readRemoteStored reads a block object and checks it against its entry:
// the size listed, the SHA-256 the store keeps for it, and the SHA-256
// of the bytes read.
func readRemoteStored(ctx context.Context, b bucket.Bucket, e manifest.Entry, listed int64) ([]byte, error) {
	mismatch := func(what string) error { return &Mismatch{Index: e.Index, Name: e.Name, What: what} }
	if listed != e.Size {
		return nil, mismatch(fmt.Sprintf("stored size %d, manifest says %d", listed, e.Size))
	}
	o, err := b.Head(ctx, e.Name)
	if err != nil {
		return nil, err
	}
	if !o.HasSHA256 {
		return nil, mismatch("the store keeps no SHA-256 for the object")
	}
	if o.SHA256.Hex() != e.StoredSHA256 {
		return nil, mismatch(fmt.Sprintf("the store's checksum is %s, manifest says %s", o.SHA256.Hex(), e.StoredSHA256))
	}
	data, err := b.Get(ctx, e.Name, e.Size)
	if err != nil {
		if strings.Contains(err.Error(), "refused") {
			return nil, mismatch(err.Error())
		}
		return nil, err
	}
	if got := block.Sum(sha256.Sum256(data)).Hex(); int64(len(data)) != e.Size || got != e.StoredSHA256 {
		return nil, mismatch(fmt.Sprintf("stored sha256 %s (%d bytes), manifest says %s", got, len(data), e.StoredSHA256))
	}
	return data, nil
}

// ReadRemoteManifest reads the manifest of complete evidence in a
// bucket, checked against its .sha256 object, evidence.json and each
// entry's name, and returns its entries in index order.
//
// The manifest's bytes are read as a stream (ranged GETs), hashed as
// they are read: what stays in memory is the entries returned.
func ReadRemoteManifest(ctx context.Context, b bucket.Bucket, meta Meta) ([]manifest.Entry, error) {
	rd, err := bucket.NewReader(ctx, b, ManifestName, remoteManifestMax(meta))
	if errors.Is(err, bucket.ErrNotFound) {
		return nil, ErrIncomplete
	}
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	tee := io.TeeReader(rd, h)
	es, perr := readRemoteEntries(tee, meta)
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
	return es, perr
}

// readRemoteEntries reads a manifest's entries to its end, each checked
// against evidence.json.
func readRemoteEntries(r io.Reader, meta Meta) ([]manifest.Entry, error) {
	ev := &Evidence{Meta: meta}
	mr, err := manifest.NewReader(r)
	if err != nil {
		return nil, err
	}
	if err := ev.checkHeader(mr.Header()); err != nil {
		return nil, err
	}
	var es []manifest.Entry
	for {
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			return es, nil
		}
		if err != nil {
			return nil, err
		}
		if err := ev.checkEntry(e); err != nil {
			return nil, err
		}
		es = append(es, e)
	}
}

// GetRemoteStored reads the object of entry e and checks its size and
// SHA-256 against the entry, so that nothing tampered with is decoded.
func GetRemoteStored(ctx context.Context, b bucket.Bucket, e manifest.Entry) ([]byte, error) {
	data, err := b.Get(ctx, e.Name, e.Size)
	if errors.Is(err, bucket.ErrNotFound) {
		return nil, &Mismatch{Index: e.Index, Name: e.Name, What: "block object is missing"}
	}
	if err != nil {
		return nil, err
	}
	if got := block.Sum(sha256.Sum256(data)).Hex(); int64(len(data)) != e.Size || got != e.StoredSHA256 {
		return nil, &Mismatch{Index: e.Index, Name: e.Name, What: fmt.Sprintf("stored sha256 %s (%d bytes), manifest says %s", got, len(data), e.StoredSHA256)}
	}
	return data, nil
}
