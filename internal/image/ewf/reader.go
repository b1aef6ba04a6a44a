package ewf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/adler32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/klauspost/compress/zlib"
)

// Reading limits that keep hostile files from making the reader allocate
// without bound.
const (
	// maxChunkSize is the largest chunk accepted: EnCase 5 and 6 allow up
	// to 32768 sectors per chunk, 16 MiB with 512-byte sectors.
	maxChunkSize = 32768 * 512
	// minChunkSize is the smallest: one 512-byte sector. Smaller chunks
	// exist in no writer and would make reads crawl.
	minChunkSize = 512
	// maxHeaderSection is the largest header or header2 section read, and
	// maxHeaderText the most text its zlib stream may expand to. EnCase's
	// limits on the values ("3000 - 1 characters" each) fit with room to
	// spare.
	maxHeaderSection = 1 << 20
	maxHeaderText    = 4 << 20
	// maxReadEntries is the most entries a table may list: far more than
	// the 65534 of EnCase 6 and libewf (maxTableEntries), so that no
	// writer's image is refused, yet it keeps one table's entries within
	// 4 MiB of memory.
	maxReadEntries = 1 << 20
	// cachedTables is how many tables keep their entries in memory.
	cachedTables = 4
)

// ChunkError reports a chunk that cannot be read back intact.
type ChunkError struct {
	Chunk      int64  // chunk index
	Offset     int64  // media offset of its first byte
	Segment    string // segment file holding it
	FileOffset int64  // where its stored bytes start in that file
	Err        error
}

func (e *ChunkError) Error() string {
	return fmt.Sprintf("chunk %d (media offset %d) in %s at offset %d: %v",
		e.Chunk, e.Offset, e.Segment, e.FileOffset, e.Err)
}

func (e *ChunkError) Unwrap() error { return e.Err }

// Reader reads an E01 image. ReadAt may be called concurrently.
type Reader struct {
	segs      []*segment
	size      int64
	chunkSize int
	tables    []*table
	meta      Metadata
	haveMeta2 bool
	vol       *volume
	md5       [16]byte
	sha1      [20]byte
	hasMD5    bool
	hasSHA1   bool
	stored    []StoredHash // every hash the digest and hash sections record
	damage    []damage     // what the sections' checks found wrong
	lenient   bool         // open goes on past damage it can step over (Check)
	header2   []byte       // the first header2 text, which later copies must repeat

	mu      sync.Mutex
	closed  bool           // reads after Close fail, even of the chunk in last
	loaded  []*loadedTable // most recently used last
	last    lastChunk      // the chunk decoded for the latest partial read
	scratch sync.Pool      // *[]byte of chunkSize + 4 bytes
}

type segment struct {
	name string
	r    io.ReaderAt
	size int64
	c    io.Closer
}

// table is a table section (or a table2 standing in for a broken one).
type table struct {
	seg        int
	off        int64 // offset of its section descriptor
	count      int
	base       int64 // what chunk offsets are relative to
	entriesOff int64
	footer     bool  // an Adler-32 of the entries follows them
	end        int64 // where the last chunk's stored bytes end
	start      int64 // where the first chunk's stored bytes start (0: not known)
	first      int64 // index of its first chunk
	mirror     *table
}

// damage is one thing wrong in an image. Open refuses an image with
// damage it cannot step over; a table whose table2 mirror stands in for it
// is read, and only Check reports it (tolerated).
type damage struct {
	err       error
	tolerated bool
}

// StoredHash is a hash an image records in its digest or hash section.
type StoredHash struct {
	Algorithm string // "md5" or "sha1", as internal/digest names them
	Section   string // "digest" or "hash"
	Segment   string // the segment file holding the section
	Offset    int64  // offset of the section descriptor in it
	Sum       []byte // nil when the section cannot be read
	Err       error  // why the section cannot be read
}

