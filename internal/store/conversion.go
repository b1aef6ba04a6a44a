package store

// What a conversion of the block files from one stored form to another
// (package convert does it) leaves in the evidence directory, and what
// the store offers it: the marker DIR/transform.json, read here because
// an acquisition refuses a directory under conversion and Verify excuses
// the other form of each block while one is under way; and the few
// operations on the directory's own files (block files, leaf journals,
// evidence.json) that a conversion needs.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// Names of a conversion's files at the top of an evidence directory.
const (
	ConversionName         = "transform.json"           // the marker of a conversion under way
	ConversionEntriesName  = "transform.jsonl"          // new entries, in index order, as their files land
	ConversionManifestName = "transform-manifest.jsonl" // the complete new manifest, before it replaces the old
)

// States of a conversion: its blocks are being written in the new form,
// or all are and the new manifest is switching in.
const (
	ConversionWriting   = "writing"
	ConversionSwitching = "switching"
)

const conversionFormat = "ebsimager-transform/1"

// MaxJournalLine bounds one line of a leaf journal or of a conversion's
// entries file (a manifest entry).
const MaxJournalLine = journalLineMaxLen

// Conversion is the marker DIR/transform.json of a conversion under way.
type Conversion struct {
	Format               string         `json:"format"`
	State                string         `json:"state"`
	From                 ConversionForm `json:"from"`
	To                   ConversionForm `json:"to"`
	Recipients           []string       `json:"recipients,omitempty"`
	KeyFile              string         `json:"key_file,omitempty"`
	FromKeyFile          string         `json:"from_key_file,omitempty"`
	SourceManifestSHA256 string         `json:"source_manifest_sha256"`
	NewManifestSHA256    string         `json:"new_manifest_sha256,omitempty"`
}

// ConversionForm is one side of a conversion: the stored form and the
// suffix its file names carry.
type ConversionForm struct {
	Form   codec.Form
	Suffix string
}

type conversionFormJSON struct {
	Codec      string `json:"codec"`
	Encryption string `json:"encryption"`
	Suffix     string `json:"suffix"`
}

// MarshalJSON writes f as the marker records it: codec, encryption,
// suffix.
func (f ConversionForm) MarshalJSON() ([]byte, error) {
	c, e := f.Form.Fields()
	return json.Marshal(conversionFormJSON{Codec: c, Encryption: e, Suffix: f.Suffix})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *ConversionForm) UnmarshalJSON(b []byte) error {
	var j conversionFormJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	form, err := codec.FormOf(j.Codec, j.Encryption)
	if err != nil {
		return err
	}
	*f = ConversionForm{Form: form, Suffix: j.Suffix}
	return nil
}

// NewConversion returns the marker of a conversion of ev's blocks, in
// state writing, from the form evidence.json records.
func (ev *Evidence) NewConversion() (*Conversion, error) {
	from, err := ev.Meta.Form()
	if err != nil {
		return nil, err
	}
	return &Conversion{Format: conversionFormat, State: ConversionWriting, From: ConversionForm{Form: from}, FromKeyFile: ev.Meta.KeyFile}, nil
}

// NewName is the name of an old block file in the new form.
func (c *Conversion) NewName(old string) string {
	return strings.TrimSuffix(old, c.From.Suffix) + c.To.Suffix
}

// OldName is the name of a new block file in the old form.
func (c *Conversion) OldName(name string) string {
	return strings.TrimSuffix(name, c.To.Suffix) + c.From.Suffix
}

