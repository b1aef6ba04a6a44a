package main

import (
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/outfile"
	"github.com/ebsimager/ebsimager/internal/sink"
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

// openE01 claims the E01 at path (BASE.E01) for what (see claimImage),
// with in what the command reads, and starts it as a sink of mediaSize
// bytes (ewf.CreateSink).
func openE01(in *outfile.Inputs, path, what string, mediaSize int64, o ewf.Options) (*dirlock.Lock, sink.Sink, error) {
	base := e01Base(path)
	lock, err := claimImage(in, e01Lock(base), what, o.Replace,
		func() ([]string, error) { return ewf.SinkOutputs(base) },
		func() ([]string, error) { return ewf.RemoveTemps(base) })
	if err != nil {
		return nil, nil, err
	}
	s, err := ewf.CreateSink(base, mediaSize, o)
	if err != nil {
		lock.Release()
		return nil, nil, err
	}
	return lock, s, nil
}
