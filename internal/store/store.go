package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/dirlock"
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
	journalLineMaxLen = manifest.MaxLine
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
	// ObjectLock is the S3 Object Lock of evidence in a bucket (Remote).
	ObjectLock *manifest.ObjectLock `json:"object_lock,omitempty"`
}

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
	// Form is how block files are stored; SealTo are the recipients an
	// encrypted form is sealed to (see codec.Seal).
	Form   codec.Form
	SealTo []age.Recipient

	// seal, when set (by tests), writes Form in place of codec.Seal.
	seal Sealer

	// fs, when set (by tests), replaces the real file system for block
	// files and journals, with syncAll saying how batches are synced.
	fs      fileSystem
	syncAll bool
}

// Store is an evidence directory open for writing.
type Store struct {
	dir  string
	meta Meta
	form codec.Form
	seal Sealer // nil for the plain form

	// prior is the complete evidence Create found, nil when there was
	// none; replaced, the other snapshot's evidence it replaced (Force).
	prior    *prior
	replaced *Replaced
	kept     Kept

	mu       sync.Mutex
	done     []uint64 // bitmap over the volume's block slots
	resumed  int64
	leaves   map[string]bool
	journals []*journal // most recently used last
	// unsynced holds the leaves with renames not yet known durable;
	// Close makes them durable before a manifest can name them.
	unsynced map[string]bool

	// fs is where block files and journals are written; syncAll says
	// that a batch is made durable by fs.SyncAll rather than by each
	// writer's fsync (see commit.go).
	fs      fileSystem
	syncAll bool
	commits committer
}

type journal struct {
	leaf string
	f    file
}

// Create opens dir for an acquisition of meta.SnapshotID, creating it
// (0700) or resuming the acquisition it holds. Nothing that verifies is
// ever removed: every block file is checked against its SHA-256 before
// it counts as stored (journaled or not: the journal is an optimisation,
// not the source of truth), a file that does not verify is moved aside
// into .unverified/ and fetched again, and the manifest of complete
// evidence stays in place until Finish decides whether it must change.
// Only temporary files are removed, but for those a journal line vouches
// for: a group commit that journaled them was cut short before renaming
// them, and they are renamed into place once they verify.
func Create(dir string, meta Meta, o Options) (*Store, error) {
	if o.seal == nil {
		o.seal = SealerFor(o.Form, o.SealTo)
	}
	meta.Format = metaFormat
	meta.Codec, meta.Encryption = o.Form.Fields()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating evidence directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ConversionName)); err == nil {
		return nil, fmt.Errorf("%s: a conversion of its blocks is under way; run it again to finish it before acquiring into this directory", dir)
	}
	var (
		replaced *Replaced
		resuming bool
	)
	old, err := readMeta(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", dir, err)
		}
		for _, e := range entries {
			if e.Name() != KeyName && e.Name() != dirlock.Name {
				return nil, fmt.Errorf("%s: %w", dir, ErrNotEvidence)
			}
		}
	case err != nil:
		return nil, err
	case old.SnapshotID != meta.SnapshotID || old.VolumeSizeGiB != meta.VolumeSizeGiB || old.BlockSize != meta.BlockSize:
		if !o.Force {
			return nil, &OtherSnapshotError{Dir: dir, Have: old.SnapshotID, Want: meta.SnapshotID}
		}
		// In passphrase mode the caller has already read (or written)
		// key.age for this run: it is the new evidence's key, kept.
		if replaced, err = replaceEvidence(dir, old, meta.KeyFile == KeyName); err != nil {
			return nil, err
		}
	case old.Codec != meta.Codec || old.Encryption != meta.Encryption:
		return nil, fmt.Errorf("%s stores blocks as codec %s, encryption %s; this run asks for %s, %s: resume with the same --compress/--encrypt, or convert first",
			dir, old.Codec, old.Encryption, meta.Codec, meta.Encryption)
	default:
		resuming = true
		meta.CreatedAt = old.CreatedAt
		if old.Case != nil && meta.Case == nil {
			meta.Case = old.Case
		}
	}
	if meta.CreatedAt.IsZero() {
		meta.CreatedAt = time.Now().UTC()
	}
	s := &Store{dir: dir, meta: meta, form: o.Form, seal: o.seal, leaves: map[string]bool{}, unsynced: map[string]bool{}, replaced: replaced,
		done: make([]uint64, (block.Slots(meta.VolumeSizeGiB)+63)/64)}
	s.commits.init()
	if o.fs != nil {
		s.fs, s.syncAll = o.fs, o.syncAll
	} else {
		osfs := newOSFS(dir)
		s.fs, s.syncAll = osfs, osfs.all != nil
	}
	opened := false
	defer func() {
		if !opened {
			s.Close()
		}
	}()
	if resuming {
		// Complete evidence is never rewritten: its evidence.json stays
		// as it is, and so does its manifest unless the blocks changed.
		if s.prior, err = readPrior(dir, old); err != nil {
			return nil, err
		}
		if s.prior != nil {
			s.meta = old
		}
	}
	if err := s.writeMeta(); err != nil {
		return nil, err
	}
	if err := s.scan(); err != nil {
		return nil, err
	}
	opened = true
	return s, nil
}

