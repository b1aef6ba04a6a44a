package store

// Converting an evidence directory from one stored form to another
// (compress, uncompress, encrypt, decrypt), crash-safe.
//
// A conversion writes DIR/transform.json, the marker, before anything
// else. Phase one ("writing") converts every block of the manifest: it
// reads and checks the stored file, decodes it to the block AWS served
// (checked against its SHA-256), writes the new file beside the old one
// (temporary name, fsync, rename), reads that back against the SHA-256
// computed while writing it and, when the key is at hand, decodes it to
// the AWS SHA-256 again; only then is its manifest entry appended to
// DIR/transform.jsonl, in index order. A rerun trusts the longest prefix
// of that file whose files still check, and continues after it. The
// complete new manifest is written as DIR/transform-manifest.jsonl and
// its SHA-256 recorded in the marker, whose state becomes "switching".
// Phase two renames it over manifest.jsonl, rewrites manifest.jsonl.sha256
// and evidence.json, rewrites every leaf journal, and only then deletes
// the old files (journals first, so that an acquisition resumed at any
// point never mistakes a new file for a stray one), then the marker.
//
// While the marker exists, Verify expects both files of a block and
// accepts the new manifest before its checksum file is rewritten, so
// the directory verifies at every point; a rerun completes the job.

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
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// TransformName is the marker of a conversion under way.
const TransformName = "transform.json"

const (
	transformEntriesName  = "transform.jsonl"          // new entries, in index order, as their files land
	transformManifestName = "transform-manifest.jsonl" // the complete new manifest, before it replaces the old
	transformFormat       = "ebsimager-transform/1"
	stateWriting          = "writing"
	stateSwitching        = "switching"
)

// FormName is the part of a Form that evidence.json and the manifest
// record.
type FormName struct {
	Codec      string `json:"codec"`
	Encryption string `json:"encryption"`
}

func (f FormName) String() string {
	if f.Encryption != "none" {
		return f.Codec + "+" + f.Encryption
	}
	return f.Codec
}

// Name returns what evidence.json records of f.
func (f Form) Name() FormName { return FormName{Codec: f.Codec, Encryption: f.Encryption} }

// ErrSameForm is returned when the blocks are already stored in the form
// asked for.
var ErrSameForm = errors.New("blocks are already stored in that form")

// PendingTransformError refuses a conversion while another, to a
// different form, is under way in the directory.
type PendingTransformError struct {
	Dir     string
	Pending FormName
	Asked   FormName
}

func (e *PendingTransformError) Error() string {
	return fmt.Sprintf("%s: a conversion to %s is under way (this run asks for %s); run the command that started it again to complete it",
		e.Dir, e.Pending, e.Asked)
}

// TransformOptions says what to convert to.
type TransformOptions struct {
	// To is the new form. Its Seal writes the new files and its Suffix
	// follows the original tool's name.
	To Form
	// Recipients and KeyFile are recorded in evidence.json with To (see
	// Meta).
	Recipients []string
	KeyFile    string
	// Unseal opens entries of the current form and of To. For a To it
	// cannot decrypt (recipients whose key is elsewhere) it returns
	// ErrNeedKey, and the new files are checked by their stored bytes
	// only; their content was checked just before they were sealed.
	Unseal Unseal
	// Workers is how many blocks are converted at once; 0 means
	// GOMAXPROCS.
	Workers int
	// Progress, if set, is called after each block is converted, from
	// one goroutine.
	Progress func(TransformProgress)
}

// TransformProgress counts the blocks converted so far.
type TransformProgress struct {
	Blocks int64 // converted, including those kept from an interrupted run
	Bytes  int64 // their length as served
}

