package casework

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/ebsimager/ebsimager/internal/bucket"
)

// Bounds on reading a case in a bucket (its listing is bounded as a
// directory's walk is): a manifest is read in pieces of manifestPiece bytes, and one
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

// Summaries walks the case one level at a time (the evidence's blocks
// are not listed), at most MaxSummaryDepth prefixes down, entering no
// prefix that holds evidence (evidence.json) or a case (case.json), and
// stops after MaxSummaryEntries keys and prefixes.
func (s bucketSource) Summaries() ([]string, error) {
	var names []string
	seen := 0
	level := []string{""}
	for depth := 0; len(level) > 0; depth++ {
		var next []string
		for _, p := range level {
			keys, dirs, err := s.b.ListLevel(s.ctx, p, MaxSummaryEntries-seen)
			if err != nil {
				return nil, fmt.Errorf("listing the case (at most %d keys and prefixes within %d levels): %w", MaxSummaryEntries, MaxSummaryDepth, err)
			}
			seen += len(keys) + len(dirs)
			if p != "" && (holdsKey(keys, p+"evidence.json") || holdsKey(keys, p+JSONName)) {
				continue
			}
			for _, k := range keys {
				if strings.HasSuffix(k.Key, WorkerSuffix) && fs.ValidPath(k.Key) {
					names = append(names, k.Key)
				}
			}
			if depth < MaxSummaryDepth {
				next = append(next, dirs...)
			}
		}
		level = next
	}
	sort.Strings(names)
	return names, nil
}

func holdsKey(keys []bucket.Listed, key string) bool {
	for _, k := range keys {
		if k.Key == key {
			return true
		}
	}
	return false
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