// writeMeta writes evidence.json unless it already holds exactly that.
func (s *Store) writeMeta() error {
	path := filepath.Join(s.dir, MetaName)
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.meta); err != nil {
		return err
	}
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, want.Bytes()) {
		return nil
	}
	return atomicfile.WriteBytes(path, want.Bytes())
}

// Replaced is the evidence of another snapshot that Create replaced
// (Options.Force).
type Replaced struct {
	SnapshotID string
	// ManifestSHA256 is the hex SHA-256 of its manifest, empty when it
	// had none (an acquisition that never completed).
	ManifestSHA256 string
}

// ForeignFileError refuses to replace evidence in a directory that also
// holds files ebsimager did not write.
type ForeignFileError struct{ Dir, Name string }

func (e *ForeignFileError) Error() string {
	return fmt.Sprintf("%s holds %s, which ebsimager did not write: --force replaces only evidence, so nothing was deleted", e.Dir, e.Name)
}

// Is makes a ForeignFileError match ErrNotEvidence.
func (e *ForeignFileError) Is(target error) bool { return target == ErrNotEvidence }

// topLevel lists the names ebsimager writes at the top of an evidence
// directory; true marks those that belong to the evidence (and go when it
// is replaced), false the lock, which belongs to the running process.
var topLevel = map[string]bool{
	MetaName: true, KeyName: true, ManifestName: true, ManifestSumName: true, blocksDir: true, unverifiedDir: true,
	"report.json": true, "report.txt": true, "report.html": true,
	ConversionName: true, ConversionEntriesName: true, ConversionManifestName: true, dirlock.Name: false,
}

// replaceEvidence removes the evidence of old from dir, for --force. It
// first checks that every file in dir is one ebsimager writes, and
// refuses before deleting anything otherwise. evidence.json goes last, so
// an interrupted replacement is still recognised as evidence (and
// replaced again by the next forced run). keepKey keeps key.age, which
// the new acquisition uses.
func replaceEvidence(dir string, old Meta, keepKey bool) (*Replaced, error) {
	if err := checkOurs(dir); err != nil {
		return nil, err
	}
	r := &Replaced{SnapshotID: old.SnapshotID}
	if data, err := os.ReadFile(filepath.Join(dir, ManifestSumName)); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 && f[1] == ManifestName {
			r.ManifestSHA256 = f[0]
		}
	}
	names := make([]string, 0, len(topLevel))
	for n, evidence := range topLevel {
		if evidence && n != MetaName && (n != KeyName || !keepKey) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range append(names, MetaName) {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return nil, fmt.Errorf("removing the evidence of %s: %w", old.SnapshotID, err)
		}
	}
	return r, atomicfile.SyncDir(dir)
}