// Where names the section holding the hash.
func (h StoredHash) Where() string {
	return fmt.Sprintf("%s section of %s at offset %d", h.Section, filepath.Base(h.Segment), h.Offset)
}

type loadedTable struct {
	t       *table
	entries []uint32
}

type lastChunk struct {
	idx  int64
	data []byte
}

// IsSegment reports whether r starts with the EWF signature, as every E01
// segment file does (EWF specification, section 2.1): how a reader tells
// an E01 from a raw image, whatever its name.
func IsSegment(r io.ReaderAt) bool {
	var h [len(signature)]byte
	_, err := r.ReadAt(h[:], 0)
	return err == nil && h == signature
}

// Open opens the image whose segment path is given (normally BASE.E01;
// any segment of the set will do) and finds the other segments beside
// it. A missing or truncated segment is an error.
func Open(path string) (*Reader, error) {
	ext := filepath.Ext(path)
	_, lower, err := parseSegmentExt(ext)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	base := strings.TrimSuffix(path, ext)
	return open(func(n int) (*segment, error) { return openSegment(base, lower, n) })
}

// open reads the segments that next returns, in order, up to the one
// holding the done section. Damage that a section's checksum or a check
// reveals is an error, unless lenient (for Check) and it can be stepped
// over: then it is kept in r.damage.
func open(next func(n int) (*segment, error)) (*Reader, error) {
	return openWith(next, false)
}

func openWith(next func(n int) (*segment, error), lenient bool) (*Reader, error) {
	r := &Reader{lenient: lenient}
	for n := 1; ; n++ {
		s, err := next(n)
		if err != nil {
			if n > 1 && errors.Is(err, os.ErrNotExist) {
				err = fmt.Errorf("segment %d is missing (%s ends with a next section): %w", n, r.segs[n-2].name, err)
			}
			r.Close()
			return nil, fmt.Errorf("opening E01: %w", err)
		}
		r.segs = append(r.segs, s)
		done, err := r.scan(n - 1)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("reading %s: %w", s.name, err)
		}
		if done {
			break
		}
		if n == MaxSegments {
			r.Close()
			return nil, fmt.Errorf("reading %s: a next section after the last possible segment", s.name)
		}
	}
	if err := r.index(); err != nil {
		r.Close()
		return nil, fmt.Errorf("opening %s: %w", r.segs[0].name, err)
	}
	chunk := r.chunkSize + 4
	r.scratch.New = func() any { b := make([]byte, chunk); return &b }
	return r, nil
}

// damaged records damage found in segment s. Outside lenient mode,
// damage that is not tolerated is returned, to stop the scan.
func (r *Reader) damaged(s *segment, tolerated bool, err error) error {
	r.damage = append(r.damage, damage{fmt.Errorf("%s: %w", s.name, err), tolerated})
	if r.lenient || tolerated {
		return nil
	}
	return err
}

func readAt(s *segment, off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off > s.size || int64(n) > s.size-off {
		return nil, fmt.Errorf("%d bytes at offset %d run past the end of the file (%d bytes): truncated", n, off, s.size)
	}
	b := make([]byte, n)
	if _, err := s.r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("reading %d bytes at offset %d: %w", n, off, err)
	}
	return b, nil
}

