package ewf

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/image/window"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// MetaSegment is the metadata name (x-amz-meta-ebsimager-segment on S3)
// of an E01 segment object's number: "1", "2", … (how many there will be
// is not known when an upload starts).
const MetaSegment = "ebsimager-segment"

// uploader hands each finished segment file to an object store.
type uploader struct {
	ctx  context.Context
	objs bucket.LargeObjects
	meta map[string]string
	// names and objects are the segments handed over so far, in order.
	names   []string
	objects []bucket.LargeObject
}

// CreateObjectSink starts the E01 of mediaSize bytes named name (no
// extension) in objs, as a sink (see CreateSink): its segments are the
// objects name.E01, name.E02, …, each created with meta. The writer
// patches a section's descriptor once the section is done, so a segment
// is written to a temporary file in scratch first (at most one segment,
// o.SegmentSize bytes, at a time), then sent as a large object from it
// and removed. No segment exists under its name until Close, which
// completes them in order once all are sent, and then puts name.md5,
// name.sha1 and name.sha256 beside them (see WriteMediaHashes). A failure
// aborts every upload. o.Replace is refused: nothing in a bucket is
// replaced.
func CreateObjectSink(ctx context.Context, objs bucket.LargeObjects, scratch, name string, mediaSize int64, o Options, meta map[string]string) (*window.Window, error) {
	if o.Replace {
		return nil, errors.New("an image in an object store is never replaced: Replace is refused")
	}
	if filepath.Base(name) != name || name == "." || name == ".." {
		return nil, fmt.Errorf("image name %q: want a name without a directory", name)
	}
	first, _ := SegmentName(name, 1)
	if err := checkObjectsFree(ctx, objs, name, []string{first}); err != nil {
		return nil, err
	}
	base := filepath.Join(scratch, name)
	w, err := Create(base, mediaSize, o)
	if err != nil {
		return nil, err
	}
	w.up = &uploader{ctx: ctx, objs: objs, meta: meta}
	return window.New(&objectStream{name: name, w: w, objs: objs, ctx: ctx}, window.DefaultSize), nil
}

// checkObjectsFree refuses segments, or a checksum file of name, that
// are already objects in objs.
func checkObjectsFree(ctx context.Context, objs bucket.Bucket, name string, segments []string) error {
	all := append([]string(nil), segments...)
	for _, alg := range digest.Algorithms() {
		all = append(all, digest.FileName(name, alg))
	}
	if err := bucket.CheckFree(ctx, objs, all...); err != nil {
		return fmt.Errorf("creating %s.E01: %w", name, err)
	}
	return nil
}

// handoff sends the finished, closed segment s as its object and removes
// the local file.
func (u *uploader) handoff(s *segFile) error {
	f, err := os.Open(s.tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	meta := map[string]string{MetaSegment: strconv.Itoa(s.number)}
	for k, v := range u.meta {
		meta[k] = v
	}
	name := filepath.Base(s.final)
	o, err := u.objs.CreateLarge(u.ctx, name, s.pos, meta)
	if err != nil {
		return err
	}
	u.names, u.objects = append(u.names, name), append(u.objects, o)
	if _, err := io.Copy(o, f); err != nil {
		return fmt.Errorf("sending %s: %w", name, err)
	}
	if err := o.Flush(); err != nil {
		return err
	}
	return os.Remove(s.tmp)
}

// commit completes every segment's object in order, once none of their
// names is taken.
func (u *uploader) commit() error {
	for _, n := range u.names {
		if _, err := u.objs.Head(u.ctx, n); err == nil {
			u.abort()
			return fmt.Errorf("completing %s%s: %w", u.objs.String(), n, bucket.ErrExists)
		} else if !errors.Is(err, bucket.ErrNotFound) {
			u.abort()
			return err
		}
	}
	for i, o := range u.objects {
		if err := o.Commit(); err != nil {
			for _, later := range u.objects[i+1:] {
				later.Abort()
			}
			if i > 0 {
				err = fmt.Errorf("%w (the segments before it, %s to %s, are complete: an object store cannot take them back)", err, u.names[0], u.names[i-1])
			}
			return err
		}
	}
	u.objects = nil
	return nil
}

// abort drops every upload not completed.
func (u *uploader) abort() error {
	var errs []error
	for _, o := range u.objects {
		errs = append(errs, o.Abort())
	}
	u.objects = nil
	return errors.Join(errs...)
}

// objectStream is a Writer whose segments go to objects, with its
// checksum files, as a window.Writer.
type objectStream struct {
	ctx  context.Context
	name string
	w    *Writer
	objs bucket.LargeObjects
}

func (s *objectStream) WriteBlock(index int64, p []byte) error { return s.w.WriteBlock(index, p) }

func (s *objectStream) Close() (sink.Result, error) {
	res, err := s.w.CloseBlocks()
	if err != nil {
		s.w.Abort()
		return sink.Result{}, err
	}
	sums := mediaSums(res)
	var files []string
	for _, alg := range digest.Algorithms() {
		name := digest.FileName(s.name, alg)
		body, err := digest.Marshal(mediaHashEntries(s.name, res, alg, sums[alg])...)
		if err == nil {
			err = s.objs.PutNew(s.ctx, name, body, sha256.Sum256(body), nil)
		}
		if err != nil {
			return sink.Result{}, fmt.Errorf("the image %s.E01 is complete, but its checksum file %s is not: %w", s.name, name, err)
		}
		files = append(files, name)
	}
	return sink.Result{Files: res.Segments, HashFiles: files, Size: res.MediaSize, Hashes: sums}, nil
}

func (s *objectStream) Abort() error { return s.w.Abort() }
