package triage

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// copyChunk is how much of a file is read at a time.
const copyChunk = 1 << 20

// MaxSparse is the largest file collected without a max= when it is
// larger than its partition (its holes make up the rest: an NTFS
// $UsnJrnl:$J, a sparse lastlog): its holes are written as holes, but
// hashed as the zeros they read as. A larger size with no max= is more
// likely a damaged or hostile inode than a file worth the hours.
const MaxSparse = 64 << 30

type collector struct {
	o       Options
	v       volume.Volume
	tr      *tracker
	rec     *report.Triage
	started time.Time
	out     *layout

	jobs     []*job
	seq      []int64 // every block the jobs need, in the order they need them
	listing  []listRow
	rows     []fileRow
	sums     []sumLine
	profiles map[*Profile]bool
	first    bool
	// unread is the first error of a file that could not be read for a
	// reason in the source, not in the file system; unreadN counts them.
	unread  error
	unreadN int
}

// job is a file to collect.
type job struct {
	part Part
	m    *Match
	f    fsys.File
	rule string
	// blocks are the volume blocks the file's runs lie in.
	blocks []int64
	// seqStart is where the file's first new block is in collector.seq;
	// firstUse gives, for each of its new blocks, the file offset whose
	// read first needs it (ascending).
	seqStart int
	firstUse []int64
}

type listRow struct {
	part   string
	m      *Match
	target string
	rule   string
}

type fileRow struct {
	part, path, file  string
	id                fsys.ID
	size              int64
	md5, sha1, sha256 string
	st                fsys.Stat
	blocks, rule      string
}

type sumLine struct{ sum, file string }

// plan resolves the profiles on partition p and queues what to collect.
func (c *collector) plan(p Part) {
	rp := report.TriagePartition{Name: partDir(p), Offset: p.Offset, Size: p.Size, Profiles: []string{}}
	defer func() { c.rec.Partitions = append(c.rec.Partitions, rp) }()
	if p.FS == nil {
		rp.Error = "no file system to read"
		if p.Err != nil {
			rp.Error = p.Err.Error()
		}
		return
	}
	rp.FileSystem = p.FS.Type()
	profiles := c.o.Profiles
	if len(profiles) == 0 {
		prof, err := Choose(p.FS)
		if err != nil {
			rp.Error = err.Error()
			return
		}
		if prof == nil {
			rp.Error = "no built-in profile applies (neither /Windows/System32/config nor /etc)"
			return
		}
		profiles = []*Profile{prof}
	}
	var (
		rules  []Rule
		owners []*Profile
	)
	for _, prof := range profiles {
		rp.Profiles = append(rp.Profiles, prof.Name)
		if c.profiles == nil {
			c.profiles = map[*Profile]bool{}
		}
		if !c.profiles[prof] {
			c.profiles[prof] = true
			c.rec.Profiles = append(c.rec.Profiles, report.TriageProfile{Name: prof.Name, Origin: prof.Origin, SHA256: prof.SHA256, Rules: len(prof.Rules)})
		}
		for _, r := range prof.Rules {
			rules, owners = append(rules, r), append(owners, prof)
		}
	}
	res, err := Resolve(p.FS, rules)
	if err != nil {
		c.fail(rp.Name, "(walk)", err)
	}
	rp.Entries = res.Entries
	for i, n := range res.Found {
		if n == 0 {
			c.rec.NotFound = append(c.rec.NotFound, report.TriageRule{Partition: rp.Name, Profile: owners[i].Name, Line: rules[i].Line, Rule: rules[i].String()})
		}
	}
	for _, e := range res.Errors {
		c.fail(rp.Name, e.Path, e.Err)
	}
	for _, m := range res.Matches {
		c.classify(p, m, rules, owners)
	}
}