// scan walks the sections of segment i, checking each one's own checksum,
// and reports whether it ends with done (the last segment) rather than
// next.
func (r *Reader) scan(i int) (bool, error) {
	s := r.segs[i]
	if s.size < fileHeaderSize {
		return false, fmt.Errorf("truncated: %d bytes, shorter than the file header", s.size)
	}
	h, err := readAt(s, 0, fileHeaderSize)
	if err != nil {
		return false, err
	}
	if !bytes.Equal(h[:8], signature[:]) {
		return false, fmt.Errorf("not an E01 segment: signature % x", h[:8])
	}
	if n := int(binary.LittleEndian.Uint16(h[9:])); n != i+1 {
		return false, fmt.Errorf("segment number %d, want %d", n, i+1)
	}
	if h[8] != 0x01 || h[11] != 0 || h[12] != 0 {
		// libewf ignores these constant fields; only Check reports them.
		r.damage = append(r.damage, damage{fmt.Errorf("%s: file header fields % x, want 01 and 00 00", s.name, []byte{h[8], h[11], h[12]}), true})
	}
	var (
		off         = int64(fileHeaderSize)
		prev        string
		sectors     [2]int64 // data start and end of the latest sectors section
		broken      error    // the header error of a table waiting for its table2
		brokenTable *table
		lastTable   *table // the table a table2 mirrors
	)
	for {
		if off+descriptorSize > s.size {
			return false, fmt.Errorf("truncated: section at offset %d runs past the end of the file (%d bytes)", off, s.size)
		}
		b, err := readAt(s, off, descriptorSize)
		if err != nil {
			return false, err
		}
		d, err := parseDescriptor(b)
		if err != nil {
			return false, fmt.Errorf("section at offset %d: %w", off, err)
		}
		if broken != nil && d.Type != "table2" {
			return false, fmt.Errorf("table at offset %d: %w (and no table2 follows)", brokenTable.off, broken)
		}
		if d.Type == "done" || d.Type == "next" {
			if d.Next != off && d.Next != 0 || d.Size != 0 && d.Size != descriptorSize {
				r.damage = append(r.damage, damage{fmt.Errorf("%s: %s section at offset %d: next %d, size %d; want itself and 0", s.name, d.Type, off, d.Next, d.Size), true})
			}
			return d.Type == "done", nil
		}
		if d.Next < off+descriptorSize {
			return false, fmt.Errorf("section %q at offset %d: next section at %d", d.Type, off, d.Next)
		}
		if d.Next > s.size {
			return false, fmt.Errorf("truncated: section %q at offset %d ends at %d, past the end of the file (%d bytes)", d.Type, off, d.Next, s.size)
		}
		if d.Size != 0 && off+d.Size != d.Next {
			return false, fmt.Errorf("section %q at offset %d: size %d disagrees with next offset %d", d.Type, off, d.Size, d.Next)
		}
		dataOff, dataLen := off+descriptorSize, d.Next-off-descriptorSize
		at := func(err error) error { return fmt.Errorf("%s section at offset %d: %w", d.Type, off, err) }
		switch d.Type {
		case "header2", "header":
			if err := r.readHeader(s, d.Type, dataOff, dataLen); err != nil {
				if err := r.damaged(s, false, at(err)); err != nil {
					return false, err
				}
			}
		case "volume", "disk", "data":
			b, err := readAt(s, dataOff, int(min(dataLen, volumeDataSize)))
			if err != nil {
				return false, err
			}
			v, err := parseVolume(b)
			switch {
			case err != nil && r.vol == nil:
				return false, at(err)
			case err != nil:
				err = r.damaged(s, false, at(err))
			case r.vol == nil:
				r.vol = &v
			case v != *r.vol:
				err = r.damaged(s, false, at(fmt.Errorf("disagrees with the volume section: %+v, want %+v", v, *r.vol)))
			}
			if err != nil {
				return false, err
			}
		case "sectors":
			sectors = [2]int64{dataOff, d.Next}
		case "table", "table2":
			t, err := r.readTable(i, off, dataLen, sectors[1] != 0)
			if err == nil && sectors[1] == off && prev == "sectors" {
				t.start = sectors[0]
			}
			switch {
			case d.Type == "table" && err != nil:
				broken, brokenTable, lastTable = err, &table{off: off}, nil
			case d.Type == "table":
				r.tables = append(r.tables, t)
				lastTable = t
			case broken != nil && err != nil:
				return false, fmt.Errorf("table at offset %d: %v; table2 at offset %d: %w", brokenTable.off, broken, off, err)
			case broken != nil:
				// The mirror stands in for the table; libewf 20140813
				// refuses such an image, newer versions read it too.
				r.damage = append(r.damage, damage{fmt.Errorf("%s: table section at offset %d: %w (its table2 stands in)", s.name, brokenTable.off, broken), true})
				broken = nil
				t.start = brokenTable.start
				r.tables = append(r.tables, t)
			case prev == "table" && lastTable != nil && err != nil:
				r.damage = append(r.damage, damage{fmt.Errorf("%s: %w", s.name, at(err)), true})
			case prev == "table" && lastTable != nil && (t.count != lastTable.count || t.base != lastTable.base):
				r.damage = append(r.damage, damage{fmt.Errorf("%s: %w", s.name, at(fmt.Errorf("lists %d chunks from base %d, its table %d from base %d",
					t.count, t.base, lastTable.count, lastTable.base))), true})
			case prev == "table" && lastTable != nil:
				lastTable.mirror = t
			case err != nil:
				return false, at(err)
			default:
				r.tables = append(r.tables, t)
			}
			if d.Type == "table" && err != nil && sectors[1] == off && prev == "sectors" {
				brokenTable.start = sectors[0]
			}
		case "error2", "session", "ltree", "ltypes", "xheader", "xhash", "incomplete":
			// Known sections that hold nothing the reader needs.
		default:
			// libewf skips sections it does not know; only Check reports them.
			r.damage = append(r.damage, damage{fmt.Errorf("%s: %w", s.name, at(errors.New("unknown section type"))), true})
		case "digest":
			if err := r.readStored(s, "digest", off, dataOff, dataLen); err != nil {
				return false, err
			}
		case "hash":
			if err := r.readStored(s, "hash", off, dataOff, dataLen); err != nil {
				return false, err
			}
		}
		prev = d.Type
		off = d.Next
	}
}

