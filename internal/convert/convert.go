package convert

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

// ErrSameForm is returned when the blocks are already stored in the form
// asked for.
var ErrSameForm = errors.New("blocks are already stored in that form")

// PendingError refuses a conversion while another, to a different form,
// is under way in the directory.
type PendingError struct {
	Dir     string
	Pending codec.Form
	Asked   codec.Form
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("%s: a conversion to %s is under way (this run asks for %s); run the command that started it again to complete it",
		e.Dir, e.Pending, e.Asked)
}

// Options says what to convert to.
type Options struct {
	// To is the new form; SealTo are the recipients an encrypted To is
	// sealed to.
	To     codec.Form
	SealTo []age.Recipient
	// Recipients and KeyFile are recorded in evidence.json with To (see
	// store.Meta).
	Recipients []string
	KeyFile    string
	// Unseal opens entries of the current form and of To. For a To it
	// cannot decrypt (recipients whose key is elsewhere) it returns
	// store.ErrNeedKey, and the new files are checked by their stored
	// bytes only; their content was checked just before they were sealed.
	Unseal store.Unseal
	// Workers is how many blocks are converted at once; 0 means
	// GOMAXPROCS.
	Workers int
	// Progress, if set, is called with the pipeline's counters every
	// ProgressEvery (see acquire.Options), as for every job that moves
	// blocks. Blocks an interrupted run converted are not counted.
	Progress      func(acquire.Progress)
	ProgressEvery time.Duration

	// seal, when set (by tests), writes To in place of codec.Seal.
	seal store.Sealer
}

// Result is what Run did.
type Result struct {
	From, To codec.Form
	Blocks   int64 // blocks in the manifest
	Bytes    int64 // their length as served
	// Resumed blocks were converted by an interrupted run; their new
	// files were checked again against their stored SHA-256.
	Resumed int64
	// Decoded new files were also decoded back to the AWS SHA-256; the
	// others could be checked by their stored bytes only.
	Decoded        int64
	StoredBefore   int64 // stored bytes of the old files (0 when phase one was already done)
	StoredAfter    int64 // stored bytes of the new files
	ManifestSHA256 block.Sum
	// SourceManifestSHA256 is the SHA-256 of the manifest the conversion
	// started from, so that the record can chain one to the other.
	SourceManifestSHA256 string
	// RemovedKeyFile names the passphrase key file deleted because no
	// block is encrypted any more.
	RemovedKeyFile string
}

// State is where a conversion of an evidence directory starts.
type State struct {
	// From is the form the blocks are converted from: that of the
	// conversion under way, else the one evidence.json records.
	From codec.Form
	// Pending reports a conversion under way, to To.
	Pending bool
	To      codec.Form
	// Switching reports a conversion whose every block is written and
	// checked in the new form: completing it reads no block, so it needs
	// no key.
	Switching bool
}

// StateOf returns where a conversion of ev starts.
func StateOf(ev *store.Evidence) (State, error) {
	mk, err := store.ReadConversion(ev.Dir)
	if err != nil {
		return State{}, err
	}
	if mk == nil {
		from, err := ev.Meta.Form()
		return State{From: from}, err
	}
	return State{From: mk.From.Form, Pending: true, To: mk.To.Form, Switching: mk.State == store.ConversionSwitching}, nil
}

// conversion is one run of Run.
type conversion struct {
	ev   *store.Evidence
	mk   *store.Conversion
	o    *Options
	seal store.Sealer // nil: To is plain
	res  *Result
}

