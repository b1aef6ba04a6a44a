package ewf

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/adler32"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zlib"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/outfile"
)

// Options configures Create.
type Options struct {
	// SegmentSize is the most bytes a segment file holds; 0 means
	// DefaultSegmentSize. It must be at least MinSegmentSize.
	SegmentSize int64
	// Level is the chunk compression.
	Level Level
	// Workers is the number of compression goroutines; 0 means
	// runtime.NumCPU(). The output does not depend on it.
	Workers int
	// Meta is the case metadata. A zero AcquiredAt or SystemAt becomes the
	// time of Create.
	Meta Metadata
	// Replace lets Close replace an existing image at base: its segments
	// that are regular files are renamed over, and the rest of its set
	// (the EWF segments that follow the new last one) removed, so that no
	// reader takes an old segment for part of the new image. Without it,
	// Create refuses a base that has any segment.
	Replace bool
}

// Result describes a finished image.
type Result struct {
	Segments  []string // segment file paths, in order
	MediaSize int64
	MD5       [16]byte
	SHA1      [20]byte
	SHA256    [32]byte // E01 has no place for it: keep it in the acquisition log
}

// limits are the format's per-section limits; tests lower them to reach
// the splitting paths with small images.
type limits struct {
	maxEntries int   // chunks per table
	maxOffset  int64 // chunk offset from the table base
	minSegment int64 // smallest segment size accepted
}

var formatLimits = limits{maxEntries: maxTableEntries, maxOffset: maxChunkOffset, minSegment: MinSegmentSize}

// batchChunks is how many chunks travel together through the pipeline:
// 16 chunks are 512 KiB, one EBS block.
const batchChunks = 16

const batchBytes = batchChunks * ChunkSize

// zeroBatch is read, never written: the bytes hashed for a hole.
var zeroBatch = make([]byte, batchBytes)

// batch is a run of whole chunks (the last one of the media may be short)
// on its way through compression, hashing and placement.
type batch struct {
	first int64  // index of its first chunk
	n     int    // media bytes in it
	zero  bool   // every byte is zero and data is not used (WriteZeros)
	data  []byte // the media bytes
	out   []byte // the stored chunks, back to back
	ends  []int  // where each stored chunk ends in out
	comp  []bool // whether each stored chunk is compressed
	done  chan struct{}
	refs  atomic.Int32
}

// Writer writes media bytes, in order, as an E01 image. It is not safe
// for concurrent use. Close or Abort must be called.
type Writer struct {
	base    string
	replace bool
	size    int64
	segSize int64
	level   Level
	lim     limits
	vol     []byte // volume (and data) section data
	header2 []byte // compressed header2 text
	header  []byte // compressed header text

	// the caller's side
	cur     *batch
	written int64
	closed  bool
	result  *Result

	free    chan *batch
	work    chan *batch
	ordered chan *batch
	hashIn  [3]chan *batch
	hashes  [3]hash.Hash // MD5, SHA-1, SHA-256
	wg      sync.WaitGroup
	aborted atomic.Bool

	errMu sync.Mutex
	err   error // the first error of the placing goroutine

	// the placing goroutine's side; the caller's after it ends
	segs []*segFile
	seg  *segFile
	sec  *sectors
	// up, when set, takes each finished segment as an object (see
	// CreateObjectSink) instead of Close renaming it into place.
	up *uploader
}

// segFile is one segment being written under a temporary name.
type segFile struct {
	number int
	final  string
	tmp    string
	f      *os.File
	bw     *bufio.Writer
	pos    int64
	chunks int
}

// sectors is the open sectors section of the current segment.
type sectors struct {
	start   int64    // offset of its descriptor, the base of its table
	entries []uint32 // table entries of the chunks placed so far
}

// Create starts an image of mediaSize bytes at base (a path without
// extension): it writes base.E01, base.E02, … under temporary names in the
// same directory and renames them in Close. mediaSize must be a positive
// multiple of SectorSize; base.E01 must not exist.
func Create(base string, mediaSize int64, o Options) (*Writer, error) {
	return create(base, mediaSize, o, formatLimits)
}