// ReadConversion reads the marker of dir's conversion under way; nil
// when there is none.
func ReadConversion(dir string) (*Conversion, error) {
	data, err := os.ReadFile(filepath.Join(dir, ConversionName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c Conversion
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("reading %s: %w", ConversionName, err)
	}
	if c.Format != conversionFormat || (c.State != ConversionWriting && c.State != ConversionSwitching) {
		return nil, fmt.Errorf("%s: format %q, state %q: this tool reads %q", ConversionName, c.Format, c.State, conversionFormat)
	}
	return &c, nil
}

// WriteConversion writes the marker of dir's conversion (atomically).
func WriteConversion(dir string, c *Conversion) error {
	if err := writeJSON(filepath.Join(dir, ConversionName), c); err != nil {
		return fmt.Errorf("writing %s: %w", ConversionName, err)
	}
	return nil
}

// transition is what Verify needs to know of a conversion under way: nil
// when there is none (or its marker is unreadable, so nothing is
// excused).
func (ev *Evidence) transition() *Conversion {
	c, err := ReadConversion(ev.Dir)
	if err != nil {
		return nil
	}
	return c
}

// expected reports whether a file the manifest does not list is the
// other form of a block it lists in the same leaf (listed holds those
// names without their suffix): a conversion writes the new file before
// the manifest names it and deletes the old one after.
func (c *Conversion) expected(name string, listed map[string]bool) bool {
	if c == nil {
		return false
	}
	base, ext := splitSuffix(name)
	return (ext == c.From.Suffix || ext == c.To.Suffix) && listed[base]
}

// newManifest reports whether sum is that of the manifest a conversion
// has just put in place, before its checksum file was rewritten.
func (c *Conversion) newManifest(sum block.Sum) bool {
	return c != nil && c.State == ConversionSwitching && c.NewManifestSHA256 == sum.Hex()
}

// splitSuffix splits a block file name at its first dot: the original
// tool's name, then the form's suffix (snapshot ids hold no dots).
func splitSuffix(name string) (string, string) {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i], name[i:]
	}
	return name, ""
}

// ClaimedManifestSum returns the hex SHA-256 manifest.jsonl.sha256
// records.
func (ev *Evidence) ClaimedManifestSum() (string, error) {
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

// WriteManifestSum writes manifest.jsonl.sha256 for a manifest of SHA-256
// sum (atomically).
func WriteManifestSum(dir string, sum block.Sum) error {
	line := fmt.Sprintf("%s  %s\n", sum.Hex(), ManifestName)
	if err := atomicfile.WriteBytes(filepath.Join(dir, ManifestSumName), []byte(line)); err != nil {
		return fmt.Errorf("writing manifest checksum: %w", err)
	}
	return nil
}

// RecordForm rewrites evidence.json to say that the block files are
// stored in form f, encrypted to recipients or with the key file keyFile,
// and updates ev.Meta.
func (ev *Evidence) RecordForm(f codec.Form, recipients []string, keyFile string) error {
	meta, err := readMeta(ev.Dir)
	if err != nil {
		return err
	}
	meta.Codec, meta.Encryption = f.Fields()
	meta.Recipients, meta.KeyFile = recipients, keyFile
	if err := writeJSON(filepath.Join(ev.Dir, MetaName), meta); err != nil {
		return fmt.Errorf("writing %s: %w", MetaName, err)
	}
	ev.Meta = meta
	return nil
}

// EachLeaf calls fn with every leaf directory of dir that exists,
// relative to dir, in index order.
func EachLeaf(dir string, fn func(leaf string) error) error { return eachLeaf(dir, fn) }

// SweepTemp removes the temporary files a crash left in leaf directory
// dir.
func SweepTemp(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// LeafJournal is a leaf's new journal, written beside the old one and
// renamed over it by Commit, so that an acquisition resumed later finds
// the files a conversion wrote.
type LeafJournal struct {
	dir, leaf string
	f         *os.File
	bw        *bufio.Writer
}

// NewLeafJournal starts the new journal of leaf in evidence directory
// dir.
func NewLeafJournal(dir, leaf string) (*LeafJournal, error) {
	f, err := os.CreateTemp(filepath.Join(dir, leaf), tempPrefix+journalName+"-*")
	if err != nil {
		return nil, fmt.Errorf("rewriting the journal of %s: %w", leaf, err)
	}
	return &LeafJournal{dir: dir, leaf: leaf, f: f, bw: bufio.NewWriterSize(f, 1<<16)}, nil
}

// Leaf returns the leaf directory j is the journal of.
func (j *LeafJournal) Leaf() string { return j.leaf }

// Add appends e.
func (j *LeafJournal) Add(e manifest.Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := j.bw.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("rewriting the journal of %s: %w", j.leaf, err)
	}
	return nil
}

// Abort drops the new journal; the old one stays.
func (j *LeafJournal) Abort() {
	j.f.Close()
	os.Remove(j.f.Name())
}

// Commit syncs the new journal and renames it into place; a nil j
// commits nothing.
func (j *LeafJournal) Commit() error {
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