// Run converts every stored block of ev to o.To, resuming a conversion
// an earlier run left unfinished. The directory holds a complete,
// verifiable copy of the evidence at every point. A block that cannot be
// read (tampered with, missing, a wrong key) stops the conversion and
// undoes it, leaving the directory as it was; other errors (a full disk,
// an interruption) keep the work done for a rerun. Memory does not grow
// with the number of blocks.
func Run(ctx context.Context, ev *store.Evidence, o Options) (*Result, error) {
	unlock, err := lockDir(ev.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	mk, err := store.ReadConversion(ev.Dir)
	if err != nil {
		return nil, err
	}
	if mk == nil {
		from, err := ev.Meta.Form()
		if err != nil {
			return nil, err
		}
		if from == o.To {
			return nil, fmt.Errorf("%s: %w (%s)", ev.Dir, ErrSameForm, o.To)
		}
		if mk, err = startMarker(ev, &o); err != nil {
			return nil, err
		}
		if err := crashPoint("marker"); err != nil {
			return nil, err
		}
	} else if mk.To.Form != o.To || mk.To.Suffix != o.To.Suffix() || !slices.Equal(mk.Recipients, o.Recipients) || mk.KeyFile != o.KeyFile {
		return nil, &PendingError{Dir: ev.Dir, Pending: mk.To.Form, Asked: o.To}
	}
	c := &conversion{ev: ev, mk: mk, o: &o, seal: o.seal,
		res: &Result{From: mk.From.Form, To: o.To, SourceManifestSHA256: mk.SourceManifestSHA256}}
	if c.seal == nil {
		c.seal = store.SealerFor(o.To, o.SealTo)
	}
	if mk.State == store.ConversionWriting {
		if err := c.writeForm(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.switchForm(); err != nil {
		return nil, err
	}
	return c.res, nil
}

// startMarker writes the marker of a new conversion.
func startMarker(ev *store.Evidence, o *Options) (*store.Conversion, error) {
	mr, c, err := ev.Manifest()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := ev.CheckHeader(mr.Header()); err != nil {
		return nil, err
	}
	claimed, err := ev.ClaimedManifestSum()
	if err != nil {
		return nil, err
	}
	mk, err := ev.NewConversion()
	if err != nil {
		return nil, err
	}
	mk.To = store.ConversionForm{Form: o.To, Suffix: o.To.Suffix()}
	mk.Recipients, mk.KeyFile, mk.SourceManifestSHA256 = o.Recipients, o.KeyFile, claimed
	// The old suffix is the first file's; every other must share it.
	first, err := mr.Next()
	switch {
	case errors.Is(err, io.EOF):
		mk.From.Suffix = ""
	case err != nil:
		return nil, err
	default:
		_, mk.From.Suffix, err = block.ParseFileName(filepath.Base(filepath.FromSlash(first.Name)))
		if err != nil {
			return nil, &store.Mismatch{Index: first.Index, Name: first.Name, What: err.Error()}
		}
		if mk.From.Suffix == mk.To.Suffix {
			return nil, fmt.Errorf("%s: converting %s to %s would keep the file names (%q); convert in two steps", ev.Dir, mk.From.Form, mk.To.Form, mk.To.Suffix)
		}
	}
	if err := store.WriteConversion(ev.Dir, mk); err != nil {
		return nil, err
	}
	return mk, nil
}

// sourceError marks a failure to read an old block: the conversion
// cannot succeed until the evidence or the key is put right, so it is
// undone rather than kept for a rerun.
type sourceError struct{ error }

func (e sourceError) Unwrap() error { return e.error }

// writeForm is phase one: every block in the new form, checked, then the
// new manifest beside the old one.
func (c *conversion) writeForm(ctx context.Context) error {
	ev, mk := c.ev, c.mk
	claimed, err := ev.ClaimedManifestSum()
	if err != nil {
		return err
	}
	entriesPath := filepath.Join(ev.Dir, store.ConversionEntriesName)
	if claimed != mk.SourceManifestSHA256 {
		// The manifest changed since the conversion began (an
		// acquisition was resumed in between): start over.
		if err := removeIfExists(entriesPath); err != nil {
			return err
		}
		mk.SourceManifestSHA256 = claimed
		if err := store.WriteConversion(ev.Dir, mk); err != nil {
			return err
		}
	}
	mr, closer, err := ev.Manifest()
	if err != nil {
		return err
	}
	defer closer.Close()
	if err := ev.CheckHeader(mr.Header()); err != nil {
		return c.undo(sourceError{err})
	}
	f, err := os.OpenFile(entriesPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", store.ConversionEntriesName, err)
	}
	defer f.Close()
	next, err := c.resumeEntries(f, mr)
	if err == nil {
		err = c.run(ctx, next, f)
	}
	if err == nil {
		// The source checked the whole manifest; its trailer counts the
		// entries the new manifest must hold.
		err = drain(mr)
	}
	if err != nil {
		return c.undo(err)
	}
	c.res.Blocks, c.res.Bytes = mr.Trailer().Blocks, mr.Trailer().Bytes
	return c.writePending(mr.Header(), f)
}

// writePending makes the entries file and the new files durable, writes
// the new manifest from the entries and moves the marker to switching.
func (c *conversion) writePending(h manifest.Header, f *os.File) error {
	ev, mk := c.ev, c.mk
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", store.ConversionEntriesName, err)
	}
	// The new files' names must be durable before a manifest lists them.
	if err := store.EachLeaf(ev.Dir, func(leaf string) error { return atomicfile.SyncDir(filepath.Join(ev.Dir, leaf)) }); err != nil {
		return fmt.Errorf("syncing leaf directories: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := crashPoint("entries synced"); err != nil {
		return err
	}
	sum, err := writePendingManifest(ev.Dir, h, f, c.res.Blocks)
	if err != nil {
		return err
	}
	if err := crashPoint("pending manifest"); err != nil {
		return err
	}
	mk.State, mk.NewManifestSHA256 = store.ConversionSwitching, sum.Hex()
	if err := store.WriteConversion(ev.Dir, mk); err != nil {
		return err
	}
	return atomicfile.SyncDir(ev.Dir)
}

// undo removes what a failed phase one wrote when the failure lies in
// the old blocks, and passes err on.
func (c *conversion) undo(err error) error {
	var se sourceError
	if !errors.As(err, &se) {
		return err
	}
	if rerr := c.rollback(); rerr != nil {
		return errors.Join(err, fmt.Errorf("undoing the conversion: %w", rerr))
	}
	return err
}

// rollback deletes every new file and the conversion's own files, so the
// directory is as it was before the conversion began.
func (c *conversion) rollback() error {
	err := eachEntry(c.ev, func(e manifest.Entry) error {
		return removeIfExists(filepath.Join(c.ev.Dir, filepath.FromSlash(c.mk.NewName(e.Name))))
	})
	if err != nil {
		return err
	}
	for _, n := range []string{store.ConversionEntriesName, store.ConversionManifestName, store.ConversionName} {
		if err := removeIfExists(filepath.Join(c.ev.Dir, n)); err != nil {
			return err
		}
	}
	return atomicfile.SyncDir(c.ev.Dir)
}

// eachEntry calls fn for every entry of ev's manifest in index order,
// after sweeping the temporary files of each leaf it enters and syncing
// each leaf it leaves.
func eachEntry(ev *store.Evidence, fn func(e manifest.Entry) error) error {
	mr, c, err := ev.Manifest()
	if err != nil {
		return err
	}
	defer c.Close()
	leaf := ""
	for {
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if l := store.LeafDir(e.Index); l != leaf {
			if leaf != "" {
				if err := atomicfile.SyncDir(filepath.Join(ev.Dir, leaf)); err != nil {
					return err
				}
			}
			leaf = l
			if err := store.SweepTemp(filepath.Join(ev.Dir, leaf)); err != nil {
				return err
			}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if leaf != "" {
		return atomicfile.SyncDir(filepath.Join(ev.Dir, leaf))
	}
	return nil
}

// newEntry is old's entry in the new form, before its file is written.
func (c *conversion) newEntry(old manifest.Entry) manifest.Entry {
	ne := old
	ne.Name = c.mk.NewName(old.Name)
	ne.Codec, ne.Encryption = c.mk.To.Form.Fields()
	return ne
}

// resumeEntries keeps the longest prefix of the entries file that matches
// the manifest and whose new files still check, truncating the rest. It
// returns the index the conversion goes on from: that of the first
// manifest entry it could not keep, or the one after the last it kept.
func (c *conversion) resumeEntries(f *os.File, mr *manifest.Reader) (int64, error) {
	br := bufio.NewReaderSize(f, 1<<16)
	var (
		off  int64
		next int64
		buf  bytes.Buffer
	)
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // empty, or a line torn by a crash
		}
		if err != nil {
			return 0, fmt.Errorf("reading %s: %w", store.ConversionEntriesName, err)
		}
		var ne manifest.Entry
		if json.Unmarshal(line, &ne) != nil {
			break
		}
		old, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break // more lines than the manifest has entries
		}
		if err != nil {
			return 0, sourceError{err}
		}
		next = old.Index
		want := c.newEntry(old)
		want.Size, want.StoredSHA256 = ne.Size, ne.StoredSHA256
		if ne != want || c.ev.ReadStored(ne, &buf) != nil {
			break
		}
		next = old.Index + 1
		c.res.Resumed++
		c.res.Blocks++
		c.res.Bytes += int64(old.Length)
		c.res.StoredBefore += old.Size
		c.res.StoredAfter += ne.Size
		off += int64(len(line))
	}
	if err := f.Truncate(off); err != nil {
		return 0, fmt.Errorf("truncating %s: %w", store.ConversionEntriesName, err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return next, nil
}

// drain reads mr to its end, so that its trailer and SHA-256 are known.
func drain(mr *manifest.Reader) error {
	for {
		_, err := mr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return sourceError{err}
		}
	}
}

// record appends new entry e to the entries file f and counts it;
// decoded says the new file was decoded back to the block's SHA-256.
func (c *conversion) record(f *os.File, e manifest.Entry, decoded bool) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("recording block %d: %w", e.Index, err)
	}
	if err := crashPoint("entry"); err != nil {
		return err
	}
	res := c.res
	res.StoredAfter += e.Size
	res.Blocks++
	res.Bytes += int64(e.Length)
	if decoded {
		res.Decoded++
	}
	return nil
}

// entryForm names the form a manifest entry records, as codec.Form's
// String would.
func entryForm(e manifest.Entry) string {
	if e.Encryption != codec.EncryptionNone {
		return e.Codec + "+" + e.Encryption
	}
	return e.Codec
}

// checkBuffers are what checking one new file takes.
type checkBuffers struct {
	stored bytes.Buffer
	out    []byte
}

var checkPool = sync.Pool{New: func() any { return &checkBuffers{out: make([]byte, block.Size)} }}

// writeNew writes block b, read from its old file and verified, in the
// new form beside it, and checks the new file: its stored bytes against
// the SHA-256 computed while writing them and, when the key is at hand,
// decoded back to b's SHA-256. decoded says whether it was.
func (c *conversion) writeNew(b block.Block) (manifest.Entry, bool, error) {
	ev := c.ev
	name := block.FileName(block.FileInfo{Index: b.Index, Snapshot: ev.Meta.SnapshotID, Sum: b.Sum,
		VolumeGiB: ev.Meta.VolumeSizeGiB, BlockSize: ev.Meta.BlockSize}) + c.mk.To.Suffix
	ne := manifest.Entry{Type: "block", Index: b.Index, SHA256: b.Sum.Hex(), Length: len(b.Data),
		Name: filepath.ToSlash(filepath.Join(store.LeafDir(b.Index), name))}
	ne.Codec, ne.Encryption = c.mk.To.Form.Fields()
	size, sum, err := store.WriteBlockFile(ev.Dir, filepath.FromSlash(ne.Name), b.Data, c.seal)
	if err != nil {
		return ne, false, fmt.Errorf("writing block %d in the new form: %w", b.Index, err)
	}
	ne.Size, ne.StoredSHA256 = size, sum.Hex()
	if c.seal == nil {
		ne.StoredSHA256 = ne.SHA256
	}
	w := checkPool.Get().(*checkBuffers)
	defer checkPool.Put(w)
	if err := ev.ReadStored(ne, &w.stored); err != nil {
		return ne, false, fmt.Errorf("checking the new file: %w", err)
	}
	if _, err := store.Decode(ne, w.stored.Bytes(), c.o.Unseal, w.out); errors.Is(err, store.ErrNeedKey) {
		return ne, false, nil
	} else if err != nil {
		return ne, false, fmt.Errorf("checking the new file: %w", err)
	}
	return ne, true, nil
}

// writePendingManifest writes the new manifest, header h and the entries
// in r, to DIR/transform-manifest.jsonl and returns its SHA-256.
func writePendingManifest(dir string, h manifest.Header, r io.Reader, blocks int64) (block.Sum, error) {
	var sum block.Sum
	err := atomicfile.Write(filepath.Join(dir, store.ConversionManifestName), func(w io.Writer) error {
		mw, err := manifest.NewWriter(w, h)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 4096), store.MaxJournalLine)
		for sc.Scan() {
			var e manifest.Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return fmt.Errorf("reading %s: %w", store.ConversionEntriesName, err)
			}
			if err := mw.Add(e); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading %s: %w", store.ConversionEntriesName, err)
		}
		t, s, err := mw.Close()
		if err != nil {
			return err
		}
		if t.Blocks != blocks {
			return fmt.Errorf("%s holds %d entries, the manifest %d", store.ConversionEntriesName, t.Blocks, blocks)
		}
		sum = s
		return nil
	})
	if err != nil {
		return block.Sum{}, fmt.Errorf("writing the new manifest: %w", err)
	}
	return sum, nil
}