func create(base string, mediaSize int64, o Options, lim limits) (*Writer, error) {
	if mediaSize <= 0 || mediaSize%SectorSize != 0 {
		return nil, fmt.Errorf("media size %d: want a positive multiple of %d", mediaSize, SectorSize)
	}
	chunks := (mediaSize + ChunkSize - 1) / ChunkSize
	if chunks > math.MaxUint32 {
		return nil, fmt.Errorf("media size %d: more than %d chunks", mediaSize, uint32(math.MaxUint32))
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SegmentSize < lim.minSegment {
		return nil, fmt.Errorf("segment size %d: want at least %d", o.SegmentSize, lim.minSegment)
	}
	if o.Level < LevelNone || o.Level > LevelBest {
		return nil, fmt.Errorf("compression level %d: want none, fast or best", o.Level)
	}
	if o.Workers < 0 {
		return nil, fmt.Errorf("workers %d: want 0 or more", o.Workers)
	}
	if o.Workers == 0 {
		o.Workers = runtime.NumCPU()
	}
	now := time.Now()
	if o.Meta.AcquiredAt.IsZero() {
		o.Meta.AcquiredAt = now
	}
	if o.Meta.SystemAt.IsZero() {
		o.Meta.SystemAt = now
	}
	if err := checkSegments(base, o.Replace); err != nil {
		return nil, err
	}
	w := &Writer{
		base:    base,
		replace: o.Replace,
		size:    mediaSize,
		segSize: o.SegmentSize,
		level:   o.Level,
		lim:     lim,
		header2: zlibBytes(header2Text(o.Meta)),
		header:  zlibBytes(headerText(o.Meta)),
		vol: volume{
			MediaType:       mediaTypeFixed,
			Chunks:          uint32(chunks),
			SectorsPerChunk: SectorsPerChunk,
			BytesPerSector:  SectorSize,
			Sectors:         uint64(mediaSize / SectorSize),
			MediaFlags:      mediaFlagImage | mediaFlagPhysical,
			Compression:     o.Level.volumeLevel(),
			ErrorGranule:    SectorsPerChunk, // ewfacquire's default: one chunk
			GUID:            setID(o, mediaSize),
		}.marshal(),
		hashes: [3]hash.Hash{md5.New(), sha1.New(), sha256.New()},
	}
	if err := w.openSegment(); err != nil {
		return nil, errors.Join(err, w.removeTemps())
	}
	w.start(o.Workers)
	return w, nil
}

// checkSegments refuses a base that already has segment files beside
// it, so that Close never has to overwrite one, unless replace; then it
// refuses only segments that are not regular files. A segment is a file
// under one of the names this package writes, BASE.E01 … BASE.ZZZ, in
// upper case: an unrelated BASE.err or BASE.exe is not one. On a file
// system that ignores case, BASE.e01 is the same name as BASE.E01, and
// counts.
func checkSegments(base string, replace bool) error {
	names, err := existingSegments(base)
	if err != nil {
		return fmt.Errorf("creating %s.E01: %w", base, err)
	}
	for _, name := range names {
		if replace {
			if err := outfile.Replaceable(name); err != nil {
				return fmt.Errorf("creating %s.E01: %w", base, err)
			}
			continue
		}
		return fmt.Errorf("creating %s.E01: %s: %w", base, name, os.ErrExist)
	}
	return nil
}

// Outputs returns the segment files an image at base creates or, with
// Replace, replaces: BASE.E01 and every existing segment name of base.
// The old segments Replace removes beyond the new set are among them.
func Outputs(base string) ([]string, error) {
	names, err := existingSegments(base)
	if err != nil {
		return nil, err
	}
	first, _ := SegmentName(base, 1)
	if !slices.Contains(names, first) {
		names = append(names, first)
	}
	return names, nil
}

// existingSegments returns the segment names of base that exist, as this
// package spells them.
func existingSegments(base string) ([]string, error) {
	dir, name := filepath.Split(base)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), name)
		if !ok {
			continue
		}
		n, _, err := parseSegmentExt(rest)
		if err != nil {
			continue
		}
		ours, _ := SegmentName(base, n)
		found := filepath.Join(dir, e.Name())
		if filepath.Base(ours) == e.Name() {
			names = append(names, ours)
			continue
		}
		// Another spelling: the same file only where case is ignored.
		a, err1 := os.Lstat(ours)
		b, err2 := os.Lstat(found)
		if err1 == nil && err2 == nil && os.SameFile(a, b) && !slices.Contains(names, ours) {
			names = append(names, ours)
		}
	}
	return names, nil
}

// tempSuffix ends the name of a segment being written:
// BASE.E01.<random digits>.tmp.
const tempSuffix = ".tmp"

