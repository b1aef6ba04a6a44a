package ntfs

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// maxSize bounds a stream's size: 2^62 bytes is far past any volume and
// keeps every offset sum below overflow.
const maxSize = 1 << 62

// maxUnit bounds a compression unit's bytes: NTFS compresses 16 clusters
// of at most 4 KiB.
const maxUnit = 1 << 20

// stream is an attribute's bytes: a resident value, or clusters found
// through the run lists of one or more attribute pieces (split over
// extension records by VCN). It implements fsys.File.
type stream struct {
	fs    *FS
	what  string // names the stream in errors
	addr  string // Sleuth Kit's address of the attribute, for an opened $DATA
	size  int64
	init  int64 // bytes past the initialized size read as zeros
	value []byte
	res   bool
	runs  []run // sorted by VCN, contiguous from VCN 0
	vcns  int64 // clusters the runs cover
	unit  int64 // clusters per compression unit; 0 if not compressed

	mu        sync.Mutex
	cachedU   int64
	cachedBuf []byte
}

var _ fsys.File = (*stream)(nil)

// newStream builds a stream from a resident attribute or from the
// non-resident pieces of one attribute. With partial, pieces need not
// cover the attribute's whole allocation (only while the $MFT is being
// found).
func newStream(fs *FS, what string, pieces []attr, partial bool) (*stream, error) {
	s := &stream{fs: fs, what: what, cachedU: -1}
	if len(pieces) == 1 && pieces[0].resident {
		s.res, s.value = true, pieces[0].value
		s.size, s.init = int64(len(s.value)), int64(len(s.value))
		return s, nil
	}
	pieces = slices.Clone(pieces)
	slices.SortFunc(pieces, func(a, b attr) int { return cmp.Compare(a.startVCN, b.startVCN) })
	first := pieces[0]
	nruns := 0
	for i, p := range pieces {
		if p.resident {
			return nil, corruptf("%s: resident and non-resident pieces", what)
		}
		if p.startVCN != s.vcns {
			return nil, corruptf("%s: piece %d starts at VCN %d, the previous ends at %d", what, i, p.startVCN, s.vcns-1)
		}
		if nruns += len(p.runs); nruns > fsys.MaxRuns {
			return nil, corruptf("%s: more than %d runs", what, fsys.MaxRuns)
		}
		s.vcns = p.lastVCN + 1
	}
	s.runs = make([]run, 0, nruns)
	for _, p := range pieces {
		s.runs = append(s.runs, p.runs...)
	}
	cl := fs.cluster
	if first.flags&attrFlagEncrypted != 0 {
		return nil, fmt.Errorf("ntfs: %s: encrypted (EFS): %w", what, fsys.ErrUnsupported)
	}
	if first.flags&attrFlagCompressed != 0 {
		if first.compUnit == 0 {
			return nil, corruptf("%s: compressed with no compression unit", what)
		}
		s.unit = 1 << first.compUnit
		if s.unit*fs.cluster > maxUnit {
			return nil, corruptf("%s: compression unit of %d clusters of %d bytes", what, s.unit, fs.cluster)
		}
	}
	if first.dataSize > maxSize || first.allocSize > maxSize || s.vcns > maxSize/cl {
		return nil, corruptf("%s: size %d, allocation %d", what, first.dataSize, first.allocSize)
	}
	s.size, s.init = first.dataSize, min(first.initSize, first.dataSize)
	if !partial && (first.allocSize > s.vcns*cl || s.size > s.vcns*cl) {
		return nil, corruptf("%s: size %d and allocation %d beyond the %d clusters its run lists map", what, s.size, first.allocSize, s.vcns)
	}
	if partial {
		s.size, s.init = min(s.size, s.vcns*cl), min(s.init, s.vcns*cl)
	}
	return s, nil
}

// Addr returns the stream's address as Sleuth Kit prints it in fls and
// bodyfiles, "64-128-4" for a named stream: callers that list streams
// reach it through interface{ Addr() string }.
func (s *stream) Addr() string { return s.addr }

func (s *stream) Size() int64    { return s.size }
func (s *stream) Resident() bool { return s.res }

// Runs lists where the stream's bytes lie. Bytes past the initialized
// size read as zeros without reading the disk, so they are listed as
// holes. A compressed stream lists its stored clusters at their VCNs'
// offsets: the bytes a read fetches, not a map of its decompressed bytes.
func (s *stream) Runs() []fsys.Run {
	if s.res {
		return nil
	}
	cl := s.fs.cluster
	var out []fsys.Run
	for _, r := range s.runs {
		log, phys, n := r.vcn*cl, r.lcn*cl, r.n*cl
		if s.unit != 0 {
			if r.lcn >= 0 {
				out = append(out, fsys.Run{Logical: log, Physical: phys, Length: n})
			}
			continue
		}
		if log >= s.size {
			break
		}
		n = min(n, s.size-log)
		if r.lcn >= 0 && log < s.init && log+n > s.init {
			out = append(out, fsys.Run{Logical: log, Physical: phys, Length: s.init - log})
			log, n = s.init, log+n-s.init
		}
		if r.lcn < 0 || log >= s.init {
			phys = -1
		}
		out = append(out, fsys.Run{Logical: log, Physical: phys, Length: n})
	}
	return out
}

