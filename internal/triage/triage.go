package triage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/fsys"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// Part is a file system to triage: a partition, or a whole volume that
// holds one file system.
type Part struct {
	// Name is the partition's name as inspect shows it, "p1", "p2", …:
	// the directory under files/ its files go to.
	Name         string
	Offset, Size int64 // on the volume, in bytes
	// Map, when set, places the part's bytes off..off+n on the volume
	// (an LVM logical volume's segments); nil means Offset+off.
	Map func(off, n int64) []volume.Range
	FS  fsys.FS
	// Err says why the partition has no FS (no file system known, an
	// encrypted one, a damaged one): it is recorded, not triaged.
	Err error
}

// Options configures Run.
type Options struct {
	// Out is the output directory: it must not exist, or be empty.
	Out string
	// Profiles apply to every partition; none means one built-in
	// profile chosen per partition from what it holds (see Choose).
	Profiles []*Profile
	// PrivateKeys collects the files of private rules.
	PrivateKeys bool
	// Partitions finds the file systems on the volume r of size bytes.
	Partitions func(r io.ReaderAt, size int64) ([]Part, error)
	// Bodyfile, when set, writes the bodyfile of a file system to w.
	Bodyfile func(w io.Writer, p Part) error
	// Sums returns the AWS checksums of the blocks read, by index, when
	// the source has them: a live snapshot's blocks as they were fetched
	// (live.SumLog), or an evidence directory's manifest (EvidenceSums);
	// ChecksumSource says which (report.ChecksumAWS or
	// report.ChecksumManifest). Nil for an image, which holds none.
	Sums           func(read []int64) (map[int64]block.Sum, error)
	ChecksumSource string
	// Cost, when set, returns what reading a live snapshot cost.
	Cost func() Cost
	// Source and Tool are recorded.
	Source report.TriageSource
	Tool   report.Tool
	// Started is when the run began, for the time to the first file and
	// the total (the command sets it before it opens the source); zero
	// means when Run is called.
	Started time.Time
	// AllocatedWait bounds how long Run waits, once the files are
	// written, for the count of the volume's allocated blocks (listed
	// from the start, at the same time as the collection); 0 means
	// DefaultAllocatedWait.
	AllocatedWait time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultAllocatedWait is Options.AllocatedWait's default.
const DefaultAllocatedWait = 30 * time.Second

// Prefetcher is a volume that can fetch a list of ranges at once before
// they are read (a live snapshot, whose *live.Volume has this method
// set). Other volumes are read as they are.
type Prefetcher interface {
	Prefetch(ctx context.Context, rs []volume.Range) error
	CacheBlocks() int
}

// Cost is what reading a live snapshot took: the EBS direct API calls
// and the blocks fetched, priced.
type Cost struct {
	Requests      report.Requests
	FetchedBlocks int64
	FetchedBytes  int64
	CostUSD       float64
	PriceAssumed  bool
}

// ErrNotEmpty is returned when the output directory holds something; it
// wraps fs.ErrExist.
var ErrNotEmpty = fmt.Errorf("output directory is not empty: %w", fs.ErrExist)

// Run triages the volume v: it finds its file systems, resolves the
// profiles' rules on each, fetches what the files need, writes them and
// their lists into o.Out, and saves the record there. A file that cannot
// be read is recorded and the run goes on. Run fails before the record
// when nothing sound can be written (the output directory, the
// partitions); after it, with the record returned, when it was
// interrupted or when a block of the source failed verification or
// could not be read (volume.ErrCorrupt, an I/O error: the collection is
// incomplete, not the file system damaged).
func Run(ctx context.Context, v volume.Volume, o Options) (*report.Triage, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	started := o.Started
	if started.IsZero() {
		started = o.Now()
	}
	if err := makeOut(o.Out); err != nil {
		return nil, err
	}
	rec := report.NewTriage(o.Tool, started)
	rec.Source = o.Source
	rec.Source.SizeBytes = v.Size()
	rec.Outputs = map[string]string{}
	type allocated struct {
		rs  []volume.Range
		err error
	}
	allocCh := make(chan allocated, 1)
	go func() { // the allocated blocks, to compare the reads with
		rs, err := v.Ranges()
		allocCh <- allocated{rs, err}
	}()
	tr := newTracker(v)
	parts, err := o.Partitions(tr, v.Size())
	if err != nil {
		return nil, fmt.Errorf("reading the partitions: %w", err)
	}
	c := &collector{o: o, v: v, tr: tr, rec: rec, started: started, out: newLayout(o.Out)}
	for _, p := range parts {
		c.plan(p)
	}
	c.fetchAndWrite(ctx)
	for _, p := range parts {
		c.bodyfile(p)
	}
	if err := c.writeLists(); err != nil {
		return nil, err
	}
	wait := o.AllocatedWait
	if wait <= 0 {
		wait = DefaultAllocatedWait
	}
	var alloc []volume.Range
	select {
	case a := <-allocCh:
		alloc = a.rs
		if a.err != nil {
			rec.Errors = append(rec.Errors, report.TriageError{Path: "(volume)", Error: "listing the allocated blocks: " + a.err.Error()})
		}
	case <-time.After(wait):
		rec.Notes = append(rec.Notes, fmt.Sprintf("The volume's allocated blocks were not counted: listing them all was not done %s after the collection (a large snapshot takes one List call per 10,000 blocks).", wait))
	case <-ctx.Done():
	}
	c.figures(alloc)
	rec.Run.FinishedAt = o.Now()
	rec.Figures.Seconds = rec.Run.FinishedAt.Sub(started).Seconds()
	if err := c.writeSums(); err != nil {
		return nil, err
	}
	if err := rec.Save(o.Out); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return rec, fmt.Errorf("triage interrupted (the record says what was collected): %w", err)
	}
	if c.unread != nil {
		return rec, fmt.Errorf("%d files could not be read from the source (the record names them): %w", c.unreadN, c.unread)
	}
	return rec, nil
}