// checkOurs returns a *ForeignFileError naming the first file in dir that
// ebsimager does not write: anything at the top but the names in
// topLevel and temporary files; under blocks/, anything but leaf
// directories holding block files, journals and temporary files.
func checkOurs(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, ok := topLevel[e.Name()]; !ok && !strings.HasPrefix(e.Name(), tempPrefix) {
			return &ForeignFileError{Dir: dir, Name: e.Name()}
		}
	}
	foreign := func(rel string) error { return &ForeignFileError{Dir: dir, Name: filepath.ToSlash(rel)} }
	tops, err := os.ReadDir(filepath.Join(dir, blocksDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, top := range tops {
		rel := filepath.Join(blocksDir, top.Name())
		if !top.IsDir() || len(top.Name()) != 2 {
			return foreign(rel)
		}
		leaves, err := os.ReadDir(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		for _, leaf := range leaves {
			lrel := filepath.Join(rel, leaf.Name())
			if !leaf.IsDir() || len(leaf.Name()) != 4 {
				return foreign(lrel)
			}
			files, err := os.ReadDir(filepath.Join(dir, lrel))
			if err != nil {
				return err
			}
			for _, f := range files {
				n := f.Name()
				if n == journalName || strings.HasPrefix(n, tempPrefix) {
					continue
				}
				if _, _, err := block.ParseFileName(n); err != nil || !f.Type().IsRegular() {
					return foreign(filepath.Join(lrel, n))
				}
			}
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
	})+s.form.Suffix())
}

// Put stores a verified block: written under a temporary name, made
// durable, journaled and renamed, together with the blocks other Puts
// store meanwhile (see commit.go). It returns once the block is durable
// and journaled. data must hash to sum; the caller verified it.
func (s *Store) Put(index int64, sum block.Sum, data []byte) error {
	if index < 0 || index >= block.Slots(s.meta.VolumeSizeGiB) {
		return fmt.Errorf("storing block %d: beyond the %d GiB volume", index, s.meta.VolumeSizeGiB)
	}
	s.commits.begin()
	p, err := s.prepare(index, sum, data)
	if err != nil {
		s.commits.end()
		return fmt.Errorf("storing block %d: %w", index, err)
	}
	return s.commit(p)
}

// prepare writes block index to its temporary name and returns it ready
// to commit.
func (s *Store) prepare(index int64, sum block.Sum, data []byte) (*pending, error) {
	if err := s.commits.failed(); err != nil {
		return nil, err
	}
	leaf := LeafDir(index)
	if err := s.ensureLeaf(leaf); err != nil {
		return nil, err
	}
	rel := s.Name(index, sum)
	final := filepath.Join(s.dir, rel)
	tmp := filepath.Join(filepath.Dir(final), tempPrefix+filepath.Base(final))
	size, stored, err := s.writeTemp(tmp, data)
	if err != nil {
		return nil, err
	}
	e := manifest.Entry{Type: "block", Index: index, SHA256: sum.Hex(), Length: len(data), Name: filepath.ToSlash(rel), Size: size}
	e.Codec, e.Encryption = s.form.Fields()
	if s.plain() {
		e.StoredSHA256 = e.SHA256
	} else {
		e.StoredSHA256 = stored.Hex()
	}
	line, err := json.Marshal(e)
	if err != nil {
		s.fs.Remove(tmp)
		return nil, err
	}
	return &pending{index: index, leaf: leaf, tmp: tmp, final: final, line: append(line, '\n')}, nil
}

// writeTemp writes data, sealed, to the temporary file tmp; with no
// syncfs, it fsyncs the file too.
func (s *Store) writeTemp(tmp string, data []byte) (int64, block.Sum, error) {
	f, err := s.fs.Create(tmp)
	if errors.Is(err, fs.ErrExist) { // left by an earlier failed Put of this block
		s.fs.Remove(tmp)
		f, err = s.fs.Create(tmp)
	}
	if err != nil {
		return 0, block.Sum{}, err
	}
	size, stored, err := sealTo(f, data, s.seal)
	if err == nil && !s.syncAll {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.fs.Remove(tmp)
		return 0, block.Sum{}, err
	}
	return size, stored, nil
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
	s.unsynced[leaf] = true
	return nil
}

// WriteBlockFile writes data, through seal, to the block file rel of
// evidence directory dir on its own: a temporary name in the same leaf,
// fsync, rename (the caller syncs the leaf). It returns the stored size
// and, when seal is not nil, the stored bytes' SHA-256. A conversion
// writes a block's new form this way, beside the old.
func WriteBlockFile(dir, rel string, data []byte, seal Sealer) (int64, block.Sum, error) {
	final := filepath.Join(dir, rel)
	f, err := os.CreateTemp(filepath.Dir(final), tempPrefix+filepath.Base(final)+"-*")
	if err != nil {
		return 0, block.Sum{}, err
	}
	fail := func(err error) (int64, block.Sum, error) {
		f.Close()
		os.Remove(f.Name())
		return 0, block.Sum{}, err
	}
	size, sum, err := sealTo(f, data, seal)
	if err != nil {
		return fail(err)
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
	if err := mkdirAll(s.fs, filepath.Join(s.dir, leaf)); err != nil {
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
		if err := errors.Join(old.f.Sync(), old.f.Close()); err != nil {
			return nil, fmt.Errorf("closing journal of %s: %w", old.leaf, err)
		}
	}
	f, err := s.fs.Append(filepath.Join(s.dir, leaf, journalName))
	if err != nil {
		return nil, fmt.Errorf("opening journal: %w", err)
	}
	// A journal just created must be found after a crash before any
	// block file it vouches for is.
	if err := s.fs.SyncDir(filepath.Join(s.dir, leaf)); err != nil {
		f.Close()
		return nil, fmt.Errorf("opening journal: %w", err)
	}
	j := &journal{leaf: leaf, f: f}
	s.journals = append(s.journals, j)
	return j, nil
}

// Close makes every rename durable, syncs and closes the journals, and
// returns the first failure of a group commit, if any: a manifest may
// name a block file only once its name is durable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := []error{s.commits.failed()}
	if len(s.unsynced) > 0 {
		if s.syncAll {
			errs = append(errs, s.fs.SyncAll())
		} else {
			for leaf := range s.unsynced {
				errs = append(errs, s.fs.SyncDir(filepath.Join(s.dir, leaf)))
			}
		}
		clear(s.unsynced)
	}
	for _, j := range s.journals {
		errs = append(errs, j.f.Sync(), j.f.Close())
	}
	s.journals = nil
	errs = append(errs, s.fs.Close())
	return errors.Join(errs...)
}

// Kept says what Create found of earlier runs in the directory.
type Kept struct {
	// Checked block files matched their SHA-256 and count as stored;
	// Adopted of them had no journal line (a crash between rename and
	// journal, or a lost journal) and were journaled again.
	Checked, Adopted int64
	// Rejected block files did not match: they were moved aside into
	// .unverified/ (never deleted) and their blocks are fetched again.
	Rejected int64
	// Unverified names, relative to the directory, the files moved into
	// .unverified/ and why (at most maxUnverifiedNamed; MoreUnverified
	// counts the rest).
	Unverified     []Unverified
	MoreUnverified int64
}

// Unverified is a file set aside because it could not be verified.
type Unverified struct {
	Name    string `json:"name"`     // where it was, relative to the evidence directory
	MovedTo string `json:"moved_to"` // where it is now
	Reason  string `json:"reason"`
}

const (
	unverifiedDir      = ".unverified"
	maxUnverifiedNamed = 100
)

// Kept returns what Create found of earlier runs.
func (s *Store) Kept() Kept { return s.kept }

// Replaced returns the evidence of another snapshot that Create replaced,
// or nil.
func (s *Store) Replaced() *Replaced { return s.replaced }

// scan rebuilds the done bitmap from the block files themselves. A file
// counts as stored only once its bytes match their SHA-256: the journal
// line's stored SHA-256, or for a file no journal line accounts for, the
// SHA-256 in its own name (plain blocks) or in the entry of the complete
// manifest that lists it (sealed blocks, which cannot be checked without
// the key otherwise). A file that verifies without a journal line is
// journaled again; one that does not verify is moved into .unverified/.
// A temporary file whose journal line names its final name, free, and
// whose bytes match the line, is renamed into place; other temporary
// files are removed.
func (s *Store) scan() error {
	var cur *entryCursor
	if s.prior != nil && !s.plain() {
		c, err := openCursor(s.dir)
		if err != nil {
			return err
		}
		defer c.close()
		cur = c
	}
	var dev uint64
	if s.syncAll {
		d, err := device(s.dir)
		if err != nil {
			return err
		}
		dev = d
	}
	return s.eachLeaf(func(leaf string) error {
		s.leaves[leaf] = true
		if s.syncAll {
			// syncfs syncs the evidence directory's file system only: a
			// leaf (or its parent) mounted from another one is synced
			// file by file.
			for _, d := range []string{filepath.Dir(filepath.Dir(leaf)), filepath.Dir(leaf), leaf} {
				if d2, err := device(filepath.Join(s.dir, d)); err != nil || d2 != dev {
					s.syncAll = false
					break
				}
			}
		}
		if err := trimJournal(filepath.Join(s.dir, leaf, journalName)); err != nil {
			return err
		}
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
			byName[filepath.Base(filepath.FromSlash(e.Name))] = e
		}
		present := make(map[string]bool, len(files))
		for _, f := range files {
			present[f.Name()] = true
		}
		var pending []fs.DirEntry
		for _, f := range files {
			name := f.Name()
			switch {
			case name == journalName:
				continue
			case strings.HasPrefix(name, tempPrefix):
				// A group commit journals a block before renaming it into
				// place: a journaled temporary file whose final name is
				// free was committed, and is renamed once it verifies.
				final := strings.TrimPrefix(name, tempPrefix)
				if e, ok := byName[final]; ok && !present[final] && !s.has(e.Index) && f.Type().IsRegular() &&
					s.checkKept(leaf, final, filepath.Join(s.dir, leaf, name), e) == nil {
					if err := os.Rename(filepath.Join(s.dir, leaf, name), filepath.Join(s.dir, leaf, final)); err != nil {
						return fmt.Errorf("renaming committed %s: %w", name, err)
					}
					present[final] = true
					s.unsynced[leaf] = true
					s.mark(e.Index)
					s.resumed++
					s.kept.Checked++
					continue
				}
				if err := os.RemoveAll(filepath.Join(s.dir, leaf, name)); err != nil {
					return fmt.Errorf("removing temporary %s: %w", name, err)
				}
				continue
			}
			e, ok := byName[name]
			if !ok || s.has(e.Index) {
				pending = append(pending, f)
				continue
			}
			if err := s.checkKept(leaf, name, filepath.Join(s.dir, leaf, name), e); err != nil {
				if err := s.setAside(leaf, name, err); err != nil {
					return err
				}
				continue
			}
			s.mark(e.Index)
			s.resumed++
			s.kept.Checked++
		}
		var listed map[string]manifest.Entry
		if cur != nil && len(pending) > 0 {
			if listed, err = cur.leaf(leaf); err != nil {
				return err
			}
		}
		for _, f := range pending {
			e, err := s.adoptable(leaf, f.Name(), listed)
			if err != nil {
				if err := s.setAside(leaf, f.Name(), err); err != nil {
					return err
				}
				continue
			}
			if err := s.record(leaf, e); err != nil {
				return err
			}
			s.resumed++
			s.kept.Checked++
			s.kept.Adopted++
		}
		return nil
	})
}

