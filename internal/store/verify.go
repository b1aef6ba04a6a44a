package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Problem is one difference verify found.
type Problem struct {
	Index  int64  `json:"index"` // -1 when not about one block
	Name   string `json:"name,omitempty"`
	Kind   string `json:"kind"` // missing, extra, mismatch, manifest
	Detail string `json:"detail"`
}

// VerifyResult is what Verify found.
type VerifyResult struct {
	Blocks         int64     `json:"blocks"`          // entries in the manifest
	StoredChecked  int64     `json:"stored_checked"`  // stored files whose bytes matched
	ContentChecked int64     `json:"content_checked"` // blocks whose content matched the AWS SHA-256
	Encrypted      int64     `json:"encrypted"`       // blocks that needed a key to check content
	ManifestSHA256 string    `json:"manifest_sha256"`
	Problems       []Problem `json:"problems"`
	MoreProblems   int64     `json:"more_problems,omitempty"` // problems beyond the listed ones
}

// OK reports whether everything matched.
func (r *VerifyResult) OK() bool { return len(r.Problems) == 0 }

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
		leaf   string
		files  map[string]bool
		listed map[string]bool // names the manifest lists in leaf, without their suffix
		stored bytes.Buffer
		out    = make([]byte, block.Size)
	)
	flush := func() {
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
			res.add(problem(err, "mismatch"))
			continue
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
		flush()
		return nil
	})
	if err != nil {
		return nil, err
	}
	sum := mr.Sum()
	res.ManifestSHA256 = sum.Hex()
	if err := ev.checkManifestSum(sum); err != nil && !tr.newManifest(sum) {
		res.add(problem(err, "manifest"))
	}
	return res, nil
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
