package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// A base's blocks as bytes: the base of an incremental acquisition in a
// bucket (evidence in S3), or a base directory whose blocks go into
// evidence in a bucket, is read block by block, each object's bytes
// checked against the base's manifest entry before they are stored again
// (there is no hard link between a bucket and a directory, nor a
// write-once copy inside S3 that keeps If-None-Match: see
// internal/s3store/DESIGN-S3.md, "Incremental --base").

// OpenBaseBucket opens the evidence in b as the base of an incremental
// acquisition, as OpenBase opens a directory: its manifest must be
// there, agree with evidence.json, name every block where it belongs and
// match its .sha256 object. Block objects are not read.
func OpenBaseBucket(ctx context.Context, b bucket.Bucket) (*Base, error) {
	ev, err := OpenBucket(ctx, b)
	if err != nil {
		return nil, err
	}
	if ev.Meta.Imported() {
		return nil, &ImportedBaseError{Dir: ev.Dir, Source: ev.Meta.Source}
	}
	base := &Base{Evidence: ev}
	sum, err := base.entries(func(manifest.Entry) error { base.Blocks++; return nil })
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", ev.Dir, err)
	}
	base.ManifestSHA256 = sum
	return base, nil
}

// InBucket reports whether the base is evidence in a bucket.
func (b *Base) InBucket() bool { return b.Bucket != nil }

// Path is the file of entry e in a base directory.
func (b *Base) Path(e manifest.Entry) string {
	return filepath.Join(b.Dir, filepath.FromSlash(e.Name))
}

// ReadStored reads the stored bytes of the base's block e, checked
// against e's size and stored SHA-256: a block that is missing or does
// not match (tampered with, truncated, grown) is a *BadSourceError, to
// be fetched instead; any other error is the request's or the disk's.
func (b *Base) ReadStored(ctx context.Context, e manifest.Entry) ([]byte, error) {
	var data []byte
	var err error
	if b.Bucket != nil {
		data, err = GetRemoteStored(ctx, b.Bucket, e)
		if err != nil && strings.HasSuffix(err.Error(), "refused") {
			err = &Mismatch{Index: e.Index, Name: e.Name, What: err.Error()}
		}
	} else {
		var buf bytes.Buffer
		err = b.Evidence.ReadStored(e, &buf)
		data = buf.Bytes()
	}
	var m *Mismatch
	if errors.As(err, &m) {
		return nil, &BadSourceError{Index: e.Index, Path: strings.TrimSuffix(b.Dir, "/") + "/" + e.Name, What: m.What + " (the base's manifest entry)"}
	}
	if err != nil {
		return nil, err
	}
	return data, nil
}

// checkReused checks data against a base's entry e before it is stored
// as block e.Index of evidence of the same volume in the same form.
func checkReused(e manifest.Entry, data []byte, slots int64, sameForm bool, form string) (block.Sum, error) {
	if e.Index < 0 || e.Index >= slots {
		return block.Sum{}, fmt.Errorf("reusing block %d: beyond the volume", e.Index)
	}
	if !sameForm {
		return block.Sum{}, fmt.Errorf("reusing block %d: stored as %s/%s, this evidence stores %s", e.Index, e.Codec, e.Encryption, form)
	}
	if _, err := e.Sum(); err != nil {
		return block.Sum{}, fmt.Errorf("reusing block %d: %w", e.Index, err)
	}
	stored := block.Sum(sha256.Sum256(data))
	if int64(len(data)) != e.Size || stored.Hex() != e.StoredSHA256 {
		return block.Sum{}, &BadSourceError{Index: e.Index, Path: e.Name, What: fmt.Sprintf("%d bytes with sha256 %s, the base's manifest says %d bytes with sha256 %s", len(data), stored.Hex(), e.Size, e.StoredSHA256)}
	}
	return stored, nil
}

// ReuseStored stores data, the stored bytes of a base's block e (same
// form), as block e.Index: checked against e's size and stored SHA-256
// (a *BadSourceError if they differ, and nothing is stored), written to
// a temporary name, synced and renamed, then journaled like Put.
func (s *Store) ReuseStored(e manifest.Entry, data []byte) error {
	c, enc := s.form.Fields()
	if _, err := checkReused(e, data, int64(len(s.done))*64, s.sameForm(e), c+"/"+enc); err != nil {
		return err
	}
	sum, _ := e.Sum()
	leaf := LeafDir(e.Index)
	if err := s.ensureLeaf(leaf); err != nil {
		return err
	}
	rel := s.Name(e.Index, sum)
	if err := s.copyFrom(rel, bytes.NewReader(data), e.Name, e); err != nil {
		return fmt.Errorf("reusing block %d: %w", e.Index, err)
	}
	e.Name = filepath.ToSlash(rel)
	return s.record(leaf, e)
}

// ReuseStored stores data, the stored bytes of a base's block e (same
// form), as block e.Index of the evidence in the bucket: checked against
// e's size and stored SHA-256 first (a *BadSourceError if they differ,
// and nothing is written), then PUT once under its final key with that
// SHA-256, which the store checks on arrival, and journaled like Put.
func (r *Remote) ReuseStored(e manifest.Entry, data []byte) error {
	r.mu.Lock()
	ended := r.ended
	r.mu.Unlock()
	if ended {
		return errors.New("reusing a block: the evidence is closed")
	}
	c, enc := r.form.Fields()
	stored, err := checkReused(e, data, block.Slots(r.meta.VolumeSizeGiB), r.sameForm(e), c+"/"+enc)
	if err != nil {
		return err
	}
	sum, _ := e.Sum()
	e.Name = r.Name(e.Index, sum)
	return r.putEntry(e, data, stored, "reusing")
}
