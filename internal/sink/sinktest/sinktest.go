// Package sinktest is the conformance suite every sink.Sink passes, as
// restic's backends share backend/test.Suite: blocks put in ascending
// order and out of order from concurrent goroutines (announced first when
// the sink asks), holes, resume where the sink resumes, a Result whose
// hashes equal an independent MD5/SHA-1/SHA-256 of the expected volume,
// Abort that leaves nothing under a final name, Put after Close or Abort
// that fails, and cancellation that never deadlocks.
package sinktest

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// Target is one sink implementation under test.
type Target struct {
	// Size is the volume's size in bytes, a multiple of block.Size (an
	// evidence directory's volume is whole GiB); 0 means 16 blocks.
	Size int64
	// Open creates a new sink of size bytes whose files go in dir.
	Open func(t *testing.T, dir string, size int64) sink.Sink
	// Reopen, for a sink whose Caps say it resumes, opens the sink in
	// dir again after Abort.
	Reopen func(t *testing.T, dir string, size int64) sink.Sink
	// Read opens what a closed sink wrote in dir, independently of the
	// sink, as the volume it holds.
	Read func(t *testing.T, dir string, res sink.Result) io.ReaderAt
	// Finals returns the final names Close puts in dir: none may exist
	// after Abort, or after a failed Close.
	Finals func(dir string) []string
	// Hashes are the algorithms the Result carries; nil for none.
	Hashes []string
}

func (tg Target) size() int64 {
	if tg.Size > 0 {
		return tg.Size
	}
	return 16 * block.Size
}

// Run runs the suite against tg.
func Run(t *testing.T, tg Target) {
	t.Run("Ascending", func(t *testing.T) { testFill(t, tg, false) })
	t.Run("Shuffled", func(t *testing.T) { testFill(t, tg, true) })
	t.Run("Resume", func(t *testing.T) { testResume(t, tg) })
	t.Run("Abort", func(t *testing.T) { testAbort(t, tg) })
	t.Run("PutAfterEnd", func(t *testing.T) { testPutAfterEnd(t, tg) })
	t.Run("Announce", func(t *testing.T) { testAnnounce(t, tg) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, tg) })
}

// volume is the expected content: the blocks put, holes elsewhere.
type volume struct {
	size   int64
	blocks map[int64][]byte
}

// newVolume makes a volume of size bytes with data blocks at the start,
// the middle and the end, one block of zeros put (a hole all the same),
// and holes between.
func newVolume(size int64, seed uint64) *volume {
	n := size / block.Size
	r := rand.New(rand.NewPCG(seed, 1))
	v := &volume{size: size, blocks: map[int64][]byte{}}
	for _, i := range []int64{0, 2, 3, n / 2, n/2 + 1, n - 1} {
		p := make([]byte, block.Size)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		v.blocks[i] = p
	}
	v.blocks[n-3] = make([]byte, block.Size) // put, but all zeros
	return v
}

