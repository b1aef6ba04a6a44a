package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// Problem is one difference verify found.
type Problem struct {
	Index  int64  `json:"index"` // -1 when not about one block
	Name   string `json:"name,omitempty"`
	Kind   string `json:"kind"` // missing, extra, mismatch, manifest, journal, record
	Detail string `json:"detail"`
}

// VerifyResult is what Verify found.
type VerifyResult struct {
	Blocks         int64     `json:"blocks"`          // entries in the manifest
	Bytes          int64     `json:"bytes"`           // their length as served (the manifest's total)
	StoredChecked  int64     `json:"stored_checked"`  // stored files whose bytes matched
	ContentChecked int64     `json:"content_checked"` // blocks whose content matched the AWS SHA-256
	Encrypted      int64     `json:"encrypted"`       // blocks that needed a key to check content
	ManifestSHA256 string    `json:"manifest_sha256"`
	Problems       []Problem `json:"problems"`
	MoreProblems   int64     `json:"more_problems,omitempty"` // problems beyond the listed ones
	// Journals compares the manifest with the leaf journals; Record, with
	// the chain-of-custody record (see CompareRecord).
	Journals Comparison  `json:"journals"`
	Record   *Comparison `json:"record,omitempty"`
	// KeyRejected counts encrypted blocks whose stored bytes were intact
	// but which the key given does not open. When it opens none of them,
	// KeyOpensNone is set and they are not listed as problems: the key is
	// wrong, nothing says the evidence is.
	KeyRejected  int64 `json:"key_rejected,omitempty"`
	KeyOpensNone bool  `json:"key_opens_none,omitempty"`
}

// Comparison is the manifest checked against one record of it kept
// apart from it.
type Comparison struct {
	Record  string `json:"record"`  // "journals", "report.json"
	Outcome string `json:"outcome"` // "match", "differs" or "not-possible"
	Detail  string `json:"detail,omitempty"`
}

// Comparison outcomes.
const (
	CompareMatch       = "match"
	CompareDiffers     = "differs"
	CompareNotPossible = "not-possible"
)

// OK reports whether everything matched.
func (r *VerifyResult) OK() bool { return len(r.Problems) == 0 }

// ErrKeyRejected is wrapped by an Unseal's error when the key it was
// given does not open a block (no identity matches its recipients). Such
// a block is counted apart (KeyRejected) from the tampered ones.
var ErrKeyRejected = errors.New("the key does not open this block")

// maxProblems bounds the problems listed in full, so a wholesale
// corruption cannot exhaust memory; the rest are counted.
const maxProblems = 10000

func (r *VerifyResult) add(p Problem) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	} else {
		r.MoreProblems++
	}
}