// readStored reads the hashes of a digest section (MD5 and SHA-1) or hash
// section (MD5). An all-zero hash is one the writer did not compute. A
// section that cannot be read is damage: its hashes are kept without a
// sum, so that Check names what could not be read.
func (r *Reader) readStored(s *segment, typ string, off, dataOff, dataLen int64) error {
	want := int64(digestDataSize)
	algs := []string{"md5", "sha1"}
	if typ == "hash" {
		want, algs = hashDataSize, algs[:1]
	}
	var b []byte
	var err error
	if dataLen < want {
		err = fmt.Errorf("%d bytes of data, want %d", dataLen, want)
	} else if b, err = readAt(s, dataOff, int(want)); err == nil {
		err = checkTrailer(b)
	}
	if err != nil {
		for _, alg := range algs {
			r.stored = append(r.stored, StoredHash{Algorithm: alg, Section: typ, Segment: s.name, Offset: off, Err: err})
		}
		return r.damaged(s, false, fmt.Errorf("%s section at offset %d: %w", typ, off, err))
	}
	sums := [][]byte{b[:16], b[16:36]}
	for k, alg := range algs {
		if isZero(sums[k]) {
			continue
		}
		r.stored = append(r.stored, StoredHash{Algorithm: alg, Section: typ, Segment: s.name, Offset: off, Sum: bytes.Clone(sums[k])})
		switch {
		case alg == "md5" && !r.hasMD5:
			r.md5, r.hasMD5 = [16]byte(sums[k]), true
		case alg == "sha1" && !r.hasSHA1:
			r.sha1, r.hasSHA1 = [20]byte(sums[k]), true
		}
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readHeader checks a header2 or header section: its zlib stream must
// decompress (which checks its Adler-32) and hold header text with a main
// category. The case metadata comes from the first header2 section or,
// when the image has none, from the header section; a later header2 copy
// must repeat the first.
func (r *Reader) readHeader(s *segment, typ string, off, n int64) error {
	if n > maxHeaderSection {
		return fmt.Errorf("%d bytes, more than %d", n, maxHeaderSection)
	}
	b, err := readAt(s, off, int(n))
	if err != nil {
		return err
	}
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("zlib: %w", err)
	}
	text, err := io.ReadAll(io.LimitReader(zr, maxHeaderText+1))
	if err != nil {
		return fmt.Errorf("zlib: %w", err)
	}
	if len(text) > maxHeaderText {
		return fmt.Errorf("more than %d bytes of text", maxHeaderText)
	}
	var str string
	if typ == "header2" {
		str = decodeHeader2(text)
	} else {
		str = string(text)
	}
	m, err := parseHeaderText(str)
	if err != nil {
		return err
	}
	switch {
	case typ == "header2" && r.header2 != nil:
		if !bytes.Equal(text, r.header2) {
			return errors.New("differs from the first header2 section")
		}
	case typ == "header2":
		r.header2 = text
		r.meta, r.haveMeta2 = m, true
	case !r.haveMeta2 && r.meta == (Metadata{}):
		r.meta = m
	}
	return nil
}

// readTable reads the header of the table at off in segment i.
func (r *Reader) readTable(i int, off, dataLen int64, afterSectors bool) (*table, error) {
	s := r.segs[i]
	if dataLen < tableHeaderSize {
		return nil, fmt.Errorf("%d bytes of data, shorter than the table header", dataLen)
	}
	h, err := readAt(s, off+descriptorSize, tableHeaderSize)
	if err != nil {
		return nil, err
	}
	if err := checkTrailer(h); err != nil {
		return nil, fmt.Errorf("table header: %w", err)
	}
	t := &table{
		seg:        i,
		off:        off,
		count:      int(binary.LittleEndian.Uint32(h)),
		base:       int64(binary.LittleEndian.Uint64(h[8:])),
		entriesOff: off + descriptorSize + tableHeaderSize,
		end:        off,
	}
	need := tableHeaderSize + 4*int64(t.count)
	if t.count == 0 {
		return nil, errors.New("no entries")
	}
	if t.count > maxReadEntries {
		return nil, fmt.Errorf("%d entries, more than %d", t.count, maxReadEntries)
	}
	if need > dataLen {
		return nil, fmt.Errorf("%d entries do not fit in %d bytes of data", t.count, dataLen)
	}
	t.footer = dataLen >= need+4
	if t.base < 0 || t.base > s.size {
		return nil, fmt.Errorf("base offset %d outside the file", t.base)
	}
	if !afterSectors {
		// EWF-S01 and EnCase 1 keep the chunks inside the table section,
		// after its entries.
		t.end = off + descriptorSize + dataLen
	}
	return t, nil
}

// index checks the volume against the tables and numbers their chunks.
func (r *Reader) index() error {
	v := r.vol
	if v == nil {
		return errors.New("no volume, disk or data section")
	}
	if cs := uint64(v.BytesPerSector) * uint64(v.SectorsPerChunk); cs < minChunkSize || cs > maxChunkSize {
		return fmt.Errorf("chunks of %d sectors of %d bytes: want %d to %d bytes", v.SectorsPerChunk, v.BytesPerSector, minChunkSize, maxChunkSize)
	}
	r.chunkSize = int(v.BytesPerSector * v.SectorsPerChunk)
	if v.Sectors > (1<<62)/uint64(v.BytesPerSector) {
		return fmt.Errorf("%d sectors of %d bytes: too large", v.Sectors, v.BytesPerSector)
	}
	r.size = int64(v.Sectors) * int64(v.BytesPerSector)
	var total int64
	for _, t := range r.tables {
		t.first = total
		total += int64(t.count)
	}
	if v.Chunks != 0 && total != int64(v.Chunks) {
		return fmt.Errorf("tables list %d chunks, the volume section %d", total, v.Chunks)
	}
	if need := (r.size + int64(r.chunkSize) - 1) / int64(r.chunkSize); total < need {
		return fmt.Errorf("tables list %d chunks, %d bytes of media need %d", total, r.size, need)
	}
	return nil
}

// Size returns the media size in bytes.
func (r *Reader) Size() int64 { return r.size }

// Metadata returns the case metadata of the header2 section, or of the
// header section when there is no header2.
func (r *Reader) Metadata() Metadata { return r.meta }

// StoredMD5 returns the MD5 recorded in the digest or hash section.
func (r *Reader) StoredMD5() ([16]byte, bool) { return r.md5, r.hasMD5 }

// StoredSHA1 returns the SHA-1 recorded in the digest section.
func (r *Reader) StoredSHA1() ([20]byte, bool) { return r.sha1, r.hasSHA1 }

// Segments returns the paths of the segment files, in order.
func (r *Reader) Segments() []string {
	names := make([]string, len(r.segs))
	for i, s := range r.segs {
		names[i] = s.name
	}
	return names
}

// Close closes the segment files.
func (r *Reader) Close() error {
	r.mu.Lock()
	r.closed, r.last = true, lastChunk{}
	r.mu.Unlock()
	var errs []error
	for _, s := range r.segs {
		if s.c != nil {
			if err := s.c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing %s: %w", s.name, err))
			}
			s.c = nil
		}
	}
	return errors.Join(errs...)
}