// indexes returns the volume's put blocks in ascending order.
func (v *volume) indexes() []int64 {
	var idx []int64
	for i := range v.blocks {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return idx
}

func (v *volume) block(i int64) block.Block {
	return block.Block{Index: i, Data: v.blocks[i], Sum: block.SumOf(v.blocks[i])}
}

// sums hashes the expected volume with the standard library, block by
// block, holes as zeros.
func (v *volume) sums() map[string]string {
	hs := map[string]hash.Hash{"md5": md5.New(), "sha1": sha1.New(), "sha256": sha256.New()}
	zero := make([]byte, block.Size)
	for i := int64(0); i < v.size/block.Size; i++ {
		p, ok := v.blocks[i]
		if !ok {
			p = zero
		}
		for _, h := range hs {
			h.Write(p)
		}
	}
	out := map[string]string{}
	for alg, h := range hs {
		out[alg] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// check compares r, the volume as written, with v, block by block.
func (v *volume) check(t *testing.T, r io.ReaderAt) {
	t.Helper()
	zero := make([]byte, block.Size)
	got := make([]byte, block.Size)
	for i := int64(0); i < v.size/block.Size; i++ {
		if _, err := r.ReadAt(got, i*block.Size); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("reading block %d back: %v", i, err)
		}
		want, ok := v.blocks[i]
		if !ok {
			want = zero
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("block %d reads back other bytes than were put", i)
		}
	}
	var past [1]byte
	if n, err := r.ReadAt(past[:], v.size); n != 0 || err == nil {
		t.Fatalf("read past the volume's end: %d bytes, %v", n, err)
	}
}

// put announces (when the sink asks) and puts idx: in order from one
// goroutine, or shuffled from several.
func put(t *testing.T, s sink.Sink, v *volume, idx []int64, shuffled bool) {
	t.Helper()
	caps := s.Caps()
	if caps.Announce != nil {
		for _, i := range idx {
			if err := caps.Announce(i); err != nil {
				t.Fatalf("announcing block %d: %v", i, err)
			}
		}
	}
	if !shuffled {
		for _, i := range idx {
			if err := s.Put(v.block(i)); err != nil {
				t.Fatalf("putting block %d: %v", i, err)
			}
		}
		return
	}
	order := slices.Clone(idx)
	rand.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	errs := make(chan error, len(order))
	var wg sync.WaitGroup
	for _, i := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Put(v.block(i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("putting a block: %v", err)
		}
	}
}

// closeAndCheck closes s and checks its Result and the volume it wrote.
func closeAndCheck(t *testing.T, tg Target, s sink.Sink, dir string, v *volume, blocks int64) {
	t.Helper()
	res, err := s.Close()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if res.Size != v.size || res.Blocks != blocks {
		t.Fatalf("Close: size %d and %d blocks, want %d and %d", res.Size, res.Blocks, v.size, blocks)
	}
	var want map[string]string
	if len(tg.Hashes) > 0 {
		want = v.sums()
	}
	for _, alg := range tg.Hashes {
		if res.Hashes[alg] != want[alg] {
			t.Fatalf("Close: %s %s, want %s (computed independently)", alg, res.Hashes[alg], want[alg])
		}
	}
	if len(res.Hashes) != len(tg.Hashes) {
		t.Fatalf("Close: hashes %v, want exactly %v", res.Hashes, tg.Hashes)
	}
	for _, f := range append(slices.Clone(res.Files), res.HashFiles...) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("Close named %s: %v", f, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s has mode %v, want no access for group or others", f, fi.Mode().Perm())
		}
	}
	v.check(t, tg.Read(t, dir, res))
}

func testFill(t *testing.T, tg Target, shuffled bool) {
	dir := t.TempDir()
	v := newVolume(tg.size(), 7)
	s := tg.Open(t, dir, v.size)
	put(t, s, v, v.indexes(), shuffled)
	closeAndCheck(t, tg, s, dir, v, int64(len(v.blocks)))
}

func testResume(t *testing.T, tg Target) {
	dir := t.TempDir()
	v := newVolume(tg.size(), 11)
	s := tg.Open(t, dir, v.size)
	if !s.Caps().Resumes {
		for _, i := range v.indexes() {
			if s.Has(i) {
				t.Fatalf("a sink that does not resume has block %d", i)
			}
		}
		if err := s.Abort(); err != nil {
			t.Fatalf("Abort: %v", err)
		}
		t.Log("the sink does not resume: checked that Has holds no block")
		return
	}
	idx := v.indexes()
	first, rest := idx[:len(idx)/2], idx[len(idx)/2:]
	put(t, s, v, first, true)
	if err := s.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	s = tg.Reopen(t, dir, v.size)
	for _, i := range first {
		if !s.Has(i) {
			t.Fatalf("resumed sink lacks block %d, put before Abort", i)
		}
	}
	for _, i := range rest {
		if s.Has(i) {
			t.Fatalf("resumed sink has block %d, never put", i)
		}
	}
	put(t, s, v, rest, true)
	closeAndCheck(t, tg, s, dir, v, int64(len(idx)))
}

func testAbort(t *testing.T, tg Target) {
	dir := t.TempDir()
	v := newVolume(tg.size(), 13)
	s := tg.Open(t, dir, v.size)
	idx := v.indexes()
	put(t, s, v, idx[:len(idx)-1], false) // the last never comes
	if err := s.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	checkNoFinals(t, tg, dir, "Abort")
	if !s.Caps().Resumes {
		left, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Fatalf("after Abort, %s is left in the directory", left[0].Name())
		}
	}
	if err := s.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
}