// checkKept checks a journaled block file, leaf/name, read from path,
// against its journal entry: name, form, size and stored SHA-256, and
// for plain blocks that the stored bytes are the block AWS served.
func (s *Store) checkKept(leaf, name, path string, e manifest.Entry) error {
	rel := filepath.ToSlash(filepath.Join(leaf, name))
	sum, err := e.Sum()
	if err != nil {
		return fmt.Errorf("journal entry: %w", err)
	}
	if e.Name != rel || filepath.ToSlash(s.Name(e.Index, sum)) != rel || !s.sameForm(e) {
		return errors.New("journal entry disagrees with the file name or the evidence's form")
	}
	if s.plain() && (e.StoredSHA256 != e.SHA256 || int64(e.Length) != e.Size) {
		return errors.New("journal entry of a plain block records different stored and served bytes")
	}
	return checkStored(path, e.Size, e.StoredSHA256)
}

// adoptable returns the entry of a block file no journal line accounts
// for, once it verifies, or says why it does not. listed holds the
// complete manifest's entries of the leaf by file name (sealed forms).
func (s *Store) adoptable(leaf, name string, listed map[string]manifest.Entry) (manifest.Entry, error) {
	fi, suffix, err := block.ParseFileName(name)
	if err != nil {
		return manifest.Entry{}, errors.New("not a block file name")
	}
	if fi.Snapshot != s.meta.SnapshotID || fi.VolumeGiB != s.meta.VolumeSizeGiB || fi.BlockSize != s.meta.BlockSize ||
		suffix != s.form.Suffix() || LeafDir(fi.Index) != leaf || fi.Index >= block.Slots(s.meta.VolumeSizeGiB) {
		return manifest.Entry{}, errors.New("not a block of this evidence, in this leaf, in this form")
	}
	if s.has(fi.Index) {
		return manifest.Entry{}, errors.New("another file already holds this block")
	}
	rel := filepath.ToSlash(filepath.Join(leaf, name))
	if !s.plain() {
		e, ok := listed[name]
		if !ok {
			return manifest.Entry{}, errors.New("no journal line and no manifest entry to check it against (a sealed block cannot be checked without the key)")
		}
		if err := checkStored(filepath.Join(s.dir, leaf, name), e.Size, e.StoredSHA256); err != nil {
			return manifest.Entry{}, err
		}
		return e, nil
	}
	f, err := os.Open(filepath.Join(s.dir, leaf, name))
	if err != nil {
		return manifest.Entry{}, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return manifest.Entry{}, errors.New("not a regular file")
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, block.Size+1))
	if err != nil {
		return manifest.Entry{}, err
	}
	if n == 0 || n > block.Size {
		return manifest.Entry{}, fmt.Errorf("%d bytes: a block holds 1 to %d", n, block.Size)
	}
	var got block.Sum
	copy(got[:], h.Sum(nil))
	if got != fi.Sum {
		return manifest.Entry{}, fmt.Errorf("content sha256 %s, its name says %s", got.Hex(), fi.Sum.Hex())
	}
	e := manifest.Entry{Type: "block", Index: fi.Index, SHA256: fi.Sum.Hex(), Length: int(n), Name: rel, Size: n, StoredSHA256: fi.Sum.Hex()}
	e.Codec, e.Encryption = s.form.Fields()
	return e, nil
}

