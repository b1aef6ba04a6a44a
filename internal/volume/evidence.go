package volume

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

// evidence is the volume an evidence directory holds. It reads only the
// blocks a read touches: each is found in the manifest by a binary
// search over the file (its entries ascend by index), so memory stays
// bounded whatever the manifest's size (a fully allocated 64 TiB volume
// has 134 M lines); the entry is checked as verify checks it, the stored
// file against the entry's size and SHA-256, and the decoded block
// against the SHA-256 AWS served it with. A block the manifest does not
// list reads as zeros, as on a restored volume.
type evidence struct {
	ev     *store.Evidence
	unseal store.Unseal
	f      *os.File // manifest.jsonl
	first  int64    // offset of the first line after the header
	end    int64    // the manifest's size
	size   int64    // the volume's size in bytes
	cache  *blockCache
	stored sync.Pool // *bytes.Buffer for stored files

	mu   sync.Mutex
	last lineRef // the entry found last: a sequential reader's next block is on the next line
}

// lineRef is a manifest entry's index and where its line ends.
type lineRef struct {
	index, next int64
}

// searchWindow is where the binary search over the manifest stops and
// scans: a few entries of about 400 bytes each.
const searchWindow = 8 << 10

// openEvidence opens the evidence directory dir.
func openEvidence(dir string, o Options) (*evidence, error) {
	ev, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	if o.SnapshotID != "" && ev.Meta.SnapshotID != o.SnapshotID {
		return nil, &store.OtherSnapshotError{Dir: dir, Have: ev.Meta.SnapshotID, Want: o.SnapshotID}
	}
	var unseal store.Unseal
	if o.Unseal != nil {
		if unseal, err = o.Unseal(ev); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(filepath.Join(dir, store.ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no manifest: %w", dir, store.ErrIncomplete)
	}
	if err != nil {
		return nil, err
	}
	v, err := newEvidence(ev, unseal, f, o)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the manifest of %s: %w", dir, markCorrupt(err))
	}
	return v, nil
}

func newEvidence(ev *store.Evidence, unseal store.Unseal, f *os.File, o Options) (*evidence, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	v := &evidence{ev: ev, unseal: unseal, f: f, end: fi.Size(), size: ev.Meta.VolumeSizeGiB << 30} // VolumeSize is in GiB
	v.stored.New = func() any { return new(bytes.Buffer) }
	line, next, err := v.lineAt(0)
	if err != nil {
		return nil, err
	}
	mr, err := manifest.NewReader(bytes.NewReader(append(line, '\n')))
	if err != nil {
		return nil, err
	}
	if err := ev.CheckHeader(mr.Header()); err != nil {
		return nil, err
	}
	v.first = next
	if o.CheckManifest {
		if _, err := v.ranges(); err != nil {
			return nil, err
		}
	}
	v.cache = newBlockCache(v.size, o.CacheBlocks, v.load)
	return v, nil
}

// SnapshotID is the snapshot the evidence holds.
func (v *evidence) SnapshotID() string { return v.ev.Meta.SnapshotID }

// Size is VolumeSize GiB.
func (v *evidence) Size() int64 { return v.size }

// Close closes the manifest.
func (v *evidence) Close() error {
	v.cache.close()
	return v.f.Close()
}

// ReadAt reads the volume at off.
func (v *evidence) ReadAt(p []byte, off int64) (int, error) {
	return v.cache.readAt(p, off)
}

// Ranges lists the blocks of the manifest, reading all of it: every line
// is checked, and the whole file against manifest.jsonl.sha256.
func (v *evidence) Ranges() ([]Range, error) {
	r, err := v.ranges()
	if err != nil {
		return nil, fmt.Errorf("reading the manifest of %s: %w", v.ev.Dir, markCorrupt(err))
	}
	return r, nil
}

func (v *evidence) ranges() ([]Range, error) {
	mr, err := manifest.NewReader(io.NewSectionReader(v.f, 0, v.end))
	if err != nil {
		return nil, err
	}
	if err := v.ev.CheckHeader(mr.Header()); err != nil {
		return nil, err
	}
	var (
		out      []Range
		entryErr error // reported after the manifest's own SHA-256: an edited manifest is said to be one
	)
	for {
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := v.ev.CheckEntry(e); err != nil && entryErr == nil {
			entryErr = err
		}
		out = appendRange(out, Range{e.Index * block.Size, block.Size})
	}
	if err := v.ev.CheckManifestSum(mr.Sum()); err != nil {
		return nil, err
	}
	if entryErr != nil {
		return nil, entryErr
	}
	return out, nil
}

// load fills buf with block i, verified; an unlisted block stays zeros.
func (v *evidence) load(i int64, buf []byte) error {
	e, ok, err := v.entry(i)
	if err != nil {
		return fmt.Errorf("finding block %d in %s: %w", i, store.ManifestName, markCorrupt(err))
	}
	if !ok {
		return nil
	}
	if err := v.ev.CheckEntry(e); err != nil {
		return markCorrupt(err)
	}
	stored := v.stored.Get().(*bytes.Buffer)
	defer v.stored.Put(stored)
	if err := v.ev.ReadStored(e, stored); err != nil {
		return markCorrupt(err)
	}
	data, err := store.Decode(e, stored.Bytes(), v.unseal, buf)
	if err != nil {
		return markCorrupt(err)
	}
	if len(data) > 0 && &data[0] != &buf[0] {
		copy(buf, data) // a plain block's bytes are the stored buffer's
	}
	return nil
}

// entry finds block i in the manifest: a binary search over byte offsets
// down to a window of a few lines, then a scan. Every step shrinks
// [lo, hi), whatever the lines' lengths.
func (v *evidence) entry(i int64) (manifest.Entry, bool, error) {
	v.mu.Lock()
	last := v.last
	v.mu.Unlock()
	if last.next > 0 && last.index < i {
		// The line after the last entry found holds the next listed block:
		// i itself, or one beyond it (i is not listed).
		line, next, err := v.lineAt(last.next)
		if err != nil {
			return manifest.Entry{}, false, err
		}
		e, isEntry, err := manifest.ParseLine(line, v.ev.Meta.VolumeSizeGiB)
		if err != nil {
			return manifest.Entry{}, false, fmt.Errorf("at offset %d: %w", last.next, err)
		}
		switch {
		case !isEntry || e.Index > i:
			return manifest.Entry{}, false, nil
		case e.Index == i:
			v.remember(i, next)
			return e, true, nil
		}
	}
	e, ok, next, err := v.search(i)
	if ok {
		v.remember(i, next)
	}
	return e, ok, err
}

// remember notes the entry of block i, whose line ends before next.
func (v *evidence) remember(i, next int64) {
	v.mu.Lock()
	v.last = lineRef{i, next}
	v.mu.Unlock()
}

// search finds block i by a binary search over the manifest, and returns
// the offset of the line after its entry, or after where its entry would
// be when it is not listed.
func (v *evidence) search(i int64) (manifest.Entry, bool, int64, error) {
	lo, hi := v.first, v.end // a line starting in [lo, hi) may hold i; none at or after hi does
	for hi-lo > searchWindow {
		mid := lo + (hi-lo)/2
		start, err := v.nextLineStart(mid)
		if err != nil {
			return manifest.Entry{}, false, 0, err
		}
		if start >= hi {
			hi = mid
			continue
		}
		line, after, err := v.lineAt(start)
		if err != nil {
			return manifest.Entry{}, false, 0, err
		}
		e, isEntry, err := manifest.ParseLine(line, v.ev.Meta.VolumeSizeGiB)
		switch {
		case err != nil:
			return manifest.Entry{}, false, 0, fmt.Errorf("at offset %d: %w", start, err)
		case isEntry && e.Index == i:
			return e, true, after, nil
		case isEntry && e.Index < i:
			lo = start
		default:
			hi = start
		}
	}
	for off := lo; off < v.end; {
		line, next, err := v.lineAt(off)
		if err != nil {
			return manifest.Entry{}, false, 0, err
		}
		e, isEntry, err := manifest.ParseLine(line, v.ev.Meta.VolumeSizeGiB)
		if err != nil {
			return manifest.Entry{}, false, 0, fmt.Errorf("at offset %d: %w", off, err)
		}
		if !isEntry || e.Index > i {
			return manifest.Entry{}, false, off, nil // off: the line after where i would be
		}
		if e.Index == i {
			return e, true, next, nil
		}
		off = next
	}
	return manifest.Entry{}, false, 0, fmt.Errorf("%w: no trailer: it ends at offset %d (truncated)", manifest.ErrCorrupt, v.end)
}

// nextLineStart returns the offset of the first line that starts at or
// after pos (pos > 0), or the end of the file.
func (v *evidence) nextLineStart(pos int64) (int64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(v.f, pos-1, v.end-pos+1), 4096)
	skipped := int64(0)
	for {
		b, err := br.ReadSlice('\n')
		skipped += int64(len(b))
		if err == nil {
			return pos - 1 + skipped, nil
		}
		if errors.Is(err, io.EOF) {
			return v.end, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return 0, fmt.Errorf("reading %s: %w", store.ManifestName, err)
		}
		if skipped > manifest.MaxLine {
			return 0, fmt.Errorf("%w: a line at offset %d is longer than %d bytes", manifest.ErrCorrupt, pos, manifest.MaxLine)
		}
	}
}

// lineAt returns the line starting at off, without its newline, and the
// offset of the next line.
func (v *evidence) lineAt(off int64) ([]byte, int64, error) {
	buf := make([]byte, 0, 1024)
	chunk := make([]byte, 1024)
	for {
		n, err := v.f.ReadAt(chunk, off+int64(len(buf)))
		if i := bytes.IndexByte(chunk[:n], '\n'); i >= 0 {
			buf = append(buf, chunk[:i]...)
			return buf, off + int64(len(buf)) + 1, nil
		}
		buf = append(buf, chunk[:n]...)
		if len(buf) > manifest.MaxLine {
			return nil, 0, fmt.Errorf("%w: the line at offset %d is longer than %d bytes", manifest.ErrCorrupt, off, manifest.MaxLine)
		}
		if errors.Is(err, io.EOF) {
			if off+int64(len(buf)) >= v.end && len(buf) == 0 {
				return nil, 0, fmt.Errorf("%w: no trailer: it ends at offset %d (truncated)", manifest.ErrCorrupt, off)
			}
			return nil, 0, fmt.Errorf("%w: the line at offset %d has no end", manifest.ErrCorrupt, off)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reading %s: %w", store.ManifestName, err)
		}
	}
}
