package casework

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/ebsimager/ebsimager/internal/bucket"
)

// Bounds on reading a case in a bucket: its listing (every key under the
// prefix, the evidence's blocks included) stops at MaxSummaryEntries
// keys; a manifest is read in pieces of manifestPiece bytes, and one
// larger than MaxManifestBytes is refused.
const (
	MaxManifestBytes = 4 << 30
	manifestPiece    = 8 << 20
)

// SummarizeBucket gathers the worker summaries under the prefix of b
// into a case summary, as Summarize does for a directory: summaries at
// most MaxSummaryDepth prefixes down and not inside evidence (a prefix
// holding evidence.json) or a case (case.json); each evidence prefix's
// manifest.jsonl hashed and checked against its summary.
func SummarizeBucket(ctx context.Context, b bucket.Bucket, targetsFile string, targets []string) (*CaseSummary, error) {
	return SummarizeFrom(bucketSource{ctx, b}, b.String(), targetsFile, targets)
}

type bucketSource struct {
	ctx context.Context
	b   bucket.Bucket
}

func (s bucketSource) Summaries() ([]string, error) {
	keys, err := s.b.List(s.ctx, "", MaxSummaryEntries)
	if err != nil {
		return nil, fmt.Errorf("listing the case: %w", err)
	}
	closed := map[string]bool{} // prefixes of evidence or of a case
	for _, k := range keys {
		if base := path.Base(k.Key); base == "evidence.json" || base == JSONName {
			if dir := path.Dir(k.Key); dir != "." {
				closed[dir] = true
			}
		}
	}
	var names []string
	for _, k := range keys {
		if !strings.HasSuffix(k.Key, WorkerSuffix) || strings.Count(k.Key, "/") > MaxSummaryDepth || !fs.ValidPath(k.Key) {
			continue
		}
		inside := false
		for dir := path.Dir(k.Key); dir != "." && !inside; dir = path.Dir(dir) {
			inside = closed[dir]
		}
		if !inside {
			names = append(names, k.Key)
		}
	}
	return names, nil
}

func (s bucketSource) ReadSummary(name string) (*WorkerSummary, error) {
	data, err := s.b.Get(s.ctx, name, MaxWorkerSummaryBytes)
	if err != nil {
		return nil, err
	}
	return ReadWorkerSummary(bytes.NewReader(data))
}

// ManifestSHA256 hashes the contents of dir/manifest.jsonl, read in
// pieces.
func (s bucketSource) ManifestSHA256(dir string) (string, error) {
	key := dir + "/manifest.jsonl"
	o, err := s.b.Head(s.ctx, key)
	if errors.Is(err, bucket.ErrNotFound) {
		return "", fmt.Errorf("%s%s: %w", s.b, key, fs.ErrNotExist)
	}
	if err != nil {
		return "", err
	}
	if o.Size < 0 || o.Size > MaxManifestBytes {
		return "", fmt.Errorf("%s%s: %d bytes, more than %d", s.b, key, o.Size, int64(MaxManifestBytes))
	}
	h := sha256.New()
	for off := int64(0); off < o.Size; off += manifestPiece {
		data, err := s.b.GetRange(s.ctx, key, off, min(manifestPiece, o.Size-off))
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
