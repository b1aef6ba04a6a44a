package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// crashFS is a fileSystem that does every operation on the real files and
// keeps, beside them, a model of what a power loss would leave: a name is
// durable once its directory is synced (or the whole file system is), a
// file's bytes once the file is synced. After operation crashAt it
// "loses power": it saves the durable state and fails every later
// operation, as a dead machine would do nothing more.
//
// It also checks, at each journal write, that every line written names a
// block whose bytes are durable under its final or temporary name.
type crashFS struct {
	root    string
	crashAt int // -1: never
	model   bool

	mu        sync.Mutex
	ops       int
	crashed   bool
	vol, dur  map[string]*node // relative path -> node
	atCrash   [2]map[string][]byte
	violation []string
}

type node struct {
	dir    bool
	data   []byte // as the process sees it
	synced []byte // as the disk holds it
}

var errPowerLost = errors.New("power lost")

// load takes the directory as it is (Create wrote it, with fsyncs) as the
// durable starting state, and starts counting operations.
func (c *crashFS) load(t *testing.T) {
	t.Helper()
	c.vol, c.dur = map[string]*node{}, map[string]*node{}
	err := filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == c.root {
			return err
		}
		rel, _ := filepath.Rel(c.root, p)
		n := &node{dir: d.IsDir()}
		if !n.dir {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.data, n.synced = data, bytes.Clone(data)
		}
		c.vol[rel], c.dur[rel] = n, n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.model = true
}

// op counts an operation and says whether it may run.
func (c *crashFS) op() error {
	if c.crashed {
		return errPowerLost
	}
	c.ops++
	return nil
}

// after ends an operation: at crashAt, the power goes.
func (c *crashFS) after() {
	if c.model && c.ops == c.crashAt {
		c.crashed = true
		c.atCrash = [2]map[string][]byte{c.image(c.dur), c.image(c.vol)}
	}
}

// image is what the disk holds when the names in ns survive: each file
// with its synced bytes, each name only if its parents survive too.
func (c *crashFS) image(ns map[string]*node) map[string][]byte {
	out := map[string][]byte{}
	for rel, n := range ns {
		ok := true
		for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
			if p, in := ns[d]; !in || !p.dir {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if n.dir {
			out[rel] = nil
		} else {
			out[rel] = append([]byte{}, n.synced...)
		}
	}
	return out
}

func (c *crashFS) rel(path string) string {
	r, err := filepath.Rel(c.root, path)
	if err != nil || strings.HasPrefix(r, "..") {
		panic("crashFS: " + path + " is outside " + c.root)
	}
	return r
}

type crashFile struct {
	c       *crashFS
	f       *os.File
	n       *node
	journal bool
}

func (c *crashFS) Create(path string) (file, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(); err != nil {
		return nil, err
	}
	defer c.after()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	n := &node{}
	if c.model {
		c.vol[c.rel(path)] = n
	}
	return &crashFile{c: c, f: f, n: n}, nil
}

func (c *crashFS) Append(path string) (file, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(); err != nil {
		return nil, err
	}
	defer c.after()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	n := &node{}
	if c.model {
		if old, ok := c.vol[c.rel(path)]; ok {
			n = old
		} else {
			c.vol[c.rel(path)] = n
		}
	}
	return &crashFile{c: c, f: f, n: n, journal: filepath.Base(path) == journalName}, nil
}

func (w *crashFile) Write(p []byte) (int, error) {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(); err != nil {
		return 0, err
	}
	defer c.after()
	if w.journal && c.model {
		c.checkLines(p)
	}
	n, err := w.f.Write(p)
	w.n.data = append(w.n.data, p[:n]...)
	return n, err
}

// checkLines records a violation for each journal line whose block's
// bytes are not durable, under the final or the temporary name.
func (c *crashFS) checkLines(p []byte) {
	for _, line := range bytes.Split(bytes.TrimSuffix(p, []byte("\n")), []byte("\n")) {
		var e manifest.Entry
		if err := json.Unmarshal(line, &e); err != nil {
			c.violation = append(c.violation, fmt.Sprintf("malformed journal line %q", line))
			continue
		}
		final := filepath.FromSlash(e.Name)
		durable := false
		for _, rel := range []string{final, filepath.Join(filepath.Dir(final), tempPrefix+filepath.Base(final))} {
			if n, ok := c.dur[rel]; ok && int64(len(n.synced)) == e.Size {
				sum := sha256.Sum256(n.synced)
				durable = durable || hex.EncodeToString(sum[:]) == e.StoredSHA256
			}
		}
		if !durable {
			c.violation = append(c.violation, fmt.Sprintf("operation %d journals block %d, whose bytes are not durable", c.ops, e.Index))
		}
	}
}

func (w *crashFile) Sync() error {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(); err != nil {
		return err
	}
	defer c.after()
	w.n.synced = bytes.Clone(w.n.data)
	return nil // the real file need not be synced: the model is what a crash leaves
}

func (w *crashFile) Close() error {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	err := w.f.Close()
	if err := c.op(); err != nil {
		return err
	}
	defer c.after()
	return err
}

func (c *crashFS) Mkdir(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(); err != nil {
		return err
	}
	defer c.after()
	if err := os.Mkdir(path, 0o700); err != nil {
		return err
	}
	if c.model {
		c.vol[c.rel(path)] = &node{dir: true}
	}
	return nil
}

func (c *crashFS) Rename(from, to string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(); err != nil {
		return err
	}
	defer c.after()
	if err := os.Rename(from, to); err != nil {
		return err
	}
	if c.model {
		c.vol[c.rel(to)] = c.vol[c.rel(from)]
		delete(c.vol, c.rel(from))
	}
	return nil
}

func (c *crashFS) Remove(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(); err != nil {
		return err
	}
	defer c.after()
	if err := os.Remove(path); err != nil {
		return err
	}
	if c.model {
		delete(c.vol, c.rel(path))
	}
	return nil
}

func (c *crashFS) SyncDir(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(); err != nil {
		return err
	}
	defer c.after()
	if !c.model {
		return nil
	}
	dir := c.rel(path)
	for rel := range c.dur {
		if filepath.Dir(rel) == dir && c.vol[rel] == nil {
			delete(c.dur, rel)
		}
	}
	for rel, n := range c.vol {
		if filepath.Dir(rel) == dir {
			c.dur[rel] = n
		}
	}
	return nil
}

func (c *crashFS) SyncAll() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(); err != nil {
		return err
	}
	defer c.after()
	if !c.model {
		return nil
	}
	c.dur = map[string]*node{}
	for rel, n := range c.vol {
		c.dur[rel] = n
		if !n.dir {
			n.synced = bytes.Clone(n.data)
		}
	}
	return nil
}

