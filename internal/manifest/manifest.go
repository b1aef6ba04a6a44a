package manifest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Format names this version of the manifest.
const Format = "ebsimager-manifest/1"

// Header is the first line.
type Header struct {
	Type            string    `json:"type"` // "header"
	Format          string    `json:"format"`
	SnapshotID      string    `json:"snapshot_id"`
	Region          string    `json:"region"`
	Endpoint        string    `json:"endpoint,omitempty"`
	Provenance      string    `json:"provenance,omitempty"` // absent or ProvenanceAWS, or ProvenanceImported
	Source          string    `json:"source,omitempty"`     // the folder an import came from
	VolumeSizeGiB   int64     `json:"volume_size_gib"`
	VolumeSizeBytes int64     `json:"volume_size_bytes"`
	BlockSize       int       `json:"block_size"`
	ToolVersion     string    `json:"tool_version"`
	StartedAt       time.Time `json:"started_at"`
	FinishedAt      time.Time `json:"finished_at"`
	// ObjectLock is the S3 Object Lock every object of evidence in a
	// bucket was written with; absent for a directory and for an
	// unlocked bucket.
	ObjectLock *ObjectLock `json:"object_lock,omitempty"`
}

// ObjectLock is an S3 Object Lock: a retention mode (GOVERNANCE or
// COMPLIANCE) until a date, a legal hold, or both.
type ObjectLock struct {
	Mode        string    `json:"mode,omitempty"`
	RetainUntil time.Time `json:"retain_until,omitzero"`
	LegalHold   bool      `json:"legal_hold,omitempty"`
}

// Provenances of a manifest (and of evidence.json): where the blocks and
// their SHA-256 came from. Blocks fetched through the EBS direct APIs
// were checked against AWS's checksum (no provenance field, or
// ProvenanceAWS); blocks imported from a folder of the original tool
// (Header.Source) have the SHA-256 its file names gave, and no AWS
// checksum.
const (
	ProvenanceAWS      = "aws-ebs-direct"        // fetched through the EBS direct APIs (also: absent)
	ProvenanceImported = "snapshot-4n6ir-folder" // imported from a folder Snapshot 4n6ir Imager wrote
)

// MaxStoredSize bounds a stored block file: a block compressed and
// encrypted grows by a few hundred bytes at worst (gzip's 5 bytes per
// 64 KiB stored block, age's 16 bytes per 64 KiB chunk and its header),
// so twice a block is far beyond any honest size.
const MaxStoredSize = 2 * block.Size

// Entry is one stored block.
type Entry struct {
	Type         string `json:"type"` // "block"
	Index        int64  `json:"index"`
	SHA256       string `json:"sha256"`        // of the block as AWS served it, hex
	Length       int    `json:"length"`        // bytes of the block as served
	Name         string `json:"name"`          // stored file, relative to the evidence directory
	Size         int64  `json:"size"`          // stored file's size
	StoredSHA256 string `json:"stored_sha256"` // of the stored file's bytes, hex
	Codec        string `json:"codec"`         // none, zstd or gzip
	Encryption   string `json:"encryption"`    // none or age
}

// Sum returns the entry's block digest.
func (e Entry) Sum() (block.Sum, error) { return block.ParseHex(e.SHA256) }

// Trailer is the last line.
type Trailer struct {
	Type        string `json:"type"` // "end"
	Blocks      int64  `json:"blocks"`
	Bytes       int64  `json:"bytes"`        // sum of Length
	StoredBytes int64  `json:"stored_bytes"` // sum of Size
}

// Writer writes a manifest as a stream.
type Writer struct {
	bw      *bufio.Writer
	enc     *json.Encoder
	sum     hash.Hash
	t       Trailer
	last    int64
	slots   int64
	started bool
}

// NewWriter writes h to w and returns a Writer for the entries.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Type, h.Format = "header", Format
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, sum), 1<<16)
	if err := checkHeader(h); err != nil {
		return nil, fmt.Errorf("writing manifest header: %w", err)
	}
	mw := &Writer{bw: bw, enc: json.NewEncoder(bw), sum: sum, last: -1, slots: block.Slots(h.VolumeSizeGiB)}
	if err := mw.enc.Encode(h); err != nil {
		return nil, fmt.Errorf("writing manifest header: %w", err)
	}
	return mw, nil
}