// ReadAt reads media bytes at off. Every chunk it touches is checked
// (zlib's Adler-32 for compressed chunks, the stored Adler-32 for the
// others); a chunk that fails is a *ChunkError.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading at offset %d: negative offset", off)
	}
	n := 0
	cs := int64(r.chunkSize)
	for n < len(p) {
		if off >= r.size {
			return n, io.EOF
		}
		idx, in := off/cs, int(off%cs)
		clen := int(min(cs, r.size-idx*cs))
		k := min(len(p)-n, clen-in)
		if in == 0 && k == clen {
			if err := r.readChunk(idx, p[n:n+k]); err != nil {
				return n, err
			}
		} else if err := r.readPart(idx, clen, in, p[n:n+k]); err != nil {
			return n, err
		}
		n += k
		off += int64(k)
	}
	return n, nil
}

// readPart copies part of chunk idx into dst, keeping the decoded chunk
// for the next partial read.
func (r *Reader) readPart(idx int64, clen, in int, dst []byte) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("reading chunk %d: %w", idx, os.ErrClosed)
	}
	if r.last.data != nil && r.last.idx == idx {
		copy(dst, r.last.data[in:])
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	buf := make([]byte, clen)
	if err := r.readChunk(idx, buf); err != nil {
		return err
	}
	copy(dst, buf[in:])
	r.mu.Lock()
	r.last = lastChunk{idx: idx, data: buf}
	r.mu.Unlock()
	return nil
}