// RemoveTemps removes the temporary segment files an image at base can
// have (BASE.E01.<digits>.tmp, …) and returns their names. They belong to
// a writer that ended without Close or Abort (kill -9, power loss): call
// it only while holding the image's lock, which every writer of base
// holds for as long as its temporary files exist.
func RemoveTemps(base string) ([]string, error) {
	dir, name := filepath.Split(base)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	var removed []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), name)
		if !ok || !isTempName(rest) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("removing %s left by an interrupted run: %w", p, err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// isTempName reports whether rest, a name without its base, is what
// openSegment's os.CreateTemp makes: .E01.<digits>.tmp.
func isTempName(rest string) bool {
	if len(rest) < 4 {
		return false
	}
	if n, lower, err := parseSegmentExt(rest[:4]); err != nil || lower {
		return false
	} else if ext, _ := SegmentExt(n); ext != rest[:4] {
		return false
	}
	digits, ok := strings.CutPrefix(rest[4:], ".")
	if !ok {
		return false
	}
	digits, ok = strings.CutSuffix(digits, tempSuffix)
	if !ok || digits == "" {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return false
		}
	}
	return true
}

// setNamespace is the RFC 4122 name-space of segment file set identifiers
// made by this package (a random UUID picked once for it).
var setNamespace = [16]byte{0x6b, 0x3f, 0x0e, 0x52, 0x9d, 0x41, 0x4c, 0x7a, 0xa1, 0x0b, 0x58, 0xe2, 0x37, 0xc4, 0x90, 0x1d}

// setID returns the segment file set identifier: a name-based (version 5)
// UUID of the metadata, the media size and the level, so that the same
// acquisition gives the same bytes every time while different ones get
// different identifiers.
func setID(o Options, mediaSize int64) [16]byte {
	m := o.Meta
	name := strings.Join([]string{
		m.CaseNumber, m.EvidenceNumber, m.Examiner, m.Description, m.Notes, m.Model,
		m.SerialNumber, m.ToolVersion, m.OS,
		m.AcquiredAt.UTC().Format(time.RFC3339Nano), m.SystemAt.UTC().Format(time.RFC3339Nano),
		strconv.FormatInt(mediaSize, 10), o.Level.String(),
	}, "\x00")
	h := sha1.New()
	h.Write(setNamespace[:])
	h.Write([]byte(name))
	var id [16]byte
	copy(id[:], h.Sum(nil))
	id[6] = id[6]&0x0f | 0x50 // version 5
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	// EnCase stores the identifier as a Windows GUID, whose first three
	// fields are little-endian.
	id[0], id[1], id[2], id[3] = id[3], id[2], id[1], id[0]
	id[4], id[5] = id[5], id[4]
	id[6], id[7] = id[7], id[6]
	return id
}

func zlibBytes(p []byte) []byte {
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	zw.Write(p) // writes to a bytes.Buffer cannot fail
	zw.Close()
	return buf.Bytes()
}

// start launches the compression workers, the three hashers and the
// goroutine that places chunks in the files.
func (w *Writer) start(workers int) {
	// Batches in flight: enough to keep every worker busy, at most 128 of
	// them (about 128 MiB with their output buffers) however many workers.
	pool := min(max(4, 4*workers), 128)
	w.free = make(chan *batch, pool)
	for range pool {
		w.free <- &batch{
			data: make([]byte, batchBytes),
			out:  make([]byte, 0, batchChunks*(ChunkSize+4)),
			ends: make([]int, 0, batchChunks),
			comp: make([]bool, 0, batchChunks),
		}
	}
	w.work = make(chan *batch, pool)
	w.ordered = make(chan *batch, pool)
	for i := range w.hashIn {
		w.hashIn[i] = make(chan *batch, pool)
	}
	for range workers {
		w.wg.Go(w.compressLoop)
	}
	for i := range w.hashIn {
		w.wg.Go(func() { w.hashLoop(w.hashIn[i], w.hashes[i]) })
	}
	w.wg.Go(w.placeLoop)
}

func (w *Writer) compressLoop() {
	p := newPacker(w.level)
	for b := range w.work {
		if !w.aborted.Load() {
			for off := 0; off < b.n; off += ChunkSize {
				end := min(off+ChunkSize, b.n)
				var comp bool
				if b.zero {
					b.out, comp = append(b.out, compressUniform(0, end-off)...), true
				} else {
					b.out, comp = p.pack(b.out, b.data[off:end])
				}
				b.ends = append(b.ends, len(b.out))
				b.comp = append(b.comp, comp)
			}
		}
		close(b.done)
	}
}

