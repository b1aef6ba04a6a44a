package triage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// Source describes the source volume.Open opened as v, for the record.
func Source(source string, v volume.Volume) report.TriageSource {
	s := report.TriageSource{Location: source, SnapshotID: volume.SnapshotID(v), SizeBytes: v.Size()}
	fi, err := os.Stat(source)
	switch {
	case strings.HasPrefix(source, "s3://"):
		s.Kind = report.KindEvidenceDirectory // evidence in S3, under the same names
	case err != nil && block.CheckSnapshotID(source) == nil:
		s.Kind = report.TriageSnapshot
	case err != nil:
		s.Kind = report.KindRawImage // the base name of a split raw image
	case fi.IsDir():
		s.Kind = report.KindEvidenceDirectory
	default:
		s.Kind = report.KindRawImage
		if f, err := os.Open(source); err == nil {
			if ewf.IsSegment(f) {
				s.Kind = report.TriageE01
			}
			f.Close()
		}
	}
	return s
}

// EvidenceSums returns an Options.Sums (report.ChecksumManifest) that reads the AWS checksums of
// the blocks read from the manifest of the evidence directory dir.
func EvidenceSums(dir string) func(read []int64) (map[int64]block.Sum, error) {
	return func(read []int64) (map[int64]block.Sum, error) {
		want := make(map[int64]bool, len(read))
		for _, i := range read {
			want[i] = true
		}
		ev, err := store.Open(dir)
		if err != nil {
			return nil, err
		}
		mr, c, err := ev.Manifest()
		if err != nil {
			return nil, err
		}
		defer c.Close()
		out := map[int64]block.Sum{}
		for {
			e, err := mr.Next()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return nil, fmt.Errorf("reading the manifest: %w", err)
			}
			if !want[e.Index] {
				continue
			}
			s, err := block.ParseHex(e.SHA256)
			if err != nil {
				return nil, fmt.Errorf("manifest entry of block %d: %w", e.Index, err)
			}
			out[e.Index] = s
		}
	}
}