func checkNoFinals(t *testing.T, tg Target, dir, after string) {
	t.Helper()
	names := tg.Finals(dir)
	if len(names) == 0 {
		t.Fatal("the target names no final file")
	}
	for _, name := range names {
		if _, err := os.Lstat(name); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after %s, %s exists (%v)", after, name, err)
		}
	}
}

func testPutAfterEnd(t *testing.T, tg Target) {
	v := newVolume(tg.size(), 17)
	idx := v.indexes()
	for _, end := range []string{"Close", "Abort"} {
		dir := t.TempDir()
		s := tg.Open(t, dir, v.size)
		if end == "Close" {
			put(t, s, v, idx, false)
			if _, err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		} else if err := s.Abort(); err != nil {
			t.Fatalf("Abort: %v", err)
		}
		if a := s.Caps().Announce; a != nil {
			a(idx[0]) // may fail: Put must fail either way
		}
		if err := s.Put(v.block(idx[0])); err == nil {
			t.Fatalf("Put after %s succeeded", end)
		}
		if end == "Close" {
			if _, err := s.Close(); err == nil {
				t.Fatal("a second Close succeeded")
			}
		}
	}
}

// testAnnounce: a sink that asks for announcements refuses them out of
// order and refuses a block never announced, and Close fails while an
// announced block is missing, leaving nothing under a final name.
func testAnnounce(t *testing.T, tg Target) {
	dir := t.TempDir()
	v := newVolume(tg.size(), 19)
	s := tg.Open(t, dir, v.size)
	announce := s.Caps().Announce
	if announce == nil {
		if err := s.Abort(); err != nil {
			t.Fatalf("Abort: %v", err)
		}
		t.Log("the sink takes blocks without announcement (the Shuffled case puts them so)")
		return
	}
	idx := v.indexes()
	if err := announce(idx[1]); err != nil {
		t.Fatal(err)
	}
	if err := announce(idx[0]); err == nil {
		t.Fatalf("announcing block %d after %d succeeded", idx[0], idx[1])
	}
	s.Abort()

	dir = t.TempDir()
	s = tg.Open(t, dir, v.size)
	announce = s.Caps().Announce
	for _, i := range idx[:2] {
		if err := announce(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(v.block(idx[2])); err == nil {
		t.Fatalf("Put of block %d, never announced, succeeded", idx[2])
	}
	if err := s.Put(v.block(idx[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Close(); err == nil {
		t.Fatalf("Close succeeded with announced block %d never put", idx[1])
	}
	checkNoFinals(t, tg, dir, "a failed Close")
	s.Abort()
}

// testCancel stops a feeding midway: the block at the head never comes,
// so Puts behind it may wait (a full reordering window). Cancel, when
// the sink declares it, wakes them, and Abort returns; nothing waits
// forever.
func testCancel(t *testing.T, tg Target) {
	dir := t.TempDir()
	const n = 300 // more than a reordering window holds
	size := int64(n) * block.Size
	if tg.Size > size {
		size = tg.Size
	}
	s := tg.Open(t, dir, size)
	caps := s.Caps()
	data := bytes.Repeat([]byte{1}, block.Size)
	if caps.Announce != nil {
		for i := int64(0); i < n; i++ {
			if err := caps.Announce(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	puts := int64(n)
	if caps.Cancel == nil {
		puts = 20 // no Put waits: a few, concurrent with Abort, suffice
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := int64(1); i < puts; i++ { // never block 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Put(block.Block{Index: i, Data: data, Sum: block.SumOf(data)})
		}()
	}
	if caps.Cancel != nil {
		time.Sleep(50 * time.Millisecond) // let some Puts wait; the test holds without it too
		caps.Cancel()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Puts still waiting a minute after Cancel: deadlock")
	}
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	if caps.Cancel != nil && failed == 0 {
		t.Fatalf("no Put failed after Cancel, though block 0 never came and %d blocks were put", n-1)
	}
	if err := s.Abort(); err != nil {
		t.Fatalf("Abort after Cancel: %v", err)
	}
}