// classify queues a match to be collected or listed, or withholds it.
func (c *collector) classify(p Part, m *Match, rules []Rule, owners []*Profile) {
	name := partDir(p)
	var collect []int
	private := false
	for _, i := range m.Rules {
		if !rules[i].List {
			collect = append(collect, i)
		}
		private = private || rules[i].Private
	}
	first := m.Rules[0]
	if len(collect) > 0 {
		first = collect[0]
	}
	rule := ruleName(owners[first], rules[first])
	isFile := m.Stream != "" || m.Stat.Type == fsys.TypeRegular
	if len(collect) == 0 || !isFile {
		if len(collect) > 0 && m.Stat.Type == fsys.TypeDir {
			return // a directory a collecting rule passed through
		}
		row := listRow{part: name, m: m, rule: rule}
		if m.Stat.Type == fsys.TypeSymlink {
			if t, err := p.FS.Readlink(m.ID); err == nil {
				row.target = t
			} else {
				c.fail(name, m.Name(), err)
			}
		}
		c.listing = append(c.listing, row)
		return
	}
	if private && !c.o.PrivateKeys {
		c.withhold(name, m, m.Stat.Size, "a private key: collected only with --private-keys")
		return
	}
	var limit int64
	for _, i := range collect {
		if rules[i].MaxSize == 0 {
			limit = 0
			break
		}
		limit = max(limit, rules[i].MaxSize)
	}
	f, err := p.FS.Open(m.ID, m.Stream)
	if err != nil {
		c.fail(name, m.Name(), err)
		return
	}
	var stored int64
	for _, r := range f.Runs() {
		if !r.Sparse() && r.Length > 0 {
			stored += r.Length
		}
	}
	switch size := f.Size(); {
	case size < 0:
		c.fail(name, m.Name(), fmt.Errorf("size %d: %w", size, fsys.ErrCorrupt))
		return
	case limit > 0 && size > limit:
		c.withhold(name, m, size, fmt.Sprintf("larger than the rule's limit of %d bytes", limit))
		return
	case stored > p.Size:
		c.fail(name, m.Name(), fmt.Errorf("its runs hold %d bytes, more than its partition's %d: %w", stored, p.Size, fsys.ErrCorrupt))
		return
	case limit == 0 && size > max(p.Size, MaxSparse):
		c.withhold(name, m, size, fmt.Sprintf("larger than its partition (%d bytes) and %d bytes, though mostly holes: give a rule with max= to take it", p.Size, int64(MaxSparse)))
		return
	}
	c.jobs = append(c.jobs, &job{part: p, m: m, f: f, rule: rule})
}

func (c *collector) withhold(part string, m *Match, size int64, reason string) {
	c.rec.Withheld = append(c.rec.Withheld, report.TriageWithheld{Partition: part, Path: m.Name(), Size: size, Reason: reason})
}

func (c *collector) fail(part, p string, err error) {
	c.rec.Errors = append(c.rec.Errors, report.TriageError{Partition: part, Path: p, Error: err.Error()})
}

// sequence works out every block the jobs need, in the order the reads
// will need them, each once.
func (c *collector) sequence() {
	seen := map[int64]bool{}
	for _, j := range c.jobs {
		j.seqStart = len(c.seq)
		inFile := map[int64]bool{}
		for _, r := range j.f.Runs() {
			if r.Sparse() || r.Length <= 0 {
				continue
			}
			for _, vr := range j.part.place(r.Physical, r.Length) {
				logical := r.Logical + vr.partOff - r.Physical
				for i := vr.Off / block.Size; i <= (vr.End()-1)/block.Size; i++ {
					if !inFile[i] {
						inFile[i] = true
						j.blocks = append(j.blocks, i)
					}
					if seen[i] {
						continue
					}
					seen[i] = true
					c.seq = append(c.seq, i)
					j.firstUse = append(j.firstUse, logical+max(0, i*block.Size-vr.Off))
				}
			}
		}
	}
}

// fetchAndWrite fetches the blocks the jobs need ahead of the reads, in
// windows of half the volume's cache, and writes the files one by one.
func (c *collector) fetchAndWrite(ctx context.Context) {
	c.sequence()
	pr := &progress{}
	pr.cond = sync.NewCond(&pr.mu)
	var wg sync.WaitGroup
	if pf, ok := c.v.(Prefetcher); ok && len(c.seq) > 0 {
		window := max(1, pf.CacheBlocks()/2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.prefetch(ctx, pf, pr, window)
		}()
	}
	for _, j := range c.jobs {
		if ctx.Err() != nil {
			c.fail(partDir(j.part), j.m.Name(), ctx.Err())
			continue
		}
		c.write(j, pr)
		pr.set(j.seqStart + len(j.firstUse))
	}
	pr.finish()
	wg.Wait()
}

