package raw

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/image/window"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// MetaSegment is the metadata name (x-amz-meta-ebsimager-segment on S3)
// that says which segment of how many an object of an image is: "2/5".
const MetaSegment = "ebsimager-segment"

// zeroChunk is read, never written: the bytes uploaded for a hole.
var zeroChunk = make([]byte, 1<<20)

// ObjectWriter writes the ordered blocks of a volume as a raw image in an
// object store: one large object per segment (name, or name.001,
// name.002, … with Options.Split), every byte of it, holes as zeros (an
// object cannot be sparse), hashed as it goes. No object exists under
// its name until Close: each segment's object is flushed when full and
// completed only once every segment is sent, then the checksum files
// (name.md5, name.sha1, name.sha256, as Create writes them) are put
// beside them. A failure aborts every upload. It is not safe for
// concurrent use.
type ObjectWriter struct {
	ctx  context.Context
	objs bucket.LargeObjects
	l    layout
	sums *digest.Set // nil when no hash was asked for
	meta map[string]string
	segs []bucket.LargeObject // started so far, in order
	pos  int64                // image bytes written so far
	err  error
	done bool
}

// CreateObjects starts the raw image of size bytes under name in objs
// (see ObjectWriter), each object created with meta and its segment
// number (MetaSegment). o.Force is refused: nothing in a bucket is
// replaced. Every name the image and its checksum files take is checked
// first: one already there is an error wrapping bucket.ErrExists, before
// anything is sent.
func CreateObjects(ctx context.Context, objs bucket.LargeObjects, name string, size int64, o Options, meta map[string]string) (*ObjectWriter, error) {
	if o.Force {
		return nil, errors.New("an image in an object store is never replaced: Force is refused")
	}
	l, err := newLayout(name, size, o.Split)
	if err != nil {
		return nil, fmt.Errorf("creating image %s: %w", name, err)
	}
	if err := checkFree(ctx, objs, l.names, name); err != nil {
		return nil, err
	}
	w := &ObjectWriter{ctx: ctx, objs: objs, l: l, meta: meta}
	if len(o.Hashes) > 0 {
		if w.sums, err = digest.New(o.Hashes...); err != nil {
			return nil, fmt.Errorf("creating image %s: %w", name, err)
		}
	}
	return w, nil
}

// checkFree refuses names, or a checksum file of base, that are already
// objects in objs.
func checkFree(ctx context.Context, objs bucket.Bucket, names []string, base string) error {
	all := append([]string(nil), names...)
	for _, alg := range digest.Algorithms() {
		all = append(all, digest.FileName(base, alg))
	}
	if err := bucket.CheckFree(ctx, objs, all...); err != nil {
		return fmt.Errorf("creating image %s: %w", base, err)
	}
	return nil
}

// CreateObjectSink is CreateObjects behind a reordering window of
// window.DefaultSize blocks, as CreateSink.
func CreateObjectSink(ctx context.Context, objs bucket.LargeObjects, name string, size int64, o Options, meta map[string]string) (*window.Window, error) {
	w, err := CreateObjects(ctx, objs, name, size, o, meta)
	if err != nil {
		return nil, err
	}
	return window.New(w, window.DefaultSize), nil
}

// WriteBlock writes the block at index, and zeros for every byte skipped
// since the last one (see Writer.WriteBlock).
func (w *ObjectWriter) WriteBlock(index int64, p []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return errors.New("writing block to a closed image")
	}
	off, err := blockOffset(w.l.size, index, p)
	if err != nil {
		return err
	}
	if off < w.pos {
		return fmt.Errorf("block %d out of order: image already written to byte %d", index, w.pos)
	}
	if err := w.zeros(off - w.pos); err != nil {
		return err
	}
	if err := w.write(p); err != nil {
		w.err = fmt.Errorf("writing block %d: %w", index, err)
		return w.err
	}
	return nil
}