// checkStored checks that path is a regular file of size bytes with the
// given hex SHA-256, reading at most one byte more than size.
func checkStored(path string, size int64, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if size < 0 || size > 2*block.Size {
		return fmt.Errorf("recorded size %d is out of bounds", size)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, size+1))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%d bytes, recorded %d", n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("stored sha256 %s, recorded %s", got, want)
	}
	return nil
}

// setAside moves leaf/name, which could not be verified, into
// .unverified/ under the same relative path (never over another file),
// and notes it.
func (s *Store) setAside(leaf, name string, why error) error {
	rel := filepath.Join(leaf, name)
	dst := filepath.Join(s.dir, unverifiedDir, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("setting aside %s: %w", rel, err)
	}
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if i > 1000 {
			return fmt.Errorf("setting aside %s: too many earlier copies in %s", rel, unverifiedDir)
		}
		dst = filepath.Join(s.dir, unverifiedDir, rel) + fmt.Sprintf(".%d", i)
	}
	if err := os.Rename(filepath.Join(s.dir, rel), dst); err != nil {
		return fmt.Errorf("setting aside %s: %w", rel, err)
	}
	s.kept.Rejected++
	if len(s.kept.Unverified) < maxUnverifiedNamed {
		moved, _ := filepath.Rel(s.dir, dst)
		s.kept.Unverified = append(s.kept.Unverified, Unverified{Name: filepath.ToSlash(rel), MovedTo: filepath.ToSlash(moved), Reason: why.Error()})
	} else {
		s.kept.MoreUnverified++
	}
	return nil
}