// locate returns the table holding chunk idx and its index there.
func (r *Reader) locate(idx int64) (*table, int) {
	i := sort.Search(len(r.tables), func(i int) bool { return r.tables[i].first > idx }) - 1
	t := r.tables[i]
	return t, int(idx - t.first)
}

// entries returns the entries of t, reading and checking them (falling
// back to the table2 mirror) on first use.
func (r *Reader) entries(t *table) ([]uint32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, l := range r.loaded {
		if l.t == t {
			r.loaded = append(append(r.loaded[:i:i], r.loaded[i+1:]...), l)
			return l.entries, nil
		}
	}
	e, err := r.readEntries(t)
	if err != nil && t.mirror != nil {
		var err2 error
		if e, err2 = r.readEntries(t.mirror); err2 != nil {
			err = fmt.Errorf("%w; table2: %w", err, err2)
		} else {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("table in %s at offset %d: %w", r.segs[t.seg].name, t.off, err)
	}
	if len(r.loaded) == cachedTables {
		r.loaded = r.loaded[1:]
	}
	r.loaded = append(r.loaded, &loadedTable{t: t, entries: e})
	return e, nil
}

func (r *Reader) readEntries(t *table) ([]uint32, error) {
	n := 4 * t.count
	if t.footer {
		n += 4
	}
	b, err := readAt(r.segs[t.seg], t.entriesOff, n)
	if err != nil {
		return nil, err
	}
	if t.footer {
		if err := checkTrailer(b); err != nil {
			return nil, fmt.Errorf("entries: %w", err)
		}
	}
	e := make([]uint32, t.count)
	for i := range e {
		e[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return e, nil
}

// readChunk decodes chunk idx into dst, whose length is the chunk's media
// length.
func (r *Reader) readChunk(idx int64, dst []byte) error {
	t, i := r.locate(idx)
	cerr := func(seg string, at int64, err error) error {
		return &ChunkError{Chunk: idx, Offset: idx * int64(r.chunkSize), Segment: seg, FileOffset: at, Err: err}
	}
	s := r.segs[t.seg]
	e, err := r.entries(t)
	if err != nil {
		return cerr(s.name, t.off, err)
	}
	start := t.base + int64(e[i]&^compressedFlag)
	end := t.end
	if i+1 < len(e) {
		end = t.base + int64(e[i+1]&^compressedFlag)
	}
	compressed := e[i]&compressedFlag != 0
	if start < fileHeaderSize || end <= start || end > s.size {
		return cerr(s.name, start, fmt.Errorf("stored bytes %d to %d lie outside the file (%d bytes)", start, end, s.size))
	}
	stored := end - start
	limit := int64(r.chunkSize) + 4
	if compressed {
		// zlib never grows data by more than a few bytes per 16 KiB block.
		limit = 2*int64(r.chunkSize) + 1024
	}
	if stored > limit {
		return cerr(s.name, start, fmt.Errorf("%d stored bytes, more than %d", stored, limit))
	}
	bp := r.scratch.Get().(*[]byte)
	defer r.scratch.Put(bp)
	if int64(cap(*bp)) < stored {
		*bp = make([]byte, stored)
	}
	b := (*bp)[:stored]
	if _, err := s.r.ReadAt(b, start); err != nil {
		return cerr(s.name, start, err)
	}
	if compressed {
		err = r.inflate(b, dst)
	} else {
		err = unstore(b, dst)
	}
	if err != nil {
		return cerr(s.name, start, err)
	}
	return nil
}

// inflate decompresses a stored chunk into dst. The zlib stream must hold
// exactly len(dst) bytes, and is read to its end, which checks its
// Adler-32.
func (r *Reader) inflate(b, dst []byte) error {
	zr, err := getInflater(b)
	if err != nil {
		return fmt.Errorf("zlib: %w", err)
	}
	defer inflaters.Put(zr)
	n, err := io.ReadFull(zr, dst)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("zlib stream holds %d bytes, want %d", n, len(dst))
	}
	if err != nil {
		return fmt.Errorf("zlib: %w", err)
	}
	var one [1]byte
	switch k, err := io.ReadFull(zr, one[:]); {
	case k > 0:
		return fmt.Errorf("zlib stream holds more than %d bytes", len(dst))
	case err != io.EOF:
		return fmt.Errorf("zlib: %w", err)
	}
	return nil
}

// inflaters holds zlib readers for reuse: a new one allocates tens of
// kilobytes of decoder state.
var inflaters sync.Pool

func getInflater(b []byte) (io.Reader, error) {
	if zr, ok := inflaters.Get().(io.Reader); ok {
		if err := zr.(zlib.Resetter).Reset(bytes.NewReader(b), nil); err != nil {
			return nil, err
		}
		return zr, nil
	}
	return zlib.NewReader(bytes.NewReader(b))
}

// unstore checks an uncompressed stored chunk (data then its Adler-32)
// and copies its data into dst.
func unstore(b, dst []byte) error {
	if len(b) != len(dst)+4 {
		return fmt.Errorf("%d stored bytes, want %d", len(b), len(dst)+4)
	}
	data := b[:len(b)-4]
	if got, want := adler32.Checksum(data), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return fmt.Errorf("adler-32 %08x, want %08x: %w", got, want, errChecksum)
	}
	copy(dst, data)
	return nil
}
