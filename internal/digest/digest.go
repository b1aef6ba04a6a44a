package digest

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"sync/atomic"
)

// The algorithm names New accepts and Sums reports.
const (
	MD5    = "md5"
	SHA1   = "sha1"
	SHA256 = "sha256"
)

// algorithms lists every supported algorithm in the order results are
// reported: oldest first, the order examiners' logs (FTK Imager, ewfacquire)
// print them in.
var algorithms = []struct {
	name string
	new  func() hash.Hash
}{
	{MD5, md5.New},
	{SHA1, sha1.New},
	{SHA256, sha256.New},
}

// Algorithms returns the names New accepts, in report order.
func Algorithms() []string {
	names := make([]string, len(algorithms))
	for i, a := range algorithms {
		names[i] = a.name
	}
	return names
}

// ParseList reads a user's list of algorithms such as "md5,sha1,sha256".
// Each argument may hold several names separated by commas; names are
// case-insensitive and may repeat. The result is in report order (md5,
// sha1, sha256) whatever the input order. An unknown or empty name is an
// error, and so is an empty list.
func ParseList(lists ...string) ([]string, error) {
	want := make(map[string]bool)
	for _, list := range lists {
		for _, name := range strings.Split(list, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if !known(name) {
				return nil, fmt.Errorf("hash algorithm %q: want one of %s", name, strings.Join(Algorithms(), ", "))
			}
			want[name] = true
		}
	}
	if len(want) == 0 {
		return nil, errors.New("no hash algorithm given")
	}
	var names []string
	for _, a := range algorithms {
		if want[a.name] {
			names = append(names, a.name)
		}
	}
	return names, nil
}

func known(name string) bool {
	for _, a := range algorithms {
		if a.name == name {
			return true
		}
	}
	return false
}

// ErrClosed is returned by writes to a Set that has been closed.
var ErrClosed = errors.New("digest: write to closed set")

const (
	// bufSize is how many bytes one pipeline buffer carries: two EBS blocks
	// (512 KiB each), large enough that the hand-off between goroutines
	// costs nothing next to hashing it, small enough to stay in L2/L3 cache
	// while every hasher reads it.
	bufSize = 2 * 512 << 10
	// bufCount bounds the pipeline: the memory a Set holds is
	// bufCount × bufSize (6 MiB), and the fastest hasher runs at most that
	// far ahead of the slowest.
	bufCount = 6
)

// zeros is what WriteZeros feeds; it is never written, so it stays on the
// kernel's shared zero page.
var zeros [bufSize]byte

// A Set computes several hashes of one stream in a single pass. It is an
// io.Writer. With more than one algorithm every hash runs in its own
// goroutine, fed through a bounded pipeline of buffers, so given a core per
// algorithm the Set runs at about the speed of its slowest hash. A Set is
// not safe
// for concurrent use; Close (or Sums) must be called to stop its
// goroutines.
type Set struct {
	names  []string
	hashes []hash.Hash
	n      int64

	// The pipeline, used only with two or more algorithms.
	lanes []chan piece
	free  chan *buffer
	cur   *buffer
	wg    sync.WaitGroup

	sums map[string]string // set by Close
}

// buffer is one pipeline buffer, shared read-only by every lane; refs
// counts the hashers that have not finished with it yet.
type buffer struct {
	b    []byte
	refs atomic.Int32
}

// piece is one unit of work for a hasher: either bytes of a shared buffer
// or a run of zeros.
type piece struct {
	buf   *buffer
	zeros int64
}

// New returns a Set computing the named algorithms. Names are parsed as by
// ParseList, so New("md5,sha256") and New("md5", "sha256") are the same.
func New(algs ...string) (*Set, error) {
	names, err := ParseList(algs...)
	if err != nil {
		return nil, err
	}
	s := &Set{names: names}
	for _, name := range names {
		for _, a := range algorithms {
			if a.name == name {
				s.hashes = append(s.hashes, a.new())
			}
		}
	}
	if len(s.hashes) > 1 {
		s.start()
	}
	return s, nil
}

func (s *Set) start() {
	s.free = make(chan *buffer, bufCount)
	for range bufCount {
		s.free <- &buffer{b: make([]byte, 0, bufSize)}
	}
	s.lanes = make([]chan piece, len(s.hashes))
	for i, h := range s.hashes {
		// A lane holds at most every buffer plus a zero run, so a
		// dispatch only waits when the slowest hasher is that far behind.
		lane := make(chan piece, bufCount+1)
		s.lanes[i] = lane
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for p := range lane {
				if p.buf == nil {
					writeZeros(h, p.zeros)
					continue
				}
				h.Write(p.buf.b)
				if p.buf.refs.Add(-1) == 0 {
					s.free <- p.buf
				}
			}
		}()
	}
}

// Names returns the algorithms of s in report order.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// Size returns how many bytes have been fed to s, zeros included.
func (s *Set) Size() int64 { return s.n }

// Write feeds p to every hash. It never retains p and only fails after
// Close.
func (s *Set) Write(p []byte) (int, error) {
	if s.sums != nil {
		return 0, ErrClosed
	}
	s.n += int64(len(p))
	if s.lanes == nil {
		s.hashes[0].Write(p)
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		if s.cur == nil {
			s.cur = <-s.free
			s.cur.b = s.cur.b[:0]
		}
		k := copy(s.cur.b[len(s.cur.b):cap(s.cur.b)], p)
		s.cur.b = s.cur.b[:len(s.cur.b)+k]
		p = p[k:]
		if len(s.cur.b) == cap(s.cur.b) {
			s.dispatch()
		}
	}
	return n, nil
}

// WriteZeros feeds n zero bytes to every hash without allocating them, as
// a hole in a sparse image reads.
func (s *Set) WriteZeros(n int64) error {
	if s.sums != nil {
		return ErrClosed
	}
	if n < 0 {
		return fmt.Errorf("digest: %d zero bytes", n)
	}
	if n == 0 {
		return nil
	}
	s.n += n
	if s.lanes == nil {
		writeZeros(s.hashes[0], n)
		return nil
	}
	s.dispatch()
	for _, lane := range s.lanes {
		lane <- piece{zeros: n}
	}
	return nil
}

func writeZeros(h hash.Hash, n int64) {
	for n > 0 {
		k := int64(len(zeros))
		if n < k {
			k = n
		}
		h.Write(zeros[:k])
		n -= k
	}
}

// dispatch hands the current buffer, if it holds anything, to every lane.
func (s *Set) dispatch() {
	if s.cur == nil {
		return
	}
	if len(s.cur.b) == 0 {
		s.free <- s.cur
		s.cur = nil
		return
	}
	s.cur.refs.Store(int32(len(s.lanes)))
	for _, lane := range s.lanes {
		lane <- piece{buf: s.cur}
	}
	s.cur = nil
}

// Close finishes every hash and stops the goroutines. It is safe to call
// more than once.
func (s *Set) Close() error {
	if s.sums != nil {
		return nil
	}
	if s.lanes != nil {
		s.dispatch()
		for _, lane := range s.lanes {
			close(lane)
		}
		s.wg.Wait()
	}
	s.sums = make(map[string]string, len(s.names))
	for i, name := range s.names {
		s.sums[name] = hex.EncodeToString(s.hashes[i].Sum(nil))
	}
	return nil
}

// Sums returns each algorithm's digest in lowercase hex, keyed by name. It
// closes s first if it is still open.
func (s *Set) Sums() map[string]string {
	s.Close()
	out := make(map[string]string, len(s.sums))
	for k, v := range s.sums {
		out[k] = v
	}
	return out
}
