package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
)

// Per-run record objects of evidence in a bucket. Evidence in S3 is
// written once, so a run that cannot write (or must not rewrite) the
// evidence's final record leaves its own object instead, under
//
//	runs/<YYYYMMDDTHHMMSSZ>-<8 hex digits>-<command>.json
//
// (the run's start in UTC, a random tag that keeps two runs started in
// the same second apart, and the command: acquire, verify, export, …).
// Each is PUT once with If-None-Match and its SHA-256, under the
// evidence's lock. Readers of the evidence ignore the prefix (it holds no
// block); the final record of complete evidence lists what it holds.
const (
	// RunsDir is the prefix of the run objects, under the evidence's.
	RunsDir = "runs"
	// MaxRuns is how many run objects ListRuns reads at most: a bucket
	// holding more is refused, not truncated.
	MaxRuns = 10000
	// MaxRunObject bounds the size of one run object.
	MaxRunObject = 16 << 20

	runTimeLayout = "20060102T150405Z"
	maxCommandLen = 32
)

// RunKey returns the key of the run object of a run of command started
// at started, with a fresh random tag.
func RunKey(started time.Time, command string) (string, error) {
	if !validCommand(command) {
		return "", fmt.Errorf("run object of command %q: want 1 to %d lowercase letters, digits or dashes", command, maxCommandLen)
	}
	var tag [4]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s/%s-%s-%s.json", RunsDir, started.UTC().Format(runTimeLayout), hex.EncodeToString(tag[:]), command), nil
}

// ParseRunKey checks that key names a run object (as RunKey makes them)
// and returns its time and command.
func ParseRunKey(key string) (time.Time, string, error) {
	bad := fmt.Errorf("%q is not the name of a run object (%s/<YYYYMMDDTHHMMSSZ>-<8 hex>-<command>.json)", key, RunsDir)
	dir, name := path.Split(key)
	if dir != RunsDir+"/" || !strings.HasSuffix(name, ".json") {
		return time.Time{}, "", bad
	}
	parts := strings.SplitN(strings.TrimSuffix(name, ".json"), "-", 3)
	if len(parts) != 3 || len(parts[1]) != 8 || !validCommand(parts[2]) {
		return time.Time{}, "", bad
	}
	if _, err := hex.DecodeString(parts[1]); err != nil || strings.ToLower(parts[1]) != parts[1] {
		return time.Time{}, "", bad
	}
	t, err := time.Parse(runTimeLayout, parts[0])
	if err != nil {
		return time.Time{}, "", bad
	}
	return t, parts[2], nil
}

func validCommand(c string) bool {
	if c == "" || len(c) > maxCommandLen {
		return false
	}
	for _, r := range c {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// PutRun writes body, the record of a run of command started at started,
// as a new run object of the evidence in b: once, with its SHA-256, so
// the store checks it on arrival (and the bucket's lock, if any, applies
// to it). It returns the object's key and SHA-256.
func PutRun(ctx context.Context, b bucket.Bucket, command string, started time.Time, body []byte) (RunObject, error) {
	if len(body) > MaxRunObject {
		return RunObject{}, fmt.Errorf("run object of %d bytes: more than %d", len(body), MaxRunObject)
	}
	sum := block.Sum(sha256.Sum256(body))
	// The random tag makes a collision a one in 2^32 chance within the
	// same second; a second try settles it.
	for try := 0; ; try++ {
		key, err := RunKey(started, command)
		if err != nil {
			return RunObject{}, err
		}
		err = b.PutNew(ctx, key, body, sum, nil)
		if errors.Is(err, bucket.ErrExists) && try < 2 {
			continue
		}
		if err != nil {
			return RunObject{}, fmt.Errorf("writing the run record %s: %w", key, err)
		}
		return RunObject{Key: key, SHA256: sum.Hex(), Size: int64(len(body))}, nil
	}
}

// RunObject names a run object and its SHA-256 (as the store keeps it).
type RunObject struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// ListRuns lists the run objects of the evidence in b in name order (so
// in order of their start), each with the SHA-256 the store keeps for it
// (read back and hashed when it keeps none). More than MaxRuns objects,
// an object under runs/ that is not named as RunKey names them, or one
// larger than MaxRunObject, is refused: hostile input.
func ListRuns(ctx context.Context, b bucket.Bucket) ([]RunObject, error) {
	keys, err := b.List(ctx, RunsDir+"/", MaxRuns)
	if err != nil {
		return nil, fmt.Errorf("listing the run records: %w", err)
	}
	out := make([]RunObject, 0, len(keys))
	for _, k := range keys {
		if _, _, err := ParseRunKey(k.Key); err != nil {
			return nil, &ConflictError{Where: b.String(), Key: k.Key, Reason: "not a name this tool writes under " + RunsDir + "/"}
		}
		if k.Size < 0 || k.Size > MaxRunObject {
			return nil, &ConflictError{Where: b.String(), Key: k.Key, Reason: fmt.Sprintf("%d bytes: larger than any run record", k.Size)}
		}
		o, err := b.Head(ctx, k.Key)
		if err != nil {
			return nil, err
		}
		sum := o.SHA256
		if !o.HasSHA256 {
			data, err := b.Get(ctx, k.Key, MaxRunObject)
			if err != nil {
				return nil, err
			}
			sum = sha256.Sum256(data)
		}
		out = append(out, RunObject{Key: k.Key, SHA256: sum.Hex(), Size: o.Size})
	}
	return out, nil
}
