package store

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// File names inside an evidence directory.
const (
	MetaName          = "evidence.json"
	KeyName           = "key.age" // passphrase mode's protected identity, kept with the evidence
	ManifestName      = "manifest.jsonl"
	ManifestSumName   = "manifest.jsonl.sha256"
	blocksDir         = "blocks"
	journalName       = ".journal"
	leafSize          = 10000 // blocks per leaf directory: "about 10,000 entries"
	topSize           = 10000 // leaves per top directory
	metaFormat        = "ebsimager-evidence/1"
	maxOpenJournals   = 16 // listing ascends, so writers touch few leaves at once
	tempPrefix        = ".tmp-"
	journalLineMaxLen = 64 << 10
)

// Meta is evidence.json: what the directory holds.
type Meta struct {
	Format        string            `json:"format"`
	SnapshotID    string            `json:"snapshot_id"`
	Region        string            `json:"region"`
	Endpoint      string            `json:"endpoint,omitempty"`
	Provenance    string            `json:"provenance,omitempty"` // the manifest header's: absent for AWS, ProvenanceImported for an import
	Source        string            `json:"source,omitempty"`     // the folder an import came from
	VolumeSizeGiB int64             `json:"volume_size_gib"`
	BlockSize     int               `json:"block_size"`
	CreatedAt     time.Time         `json:"created_at"`
	ToolVersion   string            `json:"tool_version"`
	Case          map[string]string `json:"case,omitempty"`
	// Codec and Encryption say how block files are stored; Recipients
	// are the age recipients they are encrypted to, and KeyFile, in
	// passphrase mode, the passphrase-protected identity beside them.
	Codec      string   `json:"codec"`
	Encryption string   `json:"encryption"`
	Recipients []string `json:"recipients,omitempty"`
	KeyFile    string   `json:"key_file,omitempty"`
}

// Form says how block files are stored: plain, or through Seal
// (compression, then encryption), with Suffix after the original name.
type Form struct {
	Codec      string // "none", "zstd" or "gzip"
	Encryption string // "none" or "age"
	Suffix     string // e.g. ".zst.age"
	// Seal wraps the file being written; nil stores the bytes as served.
	Seal func(dst io.Writer) (io.WriteCloser, error)
}

// Plain is the form of unprocessed block files.
var Plain = Form{Codec: "none", Encryption: "none"}

func (f Form) plain() bool { return f.Seal == nil }

// OtherSnapshotError refuses an evidence directory of another snapshot.
type OtherSnapshotError struct{ Dir, Have, Want string }

func (e *OtherSnapshotError) Error() string {
	return fmt.Sprintf("%s holds evidence of %s, not %s", e.Dir, e.Have, e.Want)
}

// ErrNotEvidence refuses a non-empty directory that is not ours.
var ErrNotEvidence = errors.New("directory is not empty and holds no evidence.json")

// Options for Create.
type Options struct {
	// Force replaces the evidence of another snapshot. It never deletes
	// files the store did not write.
	Force bool
	Form  Form
}

// Store is an evidence directory open for writing.
type Store struct {
	dir  string
	meta Meta
	form Form

	mu       sync.Mutex
	done     []uint64 // bitmap over the volume's block slots
	resumed  int64
	leaves   map[string]bool
	journals []*journal // most recently used last
}

type journal struct {
	leaf string
	f    *os.File
}

