package convert

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

const snap = "snap-0123456789abcdef0"

// tempPrefix starts the store's temporary names; journalName is a leaf's
// journal.
const (
	tempPrefix  = ".tmp-"
	journalName = ".journal"
)

func blockData(i int64) []byte {
	p := make([]byte, block.Size)
	for j := range p {
		p[j] = byte(int64(j)*7 + i)
	}
	return p
}

var indexes = []int64{0, 1, 9999, 10000, 16383}

func newStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	s, err := store.Create(dir, store.Meta{SnapshotID: snap, Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size, ToolVersion: "test"}, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fill stores the blocks of indexes, complete.
func fill(t *testing.T, dir string) {
	t.Helper()
	s := newStore(t, dir)
	for _, i := range indexes {
		d := blockData(i)
		if err := s.Put(i, block.SumOf(d), d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Finish(time.Unix(0, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
}

// A toy is a stored form with a toy seal standing in for the codec's, so
// that every run writes the same bytes: "inv" inverts every byte (in
// place of zstd), and "xor" XORs with a key byte (in place of age, which
// testUnseal opens only when it holds the key).
type toy struct {
	form codec.Form
	seal store.Sealer
}

var (
	plain   = toy{}
	invForm = toy{codec.Form{Codec: codec.Zstd}, toySeal}
	xorForm = toy{codec.Form{Encrypted: true}, func(dst io.Writer) (io.WriteCloser, error) {
		return &xorWriter{w: dst, key: xorKey}, nil
	}}
	invXorForm = toy{codec.Form{Codec: codec.Zstd, Encrypted: true}, func(dst io.Writer) (io.WriteCloser, error) {
		return toySeal(&xorWriter{w: dst, key: xorKey})
	}}
)

// to returns the options of a conversion to the toy form.
func (f toy) to(unseal store.Unseal) Options {
	return Options{To: f.form, seal: f.seal, Unseal: unseal}
}

const xorKey = 0x5a

// toySeal inverts every byte.
func toySeal(dst io.Writer) (io.WriteCloser, error) { return &inverter{w: dst}, nil }

type inverter struct{ w io.Writer }

func (v *inverter) Write(p []byte) (int, error) {
	q := make([]byte, len(p))
	for i, b := range p {
		q[i] = ^b
	}
	return v.w.Write(q)
}

func (v *inverter) Close() error { return nil }

func invert(src io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		n, err := src.Read(p)
		for i := range p[:n] {
			p[i] = ^p[i]
		}
		return n, err
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type xorWriter struct {
	w   io.Writer
	key byte
}

func (x *xorWriter) Write(p []byte) (int, error) {
	q := make([]byte, len(p))
	for i, b := range p {
		q[i] = b ^ x.key
	}
	return x.w.Write(q)
}

func (x *xorWriter) Close() error { return nil }

// testUnseal opens both toy forms; key is the XOR key it holds (0: none).
func testUnseal(key byte) store.Unseal {
	return func(src io.Reader, e manifest.Entry) (io.Reader, error) {
		switch {
		case e.Encryption == "age" && key == 0:
			return nil, store.ErrNeedKey
		case e.Encryption == "age":
			data, err := io.ReadAll(src)
			if err != nil {
				return nil, err
			}
			for i := range data {
				data[i] ^= key
			}
			if e.Codec == "zstd" {
				return invert(bytes.NewReader(data)), nil
			}
			return bytes.NewReader(data), nil
		case e.Codec == "zstd":
			return invert(src), nil
		}
		return src, nil
	}
}

// tree returns every file under dir with the SHA-256 of its bytes, but
// for evidence.json, which records when the directory was created, its
// stored form.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == store.MetaName {
			ev, err := store.Open(dir)
			if err != nil {
				return err
			}
			m := ev.Meta
			out[rel] = fmt.Sprintf("%s %s %v %s", m.Codec, m.Encryption, m.Recipients, m.KeyFile)
			return nil
		}
		s := sha256.Sum256(data)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(s[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func open(t *testing.T, dir string) *store.Evidence {
	t.Helper()
	ev, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// verifyClean asserts that Verify finds nothing wrong and checks every
// block's content.
func verifyClean(t *testing.T, dir string, unseal store.Unseal, what string) {
	t.Helper()
	res, err := open(t, dir).Verify(context.Background(), unseal, nil)
	if err != nil {
		t.Fatalf("%s: verify: %v", what, err)
	}
	if !res.OK() || res.Blocks != int64(len(indexes)) || res.StoredChecked != res.Blocks || res.ContentChecked != res.Blocks {
		t.Fatalf("%s: verify %+v", what, res)
	}
}

// readAll asserts that Blocks yields every block's bytes.
func readAll(t *testing.T, dir string, unseal store.Unseal, what string) {
	t.Helper()
	var got []int64
	err := open(t, dir).Blocks(context.Background(), unseal, func(e manifest.Entry, data []byte) error {
		if want := blockData(e.Index)[:len(data)]; !bytes.Equal(data, want) || (len(data) != block.Size && len(data) != smallLen) {
			return fmt.Errorf("block %d differs", e.Index)
		}
		got = append(got, e.Index)
		return nil
	})
	if err != nil || fmt.Sprint(got) != fmt.Sprint(indexes) {
		t.Fatalf("%s: read blocks %v: %v", what, got, err)
	}
}

func transform(t *testing.T, dir string, to toy) *Result {
	t.Helper()
	res, err := Run(context.Background(), open(t, dir), to.to(testUnseal(xorKey)))
	if err != nil {
		t.Fatalf("transform to %s: %v", to.form, err)
	}
	return res
}

// fillSmall is fill with short blocks, which the store accepts as it
// would a short last block, for tests that convert many directories.
func fillSmall(t *testing.T, dir string) {
	t.Helper()
	s := newStore(t, dir)
	for _, i := range indexes {
		d := smallData(i)
		if err := s.Put(i, block.SumOf(d), d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Finish(time.Unix(0, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
}

func smallData(i int64) []byte { return blockData(i)[:smallLen] }

const smallLen = 8 << 10

// copyTree copies an evidence directory (files and modes, no fsync).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTransformRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	fill(t, dir)
	plainTree := tree(t, dir)
	plainManifest := plainTree[store.ManifestName]

	res := transform(t, dir, invForm)
	if res.Blocks != 5 || res.Decoded != 5 || res.Resumed != 0 || res.From != codec.Plain || res.To != (codec.Form{Codec: codec.Zstd}) ||
		res.Bytes != 5*block.Size || res.StoredBefore != 5*block.Size || res.StoredAfter != 5*block.Size {
		t.Fatalf("result %+v", res)
	}
	ev := open(t, dir)
	if ev.Meta.Codec != "zstd" || ev.Meta.Encryption != "none" {
		t.Fatalf("evidence.json says %s, %s", ev.Meta.Codec, ev.Meta.Encryption)
	}
	// Each block is stored once, inverted, under its name plus the suffix.
	for _, i := range indexes {
		d := blockData(i)
		name := filepath.Join(dir, store.LeafDir(i), block.FileName(block.FileInfo{Index: i, Snapshot: snap, Sum: block.SumOf(d), VolumeGiB: 8, BlockSize: block.Size}))
		if _, err := os.Stat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("old file of block %d left: %v", i, err)
		}
		got, err := os.ReadFile(name + ".zst")
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			got[j] = ^got[j]
		}
		if !bytes.Equal(got, d) {
			t.Fatalf("block %d: new file does not hold the inverted block", i)
		}
	}
	for _, n := range []string{store.ConversionName, store.ConversionEntriesName, store.ConversionManifestName} {
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s left behind: %v", n, err)
		}
	}
	if got := sha256File(t, filepath.Join(dir, store.ManifestName)); got != res.ManifestSHA256.Hex() {
		t.Fatalf("manifest sha256 %s, result says %s", got, res.ManifestSHA256.Hex())
	}
	verifyClean(t, dir, testUnseal(0), "inv")
	readAll(t, dir, testUnseal(0), "inv")
	checkJournals(t, dir)

	// An acquisition resumed now keeps every converted block.
	// (It writes no block: the store's own zstd seal is never called.)
	s, err := store.Create(dir, store.Meta{SnapshotID: snap, Region: "us-east-1", VolumeSizeGiB: 8, BlockSize: block.Size, ToolVersion: "test"}, store.Options{Form: invForm.form})
	if err != nil {
		t.Fatal(err)
	}
	if s.Resumed() != 5 {
		t.Fatalf("resumed acquisition kept %d blocks, want 5", s.Resumed())
	}
	if _, err := s.Finish(time.Unix(0, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	verifyClean(t, dir, testUnseal(0), "inv, after a resumed acquisition")

	// Back to plain: byte for byte the directory the acquisition wrote.
	transform(t, dir, plain)
	if got := tree(t, dir); fmt.Sprint(got) != fmt.Sprint(plainTree) {
		t.Fatalf("inv then plain:\n%v\nwant the original\n%v", got, plainTree)
	}
	if tree(t, dir)[store.ManifestName] != plainManifest {
		t.Fatal("the manifest differs from the original")
	}
	if _, err := Run(context.Background(), open(t, dir), Options{}); !errors.Is(err, ErrSameForm) {
		t.Fatalf("converting to the same form: %v", err)
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// checkJournals asserts that the leaf journals hold exactly the manifest's
// entries.
func checkJournals(t *testing.T, dir string) {
	t.Helper()
	var journaled []manifest.Entry
	err := store.EachLeaf(dir, func(leaf string) error {
		es, err := readJournal(filepath.Join(dir, leaf, journalName))
		journaled = append(journaled, es...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var listed []manifest.Entry
	err = open(t, dir).Blocks(context.Background(), testUnseal(xorKey), func(e manifest.Entry, _ []byte) error {
		listed = append(listed, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(journaled) != fmt.Sprint(listed) {
		t.Fatalf("journals\n%v\nmanifest\n%v", journaled, listed)
	}
}

// TestTransformCrashAnywhere stops a conversion at every step in turn, as
// a crash would: each time the directory verifies, and a rerun completes
// it into exactly what an uninterrupted conversion writes.
func TestTransformCrashAnywhere(t *testing.T) {
	for _, c := range []struct {
		name     string
		from, to toy
	}{
		{"plain to inv", plain, invForm},
		{"inv to xor+", invForm, invXorForm},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			template := filepath.Join(base, "template")
			fillSmall(t, template)
			if c.from.form != codec.Plain {
				transform(t, template, c.from)
			}
			fresh := func(name string) string {
				dir := filepath.Join(base, name)
				copyTree(t, template, dir)
				return dir
			}
			// The uninterrupted conversion, counting its steps.
			ref := fresh("ref")
			var steps []string
			testHook = func(step string) error { steps = append(steps, step); return nil }
			t.Cleanup(func() { testHook = nil })
			transform(t, ref, c.to)
			testHook = nil
			want := tree(t, ref)
			if len(steps) < 15 {
				t.Fatalf("only %d steps: %v", len(steps), steps)
			}
			crash := errors.New("crash")
			for n := range steps {
				dir := fresh(fmt.Sprintf("crash%02d", n))
				seen := 0
				testHook = func(string) error {
					if seen++; seen > n {
						return crash
					}
					return nil
				}
				_, err := Run(context.Background(), open(t, dir), c.to.to(testUnseal(xorKey)))
				testHook = nil
				if !errors.Is(err, crash) {
					t.Fatalf("crash at step %d (%s): %v", n, steps[n], err)
				}
				what := fmt.Sprintf("after a crash at step %d (%s)", n, steps[n])
				// A crash also leaves temporary files.
				stray := filepath.Join(dir, store.LeafDir(0), tempPrefix+"stray")
				if err := os.WriteFile(stray, []byte("half a block"), 0o600); err != nil {
					t.Fatal(err)
				}
				verifyClean(t, dir, testUnseal(xorKey), what)
				if steps[n] != "manifest renamed" {
					// Between these two renames the checksum file still
					// names the old manifest: only Verify knows to
					// accept it; a rerun puts it right.
					readAll(t, dir, testUnseal(xorKey), what)
				}
				res := transform(t, dir, c.to)
				if res.ManifestSHA256.Hex() != want[store.ManifestName] {
					t.Fatalf("%s, the rerun's manifest sha256 %s differs from %s", what, res.ManifestSHA256.Hex(), want[store.ManifestName])
				}
				if got := tree(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s, the rerun left\n%v\nwant\n%v", what, got, want)
				}
				checkJournals(t, dir)
			}
		})
	}
}

// TestTransformUndo: a block that cannot be read stops the conversion and
// leaves the directory exactly as it was.
func TestTransformUndo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	fill(t, dir)
	// Interrupt a first conversion after two blocks, so that undoing
	// also removes what an earlier run wrote.
	seen := 0
	testHook = func(step string) error {
		if step == "entry" {
			if seen++; seen == 2 {
				return context.Canceled
			}
		}
		return nil
	}
	t.Cleanup(func() { testHook = nil })
	if _, err := Run(context.Background(), open(t, dir), invForm.to(testUnseal(0))); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted conversion: %v", err)
	}
	testHook = nil
	if _, err := os.Stat(filepath.Join(dir, store.ConversionName)); err != nil {
		t.Fatalf("an interruption must keep the conversion for a rerun: %v", err)
	}
	// Tamper with the fourth block.
	victim := filepath.Join(dir, store.LeafDir(10000), block.FileName(block.FileInfo{Index: 10000, Snapshot: snap, Sum: block.SumOf(blockData(10000)), VolumeGiB: 8, BlockSize: block.Size}))
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[7] ^= 1
	if err := os.WriteFile(victim, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), open(t, dir), invForm.to(testUnseal(0)))
	var m *store.Mismatch
	if !errors.As(err, &m) || m.Index != 10000 || !strings.Contains(err.Error(), "stored sha256") {
		t.Fatalf("tampered block: %v", err)
	}
	got := tree(t, dir)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, ".zst") || strings.HasPrefix(filepath.Base(n), "transform") || strings.HasPrefix(filepath.Base(n), tempPrefix) {
			t.Fatalf("undo left %s", n)
		}
	}
	if len(names) != 5+2+3 { // blocks, journals, evidence.json and the manifest with its checksum
		t.Fatalf("after undo: %v", names)
	}
	if rel, _ := filepath.Rel(dir, victim); got[filepath.ToSlash(rel)] != sha256Hex(data) {
		t.Fatal("the tampered block file was changed")
	}
	res, err := open(t, dir).Verify(context.Background(), nil, nil)
	if err != nil || len(res.Problems) != 1 || res.Problems[0].Index != 10000 {
		t.Fatalf("verify after undo: %+v %v", res, err)
	}
}

func sha256Hex(p []byte) string {
	s := sha256.Sum256(p)
	return hex.EncodeToString(s[:])
}

// TestTransformWithoutKey: sealing to a key this machine does not hold
// checks the new files by their stored bytes only.
func TestTransformWithoutKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	fill(t, dir)
	o := xorForm.to(testUnseal(0))
	o.Recipients = []string{"toy recipient"}
	res, err := Run(context.Background(), open(t, dir), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Decoded != 0 || res.Blocks != 5 {
		t.Fatalf("result %+v", res)
	}
	ev := open(t, dir)
	if ev.Meta.Encryption != "age" || fmt.Sprint(ev.Meta.Recipients) != "[toy recipient]" {
		t.Fatalf("evidence.json: %+v", ev.Meta)
	}
	vr, err := ev.Verify(context.Background(), testUnseal(0), nil)
	if err != nil || !vr.OK() || vr.StoredChecked != 5 || vr.ContentChecked != 0 || vr.Encrypted != 5 {
		t.Fatalf("verify without the key: %+v %v", vr, err)
	}
	verifyClean(t, dir, testUnseal(xorKey), "with the key")
	// Decrypting without the key is undone at once.
	before := tree(t, dir)
	_, err = Run(context.Background(), open(t, dir), plain.to(testUnseal(0)))
	if !errors.Is(err, store.ErrNeedKey) || !strings.Contains(err.Error(), "block 0") {
		t.Fatalf("decrypting without the key: %v", err)
	}
	if fmt.Sprint(tree(t, dir)) != fmt.Sprint(before) {
		t.Fatal("a refused conversion changed the directory")
	}
}

func TestTransformPending(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev")
	fill(t, dir)
	testHook = func(step string) error {
		if step == "entry" {
			return context.Canceled
		}
		return nil
	}
	t.Cleanup(func() { testHook = nil })
	if _, err := Run(context.Background(), open(t, dir), invForm.to(testUnseal(0))); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	testHook = nil
	st, err := StateOf(open(t, dir))
	if err != nil || st != (State{From: codec.Plain, Pending: true, To: invForm.form}) {
		t.Fatalf("StateOf: %+v %v", st, err)
	}
	var p *PendingError
	if _, err := Run(context.Background(), open(t, dir), xorForm.to(testUnseal(xorKey))); !errors.As(err, &p) ||
		p.Pending != invForm.form {
		t.Fatalf("another conversion while one is pending: %v", err)
	}
	// A file that is no form of a listed block is still extra.
	junk := filepath.Join(dir, store.LeafDir(1), "0000000002_"+snap+"_"+block.SumOf(blockData(2)).Hex()+"_8_524288.zst")
	if err := os.WriteFile(junk, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := open(t, dir).Verify(context.Background(), nil, nil)
	if err != nil || len(res.Problems) != 1 || res.Problems[0].Kind != "extra" || res.Problems[0].Index != 2 {
		t.Fatalf("verify with an unlisted file during a conversion: %+v %v", res, err)
	}
	os.Remove(junk)
	res2 := transform(t, dir, invForm)
	if res2.Resumed != 1 || res2.Decoded != 4 {
		t.Fatalf("rerun: %+v", res2)
	}
	verifyClean(t, dir, testUnseal(0), "completed")
}

// BenchmarkConvert converts directories of 64 and 512 blocks (inverted
// bytes stand in for a codec, so that what is measured is the conversion
// itself: read, check, write, fsync, read back, check) and reports the
// throughput and the peak heap, which must not grow with the number of
// blocks:
//
//	go test -run XXX -bench Convert -benchtime 3x ./internal/convert
func BenchmarkConvert(b *testing.B) {
	for _, n := range []int64{64, 512} {
		b.Run(fmt.Sprintf("blocks=%d", n), func(b *testing.B) {
			var peak uint64
			for range b.N {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), "ev")
				s := newStore(b, dir)
				for i := range n {
					d := blockData(i)
					if err := s.Put(i, block.SumOf(d), d); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := s.Finish(time.Unix(0, 0), time.Unix(1, 0)); err != nil {
					b.Fatal(err)
				}
				ev, err := store.Open(dir)
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				b.StartTimer()
				o := invForm.to(testUnseal(0))
				o.ProgressEvery = 5 * time.Millisecond
				o.Progress = func(acquire.Progress) {
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				}
				if _, err := Run(context.Background(), ev, o); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(n * block.Size)
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}

// readJournal reads a leaf's journal: one manifest entry a line.
func readJournal(path string) ([]manifest.Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []manifest.Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, store.MaxJournalLine)
	for sc.Scan() {
		var e manifest.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// A conversion and an acquisition exclude each other.
func TestConvertWhileAcquiring(t *testing.T) {
	dir := t.TempDir()
	l, err := dirlock.ForDir(dir, "acquire")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	s := newStore(t, dir)
	d := blockData(1)
	if err := s.Put(1, block.SumOf(d), d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), open(t, dir), invForm.to(nil))
	var held *dirlock.HeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() || held.What != "acquire" {
		t.Fatalf("conversion while an acquisition holds the directory: %v", err)
	}
}

// However many workers meet unreadable blocks, in whatever order, the
// conversion stops at, and names, the first in index order, and is
// undone.
func TestConvertFirstFailureInOrder(t *testing.T) {
	base := t.TempDir()
	template := filepath.Join(base, "template")
	fill(t, template)
	for run := range 8 {
		dir := filepath.Join(base, fmt.Sprint(run))
		copyTree(t, template, dir)
		before := tree(t, dir)
		// Every block encrypted without the key to read it: block 0 is
		// the first.
		o := xorForm.to(testUnseal(0))
		o.Workers = 16
		if _, err := Run(context.Background(), open(t, dir), o); err != nil {
			t.Fatal(err)
		}
		o = plain.to(testUnseal(0))
		o.Workers = 16
		_, err := Run(context.Background(), open(t, dir), o)
		if !errors.Is(err, store.ErrNeedKey) || !strings.Contains(err.Error(), "block 0:") {
			t.Fatalf("run %d, decrypting without the key: %v", run, err)
		}
		// Two tampered blocks, the later one first to hand: the earlier
		// is named.
		dir2 := filepath.Join(base, fmt.Sprint(run, "b"))
		copyTree(t, template, dir2)
		for _, i := range []int64{16383, 9999} {
			p := filepath.Join(dir2, store.LeafDir(i), block.FileName(block.FileInfo{Index: i, Snapshot: snap, Sum: block.SumOf(blockData(i)), VolumeGiB: 8, BlockSize: block.Size}))
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			data[1] ^= 1
			os.WriteFile(p, data, 0o600)
		}
		before = tree(t, dir2)
		o = invForm.to(testUnseal(0))
		o.Workers = 16
		_, err = Run(context.Background(), open(t, dir2), o)
		var m *store.Mismatch
		if !errors.As(err, &m) || m.Index != 9999 {
			t.Fatalf("run %d, two tampered blocks: %v", run, err)
		}
		if got := tree(t, dir2); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Fatalf("run %d: the refused conversion changed the directory", run)
		}
	}
}