func (w *Writer) hashLoop(in chan *batch, h hash.Hash) {
	for b := range in {
		if !w.aborted.Load() {
			if b.zero {
				h.Write(zeroBatch[:b.n])
			} else {
				h.Write(b.data[:b.n])
			}
		}
		w.release(b)
	}
}

func (w *Writer) placeLoop() {
	for b := range w.ordered {
		<-b.done
		if !w.aborted.Load() && w.placeErr() == nil {
			start := 0
			for i, end := range b.ends {
				if err := w.place(b.out[start:end], b.comp[i]); err != nil {
					w.setErr(fmt.Errorf("writing chunk %d: %w", b.first+int64(i), err))
					break
				}
				start = end
			}
		}
		w.release(b)
	}
}

// release hands a batch back to the pool once the placing goroutine and
// the three hashers are done with it.
func (w *Writer) release(b *batch) {
	if b.refs.Add(-1) == 0 {
		w.free <- b
	}
}

func (w *Writer) setErr(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *Writer) placeErr() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// next returns the batch being filled, taking one from the pool if needed.
func (w *Writer) next() *batch {
	if w.cur == nil {
		b := <-w.free
		b.first = w.written / ChunkSize
		b.n, b.zero = 0, false
		b.out, b.ends, b.comp = b.out[:0], b.ends[:0], b.comp[:0]
		b.done = make(chan struct{})
		w.cur = b
	}
	return w.cur
}

// emit sends the batch being filled down the pipeline.
func (w *Writer) emit() {
	b := w.cur
	w.cur = nil
	b.refs.Store(1 + int32(len(w.hashIn))) // the placing goroutine and each hasher
	w.work <- b
	w.ordered <- b
	for _, ch := range w.hashIn {
		ch <- b
	}
}

var errClosed = errors.New("ewf writer is closed")

// Write adds media bytes after those already written.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errClosed
	}
	if err := w.placeErr(); err != nil {
		return 0, err
	}
	var over error
	if rem := w.size - w.written; int64(len(p)) > rem {
		p = p[:rem]
		over = fmt.Errorf("writing past the media size %d", w.size)
	}
	n := 0
	for len(p) > 0 {
		b := w.next()
		k := copy(b.data[b.n:], p)
		b.n += k
		p = p[k:]
		n += k
		w.written += int64(k)
		if b.n == len(b.data) || w.written == w.size {
			w.emit()
		}
	}
	return n, over
}

// WriteZeros adds n zero bytes, as for a block that was never written.
// Whole zero batches skip compression and copying entirely.
func (w *Writer) WriteZeros(n int64) error {
	if w.closed {
		return errClosed
	}
	if err := w.placeErr(); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("writing %d zero bytes: want 0 or more", n)
	}
	var over error
	if rem := w.size - w.written; n > rem {
		n = rem
		over = fmt.Errorf("writing past the media size %d", w.size)
	}
	for n > 0 {
		if w.cur == nil && (n >= batchBytes || w.written+n == w.size) {
			b := w.next()
			b.n = int(min(n, batchBytes))
			b.zero = true
			n -= int64(b.n)
			w.written += int64(b.n)
			w.emit()
			continue
		}
		b := w.next()
		k := int(min(n, int64(len(b.data)-b.n)))
		clear(b.data[b.n : b.n+k])
		b.n += k
		n -= int64(k)
		w.written += int64(k)
		if b.n == len(b.data) || w.written == w.size {
			w.emit()
		}
	}
	return over
}

// stop closes the pipeline and waits for every goroutine.
func (w *Writer) stop() {
	close(w.work)
	close(w.ordered)
	for _, ch := range w.hashIn {
		close(ch)
	}
	w.wg.Wait()
}

// Close finishes the image: it writes the hashes and the closing sections,
// syncs every segment and renames them to their final names. It fails if
// fewer than the media size bytes were written, and then leaves nothing
// behind.
func (w *Writer) Close() (Result, error) {
	if w.closed {
		if w.result != nil {
			return *w.result, nil
		}
		return Result{}, errClosed
	}
	w.closed = true
	if w.written < w.size {
		w.aborted.Store(true)
		w.stop()
		return Result{}, errors.Join(
			fmt.Errorf("closing %s: %d of %d media bytes written", w.base+".E01", w.written, w.size),
			w.removeTemps())
	}
	w.stop()
	if err := w.placeErr(); err != nil {
		return Result{}, errors.Join(err, w.removeTemps())
	}
	res := Result{MediaSize: w.size}
	copy(res.MD5[:], w.hashes[0].Sum(nil))
	copy(res.SHA1[:], w.hashes[1].Sum(nil))
	copy(res.SHA256[:], w.hashes[2].Sum(nil))
	if err := w.finishSegment(true, res.MD5, res.SHA1); err != nil {
		return Result{}, errors.Join(fmt.Errorf("finishing %s: %w", w.seg.final, err), w.removeTemps())
	}
	if w.up != nil {
		if err := w.up.commit(); err != nil {
			return Result{}, errors.Join(fmt.Errorf("completing %s.E01: %w", filepath.Base(w.base), err), w.removeTemps())
		}
		res.Segments = w.up.names
		w.result = &res
		return res, nil
	}
	if err := w.rename(); err != nil {
		return Result{}, err
	}
	for _, s := range w.segs {
		res.Segments = append(res.Segments, s.final)
	}
	w.result = &res
	return res, nil
}