// Create opens dir for an acquisition of meta.SnapshotID, creating it
// (0700) or resuming the acquisition it holds. Blocks already stored,
// whose journal entry and file agree, count as done; files without a
// journal entry and temporary files are removed.
func Create(dir string, meta Meta, o Options) (*Store, error) {
	if o.Form.Codec == "" {
		o.Form = Plain
	}
	meta.Format = metaFormat
	meta.Codec, meta.Encryption = o.Form.Codec, o.Form.Encryption
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating evidence directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, TransformName)); err == nil {
		return nil, fmt.Errorf("%s: a conversion of its blocks is under way; run it again to finish it before acquiring into this directory", dir)
	}
	old, err := readMeta(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", dir, err)
		}
		for _, e := range entries {
			if e.Name() != KeyName {
				return nil, fmt.Errorf("%s: %w", dir, ErrNotEvidence)
			}
		}
	case err != nil:
		return nil, err
	case old.SnapshotID != meta.SnapshotID || old.VolumeSizeGiB != meta.VolumeSizeGiB || old.BlockSize != meta.BlockSize:
		if !o.Force {
			return nil, &OtherSnapshotError{Dir: dir, Have: old.SnapshotID, Want: meta.SnapshotID}
		}
		if err := removeEvidence(dir); err != nil {
			return nil, err
		}
	case old.Codec != meta.Codec || old.Encryption != meta.Encryption:
		return nil, fmt.Errorf("%s stores blocks as codec %s, encryption %s; this run asks for %s, %s: resume with the same --compress/--encrypt, or convert first",
			dir, old.Codec, old.Encryption, meta.Codec, meta.Encryption)
	default:
		meta.CreatedAt = old.CreatedAt
		if old.Case != nil && meta.Case == nil {
			meta.Case = old.Case
		}
	}
	if meta.CreatedAt.IsZero() {
		meta.CreatedAt = time.Now().UTC()
	}
	s := &Store{dir: dir, meta: meta, form: o.Form, leaves: map[string]bool{},
		done: make([]uint64, (block.Slots(meta.VolumeSizeGiB)+63)/64)}
	if err := writeJSON(filepath.Join(dir, MetaName), meta); err != nil {
		return nil, err
	}
	// A resumed acquisition's manifest is stale until it completes again.
	for _, n := range []string{ManifestName, ManifestSumName} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if err := s.scan(); err != nil {
		return nil, err
	}
	return s, nil
}

func removeEvidence(dir string) error {
	for _, n := range []string{blocksDir, ManifestName, ManifestSumName, MetaName} {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("removing old evidence: %w", err)
		}
	}
	return nil
}

// Meta returns what the directory holds.
func (s *Store) Meta() Meta { return s.meta }

// Dir returns the directory.
func (s *Store) Dir() string { return s.dir }

// Resumed returns how many blocks were already stored when Create opened it.
func (s *Store) Resumed() int64 { return s.resumed }

// Has reports whether block index is already stored.
func (s *Store) Has(index int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.has(index)
}

func (s *Store) has(index int64) bool {
	if index < 0 || index/64 >= int64(len(s.done)) {
		return false
	}
	return s.done[index/64]&(1<<(index%64)) != 0
}

func (s *Store) mark(index int64) {
	if index >= 0 && index/64 < int64(len(s.done)) {
		s.done[index/64] |= 1 << (index % 64)
	}
}

// LeafDir returns the directory, relative to the evidence directory, that
// holds block index.
func LeafDir(index int64) string {
	return filepath.Join(blocksDir, fmt.Sprintf("%02d", index/(leafSize*topSize)), fmt.Sprintf("%04d", index/leafSize%topSize))
}

// Name returns the stored file name of a block, relative to the evidence
// directory.
func (s *Store) Name(index int64, sum block.Sum) string {
	return filepath.Join(LeafDir(index), block.FileName(block.FileInfo{
		Index: index, Snapshot: s.meta.SnapshotID, Sum: sum, VolumeGiB: s.meta.VolumeSizeGiB, BlockSize: s.meta.BlockSize,
	})+s.form.Suffix)
}

// Put stores a verified block: written under a temporary name, fsynced,
// renamed, then journaled. data must hash to sum; the caller verified it.
func (s *Store) Put(index int64, sum block.Sum, data []byte) error {
	if index < 0 || index >= block.Slots(s.meta.VolumeSizeGiB) {
		return fmt.Errorf("storing block %d: beyond the %d GiB volume", index, s.meta.VolumeSizeGiB)
	}
	leaf := LeafDir(index)
	if err := s.ensureLeaf(leaf); err != nil {
		return err
	}
	rel := s.Name(index, sum)
	e := manifest.Entry{Type: "block", Index: index, SHA256: sum.Hex(), Length: len(data), Name: filepath.ToSlash(rel),
		Codec: s.form.Codec, Encryption: s.form.Encryption}
	size, stored, err := s.writeFile(rel, data)
	if err != nil {
		return fmt.Errorf("storing block %d: %w", index, err)
	}
	e.Size = size
	if s.form.plain() {
		e.StoredSHA256 = sum.Hex()
	} else {
		e.StoredSHA256 = stored.Hex()
	}
	return s.record(leaf, e)
}

