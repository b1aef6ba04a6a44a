package xfs

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/fsys"
)

// fuzzVolume is the size the fuzzed volumes claim: mkfs.xfs's 300 MB.
const fuzzVolume = mkfsBytes

// chunkReader serves a volume that is zeros but for chunks: the fuzz
// input is a list of chunks, each a 4-byte offset in 512-byte sectors, a
// 2-byte length and that many bytes (the last may be short), so a seed
// holds only the blocks of a 300 MB image the reader reads.
type chunkReader struct{ chunks []patch }

func parseChunks(data []byte) *chunkReader {
	r := &chunkReader{}
	for len(data) >= 6 {
		off := int64(binary.BigEndian.Uint32(data)) * 512
		n := min(int(binary.BigEndian.Uint16(data[4:])), len(data)-6)
		r.chunks = append(r.chunks, patch{off, data[6 : 6+n]})
		data = data[6+n:]
	}
	return r
}

func (r *chunkReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= fuzzVolume {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > fuzzVolume-off {
		n = int(fuzzVolume - off)
	}
	clear(p[:n])
	for _, c := range r.chunks {
		lo, hi := max(off, c.off), min(off+int64(n), c.off+int64(len(c.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], c.data[lo-c.off:hi-c.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// recorder notes the 512-byte sectors a reader reads.
type recorder struct {
	r    io.ReaderAt
	read map[int64]bool
}

func (r *recorder) ReadAt(p []byte, off int64) (int, error) {
	for s := off / 512; s*512 < off+int64(len(p)); s++ {
		r.read[s] = true
	}
	return r.r.ReadAt(p, off)
}

// seedChunks encodes the sectors read as chunks of at most 64 sectors.
func seedChunks(fh io.ReaderAt, read map[int64]bool) []byte {
	var sectors []int64
	for s := range read {
		sectors = append(sectors, s)
	}
	sort.Slice(sectors, func(i, j int) bool { return sectors[i] < sectors[j] })
	var out []byte
	for i := 0; i < len(sectors); {
		j := i + 1
		for j < len(sectors) && sectors[j] == sectors[j-1]+1 && j-i < 64 {
			j++
		}
		buf := make([]byte, (j-i)*512)
		fh.ReadAt(buf, sectors[i]*512)
		out = binary.BigEndian.AppendUint32(out, uint32(sectors[i]))
		out = binary.BigEndian.AppendUint16(out, uint16(len(buf)))
		out = append(out, buf...)
		i = j
	}
	return out
}

// exercise opens a volume, walks it and reads every file, link and
// directory, doing a bounded amount of work, with or without the CRC
// checks. Every error must be one of fsys's.
func exercise(t *testing.T, r io.ReaderAt, noCRC bool) {
	f, err := open(r, fuzzVolume, noCRC)
	if err != nil {
		checkErr(t, err)
		return
	}
	const maxEntries = 2000
	n := 0
	buf := make([]byte, 64<<10)
	errStop := errors.New("enough")
	err = fsys.Walk(f, f.Root(), "/", func(p string, e fsys.DirEntry) error {
		if n++; n > maxEntries {
			return errStop
		}
		if _, err := f.Stat(e.ID); err != nil {
			checkErr(t, err)
		}
		if _, err := f.Readlink(e.ID); err != nil && e.Type == fsys.TypeSymlink {
			checkErr(t, err)
		}
		fl, err := f.Open(e.ID, "")
		if err != nil {
			checkErr(t, err)
			return nil
		}
		runs := fl.Runs()
		var sum int64
		for _, r := range runs {
			sum += r.Length
		}
		if len(runs) > 0 && sum != fl.Size() {
			t.Fatalf("%s: runs cover %d bytes of %d", p, sum, fl.Size())
		}
		for _, off := range []int64{0, fl.Size() / 2, fl.Size() - int64(len(buf))} {
			if _, err := fl.ReadAt(buf, max(off, 0)); err != nil && err != io.EOF {
				checkErr(t, err)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		checkErr(t, err)
	}
}

func checkErr(t *testing.T, err error) {
	for _, want := range []error{fsys.ErrCorrupt, fsys.ErrUnsupported, fsys.ErrNotFound, fsys.ErrNotDir, fsys.ErrIsDir} {
		if errors.Is(err, want) {
			return
		}
	}
	// Readlink of a file that is not a link (its directory entry said
	// it was) is the one plain error.
	if strings.Contains(err.Error(), "not a symbolic link") {
		return
	}
	t.Fatalf("error wraps none of fsys's: %v", err)
}

// FuzzXFS feeds the reader damaged volumes built from the sectors a walk
// of a real mkfs.xfs image reads (a v5 and a v4 one).
func FuzzXFS(f *testing.F) {
	for _, opts := range [][]string{nil, {"-m", "crc=0"}} {
		seed := fuzzSeed(f, opts...)
		f.Add(seed)
		f.Add(seed[:len(seed)/3])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := parseChunks(data)
		exercise(t, r, false)
		// Mutations rarely keep a CRC right: without the checks they
		// reach the parsers behind them.
		exercise(t, r, true)
	})
}

// fuzzSeed builds an image of the small test tree and encodes the
// sectors a walk of it reads.
func fuzzSeed(f *testing.F, opts ...string) []byte {
	const bs = 4096
	tree := corruptTree(bs)
	im := buildImage(f, mkfsBytes, bs, tree, opts...)
	fh, err := os.Open(im.path)
	if err != nil {
		f.Fatal(err)
	}
	defer fh.Close()
	rec := &recorder{r: fh, read: map[int64]bool{}}
	fs, err := Open(rec, fuzzVolume)
	if err != nil {
		f.Fatal(err)
	}
	_ = fsys.Walk(fs, fs.Root(), "/", func(p string, e fsys.DirEntry) error {
		fs.Stat(e.ID)
		fs.Readlink(e.ID)
		if fl, err := fs.Open(e.ID, ""); err == nil {
			io.Copy(io.Discard, io.NewSectionReader(fl, 0, min(fl.Size(), 8192)))
		}
		return nil
	})
	seed := seedChunks(fh, rec.read)
	// The seed must read as the image does.
	sf, err := Open(parseChunks(seed), fuzzVolume)
	if err != nil {
		f.Fatalf("the seed does not open: %v", err)
	}
	if ents, err := sf.ReadDir(sf.Root()); err != nil || len(ents) != len(tree.kids) {
		f.Fatalf("the seed's root: %d entries, %v; want %d", len(ents), err, len(tree.kids))
	}
	return seed
}