// prior is complete evidence that Create found: a manifest that matches
// its checksum file and evidence.json.
type prior struct {
	sum     block.Sum // of the manifest
	trailer manifest.Trailer
	entries block.Sum // of its entries alone (see entryDigest)
}

// readPrior returns the complete evidence in dir, or nil when its
// manifest is missing or does not check out (it is then stale, and
// Finish replaces it).
func readPrior(dir string, meta Meta) (*prior, error) {
	ev := &Evidence{Dir: dir, Meta: meta}
	mr, c, err := ev.Manifest()
	if errors.Is(err, ErrIncomplete) {
		return nil, nil
	}
	if err != nil {
		return nil, nil
	}
	defer c.Close()
	if ev.checkHeader(mr.Header()) != nil {
		return nil, nil
	}
	d := newEntryDigest()
	for {
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || ev.checkEntry(e) != nil {
			return nil, nil
		}
		if err := d.add(e); err != nil {
			return nil, err
		}
	}
	if ev.checkManifestSum(mr.Sum()) != nil {
		return nil, nil
	}
	return &prior{sum: mr.Sum(), trailer: mr.Trailer(), entries: d.sum()}, nil
}

// entryDigest hashes manifest entries as the manifest writes them, so
// that two manifests with the same blocks compare equal whatever their
// headers' times.
type entryDigest struct{ h hash.Hash }