// record appends e to the journal of leaf and marks its block stored.
func (s *Store) record(leaf string, e manifest.Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.journal(leaf)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("journaling block %d: %w", e.Index, err)
	}
	s.mark(e.Index)
	return nil
}

// writeFile writes data (sealed by the form) to rel atomically and
// returns the stored size and, for sealed forms, the stored bytes' SHA-256.
func (s *Store) writeFile(rel string, data []byte) (int64, block.Sum, error) {
	final := filepath.Join(s.dir, rel)
	f, err := os.CreateTemp(filepath.Dir(final), tempPrefix+filepath.Base(final)+"-*")
	if err != nil {
		return 0, block.Sum{}, err
	}
	fail := func(err error) (int64, block.Sum, error) {
		f.Close()
		os.Remove(f.Name())
		return 0, block.Sum{}, err
	}
	var (
		size int64
		sum  block.Sum
	)
	if s.form.plain() {
		if _, err := f.Write(data); err != nil {
			return fail(err)
		}
		size = int64(len(data))
	} else {
		h := sha256.New()
		cw := &countWriter{w: io.MultiWriter(f, h)}
		wc, err := s.form.Seal(cw)
		if err != nil {
			return fail(err)
		}
		if _, err := wc.Write(data); err != nil {
			return fail(err)
		}
		if err := wc.Close(); err != nil {
			return fail(err)
		}
		size = cw.n
		copy(sum[:], h.Sum(nil))
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return 0, block.Sum{}, err
	}
	if err := os.Rename(f.Name(), final); err != nil {
		os.Remove(f.Name())
		return 0, block.Sum{}, err
	}
	return size, sum, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *Store) ensureLeaf(leaf string) error {
	s.mu.Lock()
	ok := s.leaves[leaf]
	s.mu.Unlock()
	if ok {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(s.dir, leaf), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", leaf, err)
	}
	s.mu.Lock()
	s.leaves[leaf] = true
	s.mu.Unlock()
	return nil
}

// journal returns the open journal of leaf; s.mu is held.
func (s *Store) journal(leaf string) (*journal, error) {
	for i, j := range s.journals {
		if j.leaf == leaf {
			s.journals = append(append(s.journals[:i:i], s.journals[i+1:]...), j)
			return j, nil
		}
	}
	if len(s.journals) >= maxOpenJournals {
		old := s.journals[0]
		s.journals = s.journals[1:]
		if err := old.f.Close(); err != nil {
			return nil, fmt.Errorf("closing journal of %s: %w", old.leaf, err)
		}
	}
	f, err := os.OpenFile(filepath.Join(s.dir, leaf, journalName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening journal: %w", err)
	}
	j := &journal{leaf: leaf, f: f}
	s.journals = append(s.journals, j)
	return j, nil
}

// Close syncs and closes the journals.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, j := range s.journals {
		errs = append(errs, j.f.Sync(), j.f.Close())
	}
	s.journals = nil
	return errors.Join(errs...)
}

// scan rebuilds the done bitmap from the leaf journals, keeping only
// entries whose file exists with the journaled size, and removes files
// that no journal entry accounts for.
func (s *Store) scan() error {
	return s.eachLeaf(func(leaf string) error {
		s.leaves[leaf] = true
		entries, err := readJournal(filepath.Join(s.dir, leaf, journalName))
		if err != nil {
			return err
		}
		files, err := os.ReadDir(filepath.Join(s.dir, leaf))
		if err != nil {
			return err
		}
		byName := make(map[string]manifest.Entry, len(entries))
		for _, e := range entries {
			byName[filepath.Base(e.Name)] = e
		}
		for _, f := range files {
			name := f.Name()
			if name == journalName {
				continue
			}
			e, ok := byName[name]
			info, err := f.Info()
			if err != nil {
				return err
			}
			if !ok || strings.HasPrefix(name, tempPrefix) || !info.Mode().IsRegular() || info.Size() != e.Size {
				if err := os.Remove(filepath.Join(s.dir, leaf, name)); err != nil {
					return fmt.Errorf("removing unjournaled %s: %w", name, err)
				}
				continue
			}
			if !s.has(e.Index) {
				s.mark(e.Index)
				s.resumed++
			}
		}
		return nil
	})
}

