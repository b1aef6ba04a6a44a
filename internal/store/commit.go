package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Group commit. Put writes its block to a temporary name beside the
// final one and queues it; a Put that leads a batch commits it with the
// blocks queued meanwhile: it makes their bytes durable together (one
// syncfs, or the writers' own fsyncs and one directory sync per leaf),
// then appends their journal lines (synced at once for sealed forms; see
// journalBatch), then renames them into place. Every Put in the batch
// returns only once its block is durable and journaled. Batches are independent (a journal line stands for its
// block alone), so two may commit at once. The durability argument is in
// DESIGN.md.
const (
	// batchMax bounds a batch: 64 blocks of 512 KiB are 32 MiB to write
	// back per sync.
	batchMax = 64
	// batchWait is how long a leader waits for Puts that are still
	// writing their block, to commit them in the same batch. A leader
	// with no such Put commits at once.
	batchWait = time.Millisecond
	// leaders is how many batches may commit at once: while one waits
	// for its sync, the next is journaled and renamed, or synced too.
	leaders = 2
)

// pending is a block written to its temporary name, waiting for its batch.
type pending struct {
	index      int64
	leaf       string
	tmp, final string // absolute
	line       []byte // its journal line, newline included
	done       chan outcome
}

// outcome is what a queued Put hears: its batch's result, or that it
// leads the next batch.
type outcome struct {
	err  error
	lead bool
}

type committer struct {
	mu      sync.Mutex
	cond    sync.Cond
	queue   []*pending // waiting Puts, none of them leading
	active  int        // leaders committing
	writing int        // Puts writing their block, not yet queued
	err     error      // the first failure: every later Put fails with it
}

func (c *committer) init() { c.cond.L = &c.mu }

// begin counts a Put that starts writing its block; end uncounts one
// that gave up before queueing.
func (c *committer) begin() {
	c.mu.Lock()
	c.writing++
	c.mu.Unlock()
}

func (c *committer) end() {
	c.mu.Lock()
	c.writing--
	c.cond.Broadcast()
	c.mu.Unlock()
}

// failed returns the committer's sticky error.
func (c *committer) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// commit queues p (whose writer called begin) and returns once its batch
// is committed, or failed. Up to leaders batches commit at once: a Put
// that finds fewer leads its own batch, the others wait in the queue to
// be taken into a batch, or to be handed the lead when one ends.
func (s *Store) commit(p *pending) error {
	c := &s.commits
	p.done = make(chan outcome, 1)
	c.mu.Lock()
	c.writing--
	c.cond.Broadcast()
	if err := c.err; err != nil {
		c.mu.Unlock()
		s.fs.Remove(p.tmp)
		return err
	}
	if c.active < leaders {
		c.active++
	} else {
		c.queue = append(c.queue, p)
		c.mu.Unlock()
		if o := <-p.done; !o.lead {
			return o.err
		}
		c.mu.Lock()
	}
	// p leads a batch: itself, the queue's first, and the Puts still
	// writing if they come within batchWait.
	if len(c.queue)+1 < batchMax && c.writing > 0 {
		expired := false
		t := time.AfterFunc(batchWait, func() {
			c.mu.Lock()
			expired = true
			c.cond.Broadcast()
			c.mu.Unlock()
		})
		for !expired && len(c.queue)+1 < batchMax && c.writing > 0 {
			c.cond.Wait()
		}
		t.Stop()
	}
	n := min(len(c.queue), batchMax-1)
	batch := append([]*pending{p}, c.queue[:n]...)
	c.queue = append(c.queue[:0], c.queue[n:]...)
	err := c.err
	c.mu.Unlock()

	if err == nil {
		err = s.commitBatch(batch)
	} else {
		for _, q := range batch {
			s.fs.Remove(q.tmp)
		}
	}

	c.mu.Lock()
	if err != nil && c.err == nil {
		c.err = err
	}
	c.active--
	for c.active < leaders && len(c.queue) > 0 {
		q := c.queue[0]
		c.queue = c.queue[1:]
		c.active++
		q.done <- outcome{lead: true}
	}
	c.mu.Unlock()
	for _, q := range batch[1:] {
		q.done <- outcome{err: err}
	}
	return err
}

// commitBatch makes a batch durable, in this order: the blocks' bytes
// and temporary names; then their journal lines; then their final names.
// A failure removes the temporary files not yet renamed: a journal line
// that names no file is ignored by the next run, which fetches the block
// again.
func (s *Store) commitBatch(b []*pending) error {
	renamed := 0
	fail := func(err error) error {
		for _, p := range b[renamed:] {
			s.fs.Remove(p.tmp)
		}
		return err
	}
	if s.syncAll {
		if err := s.fs.SyncAll(); err != nil {
			return fail(fmt.Errorf("making blocks %d to %d durable: %w", b[0].index, b[len(b)-1].index, err))
		}
	} else {
		// Each writer fsynced its file; the names need their directories.
		seen := map[string]bool{}
		for _, p := range b {
			if !seen[p.leaf] {
				seen[p.leaf] = true
				if err := s.fs.SyncDir(filepath.Join(s.dir, p.leaf)); err != nil {
					return fail(fmt.Errorf("making blocks %d to %d durable: %w", b[0].index, b[len(b)-1].index, err))
				}
			}
		}
	}
	if err := s.journalBatch(b); err != nil {
		return fail(err)
	}
	for i, p := range b {
		if err := s.fs.Rename(p.tmp, p.final); err != nil {
			return fail(fmt.Errorf("storing block %d: %w", p.index, err))
		}
		renamed = i + 1
	}
	s.mu.Lock()
	for _, p := range b {
		s.mark(p.index)
		s.unsynced[p.leaf] = true
	}
	s.mu.Unlock()
	return nil
}

// journalBatch appends the batch's lines to their leaves' journals, one
// write per leaf, and, for sealed forms, syncs the journals before the
// blocks take their final names: a sealed file that a crash left under
// its final name without its line could not be checked, and would be set
// aside. A plain file needs no line (its name holds its SHA-256), so its
// journal is synced by the next batch's syncfs, or by Close. The syncs
// run outside s.mu, so that Puts and Has do not wait for them.
func (s *Store) journalBatch(b []*pending) error {
	var toSync []*journal
	err := func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for start := 0; start < len(b); {
			leaf := b[start].leaf
			var buf []byte
			end := start
			for ; end < len(b) && b[end].leaf == leaf; end++ {
				buf = append(buf, b[end].line...)
			}
			j, err := s.journal(leaf)
			if err != nil {
				return err
			}
			if _, err := j.f.Write(buf); err != nil {
				return fmt.Errorf("journaling blocks %d to %d: %w", b[start].index, b[end-1].index, err)
			}
			if !s.plain() && !slices.Contains(toSync, j) {
				toSync = append(toSync, j)
			}
			start = end
		}
		return nil
	}()
	if err != nil {
		return err
	}
	for _, j := range toSync {
		// A journal closed meanwhile (see journal) was synced first.
		if err := j.f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("journaling blocks %d to %d: %w", b[0].index, b[len(b)-1].index, err)
		}
	}
	return nil
}