func (c *crashFS) Close() error { return nil }

// materialise writes a crash image into a fresh directory.
func materialise(t *testing.T, img map[string][]byte, dst string) {
	t.Helper()
	names := make([]string, 0, len(img))
	for rel := range img {
		names = append(names, rel)
	}
	sort.Strings(names) // parents first
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, rel := range names {
		p := filepath.Join(dst, rel)
		if img[rel] == nil { // a directory
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, img[rel], 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// lostWritesBlocks are the blocks of the test: they cross from leaf 0000
// into leaf 0001, so a batch may touch two leaves and two journals.
func lostWritesBlocks() []int64 {
	var out []int64
	for i := int64(9995); i < 10005; i++ {
		out = append(out, i)
	}
	return out
}

func lostData(i int64) []byte { return blockData(i)[:4096+int(i%7)] }

var (
	lostStart  = time.Unix(1_700_000_000, 0)
	lostFinish = time.Unix(1_700_000_100, 0)
)

func lostMeta() Meta {
	return Meta{SnapshotID: snap, Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size, ToolVersion: "test"}
}

// putAll stores every block of blocks not yet stored, from workers
// goroutines, and returns the first error.
func putAll(s *Store, blocks []int64, workers int) error {
	ch := make(chan int64)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var first error
			for i := range ch {
				d := lostData(i)
				if err := s.Put(i, block.SumOf(d), d); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		})
	}
	for _, i := range blocks {
		if !s.Has(i) {
			ch <- i
		}
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// evidenceFiles returns what resume must reproduce exactly: every block
// file's bytes and the manifest with its checksum, by relative path.
func evidenceFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Name() == journalName || rel == MetaName:
			return nil
		case strings.HasPrefix(d.Name(), tempPrefix):
			t.Errorf("temporary file left: %s", rel)
		case strings.HasPrefix(rel, unverifiedDir):
			t.Errorf("a file was set aside: %s", rel)
		}
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// lostWritesRun runs one acquisition of blocks into dir through a crashFS
// that loses power after operation crashAt (-1: never) and returns it.
func lostWritesRun(t *testing.T, dir string, form Options, syncAll bool, workers, crashAt int) *crashFS {
	t.Helper()
	c := &crashFS{root: dir, crashAt: crashAt}
	s, err := Create(dir, lostMeta(), withFS(form, c, syncAll))
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.load(t)
	c.mu.Unlock()
	err = putAll(s, lostWritesBlocks(), workers)
	if crashAt < 0 {
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Finish(lostStart, lostFinish); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.crashed { // the power goes after the run
		c.crashed = true
		c.atCrash = [2]map[string][]byte{c.image(c.dur), c.image(c.vol)}
	}
	return c
}

// resume finishes the acquisition in dir as a rerun of acquire would:
// Create scans what is there, and the blocks it lacks are fetched again.
func resume(t *testing.T, dir string, form Options) *Store {
	t.Helper()
	s, err := Create(dir, lostMeta(), withFS(form, &crashFS{root: dir, crashAt: -1}, true))
	if err != nil {
		t.Fatal(err)
	}
	if err := putAll(s, lostWritesBlocks(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(lostStart, lostFinish); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLostWrites loses power after every operation of a small
// acquisition, keeping only what was synced (and, in a second image, also
// every name but only synced bytes: metadata written back before data),
// then resumes from what is left. The evidence must be byte-identical to
// an uninterrupted run's, nothing may be set aside, and no journal line
// may ever name a block whose bytes were not durable when it was written.
func TestLostWrites(t *testing.T) {
	for _, tc := range []struct {
		name    string
		form    Options
		syncAll bool
	}{
		{"plain/syncfs", plainForm, true},
		{"plain/fsync", plainForm, false},
		{"sealed/syncfs", invForm, true},
		{"sealed/fsync", invForm, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			ref := filepath.Join(tmp, "ref")
			clean := lostWritesRun(t, ref, tc.form, tc.syncAll, 1, -1)
			want := evidenceFiles(t, ref)
			if len(want) != len(lostWritesBlocks())+2 {
				t.Fatalf("the uninterrupted run holds %d files", len(want))
			}
			check := func(c *crashFS, what string) {
				t.Helper()
				for _, v := range c.violation {
					t.Errorf("%s: %s", what, v)
				}
				for img, kind := range []string{"synced names", "all names"} {
					dst := filepath.Join(tmp, fmt.Sprintf("img-%d", img))
					os.RemoveAll(dst)
					materialise(t, c.atCrash[img], dst)
					s := resume(t, dst, tc.form)
					if k := s.Kept(); k.Rejected != 0 {
						t.Errorf("%s, %s: resume set %d files aside: %+v", what, kind, k.Rejected, k.Unverified)
					}
					got := evidenceFiles(t, dst)
					for name, data := range want {
						if got[name] != data {
							t.Errorf("%s, %s: %s differs from the uninterrupted run's", what, kind, name)
						}
					}
					if len(got) != len(want) {
						t.Errorf("%s, %s: %d files, the uninterrupted run %d", what, kind, len(got), len(want))
					}
				}
			}
			check(clean, "uninterrupted")
			// One worker: the same operations every run, so every one is
			// a crash point (every seventh under -short).
			step := 1
			if testing.Short() {
				step = 7
			}
			for k := 1; k <= clean.ops && !t.Failed(); k += step {
				dir := filepath.Join(tmp, fmt.Sprintf("crash-%d", k))
				check(lostWritesRun(t, dir, tc.form, tc.syncAll, 1, k), fmt.Sprintf("power lost after operation %d of %d", k, clean.ops))
				os.RemoveAll(dir)
			}
			// Eight workers: batches of several blocks, at sampled points.
			rng := rand.New(rand.NewPCG(11, 3))
			for n := 0; n < 20 && !t.Failed(); n++ {
				k := 1 + rng.IntN(clean.ops)
				dir := filepath.Join(tmp, fmt.Sprintf("crash8-%d", n))
				check(lostWritesRun(t, dir, tc.form, tc.syncAll, 8, k), fmt.Sprintf("eight workers, power lost after operation %d", k))
				os.RemoveAll(dir)
			}
		})
	}
}