func newEntryDigest() *entryDigest { return &entryDigest{h: sha256.New()} }

func (d *entryDigest) add(e manifest.Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	d.h.Write(append(line, '\n'))
	return nil
}

func (d *entryDigest) sum() block.Sum {
	var s block.Sum
	copy(s[:], d.h.Sum(nil))
	return s
}

// entryCursor walks the complete manifest's entries leaf by leaf, in
// the order eachLeaf visits leaves.
type entryCursor struct {
	f    *os.File
	mr   *manifest.Reader
	next *manifest.Entry
	eof  bool
}

func openCursor(dir string) (*entryCursor, error) {
	f, err := os.Open(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, err
	}
	mr, err := manifest.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &entryCursor{f: f, mr: mr}, nil
}

func (c *entryCursor) close() { c.f.Close() }

// leaf returns the entries of leaf by file name. Leaves must be asked
// for in ascending order; leaf names sort as their indexes do.
func (c *entryCursor) leaf(leaf string) (map[string]manifest.Entry, error) {
	out := map[string]manifest.Entry{}
	for {
		if c.next == nil && !c.eof {
			e, err := c.mr.Next()
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else if err != nil {
				return nil, err
			} else {
				c.next = &e
			}
		}
		if c.next == nil {
			return out, nil
		}
		switch l := LeafDir(c.next.Index); {
		case l < leaf:
			c.next = nil
		case l == leaf:
			out[filepath.Base(filepath.FromSlash(c.next.Name))] = *c.next
			c.next = nil
		default:
			return out, nil
		}
	}
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

// trimJournal cuts a torn last line (a crash mid-append: no newline
// ends it) off a leaf journal, durably, so that lines appended by a
// resume do not follow it.
func trimJournal(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
		return err
	}
	// Lines are at most journalLineMaxLen long: look that far back.
	off := max(0, st.Size()-journalLineMaxLen-1)
	tail := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(tail, off); err != nil {
		return fmt.Errorf("reading journal %s: %w", path, err)
	}
	if tail[len(tail)-1] == '\n' {
		return nil
	}
	keep := off + int64(bytes.LastIndexByte(tail, '\n')+1)
	if keep == off && off > 0 {
		return nil // no newline in the last line's reach: readJournal says what is wrong
	}
	if err := f.Truncate(keep); err != nil {
		return fmt.Errorf("cutting the torn last line of %s: %w", path, err)
	}
	return f.Sync()
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
		// A leaf's journal speaks only of the leaf's own blocks; this also
		// bounds byIndex to leafSize entries whatever the file holds.
		if e.Index < 0 || !strings.HasSuffix(filepath.Dir(path), LeafDir(e.Index)) {
			return nil, fmt.Errorf("journal %s: block %d does not belong in this leaf", path, e.Index)
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
	// Unchanged says that the directory already held complete evidence
	// of exactly these blocks: its manifest was kept as it was.
	Unchanged bool
}

// Finish writes the manifest of every stored block, in index order, from
// the leaf journals, then its SHA-256 file. It does not check that the
// snapshot's every block is there; the caller knows what was listed.
func (s *Store) Finish(started, finished time.Time) (Summary, error) {
	if err := s.Close(); err != nil {
		return Summary{}, err
	}
	if p := s.prior; p != nil {
		d := newEntryDigest()
		if err := s.storedEntries(d.add); err != nil {
			return Summary{}, fmt.Errorf("comparing with the manifest: %w", err)
		}
		if d.sum() == p.entries {
			return Summary{Trailer: p.trailer, ManifestSHA256: p.sum, Unchanged: true}, nil
		}
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
		if err := s.storedEntries(mw.Add); err != nil {
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

// storedEntries calls fn with the journal entry of every block stored,
// in index order: the last line per index, and only for blocks that count
// as stored (a line whose file was set aside, and never replaced, does
// not).
func (s *Store) storedEntries(fn func(manifest.Entry) error) error {
	return s.eachLeaf(func(leaf string) error {
		entries, err := readJournal(filepath.Join(s.dir, leaf, journalName))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !s.Has(e.Index) {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
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