// ReadAt reads as io.ReaderAt does; holes and bytes past the initialized
// size read as zeros, compressed units decompressed.
func (s *stream) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("ntfs: %s: negative offset %d", s.what, off)
	}
	if off >= s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.size-off))
	var err error
	switch {
	case s.res:
		copy(p[:n], s.value[off:])
	case s.unit != 0:
		err = s.readCompressed(p[:n], off)
	default:
		err = s.readPlain(p[:n], off)
	}
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readPlain fills p from offset off of an uncompressed stream.
func (s *stream) readPlain(p []byte, off int64) error {
	if end := off + int64(len(p)); end > s.init {
		z := max(s.init-off, 0)
		clear(p[z:])
		p = p[:z]
	}
	return s.readVCNs(p, off)
}

// readVCNs fills p with the stored bytes at offset off of the VCN space;
// sparse runs and VCNs no run maps read as zeros.
func (s *stream) readVCNs(p []byte, off int64) error {
	cl := s.fs.cluster
	i := sort.Search(len(s.runs), func(i int) bool { return (s.runs[i].vcn+s.runs[i].n)*cl > off })
	for len(p) > 0 {
		if i >= len(s.runs) {
			clear(p)
			return nil
		}
		r := s.runs[i]
		start, end := r.vcn*cl, (r.vcn+r.n)*cl
		k := int(min(int64(len(p)), end-off))
		if r.lcn < 0 {
			clear(p[:k])
		} else if err := s.fs.readVolume(p[:k], r.lcn*cl+off-start, s.what); err != nil {
			return err
		}
		p, off = p[k:], off+int64(k)
		i++
	}
	return nil
}

// readCompressed fills p from offset off of a compressed stream, unit by
// unit.
func (s *stream) readCompressed(p []byte, off int64) error {
	ub := s.unit * s.fs.cluster
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(p) > 0 {
		u := off / ub
		if u != s.cachedU {
			if err := s.loadUnit(u); err != nil {
				return err
			}
		}
		k := copy(p, s.cachedBuf[off-u*ub:])
		if z := s.init - off; z < int64(k) {
			clear(p[max(z, 0):k])
		}
		p, off = p[k:], off+int64(k)
	}
	return nil
}

// loadUnit decodes compression unit u into the cache: all of its clusters
// sparse is zeros, all stored is uncompressed, and some stored is LZNT1
// in those clusters.
func (s *stream) loadUnit(u int64) error {
	cl := s.fs.cluster
	ub := s.unit * cl
	if s.cachedBuf == nil {
		s.cachedBuf = make([]byte, ub)
	}
	s.cachedU = -1
	buf := s.cachedBuf
	clear(buf)
	first, stored := u*s.unit, int64(0)
	i := sort.Search(len(s.runs), func(i int) bool { return s.runs[i].vcn+s.runs[i].n > first })
	for ; i < len(s.runs) && s.runs[i].vcn < first+s.unit; i++ {
		r := s.runs[i]
		if r.lcn >= 0 {
			stored += min(r.vcn+r.n, first+s.unit) - max(r.vcn, first)
		}
	}
	switch {
	case stored == 0:
	case stored == s.unit:
		if err := s.readVCNs(buf, u*ub); err != nil {
			return err
		}
	default:
		src := make([]byte, stored*cl)
		if err := s.readStored(src, first); err != nil {
			return err
		}
		if err := lznt1(buf, src); err != nil {
			return fmt.Errorf("ntfs: %s: compression unit %d: %w", s.what, u, err)
		}
	}
	s.cachedU = u
	return nil
}

// readStored fills src with the stored clusters of the unit starting at
// VCN first, in VCN order.
func (s *stream) readStored(src []byte, first int64) error {
	cl := s.fs.cluster
	i := sort.Search(len(s.runs), func(i int) bool { return s.runs[i].vcn+s.runs[i].n > first })
	for ; i < len(s.runs) && s.runs[i].vcn < first+s.unit && len(src) > 0; i++ {
		r := s.runs[i]
		if r.lcn < 0 {
			continue
		}
		lo := max(r.vcn, first)
		n := min(r.vcn+r.n, first+s.unit) - lo
		k := int(min(n*cl, int64(len(src))))
		if err := s.fs.readVolume(src[:k], (r.lcn+lo-r.vcn)*cl, s.what); err != nil {
			return err
		}
		src = src[k:]
	}
	return nil
}

// readAll reads a whole stream of at most limit bytes.
func (s *stream) readAll(limit int64) ([]byte, error) {
	if s.size > limit {
		return nil, corruptf("%s: %d bytes, more than %d", s.what, s.size, limit)
	}
	b := make([]byte, s.size)
	if _, err := s.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}