// Verify re-checks the whole evidence directory: the manifest against its
// checksum file and against evidence.json; every stored file against its
// size and stored SHA-256 and its name against its entry; every block's
// content against the AWS SHA-256 (encrypted blocks only when unseal can
// decrypt); and that no block file is missing or extra. progress, if set,
// is called after each block.
func (ev *Evidence) Verify(ctx context.Context, unseal Unseal, progress func(done int64)) (*VerifyResult, error) {
	res := &VerifyResult{Problems: []Problem{}}
	mr, c, err := ev.Manifest()
	if errors.Is(err, ErrIncomplete) {
		return nil, err
	}
	if err != nil {
		res.add(Problem{Index: -1, Name: ManifestName, Kind: "manifest", Detail: err.Error()})
		return res, nil
	}
	defer c.Close()
	if err := ev.checkHeader(mr.Header()); err != nil {
		res.add(problem(err, "manifest"))
	}
	visited := map[string]bool{}
	tr := ev.transition() // a conversion under way: both forms of a block are expected
	var (
		leaf    string
		files   map[string]bool
		listed  map[string]bool // names the manifest lists in leaf, without their suffix
		stored  bytes.Buffer
		out     = make([]byte, block.Size)
		jc      = journalCheck{skip: tr != nil}
		keyOff  []Problem // blocks the key does not open, while it is unknown whether it opens any
		opened  int64     // encrypted blocks the key opened
		journal map[int64]manifest.Entry
	)
	flush := func() {
		if journal != nil {
			jc.unlisted(res, leaf, journal)
			journal = nil
		}
		if files == nil {
			return
		}
		extras := make([]string, 0, len(files))
		for name := range files {
			extras = append(extras, name)
		}
		sort.Strings(extras)
		for _, name := range extras {
			if tr.expected(name, listed) {
				continue
			}
			res.add(Problem{Index: indexOf(name), Name: filepath.ToSlash(filepath.Join(leaf, name)), Kind: "extra", Detail: "file is not in the manifest"})
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.add(problem(err, "manifest"))
			return res, nil // entries past a corrupt line cannot be trusted
		}
		res.Blocks++
		if l := LeafDir(e.Index); l != leaf {
			flush()
			leaf, files, listed = l, listLeaf(filepath.Join(ev.Dir, l)), map[string]bool{}
			visited[l] = true
			journal = jc.open(res, ev.Dir, l)
		}
		if journal != nil {
			jc.entry(res, e, journal)
		}
		if err := ev.checkEntry(e); err != nil {
			res.add(problem(err, "mismatch"))
		}
		base := filepath.Base(filepath.FromSlash(e.Name))
		if tr != nil {
			stem, _ := splitSuffix(base)
			listed[stem] = true
		}
		if !files[base] {
			res.add(Problem{Index: e.Index, Name: e.Name, Kind: "missing", Detail: "block file is missing"})
			continue
		}
		delete(files, base)
		if err := ev.ReadStored(e, &stored); err != nil {
			res.add(problem(err, "mismatch"))
			continue
		}
		res.StoredChecked++
		if e.Encryption != "none" {
			res.Encrypted++
			if unseal == nil {
				continue
			}
		}
		if _, err := Decode(e, stored.Bytes(), unseal, out); err != nil {
			if errors.Is(err, ErrNeedKey) {
				continue // checked as far as it can be without a key
			}
			if errors.Is(err, ErrKeyRejected) {
				res.KeyRejected++
				if len(keyOff) < maxProblems {
					keyOff = append(keyOff, Problem{Index: e.Index, Name: e.Name, Kind: "mismatch",
						Detail: "the key that opens other blocks does not open this one: it is encrypted to other recipients"})
				}
				continue
			}
			res.add(problem(err, "mismatch"))
			continue
		}
		if e.Encryption != "none" {
			opened++
		}
		res.ContentChecked++
		if progress != nil {
			progress(res.Blocks)
		}
	}
	flush()
	err = eachLeaf(ev.Dir, func(l string) error {
		if visited[l] {
			return nil
		}
		leaf, files, listed = l, listLeaf(filepath.Join(ev.Dir, l)), nil
		journal = jc.open(res, ev.Dir, l)
		flush()
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Journals = jc.result()
	switch {
	case res.KeyRejected > 0 && opened == 0:
		res.KeyOpensNone = true
	case res.KeyRejected > 0:
		for _, p := range keyOff {
			res.add(p)
		}
		res.MoreProblems += res.KeyRejected - int64(len(keyOff))
	}
	res.Bytes = mr.Trailer().Bytes
	sum := mr.Sum()
	res.ManifestSHA256 = sum.Hex()
	if err := ev.checkManifestSum(sum); err != nil && !tr.newManifest(sum) {
		res.add(problem(err, "manifest"))
	}
	return res, nil
}

// journalCheck compares the manifest with the leaf journals, the record
// the store wrote of each block as it landed. A leaf without a journal
// (evidence whose journals were removed; they are an optimisation of
// resume) cannot be compared and is counted; a journal that disagrees
// with the manifest is a problem.
type journalCheck struct {
	skip              bool // a conversion is under way: journals name the other form
	leaves, missing   int64
	entries, differed int64
}

// open reads the journal of leaf, by index, or nil when there is none to
// compare with.
func (j *journalCheck) open(res *VerifyResult, dir, leaf string) map[int64]manifest.Entry {
	if j.skip {
		return nil
	}
	path := filepath.Join(dir, leaf, journalName)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		j.missing++
		return nil
	}
	j.leaves++
	entries, err := readJournal(path)
	if err != nil {
		j.differed++
		res.add(Problem{Index: -1, Name: filepath.ToSlash(filepath.Join(leaf, journalName)), Kind: "journal", Detail: err.Error()})
		return nil
	}
	m := make(map[int64]manifest.Entry, len(entries))
	for _, e := range entries {
		m[e.Index] = e
	}
	return m
}

// entry checks one manifest entry against the journal of its leaf and
// takes it off the journal.
func (j *journalCheck) entry(res *VerifyResult, e manifest.Entry, journal map[int64]manifest.Entry) {
	je, ok := journal[e.Index]
	delete(journal, e.Index)
	j.entries++
	name := filepath.ToSlash(filepath.Join(LeafDir(e.Index), journalName))
	switch {
	case !ok:
		j.differed++
		res.add(Problem{Index: e.Index, Name: name, Kind: "journal", Detail: "the manifest lists this block, its leaf's journal does not"})
	case je != e:
		j.differed++
		res.add(Problem{Index: e.Index, Name: name, Kind: "journal", Detail: "the journal and the manifest disagree: " + entryDiff(je, e)})
	}
}

// entryDiff names the fields in which the journal's entry a and the
// manifest's b differ.
func entryDiff(a, b manifest.Entry) string {
	var d []string
	add := func(field string, x, y any) {
		if x != y {
			d = append(d, fmt.Sprintf("%s %v in the journal, %v in the manifest", field, x, y))
		}
	}
	add("name", a.Name, b.Name)
	add("sha256", a.SHA256, b.SHA256)
	add("length", a.Length, b.Length)
	add("size", a.Size, b.Size)
	add("stored_sha256", a.StoredSHA256, b.StoredSHA256)
	add("codec", a.Codec, b.Codec)
	add("encryption", a.Encryption, b.Encryption)
	add("type", a.Type, b.Type)
	return strings.Join(d, "; ")
}

// unlisted reports what a leaf's journal records and the manifest does
// not list.
func (j *journalCheck) unlisted(res *VerifyResult, leaf string, journal map[int64]manifest.Entry) {
	idx := make([]int64, 0, len(journal))
	for i := range journal {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	for _, i := range idx {
		j.differed++
		res.add(Problem{Index: i, Name: filepath.ToSlash(filepath.Join(leaf, journalName)), Kind: "journal",
			Detail: fmt.Sprintf("the journal records block %d (%s, sha256 %s), the manifest does not list it", i, journal[i].Name, journal[i].SHA256)})
	}
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (j *journalCheck) result() Comparison {
	c := Comparison{Record: "journals"}
	switch {
	case j.skip:
		c.Outcome, c.Detail = CompareNotPossible, "a conversion is under way: the journals name the other form of each block"
	case j.differed > 0:
		c.Outcome, c.Detail = CompareDiffers, fmt.Sprintf("%d %s between the manifest and the leaf journals", j.differed, plural(j.differed, "difference", "differences"))
	case j.leaves == 0:
		c.Outcome, c.Detail = CompareNotPossible, "no leaf journal is left to compare with"
	default:
		c.Outcome = CompareMatch
		c.Detail = fmt.Sprintf("%d entries in %d leaf %s", j.entries, j.leaves, plural(j.leaves, "journal", "journals"))
		if j.missing > 0 {
			c.Detail += fmt.Sprintf("; %d %s no journal to compare with", j.missing, plural(j.missing, "leaf has", "leaves have"))
		}
	}
	return c
}

// ManifestRecord is what a record kept apart from the manifest says it
// is: its SHA-256 and totals, and where that was recorded.
type ManifestRecord struct {
	Source string // e.g. "the acquisition record in report.json"
	SHA256 string
	Blocks int64
	Bytes  int64
}

// CompareRecord compares the manifest Verify read with rec, and records
// the comparison in res; a difference is a problem that names rec. A
// conversion under way, whose new manifest is in place but not yet
// recorded, cannot be compared.
func (ev *Evidence) CompareRecord(res *VerifyResult, rec ManifestRecord) {
	c := &Comparison{Record: "report.json", Outcome: CompareMatch, Detail: rec.Source}
	res.Record = c
	if res.ManifestSHA256 == rec.SHA256 && res.Blocks == rec.Blocks && res.Bytes == rec.Bytes {
		return
	}
	if tr := ev.transition(); tr != nil && tr.SourceManifestSHA256 == rec.SHA256 {
		c.Outcome, c.Detail = CompareNotPossible, "a conversion is under way; "+rec.Source+" names the manifest it started from"
		return
	}
	c.Outcome = CompareDiffers
	c.Detail = fmt.Sprintf("%s SHA-256 %s (%d blocks, %d bytes) differs from %s (%s, %d blocks, %d bytes)",
		ManifestName, res.ManifestSHA256, res.Blocks, res.Bytes, rec.Source, rec.SHA256, rec.Blocks, rec.Bytes)
	res.add(Problem{Index: -1, Name: ManifestName, Kind: "record", Detail: c.Detail})
}

// listLeaf returns the block files of a leaf directory (not the journal,
// not temporary files), or an empty set when it does not exist.
func listLeaf(dir string) map[string]bool {
	files := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if name := e.Name(); name != journalName && !(len(name) > len(tempPrefix) && name[:len(tempPrefix)] == tempPrefix) {
			files[name] = true
		}
	}
	return files
}

func indexOf(name string) int64 {
	if fi, _, err := block.ParseFileName(name); err == nil {
		return fi.Index
	}
	return -1
}

func problem(err error, kind string) Problem {
	var m *Mismatch
	if errors.As(err, &m) {
		return Problem{Index: m.Index, Name: m.Name, Kind: kind, Detail: m.What}
	}
	return Problem{Index: -1, Kind: kind, Detail: err.Error()}
}

// LockForVerify keeps writers out of the directory while it is verified,
// so that a verdict is never about evidence changing underneath: it takes
// dirlock's lock, which acquire, import and every conversion hold while
// they write. A lock another process holds is a *dirlock.HeldError.
// Where the lock file cannot be created at all (read-only media), there
// is no writer to keep out of it and verify proceeds: unlocked then says
// why. release drops what was taken.
func (ev *Evidence) LockForVerify() (release func(), unlocked error, err error) {
	l, err := dirlock.ForDir(ev.Dir, "verify")
	var held *dirlock.HeldError
	switch {
	case errors.As(err, &held):
		return nil, nil, err
	case err != nil:
		unlocked = err
	}
	return func() { l.Release() }, unlocked, nil
}