// makeOut creates the output directory, or takes an empty one.
func makeOut(dir string) error {
	if dir == "" {
		return errors.New("no output directory")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating the output directory: %w", err)
		}
	case err != nil:
		return fmt.Errorf("reading the output directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("%s: %w (a triage writes into a new or empty directory, so that nothing it finds there is taken for its own)", dir, ErrNotEmpty)
	}
	return os.MkdirAll(filepath.Join(dir, "files"), 0o700)
}

// Choose returns the built-in profile for a file system from what it
// holds: windows when it has /Windows/System32/config, linux when it has
// /etc; nil for neither (an EFI system partition, a data volume).
func Choose(fs fsys.FS) (*Profile, error) {
	isDir := func(p string) bool {
		id, err := fsys.Lookup(fs, p)
		if err != nil {
			return false
		}
		st, err := fs.Stat(id)
		return err == nil && st.Type == fsys.TypeDir
	}
	switch {
	case isDir("/Windows/System32/config"):
		return Builtin("windows")
	case isDir("/etc"):
		return Builtin("linux")
	}
	return nil, nil
}

// tracker is the volume as the file systems read it, noting every block
// read.
type tracker struct {
	v    volume.Volume
	mu   sync.Mutex
	read map[int64]struct{}
}

func newTracker(v volume.Volume) *tracker { return &tracker{v: v, read: map[int64]struct{}{}} }

func (t *tracker) ReadAt(p []byte, off int64) (int, error) {
	n, err := t.v.ReadAt(p, off)
	if n > 0 {
		t.mu.Lock()
		for i := off / block.Size; i <= (off+int64(n)-1)/block.Size; i++ {
			t.read[i] = struct{}{}
		}
		t.mu.Unlock()
	}
	return n, err
}

// blocks returns the blocks read within the allocated ranges, ascending.
func (t *tracker) blocks(alloc []volume.Range) []int64 {
	t.mu.Lock()
	out := make([]int64, 0, len(t.read))
	for i := range t.read {
		out = append(out, i)
	}
	t.mu.Unlock()
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	if alloc == nil {
		return out
	}
	kept, k := out[:0], 0
	for _, i := range out {
		for k < len(alloc) && alloc[k].End() <= i*block.Size {
			k++
		}
		if k < len(alloc) && alloc[k].Off < (i+1)*block.Size {
			kept = append(kept, i)
		}
	}
	return kept
}

// blockCount counts the blocks the ranges touch.
func blockCount(rs []volume.Range) int64 {
	var n, last int64 = 0, -1
	for _, r := range rs {
		if r.Len <= 0 {
			continue
		}
		first, end := r.Off/block.Size, (r.End()-1)/block.Size
		if first <= last {
			first = last + 1
		}
		if end >= first {
			n += end - first + 1
			last = end
		}
	}
	return n
}

// figures fills in the record's figures and blocks.
func (c *collector) figures(alloc []volume.Range) {
	f := &c.rec.Figures
	f.AllocatedBlocks = blockCount(alloc)
	read := c.tr.blocks(alloc)
	f.BlocksRead = int64(len(read))
	b := &c.rec.Blocks
	b.ChecksumSource = report.ChecksumNone
	var sums map[int64]block.Sum
	if c.o.Sums != nil {
		var err error
		if sums, err = c.o.Sums(read); err != nil {
			c.rec.Errors = append(c.rec.Errors, report.TriageError{Path: "(volume)", Error: "reading the AWS checksums of the blocks read: " + err.Error()})
		}
		b.ChecksumSource = c.o.ChecksumSource
	}
	// Every block read, and every block fetched ahead of the reads.
	all := map[int64]bool{}
	for _, i := range read {
		all[i] = true
	}
	for i := range sums {
		all[i] = true
	}
	idx := make([]int64, 0, len(all))
	for i := range all {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	for _, i := range idx {
		tb := report.TriageBlock{Index: i}
		if s, ok := sums[i]; ok {
			tb.AWSSHA256 = s.Hex()
		}
		b.Blocks = append(b.Blocks, tb)
	}
	if c.o.Cost != nil {
		s := c.o.Cost()
		req := s.Requests
		if req.RetriesByKind == nil {
			req.RetriesByKind = map[string]int64{}
		}
		if req.ErrorsByKind == nil {
			req.ErrorsByKind = map[string]int64{}
		}
		f.Requests = &req
		f.FetchedBlocks, f.FetchedBytes, f.CostUSD, f.PriceAssumed = s.FetchedBlocks, s.FetchedBytes, s.CostUSD, s.PriceAssumed
		if f.AllocatedBlocks > 0 {
			f.GetsPerAllocated = float64(req.GetCalls) / float64(f.AllocatedBlocks)
		}
	}
	if b.ChecksumSource == report.ChecksumNone {
		c.rec.Notes = append(c.rec.Notes, "The source is an image: it holds no AWS checksum, so the blocks read are listed without one.")
	}
	if len(c.rec.Errors) > 0 {
		c.rec.Notes = append(c.rec.Notes, fmt.Sprintf("%d things could not be read (see Errors): the collection is incomplete there.", len(c.rec.Errors)))
	}
}

// ruleName names a rule in the record: profile and line.
func ruleName(p *Profile, r Rule) string {
	return fmt.Sprintf("%s:%d", p.Name, r.Line)
}

// partDir is the directory under files/ of partition p.
func partDir(p Part) string {
	if p.Name == "" {
		return "p0"
	}
	return localName(p.Name)
}