// TransformResult is what Transform did.
type TransformResult struct {
	From, To FormName
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

// marker is DIR/transform.json.
type marker struct {
	Format               string     `json:"format"`
	State                string     `json:"state"`
	From                 markerForm `json:"from"`
	To                   markerForm `json:"to"`
	Recipients           []string   `json:"recipients,omitempty"`
	KeyFile              string     `json:"key_file,omitempty"`
	FromKeyFile          string     `json:"from_key_file,omitempty"`
	SourceManifestSHA256 string     `json:"source_manifest_sha256"`
	NewManifestSHA256    string     `json:"new_manifest_sha256,omitempty"`
}

type markerForm struct {
	FormName
	Suffix string `json:"suffix"`
}

// newName is the name of an old file in the new form.
func (m *marker) newName(old string) string {
	return strings.TrimSuffix(old, m.From.Suffix) + m.To.Suffix
}

// oldName is the name of a new file in the old form.
func (m *marker) oldName(name string) string {
	return strings.TrimSuffix(name, m.To.Suffix) + m.From.Suffix
}

// TransformState is where a conversion of an evidence directory starts.
type TransformState struct {
	// From is the form the blocks are converted from: that of the
	// conversion under way, else the one evidence.json records.
	From FormName
	// Pending reports a conversion under way, to To.
	Pending bool
	To      FormName
	// Switching reports a conversion whose every block is written and
	// checked in the new form: completing it reads no block, so it needs
	// no key.
	Switching bool
}

// TransformState returns where a conversion of ev starts.
func (ev *Evidence) TransformState() (TransformState, error) {
	mk, err := readMarker(ev.Dir)
	if err != nil {
		return TransformState{}, err
	}
	if mk == nil {
		return TransformState{From: FormName{Codec: ev.Meta.Codec, Encryption: ev.Meta.Encryption}}, nil
	}
	return TransformState{From: mk.From.FormName, Pending: true, To: mk.To.FormName, Switching: mk.State == stateSwitching}, nil
}

// Transform converts every stored block of ev to o.To, resuming a
// conversion an earlier run left unfinished. The directory holds a
// complete, verifiable copy of the evidence at every point. A block that
// cannot be read (tampered with, missing, a wrong key) stops the
// conversion and undoes it, leaving the directory as it was; other
// errors (a full disk, an interruption) keep the work done for a rerun.
// Memory does not grow with the number of blocks.
func (ev *Evidence) Transform(ctx context.Context, o TransformOptions) (*TransformResult, error) {
	if o.To.Codec == "" {
		o.To = Plain
	}
	unlock, err := lockDir(ev.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	mk, err := readMarker(ev.Dir)
	if err != nil {
		return nil, err
	}
	to := o.To.Name()
	if mk == nil {
		from := FormName{Codec: ev.Meta.Codec, Encryption: ev.Meta.Encryption}
		if from == to {
			return nil, fmt.Errorf("%s: %w (%s)", ev.Dir, ErrSameForm, to)
		}
		if mk, err = ev.startMarker(o); err != nil {
			return nil, err
		}
		if err := crashPoint("marker"); err != nil {
			return nil, err
		}
	} else if mk.To.FormName != to || mk.To.Suffix != o.To.Suffix || !slices.Equal(mk.Recipients, o.Recipients) || mk.KeyFile != o.KeyFile {
		return nil, &PendingTransformError{Dir: ev.Dir, Pending: mk.To.FormName, Asked: to}
	}
	res := &TransformResult{From: mk.From.FormName, To: to, SourceManifestSHA256: mk.SourceManifestSHA256}
	if mk.State == stateWriting {
		if err := ev.writeForm(ctx, mk, &o, res); err != nil {
			return nil, err
		}
	}
	if err := ev.switchForm(mk, res); err != nil {
		return nil, err
	}
	return res, nil
}

// startMarker writes the marker of a new conversion.
func (ev *Evidence) startMarker(o TransformOptions) (*marker, error) {
	mr, c, err := ev.Manifest()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := ev.checkHeader(mr.Header()); err != nil {
		return nil, err
	}
	claimed, err := ev.claimedManifestSum()
	if err != nil {
		return nil, err
	}
	mk := &marker{
		Format: transformFormat, State: stateWriting,
		From:       markerForm{FormName: FormName{Codec: ev.Meta.Codec, Encryption: ev.Meta.Encryption}},
		To:         markerForm{FormName: o.To.Name(), Suffix: o.To.Suffix},
		Recipients: o.Recipients, KeyFile: o.KeyFile, FromKeyFile: ev.Meta.KeyFile,
		SourceManifestSHA256: claimed,
	}
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
			return nil, &Mismatch{Index: first.Index, Name: first.Name, What: err.Error()}
		}
		if mk.From.Suffix == mk.To.Suffix {
			return nil, fmt.Errorf("%s: converting %s to %s would keep the file names (%q); convert in two steps", ev.Dir, mk.From.FormName, mk.To.FormName, mk.To.Suffix)
		}
	}
	if err := writeMarker(ev.Dir, mk); err != nil {
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
func (ev *Evidence) writeForm(ctx context.Context, mk *marker, o *TransformOptions, res *TransformResult) error {
	claimed, err := ev.claimedManifestSum()
	if err != nil {
		return err
	}
	entriesPath := filepath.Join(ev.Dir, transformEntriesName)
	if claimed != mk.SourceManifestSHA256 {
		// The manifest changed since the conversion began (an
		// acquisition was resumed in between): start over.
		if err := os.Remove(entriesPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		mk.SourceManifestSHA256 = claimed
		if err := writeMarker(ev.Dir, mk); err != nil {
			return err
		}
	}
	mr, c, err := ev.Manifest()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := ev.checkHeader(mr.Header()); err != nil {
		return ev.undo(mk, sourceError{err})
	}
	f, err := os.OpenFile(entriesPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", transformEntriesName, err)
	}
	defer f.Close()
	carry, err := ev.resumeEntries(f, mr, mk, res)
	if err == nil {
		err = ev.convertAll(ctx, mr, carry, f, mk, o, res)
	}
	if err == nil {
		if serr := ev.checkManifestSum(mr.Sum()); serr != nil {
			err = sourceError{serr}
		}
	}
	if err != nil {
		return ev.undo(mk, err)
	}
	res.Blocks, res.Bytes = mr.Trailer().Blocks, mr.Trailer().Bytes
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", transformEntriesName, err)
	}
	// The new files' names must be durable before a manifest lists them.
	if err := eachLeaf(ev.Dir, func(leaf string) error { return atomicfile.SyncDir(filepath.Join(ev.Dir, leaf)) }); err != nil {
		return fmt.Errorf("syncing leaf directories: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := crashPoint("entries synced"); err != nil {
		return err
	}
	sum, err := ev.writePendingManifest(mr.Header(), f, res.Blocks)
	if err != nil {
		return err
	}
	if err := crashPoint("pending manifest"); err != nil {
		return err
	}
	mk.State, mk.NewManifestSHA256 = stateSwitching, sum.Hex()
	if err := writeMarker(ev.Dir, mk); err != nil {
		return err
	}
	return atomicfile.SyncDir(ev.Dir)
}

// undo removes what a failed phase one wrote when the failure lies in
// the old blocks, and passes err on.
func (ev *Evidence) undo(mk *marker, err error) error {
	var se sourceError
	if !errors.As(err, &se) {
		return err
	}
	if rerr := ev.rollback(mk); rerr != nil {
		return errors.Join(err, fmt.Errorf("undoing the conversion: %w", rerr))
	}
	return err
}

// rollback deletes every new file and the conversion's own files, so the
// directory is as it was before the conversion began.
func (ev *Evidence) rollback(mk *marker) error {
	err := ev.eachEntry(func(e manifest.Entry) error {
		return removeIfExists(filepath.Join(ev.Dir, filepath.FromSlash(mk.newName(e.Name))))
	})
	if err != nil {
		return err
	}
	for _, n := range []string{transformEntriesName, transformManifestName, TransformName} {
		if err := removeIfExists(filepath.Join(ev.Dir, n)); err != nil {
			return err
		}
	}
	return atomicfile.SyncDir(ev.Dir)
}

// eachEntry calls fn for every entry of the manifest in index order,
// after sweeping the temporary files of each leaf it enters and syncing
// each leaf it leaves.
func (ev *Evidence) eachEntry(fn func(e manifest.Entry) error) error {
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
		if l := LeafDir(e.Index); l != leaf {
			if leaf != "" {
				if err := atomicfile.SyncDir(filepath.Join(ev.Dir, leaf)); err != nil {
					return err
				}
			}
			leaf = l
			if err := sweepTemp(filepath.Join(ev.Dir, leaf)); err != nil {
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

// resumeEntries keeps the longest prefix of the entries file that matches
// the manifest and whose new files still check, truncating the rest. It
// returns the manifest entry it read past but could not keep, if any.
func (ev *Evidence) resumeEntries(f *os.File, mr *manifest.Reader, mk *marker, res *TransformResult) (*manifest.Entry, error) {
	br := bufio.NewReaderSize(f, 1<<16)
	var (
		off   int64
		carry *manifest.Entry
		buf   bytes.Buffer
	)
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // empty, or a line torn by a crash
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", transformEntriesName, err)
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
			return nil, sourceError{err}
		}
		want := old
		want.Name, want.Codec, want.Encryption = mk.newName(old.Name), mk.To.Codec, mk.To.Encryption
		want.Size, want.StoredSHA256 = ne.Size, ne.StoredSHA256
		if ne != want || ev.ReadStored(ne, &buf) != nil {
			carry = &old
			break
		}
		res.Resumed++
		res.Blocks++
		res.Bytes += int64(old.Length)
		res.StoredBefore += old.Size
		res.StoredAfter += ne.Size
		off += int64(len(line))
	}
	if err := f.Truncate(off); err != nil {
		return nil, fmt.Errorf("truncating %s: %w", transformEntriesName, err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return carry, nil
}

// job is one block on its way through convertAll.
type job struct {
	e    manifest.Entry
	done chan jobResult // buffered: a worker never waits on it
}

type jobResult struct {
	e       manifest.Entry
	decoded bool
	err     error
}

// convertAll converts carry and the rest of mr with o.Workers workers and
// appends each new entry to f in index order.
func (ev *Evidence) convertAll(ctx context.Context, mr *manifest.Reader, carry *manifest.Entry, f *os.File,
	mk *marker, o *TransformOptions, res *TransformResult) error {
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan *job)
	order := make(chan *job, workers) // bounds the blocks in flight
	g.Go(func() error {
		defer close(order)
		defer close(jobs)
		next := func() (manifest.Entry, error) {
			if carry != nil {
				e := *carry
				carry = nil
				return e, nil
			}
			return mr.Next()
		}
		for {
			e, err := next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return sourceError{err}
			}
			j := &job{e: e, done: make(chan jobResult, 1)}
			for _, ch := range []chan *job{order, jobs} {
				select {
				case ch <- j:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		}
	})
	sink := &Store{dir: ev.Dir, form: o.To}
	for range workers {
		g.Go(func() error {
			var w convBuffers
			for j := range jobs {
				ne, decoded, err := ev.convert(j.e, mk, o.Unseal, sink, &w)
				j.done <- jobResult{ne, decoded, err}
			}
			return nil
		})
	}
	g.Go(func() error {
		for j := range order {
			var r jobResult
			select {
			case r = <-j.done:
			case <-gctx.Done():
				return gctx.Err()
			}
			if r.err != nil {
				return r.err
			}
			line, err := json.Marshal(r.e)
			if err != nil {
				return err
			}
			if _, err := f.Write(append(line, '\n')); err != nil {
				return fmt.Errorf("recording block %d: %w", r.e.Index, err)
			}
			if err := crashPoint("entry"); err != nil {
				return err
			}
			res.StoredBefore += j.e.Size
			res.StoredAfter += r.e.Size
			res.Blocks++
			res.Bytes += int64(r.e.Length)
			if r.decoded {
				res.Decoded++
			}
			if o.Progress != nil {
				o.Progress(TransformProgress{Blocks: res.Blocks, Bytes: res.Bytes})
			}
		}
		return nil
	})
	return g.Wait()
}

// convBuffers are one worker's buffers.
type convBuffers struct {
	stored, check bytes.Buffer
	out, out2     []byte
}

// convert writes block e in the new form and checks the new file.
func (ev *Evidence) convert(e manifest.Entry, mk *marker, unseal Unseal, sink *Store, w *convBuffers) (manifest.Entry, bool, error) {
	if w.out == nil {
		w.out, w.out2 = make([]byte, block.Size), make([]byte, block.Size)
	}
	if e.Codec != mk.From.Codec || e.Encryption != mk.From.Encryption || !strings.HasSuffix(e.Name, mk.From.Suffix) ||
		(mk.From.Suffix == "" && strings.Contains(filepath.Base(e.Name), ".")) {
		return e, false, sourceError{&Mismatch{Index: e.Index, Name: e.Name,
			What: fmt.Sprintf("stored as %s, but the directory as %s: convert a directory of one form only", FormName{e.Codec, e.Encryption}, mk.From.FormName)}}
	}
	if err := ev.checkEntry(e); err != nil {
		return e, false, sourceError{err}
	}
	if err := ev.ReadStored(e, &w.stored); err != nil {
		return e, false, sourceError{err}
	}
	data, err := Decode(e, w.stored.Bytes(), unseal, w.out)
	if err != nil {
		return e, false, sourceError{err}
	}
	ne := e
	ne.Name, ne.Codec, ne.Encryption = mk.newName(e.Name), mk.To.Codec, mk.To.Encryption
	size, sum, err := sink.writeFile(filepath.FromSlash(ne.Name), data)
	if err != nil {
		return e, false, fmt.Errorf("writing block %d in the new form: %w", e.Index, err)
	}
	ne.Size, ne.StoredSHA256 = size, sum.Hex()
	if sink.form.plain() {
		ne.StoredSHA256 = ne.SHA256
	}
	if err := ev.ReadStored(ne, &w.check); err != nil {
		return e, false, fmt.Errorf("checking the new file: %w", err)
	}
	if _, err := Decode(ne, w.check.Bytes(), unseal, w.out2); errors.Is(err, ErrNeedKey) {
		return ne, false, nil
	} else if err != nil {
		return e, false, fmt.Errorf("checking the new file: %w", err)
	}
	return ne, true, nil
}

// writePendingManifest writes the new manifest, header h and the entries
// in r, to DIR/transform-manifest.jsonl and returns its SHA-256.
func (ev *Evidence) writePendingManifest(h manifest.Header, r io.Reader, blocks int64) (block.Sum, error) {
	var sum block.Sum
	err := atomicfile.Write(filepath.Join(ev.Dir, transformManifestName), func(w io.Writer) error {
		mw, err := manifest.NewWriter(w, h)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 4096), journalLineMaxLen)
		for sc.Scan() {
			var e manifest.Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return fmt.Errorf("reading %s: %w", transformEntriesName, err)
			}
			if err := mw.Add(e); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading %s: %w", transformEntriesName, err)
		}
		t, s, err := mw.Close()
		if err != nil {
			return err
		}
		if t.Blocks != blocks {
			return fmt.Errorf("%s holds %d entries, the manifest %d", transformEntriesName, t.Blocks, blocks)
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
func (ev *Evidence) switchForm(mk *marker, res *TransformResult) error {
	want, err := block.ParseHex(mk.NewManifestSHA256)
	if err != nil {
		return fmt.Errorf("%s: new manifest sha256: %w", TransformName, err)
	}
	pending := filepath.Join(ev.Dir, transformManifestName)
	final := filepath.Join(ev.Dir, ManifestName)
	if _, err := os.Stat(pending); err == nil {
		if got, err := hashFile(pending); err != nil || got != want {
			return fmt.Errorf("%s does not hash to the sha256 %s records (%v)", transformManifestName, TransformName, err)
		}
		if err := os.Rename(pending, final); err != nil {
			return fmt.Errorf("replacing the manifest: %w", err)
		}
		if err := crashPoint("manifest renamed"); err != nil {
			return err
		}
	} else if got, err := hashFile(final); err != nil || got != want {
		return fmt.Errorf("%s is not the manifest %s records (%v): run verify", ManifestName, TransformName, err)
	}
	line := fmt.Sprintf("%s  %s\n", want.Hex(), ManifestName)
	if err := atomicfile.Write(filepath.Join(ev.Dir, ManifestSumName), func(w io.Writer) error {
		_, err := io.WriteString(w, line)
		return err
	}); err != nil {
		return fmt.Errorf("writing manifest checksum: %w", err)
	}
	if err := crashPoint("checksum"); err != nil {
		return err
	}
	meta, err := readMeta(ev.Dir)
	if err != nil {
		return err
	}
	meta.Codec, meta.Encryption = mk.To.Codec, mk.To.Encryption
	meta.Recipients, meta.KeyFile = mk.Recipients, mk.KeyFile
	if err := writeJSON(filepath.Join(ev.Dir, MetaName), meta); err != nil {
		return fmt.Errorf("writing %s: %w", MetaName, err)
	}
	ev.Meta = meta
	if err := atomicfile.SyncDir(ev.Dir); err != nil {
		return err
	}
	if err := crashPoint("meta"); err != nil {
		return err
	}
	if err := ev.rewriteJournals(res); err != nil {
		return err
	}
	// Every journal names the new files now; the old ones can go.
	err = ev.eachEntry(func(e manifest.Entry) error {
		if err := removeIfExists(filepath.Join(ev.Dir, filepath.FromSlash(mk.oldName(e.Name)))); err != nil {
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
		res.RemovedKeyFile = k
	}
	for _, n := range []string{transformEntriesName, TransformName} {
		if err := crashPoint("removing " + n); err != nil {
			return err
		}
		if err := removeIfExists(filepath.Join(ev.Dir, n)); err != nil {
			return err
		}
	}
	res.ManifestSHA256 = want
	return atomicfile.SyncDir(ev.Dir)
}

// rewriteJournals replaces the journal of every leaf the manifest lists
// blocks in with exactly those entries, so that an acquisition resumed
// later keeps the new files.
func (ev *Evidence) rewriteJournals(res *TransformResult) error {
	mr, c, err := ev.Manifest()
	if err != nil {
		return err
	}
	defer c.Close()
	var j *leafJournal
	for {
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if l := LeafDir(e.Index); j == nil || j.leaf != l {
			if err := j.commit(); err != nil {
				return err
			}
			if j != nil {
				if err := crashPoint("journal"); err != nil {
					return err
				}
			}
			if j, err = newLeafJournal(ev.Dir, l); err != nil {
				return err
			}
		}
		if err := j.add(e); err != nil {
			j.abort()
			return err
		}
	}
	if err := j.commit(); err != nil {
		return err
	}
	if err := crashPoint("journals"); err != nil {
		return err
	}
	t := mr.Trailer()
	res.Blocks, res.Bytes, res.StoredAfter = t.Blocks, t.Bytes, t.StoredBytes
	return nil
}

// leafJournal is a leaf's new journal, written beside the old one and
// renamed over it.
type leafJournal struct {
	dir, leaf string
	f         *os.File
	bw        *bufio.Writer
}

func newLeafJournal(dir, leaf string) (*leafJournal, error) {
	f, err := os.CreateTemp(filepath.Join(dir, leaf), tempPrefix+journalName+"-*")
	if err != nil {
		return nil, fmt.Errorf("rewriting the journal of %s: %w", leaf, err)
	}
	return &leafJournal{dir: dir, leaf: leaf, f: f, bw: bufio.NewWriterSize(f, 1<<16)}, nil
}

func (j *leafJournal) add(e manifest.Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := j.bw.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("rewriting the journal of %s: %w", j.leaf, err)
	}
	return nil
}

func (j *leafJournal) abort() {
	j.f.Close()
	os.Remove(j.f.Name())
}

// commit syncs the new journal and renames it into place; nil commits
// nothing.
func (j *leafJournal) commit() error {
	if j == nil {
		return nil
	}
	err := j.bw.Flush()
	if err == nil {
		err = j.f.Sync()
	}
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(j.f.Name(), filepath.Join(j.dir, j.leaf, journalName))
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Join(j.dir, j.leaf))
	}
	if err != nil {
		os.Remove(j.f.Name())
		return fmt.Errorf("rewriting the journal of %s: %w", j.leaf, err)
	}
	return nil
}

// claimedManifestSum returns the SHA-256 manifest.jsonl.sha256 records.
func (ev *Evidence) claimedManifestSum() (string, error) {
	data, err := os.ReadFile(filepath.Join(ev.Dir, ManifestSumName))
	if err != nil {
		return "", fmt.Errorf("reading the manifest checksum: %w", err)
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 || fields[1] != ManifestName {
		return "", &Mismatch{Index: -1, Name: ManifestSumName, What: "malformed manifest checksum file"}
	}
	return fields[0], nil
}

func readMarker(dir string) (*marker, error) {
	data, err := os.ReadFile(filepath.Join(dir, TransformName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var mk marker
	if err := json.Unmarshal(data, &mk); err != nil {
		return nil, fmt.Errorf("reading %s: %w", TransformName, err)
	}
	if mk.Format != transformFormat || (mk.State != stateWriting && mk.State != stateSwitching) {
		return nil, fmt.Errorf("%s: format %q, state %q: this tool reads %q", TransformName, mk.Format, mk.State, transformFormat)
	}
	return &mk, nil
}

func writeMarker(dir string, mk *marker) error {
	if err := writeJSON(filepath.Join(dir, TransformName), mk); err != nil {
		return fmt.Errorf("writing %s: %w", TransformName, err)
	}
	return nil
}

// transition is what Verify needs to know of a conversion under way: nil
// when there is none (or its marker is unreadable, so nothing is
// excused).
func (ev *Evidence) transition() *marker {
	mk, err := readMarker(ev.Dir)
	if err != nil {
		return nil
	}
	return mk
}

// expected reports whether a file the manifest does not list is the
// other form of a block it lists in the same leaf (listed holds those
// names without their suffix): a conversion writes the new file before
// the manifest names it and deletes the old one after.
func (m *marker) expected(name string, listed map[string]bool) bool {
	if m == nil {
		return false
	}
	base, ext := splitSuffix(name)
	return (ext == m.From.Suffix || ext == m.To.Suffix) && listed[base]
}

// newManifest reports whether sum is that of the manifest a conversion
// has just put in place, before its checksum file was rewritten.
func (m *marker) newManifest(sum block.Sum) bool {
	return m != nil && m.State == stateSwitching && m.NewManifestSHA256 == sum.Hex()
}

// splitSuffix splits a block file name at its first dot: the original
// tool's name, then the form's suffix (snapshot ids hold no dots).
func splitSuffix(name string) (string, string) {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i], name[i:]
	}
	return name, ""
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

// sweepTemp removes temporary files a crash left in a leaf.
func sweepTemp(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			if err := removeIfExists(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncDir makes the renames and removals in dir durable.

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
