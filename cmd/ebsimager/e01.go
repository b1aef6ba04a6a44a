package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/window"
	"github.com/ebsimager/ebsimager/internal/outfile"
)

// e01Options are the flags of an E01 output.
type e01Options struct {
	segmentSize string
	compression string
	// replace is --force: replace an existing image at the same base.
	replace bool
}

// maxSegmentSize is the largest --segment-size, 2 GiB, as the help says:
// libewf's limit for the EnCase formats' segment files, whose offsets
// are 31-bit.
const maxSegmentSize = 2 << 30

// refuseUnless refuses --segment-size and --compression where no E01 is
// written: they would be silently ignored.
func (o *e01Options) refuseUnless(cmd *cobra.Command, e01 bool, where string) error {
	if e01 {
		return nil
	}
	for _, name := range []string{"segment-size", "compression"} {
		if cmd.Flags().Changed(name) {
			return usagef("--%s applies only to an E01 image, not to %s", name, where)
		}
	}
	return nil
}

func (o *e01Options) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.segmentSize, "segment-size", "", "E01 segment size (default 1.4 GiB, as ewfacquire's; at most 2 GiB)")
	f.StringVar(&o.compression, "compression", "fast", "E01 chunk compression: none, fast or best")
}

func (o *e01Options) options(meta ewf.Metadata) (ewf.Options, error) {
	size, err := parseSize(o.segmentSize)
	if err != nil {
		return ewf.Options{}, usagef("--segment-size: %v", err)
	}
	if size != 0 && (size < ewf.MinSegmentSize || size > maxSegmentSize) {
		return ewf.Options{}, usagef("--segment-size %s: want 1MiB to 2GiB", o.segmentSize)
	}
	level, err := ewf.ParseLevel(o.compression)
	if err != nil {
		return ewf.Options{}, usagef("--compression: %v", err)
	}
	return ewf.Options{SegmentSize: size, Level: level, Meta: meta, Replace: o.replace}, nil
}

// isE01 reports whether path names an E01 image (BASE.E01).
func isE01(path string) bool { return strings.EqualFold(filepath.Ext(path), ".e01") }

// e01Base strips the .E01 extension, if any.
func e01Base(path string) string {
	if isE01(path) {
		return strings.TrimSuffix(path, filepath.Ext(path))
	}
	return path
}

// e01Metadata is the case metadata an E01 carries in its header sections.
func e01Metadata(snapshot string, c map[string]string, acquired time.Time) ewf.Metadata {
	return ewf.Metadata{
		CaseNumber: c["case_number"], EvidenceNumber: c["evidence_number"], Examiner: c["examiner"],
		Description: c["description"], Notes: c["notes"],
		Model: "AWS EBS snapshot", SerialNumber: snapshot,
		ToolVersion: "ebsimager " + toolVersion(), OS: runtime.GOOS,
		AcquiredAt: acquired.UTC(), SystemAt: time.Now().UTC(),
	}
}

// mergeCase overlays the non-empty case flags on recorded case fields.
func mergeCase(recorded map[string]string, flags *caseMeta) map[string]string {
	m := map[string]string{}
	for k, v := range recorded {
		m[k] = v
	}
	for k, v := range flags.fields() {
		m[k] = v
	}
	return m
}

// e01Lock is the lock file of the E01 at base: one lock for the whole
// set BASE.E01, BASE.E02, … and its checksum files, whatever spelling of
// --out named it.
func e01Lock(base string) string { return base + ".E01.lock" }

// e01Outputs is every file an E01 at base writes, replaces or removes:
// its segments and its checksum files.
func e01Outputs(base string) func() ([]string, error) {
	return func() ([]string, error) {
		names, err := ewf.Outputs(base)
		if err != nil {
			return nil, fmt.Errorf("creating %s.E01: %w", base, err)
		}
		for _, alg := range digest.Algorithms() {
			names = append(names, digest.FileName(base, alg))
		}
		return names, nil
	}
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

// writeMediaHashes writes BASE.md5, .sha1 and .sha256 for an E01: the
// hashes of the media it holds (E01 has no place for SHA-256), checkable
// by exporting the media with libewf.
func writeMediaHashes(base string, res ewf.Result) (map[string]string, error) {
	sums := map[string]string{
		digest.MD5: hex.EncodeToString(res.MD5[:]), digest.SHA1: hex.EncodeToString(res.SHA1[:]), digest.SHA256: hex.EncodeToString(res.SHA256[:]),
	}
	first, b := filepath.Base(res.Segments[0]), filepath.Base(base)
	for _, alg := range digest.Algorithms() {
		name := digest.FileName(base, alg)
		// ewfexport -t BASE writes the media to BASE.raw.
		err := digest.WriteHashFile(name,
			digest.Entry{Comment: fmt.Sprintf("media %s of %s (%d segments); check with: ewfexport -u -q -f raw -t %s %s && %ssum -c %s (or: ebsimager verify %s)",
				alg, first, len(res.Segments), b, first, alg, filepath.Base(name), first)},
			digest.Entry{Sum: sums[alg], Name: b + ".raw"})
		if err != nil {
			return nil, err
		}
	}
	return sums, nil
}

// e01Sink writes an E01 straight from acquire: blocks arrive in any
// order, the window puts them back in order within window.DefaultSize
// blocks (64 MiB) of memory, and the writer compresses them on every core.
type e01Sink struct {
	base    string
	replace bool
	w       *ewf.Writer
	win     *window.Window
	lock    *dirlock.Lock
}

// openE01Sink claims the E01 at path for acquire (see claimImage) and
// starts it.
func openE01Sink(path string, volumeBytes int64, o ewf.Options) (*e01Sink, error) {
	base := e01Base(path)
	lock, err := claimImage(&outfile.Inputs{}, e01Lock(base), "acquire", o.Replace, e01Outputs(base), func() ([]string, error) { return ewf.RemoveTemps(base) })
	if err != nil {
		return nil, err
	}
	w, err := ewf.Create(base, volumeBytes, o)
	if err != nil {
		lock.Release()
		return nil, err
	}
	return &e01Sink{base: base, replace: o.Replace, w: w, win: window.New(w, window.DefaultSize), lock: lock}, nil
}

func (s *e01Sink) Has(int64) bool { return false }

func (s *e01Sink) Put(index int64, _ block.Sum, data []byte) error { return s.win.Put(index, data) }

func (s *e01Sink) Listed(index int64) { s.win.Listed(index) }

func (s *e01Sink) Cancel() { s.win.Cancel() }

func (s *e01Sink) Close() (map[string]string, error) {
	defer s.lock.Release()
	if err := s.win.Done(); err != nil {
		s.w.Abort()
		return nil, err
	}
	if s.replace {
		if err := removeMediaHashes(s.base); err != nil {
			s.w.Abort()
			return nil, err
		}
	}
	res, err := s.w.CloseBlocks()
	if err != nil {
		return nil, err
	}
	return writeMediaHashes(s.base, res)
}

func (s *e01Sink) Abort() error {
	defer s.lock.Release()
	return s.w.Abort()
}