// Add writes one entry; entries must come in strictly ascending index order.
func (w *Writer) Add(e Entry) error {
	if e.Index <= w.last {
		return fmt.Errorf("manifest entry %d after %d: entries must ascend", e.Index, w.last)
	}
	// What a reader would refuse is never written: a journal line from
	// outside (an index beyond the volume, an impossible size) stops the
	// manifest here.
	if err := checkEntry(e, w.slots); err != nil {
		return fmt.Errorf("manifest entry %d: %w", e.Index, err)
	}
	e.Type = "block"
	w.last = e.Index
	w.t.Blocks++
	w.t.Bytes += int64(e.Length)
	w.t.StoredBytes += e.Size
	if err := w.enc.Encode(e); err != nil {
		return fmt.Errorf("writing manifest entry %d: %w", e.Index, err)
	}
	return nil
}

// Close writes the trailer and returns it with the manifest's SHA-256.
func (w *Writer) Close() (Trailer, block.Sum, error) {
	w.t.Type = "end"
	if err := w.enc.Encode(w.t); err != nil {
		return Trailer{}, block.Sum{}, fmt.Errorf("writing manifest trailer: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return Trailer{}, block.Sum{}, fmt.Errorf("writing manifest: %w", err)
	}
	var s block.Sum
	copy(s[:], w.sum.Sum(nil))
	return w.t, s, nil
}

// Reader reads a manifest as a stream.
type Reader struct {
	sc     *bufio.Scanner
	sum    hash.Hash
	header Header
	t      Trailer
	done   bool
	line   int
	last   int64
	off    int64 // bytes of the lines scanned, newlines included
}

// ErrCorrupt is wrapped by every error that reports a malformed manifest.
var ErrCorrupt = errors.New("manifest is corrupt")

func corrupt(line int, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrCorrupt, line, fmt.Sprintf(format, args...))
}

// MaxLine bounds one manifest line (and one journal line, which is an
// entry too): entries are about 400 bytes, so a longer line is damage,
// refused before it is buffered.
const MaxLine = 64 << 10

// NewReader reads the header from r.
func NewReader(r io.Reader) (*Reader, error) {
	sum := sha256.New()
	sc := bufio.NewScanner(io.TeeReader(r, sum))
	sc.Buffer(make([]byte, 0, 4096), MaxLine)
	mr := &Reader{sc: sc, sum: sum, last: -1}
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		n, tok, err := bufio.ScanLines(data, atEOF)
		mr.off += int64(n)
		return n, tok, err
	})
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading manifest: %w", err)
		}
		return nil, corrupt(1, "empty")
	}
	mr.line = 1
	if err := strictUnmarshal(sc.Bytes(), &mr.header); err != nil || mr.header.Type != "header" {
		return nil, corrupt(1, "not a manifest header")
	}
	if mr.header.Format != Format {
		return nil, corrupt(1, "format %q, this tool reads %q", mr.header.Format, Format)
	}
	if err := checkHeader(mr.header); err != nil {
		return nil, corrupt(1, "%v", err)
	}
	return mr, nil
}

// checkHeader bounds the header's numbers before a reader trusts them.
func checkHeader(h Header) error {
	if err := block.CheckVolumeGiB(h.VolumeSizeGiB); err != nil {
		return err
	}
	if h.VolumeSizeBytes != h.VolumeSizeGiB<<30 {
		return fmt.Errorf("volume size %d bytes, but %d GiB is %d bytes", h.VolumeSizeBytes, h.VolumeSizeGiB, h.VolumeSizeGiB<<30)
	}
	if h.BlockSize != block.Size {
		return fmt.Errorf("block size %d, want %d", h.BlockSize, block.Size)
	}
	if h.Provenance != "" && h.Provenance != ProvenanceAWS && h.Provenance != ProvenanceImported {
		return fmt.Errorf("provenance %q, want %q or %q", h.Provenance, ProvenanceAWS, ProvenanceImported)
	}
	return nil
}

// checkEntry bounds an entry's numbers against a volume of slots.
func checkEntry(e Entry, slots int64) error {
	if err := block.CheckIndex(e.Index, slots); err != nil {
		return err
	}
	if e.Length <= 0 || e.Length > block.Size {
		return fmt.Errorf("block %d: length %d, want 1 to %d", e.Index, e.Length, block.Size)
	}
	if e.Size < 0 || e.Size > MaxStoredSize {
		return fmt.Errorf("block %d: stored size %d, want 0 to %d", e.Index, e.Size, MaxStoredSize)
	}
	return nil
}