// switchForm is phase two: the new manifest, its checksum, evidence.json
// and the journals replace the old ones; then the old files go.
func (c *conversion) switchForm() error {
	ev, mk := c.ev, c.mk
	want, err := block.ParseHex(mk.NewManifestSHA256)
	if err != nil {
		return fmt.Errorf("%s: new manifest sha256: %w", store.ConversionName, err)
	}
	if err := switchManifest(ev.Dir, want); err != nil {
		return err
	}
	if err := crashPoint("checksum"); err != nil {
		return err
	}
	if err := ev.RecordForm(mk.To.Form, mk.Recipients, mk.KeyFile); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(ev.Dir); err != nil {
		return err
	}
	if err := crashPoint("meta"); err != nil {
		return err
	}
	if err := c.rewriteJournals(); err != nil {
		return err
	}
	// Every journal names the new files now; the old ones can go.
	err = eachEntry(ev, func(e manifest.Entry) error {
		if err := removeIfExists(filepath.Join(ev.Dir, filepath.FromSlash(mk.OldName(e.Name)))); err != nil {
			return err
		}
		return crashPoint("removed")
	})
	if err != nil {
		return fmt.Errorf("removing the old files: %w", err)
	}
	if k := mk.FromKeyFile; k != "" && mk.KeyFile == "" && filepath.Base(k) == k {
		if err := removeIfExists(filepath.Join(ev.Dir, k)); err != nil {
			return fmt.Errorf("removing the key file no block needs: %w", err)
		}
		c.res.RemovedKeyFile = k
	}
	for _, n := range []string{store.ConversionEntriesName, store.ConversionName} {
		if err := crashPoint("removing " + n); err != nil {
			return err
		}
		if err := removeIfExists(filepath.Join(ev.Dir, n)); err != nil {
			return err
		}
	}
	c.res.ManifestSHA256 = want
	return atomicfile.SyncDir(ev.Dir)
}