// eachLeaf calls fn for every leaf directory, in index order.
func (s *Store) eachLeaf(fn func(leaf string) error) error {
	return eachLeaf(s.dir, fn)
}

func eachLeaf(dir string, fn func(leaf string) error) error {
	tops, err := os.ReadDir(filepath.Join(dir, blocksDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, top := range tops { // ReadDir sorts by name, and names are zero-padded
		if !top.IsDir() {
			continue
		}
		leaves, err := os.ReadDir(filepath.Join(dir, blocksDir, top.Name()))
		if err != nil {
			return err
		}
		for _, leaf := range leaves {
			if leaf.IsDir() {
				if err := fn(filepath.Join(blocksDir, top.Name(), leaf.Name())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readJournal returns the entries of a leaf journal, the last entry per
// index winning, sorted by index. A torn last line (a crash mid-append)
// is ignored; any other malformed line is an error.
func readJournal(path string) ([]manifest.Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byIndex := map[int64]manifest.Entry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), journalLineMaxLen)
	var bad error
	for sc.Scan() {
		if bad != nil {
			return nil, bad // a malformed line that was not the last
		}
		var e manifest.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Type != "block" {
			bad = fmt.Errorf("journal %s: malformed line", path)
			continue
		}
		byIndex[e.Index] = e
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading journal %s: %w", path, err)
	}
	out := make([]manifest.Entry, 0, len(byIndex))
	for _, e := range byIndex {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// Summary describes a finished manifest.
type Summary struct {
	manifest.Trailer
	ManifestSHA256 block.Sum
}

// Finish writes the manifest of every stored block, in index order, from
// the leaf journals, then its SHA-256 file. It does not check that the
// snapshot's every block is there; the caller knows what was listed.
func (s *Store) Finish(started, finished time.Time) (Summary, error) {
	if err := s.Close(); err != nil {
		return Summary{}, err
	}
	h := manifest.Header{
		SnapshotID: s.meta.SnapshotID, Region: s.meta.Region, Endpoint: s.meta.Endpoint, Provenance: s.meta.Provenance, Source: s.meta.Source,
		VolumeSizeGiB: s.meta.VolumeSizeGiB, VolumeSizeBytes: s.meta.VolumeSizeGiB << 30, BlockSize: s.meta.BlockSize,
		ToolVersion: s.meta.ToolVersion, StartedAt: started.UTC(), FinishedAt: finished.UTC(),
	}
	var sum Summary
	err := atomicfile.Write(filepath.Join(s.dir, ManifestName), func(w io.Writer) error {
		mw, err := manifest.NewWriter(w, h)
		if err != nil {
			return err
		}
		err = s.eachLeaf(func(leaf string) error {
			entries, err := readJournal(filepath.Join(s.dir, leaf, journalName))
			if err != nil {
				return err
			}
			for _, e := range entries {
				if err := mw.Add(e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		sum.Trailer, sum.ManifestSHA256, err = mw.Close()
		return err
	})
	if err != nil {
		return Summary{}, fmt.Errorf("writing manifest: %w", err)
	}
	line := fmt.Sprintf("%s  %s\n", sum.ManifestSHA256.Hex(), ManifestName)
	if err := atomicfile.Write(filepath.Join(s.dir, ManifestSumName), func(w io.Writer) error {
		_, err := io.WriteString(w, line)
		return err
	}); err != nil {
		return Summary{}, fmt.Errorf("writing manifest checksum: %w", err)
	}
	return sum, nil
}

// writeJSON writes v, indented, to path atomically.
func writeJSON(path string, v any) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}

func readMeta(dir string) (Meta, error) {
	var m Meta
	data, err := os.ReadFile(filepath.Join(dir, MetaName))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, metaDamage(err.Error())
	}
	if m.Format != metaFormat {
		return m, fmt.Errorf("%s: format %q, this tool reads %q", MetaName, m.Format, metaFormat)
	}
	if err := checkMeta(m); err != nil {
		return m, err
	}
	if m.Codec == "" {
		m.Codec = "none"
	}
	if m.Encryption == "" {
		m.Encryption = "none"
	}
	return m, nil
}