// Abort stops writing and removes every temporary segment file. After a
// successful Close it does nothing.
func (w *Writer) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.aborted.Store(true)
	w.stop()
	return w.removeTemps()
}

// removeTemps closes and removes every segment still under its temporary
// name, and drops the uploads of the segments handed to objects.
func (w *Writer) removeTemps() error {
	var errs []error
	if w.up != nil {
		errs = append(errs, w.up.abort())
	}
	for _, s := range w.segs {
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
		if err := os.Remove(s.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing %s: %w", s.tmp, err))
		}
	}
	return errors.Join(errs...)
}

// rename gives every finished segment its final name, then syncs the
// directory. If a final name is taken or a rename fails, the segments go
// back to (or stay under) their temporary names, which the error lists:
// the image is complete there, but no partial set is left under final
// names.
func (w *Writer) rename() error {
	var temps []string
	for _, s := range w.segs {
		temps = append(temps, s.tmp)
	}
	kept := fmt.Errorf("the finished segments are kept as %s", strings.Join(temps, ", "))
	for _, s := range w.segs {
		if w.replace {
			if err := outfile.Replaceable(s.final); err != nil {
				return errors.Join(fmt.Errorf("renaming %s: %w", s.tmp, err), kept)
			}
			continue
		}
		if _, err := os.Lstat(s.final); err == nil {
			return errors.Join(fmt.Errorf("renaming %s: %s: %w", s.tmp, s.final, os.ErrExist), kept)
		}
	}
	for i, s := range w.segs {
		if err := os.Rename(s.tmp, s.final); err != nil {
			errs := []error{fmt.Errorf("renaming %s: %w", s.tmp, err)}
			for _, done := range w.segs[:i] {
				if err := os.Rename(done.final, done.tmp); err != nil {
					errs = append(errs, fmt.Errorf("renaming %s back: %w", done.final, err))
				}
			}
			return errors.Join(append(errs, kept)...)
		}
	}
	if w.replace {
		if err := w.removeOldSegments(); err != nil {
			return err
		}
	}
	return atomicfile.SyncDir(filepath.Dir(w.base))
}

// removeOldSegments removes what follows the new last segment of the
// replaced image: each next segment name, while it is a regular file that
// opens with the EWF signature. A reader globs segments in order until
// one is missing, so any of them left would be read as part of the new
// image.
func (w *Writer) removeOldSegments() error {
	for n := len(w.segs) + 1; n <= MaxSegments; n++ {
		name, _ := SegmentName(w.base, n)
		if !isSegmentFile(name) {
			return nil
		}
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("removing %s of the replaced image: %w", name, err)
		}
	}
	return nil
}

// isSegmentFile reports whether name is a regular file that starts with
// the EWF signature.
func isSegmentFile(name string) bool {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	var sig [len(signature)]byte
	_, err = io.ReadFull(f, sig[:])
	return err == nil && sig == signature
}