// switchManifest renames the new manifest, of SHA-256 want, over the old
// one (unless an interrupted run already did) and rewrites its checksum
// file.
func switchManifest(dir string, want block.Sum) error {
	pending := filepath.Join(dir, store.ConversionManifestName)
	final := filepath.Join(dir, store.ManifestName)
	if _, err := os.Stat(pending); err == nil {
		if got, err := hashFile(pending); err != nil || got != want {
			return fmt.Errorf("%s does not hash to the sha256 %s records (%v)", store.ConversionManifestName, store.ConversionName, err)
		}
		if err := os.Rename(pending, final); err != nil {
			return fmt.Errorf("replacing the manifest: %w", err)
		}
		if err := crashPoint("manifest renamed"); err != nil {
			return err
		}
	} else if got, err := hashFile(final); err != nil || got != want {
		return fmt.Errorf("%s is not the manifest %s records (%v): run verify", store.ManifestName, store.ConversionName, err)
	}
	return store.WriteManifestSum(dir, want)
}

// rewriteJournals replaces the journal of every leaf the manifest lists
// blocks in with exactly those entries, so that an acquisition resumed
// later keeps the new files.
func (c *conversion) rewriteJournals() error {
	mr, closer, err := c.ev.Manifest()
	if err != nil {
		return err
	}
	defer closer.Close()
	var j *store.LeafJournal
	for {
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if l := store.LeafDir(e.Index); j == nil || j.Leaf() != l {
			if err := j.Commit(); err != nil {
				return err
			}
			if j != nil {
				if err := crashPoint("journal"); err != nil {
					return err
				}
			}
			if j, err = store.NewLeafJournal(c.ev.Dir, l); err != nil {
				return err
			}
		}
		if err := j.Add(e); err != nil {
			j.Abort()
			return err
		}
	}
	if err := j.Commit(); err != nil {
		return err
	}
	if err := crashPoint("journals"); err != nil {
		return err
	}
	t := mr.Trailer()
	c.res.Blocks, c.res.Bytes, c.res.StoredAfter = t.Blocks, t.Bytes, t.StoredBytes
	return nil
}

func hashFile(path string) (block.Sum, error) {
	var s block.Sum
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return s, err
	}
	copy(s[:], h.Sum(nil))
	return s, nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// testHook, when a test sets it, is called at each step of a
// conversion; an error it returns stops the conversion there, as a crash
// would, with nothing cleaned up.
var testHook func(step string) error

func crashPoint(step string) error {
	if testHook != nil {
		return testHook(step)
	}
	return nil
}

// lockDir takes the directory lock (package dirlock) for one conversion:
// no acquisition and no other conversion writes to the directory while it
// runs; the lock goes with the process.
func lockDir(dir string) (func(), error) {
	l, err := dirlock.ForDir(dir, "convert")
	if err != nil {
		return nil, err
	}
	return func() { l.Release() }, nil
}