// Header returns the manifest header.
func (r *Reader) Header() Header { return r.header }

// Next returns the next entry. At the trailer it returns io.EOF, after
// checking that the trailer's totals match the entries read.
func (r *Reader) Next() (Entry, error) {
	if r.done {
		return Entry{}, io.EOF
	}
	if !r.sc.Scan() {
		if err := r.sc.Err(); err != nil {
			return Entry{}, fmt.Errorf("reading manifest: %w", err)
		}
		return Entry{}, corrupt(r.line+1, "no trailer: it ends here (truncated)")
	}
	r.line++
	e, isEntry, err := parseLine(r.sc.Bytes(), block.Slots(r.header.VolumeSizeGiB))
	if err != nil {
		return Entry{}, corrupt(r.line, "%v", err)
	}
	if isEntry {
		if e.Index <= r.last {
			return Entry{}, corrupt(r.line, "block %d after %d", e.Index, r.last)
		}
		r.last = e.Index
		r.t.Blocks++
		r.t.Bytes += int64(e.Length)
		r.t.StoredBytes += e.Size
		return e, nil
	}
	var t Trailer
	if err := strictUnmarshal(r.sc.Bytes(), &t); err != nil {
		return Entry{}, corrupt(r.line, "%v", err)
	}
	if t.Blocks != r.t.Blocks || t.Bytes != r.t.Bytes || t.StoredBytes != r.t.StoredBytes {
		return Entry{}, corrupt(r.line, "trailer says %d blocks, %d bytes, %d stored; entries add up to %d, %d, %d",
			t.Blocks, t.Bytes, t.StoredBytes, r.t.Blocks, r.t.Bytes, r.t.StoredBytes)
	}
	if r.sc.Scan() {
		return Entry{}, corrupt(r.line+1, "data after the trailer")
	}
	r.done = true
	return Entry{}, io.EOF
}

// ParseLine reads one line after the header, as Next does, for a reader
// that seeks through the manifest rather than streaming it: a block entry
// (isEntry), checked against a volume of volumeGiB, or the trailer
// (returned as isEntry false, not checked against the entries). The
// error wraps ErrCorrupt.
func ParseLine(line []byte, volumeGiB int64) (e Entry, isEntry bool, err error) {
	e, isEntry, err = parseLine(line, block.Slots(volumeGiB))
	if err != nil {
		return Entry{}, false, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return e, isEntry, nil
}

// parseLine reads a block entry, strictly, and bounds its numbers; for
// the trailer it returns isEntry false.
func parseLine(line []byte, slots int64) (Entry, bool, error) {
	var probe struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(line, &probe); err != nil {
		return Entry{}, false, err
	}
	switch probe.Type {
	case "block":
		var e Entry
		if err := strictUnmarshal(line, &e); err != nil {
			return Entry{}, false, err
		}
		if err := checkEntry(e, slots); err != nil {
			return Entry{}, false, err
		}
		return e, true, nil
	case "end":
		return Entry{}, false, nil
	}
	return Entry{}, false, fmt.Errorf("unknown line type %q", probe.Type)
}

// Offset returns the offset in the manifest of the end of the line Next
// last read (its newline included): the lines of entries a to b lie in
// [the Offset after a-1, the Offset after b).
func (r *Reader) Offset() int64 { return r.off }

// ParseEntry reads one entry line of a manifest of a volume of slots
// blocks, as Next does: strictly, its numbers bounded.
func ParseEntry(line []byte, slots int64) (Entry, error) {
	e, isEntry, err := parseLine(line, slots)
	if err == nil && !isEntry {
		err = errors.New("not a block entry")
	}
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return e, nil
}

// Trailer returns the totals once Next has returned io.EOF.
func (r *Reader) Trailer() Trailer { return r.t }

// Sum returns the SHA-256 of everything read so far: the whole file once
// Next has returned io.EOF.
func (r *Reader) Sum() block.Sum {
	var s block.Sum
	copy(s[:], r.sum.Sum(nil))
	return s
}

func strictUnmarshal(p []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