// zeros writes n zero bytes.
func (w *ObjectWriter) zeros(n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeroChunk)))
		if err := w.write(zeroChunk[:k]); err != nil {
			w.err = fmt.Errorf("writing zeros at byte %d: %w", w.pos, err)
			return w.err
		}
		n -= k
	}
	return nil
}

// write sends p at the image's end, across segments, and hashes it.
func (w *ObjectWriter) write(p []byte) error {
	if w.sums != nil {
		if _, err := w.sums.Write(p); err != nil {
			return err
		}
	}
	for len(p) > 0 {
		i := 0
		if w.l.split > 0 {
			i = int(w.pos / w.l.split)
		}
		if i == len(w.segs) {
			if err := w.start(i); err != nil {
				return err
			}
		}
		start, n := w.l.bounds(i)
		k := min(int64(len(p)), start+n-w.pos)
		if _, err := w.segs[i].Write(p[:k]); err != nil {
			return err
		}
		p, w.pos = p[k:], w.pos+k
		if w.pos == start+n {
			if err := w.segs[i].Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// start begins segment i's object; the segment before it is flushed.
func (w *ObjectWriter) start(i int) error {
	meta := map[string]string{MetaSegment: strconv.Itoa(i+1) + "/" + strconv.Itoa(len(w.l.names))}
	for k, v := range w.meta {
		meta[k] = v
	}
	_, n := w.l.bounds(i)
	o, err := w.objs.CreateLarge(w.ctx, w.l.names[i], n, meta)
	if err != nil {
		return err
	}
	w.segs = append(w.segs, o)
	return nil
}

// Close writes the zeros up to the image's size, completes every
// segment's object in order, and then puts the checksum files. A failure
// before the first segment is completed leaves nothing in the store; one
// while completing them leaves the segments completed so far (an object
// store cannot take them back), which the error names.
func (w *ObjectWriter) Close() (sink.Result, error) {
	if w.done {
		return sink.Result{}, errors.New("image already closed")
	}
	if w.err == nil && w.l.size == 0 {
		w.err = w.start(0)
	}
	if w.err == nil {
		w.zeros(w.l.size - w.pos)
	}
	if w.err != nil {
		w.Abort()
		return sink.Result{}, w.err
	}
	w.done = true
	var sums map[string]string
	if w.sums != nil {
		sums = w.sums.Sums()
	}
	for i, o := range w.segs {
		if err := o.Commit(); err != nil {
			for _, later := range w.segs[i+1:] {
				later.Abort()
			}
			if i > 0 {
				err = fmt.Errorf("%w (the segments before it, %s to %s, are complete: an object store cannot take them back)", err, w.l.names[0], w.l.names[i-1])
			}
			return sink.Result{}, fmt.Errorf("finishing image %s: %w", w.l.path, err)
		}
	}
	res := sink.Result{Files: w.l.names, Size: w.l.size, Hashes: sums}
	for _, alg := range digest.Algorithms() {
		sum, ok := sums[alg]
		if !ok {
			continue
		}
		name := digest.FileName(w.l.path, alg)
		body, err := digest.Marshal(hashEntries(w.l, alg, sum)...)
		if err == nil {
			err = w.objs.PutNew(w.ctx, name, body, sha256.Sum256(body), nil)
		}
		if err != nil {
			return sink.Result{}, fmt.Errorf("the image %s is complete, but its checksum file %s is not: %w", w.l.path, name, err)
		}
		res.HashFiles = append(res.HashFiles, name)
	}
	return res, nil
}

// Abort drops every upload; nothing is left under the image's names. It
// does nothing after Close.
func (w *ObjectWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.err == nil {
		w.err = errors.New("image aborted")
	}
	if w.sums != nil {
		w.sums.Close()
	}
	var errs []error
	for _, o := range w.segs {
		errs = append(errs, o.Abort())
	}
	return errors.Join(errs...)
}