// prefetch fetches c.seq window by window, never more than one window
// ahead of the reads, so what it fetches stays in the cache until read.
func (c *collector) prefetch(ctx context.Context, pf Prefetcher, pr *progress, window int) {
	for start := 0; start < len(c.seq); start += window {
		if !pr.wait(start - window) {
			return
		}
		end := min(len(c.seq), start+window)
		rs := make([]volume.Range, 0, end-start)
		for _, i := range c.seq[start:end] {
			rs = append(rs, volume.Range{Off: i * block.Size, Len: block.Size})
		}
		if err := pf.Prefetch(ctx, rs); err != nil {
			// The reads meet the error themselves, block by block, and
			// record it against the file.
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// progress is how far the reads are in collector.seq.
type progress struct {
	mu   sync.Mutex
	cond *sync.Cond
	done int
	end  bool
}

func (p *progress) set(n int) {
	p.mu.Lock()
	if n > p.done {
		p.done = n
		p.cond.Broadcast()
	}
	p.mu.Unlock()
}

func (p *progress) finish() {
	p.mu.Lock()
	p.end = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// wait waits until the reads reach n; false when they ended first.
func (p *progress) wait(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.done < n && !p.end {
		p.cond.Wait()
	}
	return !p.end
}

// errWithheld ends the copy of a private key found by its content.
var errWithheld = errors.New("withheld")

// write copies a job's file into the layout, hashing it.
func (c *collector) write(j *job, pr *progress) {
	part := partDir(j.part)
	rel, err := c.out.reserve(part, j.m.Names, j.m.Stream)
	if err != nil {
		c.fail(part, j.m.Name(), err)
		return
	}
	size := j.f.Size()
	hs := []hash.Hash{md5.New(), sha1.New(), sha256.New()}
	err = writeSparse(filepath.Join(c.out.dir, filepath.FromSlash(rel)), size, func(w io.WriterAt) error {
		buf := make([]byte, min(int64(copyChunk), max(size, 1)))
		for off := int64(0); off < size; {
			n := int(min(int64(len(buf)), size-off))
			got, err := j.f.ReadAt(buf[:n], off)
			if got == n && errors.Is(err, io.EOF) {
				err = nil
			}
			if err != nil {
				return fmt.Errorf("reading at %d: %w", off, err)
			}
			if off == 0 && !c.o.PrivateKeys && isPrivateKey(buf[:n]) {
				return errWithheld
			}
			for _, h := range hs {
				h.Write(buf[:n])
			}
			if !block.IsZero(buf[:n]) { // zeros stay a hole
				if _, err := w.WriteAt(buf[:n], off); err != nil {
					return err
				}
			}
			off += int64(n)
			k := sort.Search(len(j.firstUse), func(k int) bool { return j.firstUse[k] >= off })
			pr.set(j.seqStart + k)
		}
		return nil
	})
	if errors.Is(err, errWithheld) {
		c.withhold(part, j.m, size, "its content is a private key: collected only with --private-keys")
		return
	}
	if err != nil {
		c.fail(part, j.m.Name(), fmt.Errorf("collecting: %w", err))
		if !errors.Is(err, fsys.ErrCorrupt) && !errors.Is(err, fsys.ErrUnsupported) {
			c.unreadN++
			if c.unread == nil {
				c.unread = err
			}
		}
		return
	}
	if !c.first {
		c.first = true
		c.rec.Figures.FirstFileSeconds = c.o.Now().Sub(c.started).Seconds()
	}
	sum := hex.EncodeToString(hs[2].Sum(nil))
	row := fileRow{part: part, path: j.m.Name(), file: rel, id: j.m.ID, size: size,
		md5: hex.EncodeToString(hs[0].Sum(nil)), sha1: hex.EncodeToString(hs[1].Sum(nil)), sha256: sum,
		st: j.m.Stat, blocks: blockList(j.blocks), rule: j.rule}
	c.rows = append(c.rows, row)
	c.sums = append(c.sums, sumLine{sum: sum, file: rel})
	c.rec.Collected = append(c.rec.Collected, report.TriageFile{Partition: part, Path: j.m.Name(), File: rel, Size: size, SHA256: sum})
	c.rec.Figures.Files++
	c.rec.Figures.Bytes += size
}

// isPrivateKey reports whether a file starts as a PEM, OpenSSH or PuTTY
// private key does.
func isPrivateKey(head []byte) bool {
	line, _, _ := bytes.Cut(head[:min(len(head), 256)], []byte("\n"))
	return bytes.HasPrefix(line, []byte("-----BEGIN ")) && bytes.Contains(line, []byte("PRIVATE KEY-----")) ||
		bytes.HasPrefix(line, []byte("PuTTY-User-Key-File-"))
}

// blockList writes ascending block indexes as runs: "8-11;40".
func blockList(idx []int64) string {
	s := append([]int64(nil), idx...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	var b strings.Builder
	for k := 0; k < len(s); {
		e := k
		for e+1 < len(s) && s[e+1] == s[e]+1 {
			e++
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(strconv.FormatInt(s[k], 10))
		if e > k {
			b.WriteString("-" + strconv.FormatInt(s[e], 10))
		}
		k = e + 1
	}
	return b.String()
}

// placed is a range of the volume, and the part's offset it holds.
type placed struct {
	volume.Range
	partOff int64
}

// place returns where the part's bytes off..off+n lie on the volume.
func (p Part) place(off, n int64) []placed {
	if p.Map == nil {
		return []placed{{volume.Range{Off: p.Offset + off, Len: n}, off}}
	}
	var out []placed
	at := off
	for _, r := range p.Map(off, n) {
		out = append(out, placed{r, at})
		at += r.Len
	}
	return out
}

// writeSparse writes a file of size bytes at path through fill, which
// writes only what is not zeros: the rest stays a hole. atomicfile's
// WriteFile gives the temporary file a short name (a collected name may
// be 255 bytes long already), so path never holds half a file.
func writeSparse(path string, size int64, fill func(io.WriterAt) error) error {
	return atomicfile.WriteFile(path, func(f *os.File) error {
		if err := fill(f); err != nil {
			return err
		}
		return f.Truncate(size)
	})
}
