package ewf

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/image/window"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// CreateSink starts the E01 of mediaSize bytes at base (see Create) as a
// sink: blocks may arrive in any order, and a reordering window of
// window.DefaultSize blocks (64 MiB) puts them back in order for the
// writer, which compresses them on every core. Close also writes
// BASE.md5, BASE.sha1 and BASE.sha256 beside the image (see
// WriteMediaHashes); with o.Replace, the replaced image's checksum files
// are removed just before the new image takes its names.
func CreateSink(base string, mediaSize int64, o Options) (*window.Window, error) {
	w, err := Create(base, mediaSize, o)
	if err != nil {
		return nil, err
	}
	return window.New(&stream{base: base, replace: o.Replace, w: w}, window.DefaultSize), nil
}

// stream is a Writer, with its checksum files, as a window.Writer.
type stream struct {
	base    string
	replace bool
	w       *Writer
}

func (s *stream) WriteBlock(index int64, p []byte) error { return s.w.WriteBlock(index, p) }

func (s *stream) Close() (sink.Result, error) {
	if s.replace {
		if err := removeMediaHashes(s.base); err != nil {
			s.w.Abort()
			return sink.Result{}, err
		}
	}
	res, err := s.w.CloseBlocks()
	if err != nil {
		return sink.Result{}, err
	}
	sums, files, err := WriteMediaHashes(s.base, res)
	if err != nil {
		return sink.Result{}, err
	}
	return sink.Result{Files: res.Segments, HashFiles: files, Size: res.MediaSize, Hashes: sums}, nil
}

func (s *stream) Abort() error { return s.w.Abort() }

// SinkOutputs is every file the E01 sink at base writes, replaces or
// removes: its segments (see Outputs) and its checksum files.
func SinkOutputs(base string) ([]string, error) {
	names, err := Outputs(base)
	if err != nil {
		return nil, fmt.Errorf("creating %s.E01: %w", base, err)
	}
	for _, alg := range digest.Algorithms() {
		names = append(names, digest.FileName(base, alg))
	}
	return names, nil
}

// removeMediaHashes removes the checksum files of a replaced E01 just
// before the new image takes its names, so that they never stand beside
// an image they do not describe.
func removeMediaHashes(base string) error {
	for _, alg := range digest.Algorithms() {
		if err := os.Remove(digest.FileName(base, alg)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the replaced image's %s: %w", digest.FileName(base, alg), err)
		}
	}
	return nil
}

// WriteMediaHashes writes BASE.md5, .sha1 and .sha256 for an E01: the
// hashes of the media it holds (E01 has no place for SHA-256), checkable
// by exporting the media with libewf. It returns the sums by algorithm
// and the files written.
func WriteMediaHashes(base string, res Result) (map[string]string, []string, error) {
	sums := mediaSums(res)
	var files []string
	for _, alg := range digest.Algorithms() {
		name := digest.FileName(base, alg)
		if err := digest.WriteHashFile(name, mediaHashEntries(base, res, alg, sums[alg])...); err != nil {
			return nil, nil, err
		}
		files = append(files, name)
	}
	return sums, files, nil
}

// mediaSums are the media hashes of res by algorithm, in hex.
func mediaSums(res Result) map[string]string {
	return map[string]string{
		digest.MD5: hex.EncodeToString(res.MD5[:]), digest.SHA1: hex.EncodeToString(res.SHA1[:]), digest.SHA256: hex.EncodeToString(res.SHA256[:]),
	}
}

// mediaHashEntries is the content of the checksum file of alg for the
// E01 at base: how to check it, and the sum of the media ewfexport
// writes (ewfexport -t BASE writes the media to BASE.raw).
func mediaHashEntries(base string, res Result, alg, sum string) []digest.Entry {
	first, b := filepath.Base(res.Segments[0]), filepath.Base(base)
	name := digest.FileName(base, alg)
	return []digest.Entry{
		{Comment: fmt.Sprintf("media %s of %s (%d segments); check with: ewfexport -u -q -f raw -t %s %s && %ssum -c %s (or: ebsimager verify %s)",
			alg, first, len(res.Segments), b, first, alg, filepath.Base(name), first)},
		{Sum: sum, Name: b + ".raw"},
	}
}