// openSegment starts the next segment file under a temporary name and
// writes its opening sections: header2 (twice), header and volume in the
// first segment, the volume's copy (data) in the others.
func (w *Writer) openSegment() error {
	n := len(w.segs) + 1
	final, err := SegmentName(w.base, n)
	if err != nil {
		return fmt.Errorf("starting segment: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(final), filepath.Base(final)+".*"+tempSuffix) // created 0600; the * becomes digits
	if err != nil {
		return fmt.Errorf("creating %s: %w", final, err)
	}
	s := &segFile{number: n, final: final, tmp: f.Name(), f: f, bw: bufio.NewWriterSize(f, 1<<20)}
	w.segs = append(w.segs, s)
	w.seg = s
	if err := s.write(fileHeader(n)); err != nil {
		return fmt.Errorf("writing %s: %w", s.tmp, err)
	}
	if n == 1 {
		err = errors.Join(
			s.section("header2", w.header2),
			s.section("header2", w.header2),
			s.section("header", w.header),
			s.section("volume", w.vol))
	} else {
		err = s.section("data", w.vol)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", s.tmp, err)
	}
	return nil
}

func (s *segFile) write(p []byte) error {
	n, err := s.bw.Write(p)
	s.pos += int64(n)
	return err
}

// section writes a section descriptor followed by its data.
func (s *segFile) section(typ string, data []byte) error {
	size := int64(descriptorSize + len(data))
	if err := s.write(descriptor{Type: typ, Next: s.pos + size, Size: size}.marshal()); err != nil {
		return err
	}
	return s.write(data)
}

// terminal writes a next or done section, which points at itself and has
// size 0 as EnCase writes them.
func (s *segFile) terminal(typ string) error {
	return s.write(descriptor{Type: typ, Next: s.pos}.marshal())
}

// place appends one stored chunk, starting a sectors section or a new
// segment when the current one is full.
func (w *Writer) place(stored []byte, compressed bool) error {
	n := int64(len(stored))
	if w.sec != nil && (len(w.sec.entries) >= w.lim.maxEntries || w.seg.pos-w.sec.start > w.lim.maxOffset) {
		if err := w.closeSectors(); err != nil {
			return err
		}
	}
	if w.sec != nil && w.seg.pos+n+2*tableSectionSize(len(w.sec.entries)+1)+trailerReserve > w.segSize {
		if err := w.finishSegment(false, [16]byte{}, [20]byte{}); err != nil {
			return err
		}
		if err := w.openSegment(); err != nil {
			return err
		}
	}
	if w.sec == nil {
		if w.seg.chunks > 0 && w.seg.pos+descriptorSize+n+2*tableSectionSize(1)+trailerReserve > w.segSize {
			if err := w.finishSegment(false, [16]byte{}, [20]byte{}); err != nil {
				return err
			}
			if err := w.openSegment(); err != nil {
				return err
			}
		}
		w.sec = &sectors{start: w.seg.pos}
		// The descriptor is written for real once the section's size is known.
		if err := w.seg.write(make([]byte, descriptorSize)); err != nil {
			return err
		}
	}
	entry := uint32(w.seg.pos - w.sec.start)
	if compressed {
		entry |= compressedFlag
	}
	w.sec.entries = append(w.sec.entries, entry)
	w.seg.chunks++
	return w.seg.write(stored)
}

// closeSectors completes the open sectors section and writes its table
// and the table2 mirror after it.
func (w *Writer) closeSectors() error {
	s, sec := w.seg, w.sec
	w.sec = nil
	if err := s.bw.Flush(); err != nil {
		return err
	}
	d := descriptor{Type: "sectors", Next: s.pos, Size: s.pos - sec.start}
	if _, err := s.f.WriteAt(d.marshal(), sec.start); err != nil {
		return err
	}
	entries := make([]byte, 4*len(sec.entries))
	for i, e := range sec.entries {
		binary.LittleEndian.PutUint32(entries[4*i:], e)
	}
	hdr := tableHeader(len(sec.entries), sec.start)
	footer := binary.LittleEndian.AppendUint32(nil, adler32.Checksum(entries))
	size := tableSectionSize(len(sec.entries))
	for _, typ := range []string{"table", "table2"} {
		d := descriptor{Type: typ, Next: s.pos + size, Size: size}
		if err := errors.Join(s.write(d.marshal()), s.write(hdr), s.write(entries), s.write(footer)); err != nil {
			return err
		}
	}
	return nil
}

// finishSegment closes the current segment: its last tables, then next,
// or for the last segment the data section (when it is also the first),
// digest, hash and done. It syncs and closes the file.
func (w *Writer) finishSegment(last bool, md5 [16]byte, sha1 [20]byte) error {
	s := w.seg
	if w.sec != nil {
		if err := w.closeSectors(); err != nil {
			return err
		}
	}
	var err error
	if last {
		if s.number == 1 {
			err = s.section("data", w.vol)
		}
		err = errors.Join(err,
			s.section("digest", digestData(md5, sha1)),
			s.section("hash", hashData(md5)),
			s.terminal("done"))
	} else {
		err = s.terminal("next")
	}
	if err != nil {
		return err
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	err = s.f.Close()
	s.f = nil
	if err == nil && w.up != nil {
		err = w.up.handoff(s)
	}
	return err
}
