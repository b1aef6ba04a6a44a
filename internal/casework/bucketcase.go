package casework

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
)

// A case under a bucket prefix (acquire i-… --out s3://bucket/case/)
// has the layout of a case directory: one evidence prefix per snapshot
// (case/<snapshot-id>/), and the case's records beside them. A bucket's
// objects are written once, so the records the directory rewrites are
// written as follows (internal/s3store/DESIGN-S3.md, "Cases"):
//
//	preservation.json, .txt   the preservation record, written once when
//	                          the preservation step has ended having made
//	                          or chosen a snapshot
//	case.json, case.txt       written once, by the first run that ends
//	                          with every volume complete
//	runs/<ts>-<tag>-snapshot.json
//	                          the preservation record while it runs (a
//	                          checkpoint each time its snapshots change),
//	                          and the final record of one that made none
//	runs/<ts>-<tag>-case.json the case record of every other run: one
//	                          that did not complete every volume, or a
//	                          rerun of a complete case
//
// A rerun finds its snapshots in case.json, else preservation.json,
// else the checkpoint naming the most snapshots: it never preserves
// again once a snapshot was made.

// The commands of a case's run objects.
const (
	RunCase     = "case"
	RunSnapshot = "snapshot"
)

// Bounds on a case's run objects: how many are listed (more is refused,
// not truncated), and how many checkpoints one preservation writes.
const (
	MaxRunObjects    = store.MaxRuns
	maxCheckpoints   = 1000
	runsDir          = store.RunsDir + "/"
	evidenceMetaName = store.MetaName
)

// isRunKey reports whether key names a run object of command, as
// store.RunKey names them.
func isRunKey(key, command string) bool {
	_, c, err := store.ParseRunKey(key)
	return err == nil && c == command
}

// runKeys lists the run objects of command under b, oldest first.
func runKeys(ctx context.Context, b bucket.Bucket, command string) ([]string, error) {
	listed, err := b.List(ctx, runsDir, MaxRunObjects)
	if err != nil {
		return nil, fmt.Errorf("listing %s%s (at most %d objects): %w", b, runsDir, MaxRunObjects, err)
	}
	var keys []string
	for _, l := range listed {
		if isRunKey(l.Key, command) {
			keys = append(keys, l.Key)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// putNew writes body under key once, with its SHA-256.
func putNew(ctx context.Context, b bucket.Bucket, key string, body []byte) error {
	if err := b.PutNew(ctx, key, body, sha256.Sum256(body), nil); err != nil {
		return fmt.Errorf("writing %s%s: %w", b, key, err)
	}
	return nil
}

// putRun writes body as a new run object of command.
func putRun(ctx context.Context, b bucket.Bucket, now time.Time, command string, body []byte) (string, error) {
	o, err := store.PutRun(ctx, b, command, now, body)
	return o.Key, err
}

// getJSON reads key (at most maxCaseBytes) into v; an absent key is
// (false, nil).
func getJSON(ctx context.Context, b bucket.Bucket, key string, v any) (bool, error) {
	data, err := b.Get(ctx, key, maxCaseBytes)
	if errors.Is(err, bucket.ErrNotFound) {
		return false, nil
	}
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		return false, fmt.Errorf("reading %s%s: %w", b, key, err)
	}
	return true, nil
}

// runTime is the start of the run object key (runKeys lists only those
// store.ParseRunKey takes).
func runTime(key string) time.Time {
	t, _, _ := store.ParseRunKey(key)
	return t
}

// CheckBucketPrefix refuses a case prefix that holds the evidence of
// one snapshot.
func CheckBucketPrefix(ctx context.Context, b bucket.Bucket) error {
	_, err := b.Head(ctx, evidenceMetaName)
	switch {
	case err == nil:
		return fmt.Errorf("%s is the evidence of one snapshot; a case needs a prefix of its own: %w", b, fs.ErrExist)
	case errors.Is(err, bucket.ErrNotFound):
		return nil
	}
	return err
}

// CheckNoPreservation refuses a prefix that holds a preservation record
// already (snapshot --record s3://…: a new record is never written over
// an old one).
func CheckNoPreservation(ctx context.Context, b bucket.Bucket) error {
	_, err := b.Head(ctx, PreservationJSON)
	switch {
	case err == nil:
		return fmt.Errorf("%s already holds a preservation record: %w", b, fs.ErrExist)
	case errors.Is(err, bucket.ErrNotFound):
		return nil
	}
	return err
}

// LoadBucket reads the case under b for a run with targets, as Load
// does for a directory: the latest of case.json (written by the run that
// completed every volume) and the latest run record (runs/…-case.json),
// by their count of runs; no case is (nil, nil). Targets other than the
// case's are a *ConflictError.
func LoadBucket(ctx context.Context, b bucket.Bucket, targets []string) (*Case, error) {
	names := []string{JSONName}
	keys, err := runKeys(ctx, b, RunCase)
	if err != nil {
		return nil, err
	}
	// The latest run's record: among those of the newest second (the
	// random tag does not order them), the one with the most runs.
	for i := len(keys) - 1; i >= 0 && runTime(keys[i]).Equal(runTime(keys[len(keys)-1])); i-- {
		names = append(names, keys[i])
	}
	var latest *Case
	for _, name := range names {
		var c Case
		if ok, err := getJSON(ctx, b, name, &c); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("reading %s%s: %w", b, name, err)
		}
		if !sameSet(c.Targets, targets) {
			return nil, &ConflictError{Dir: b.String(), Targets: c.Targets}
		}
		if latest == nil || c.Runs > latest.Runs {
			latest = &c
		}
	}
	return latest, nil
}

// SaveBucket records this run of c under b: case.json and case.txt when
// every volume is complete and no run wrote them yet; else a run object
// runs/…-case.json (an incomplete run, or a rerun of a complete case).
// It returns the key written.
func (c *Case) SaveBucket(ctx context.Context, b bucket.Bucket, now time.Time) (string, error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	data = append(data, '\n')
	if c.Status == StatusComplete {
		if _, err := b.Head(ctx, JSONName); errors.Is(err, bucket.ErrNotFound) {
			var text bytes.Buffer
			if err := c.WriteText(&text); err != nil {
				return "", err
			}
			if err := putNew(ctx, b, JSONName, data); err != nil {
				return "", err
			}
			return JSONName, putNew(ctx, b, TextName, text.Bytes())
		} else if err != nil {
			return "", err
		}
	}
	return putRun(ctx, b, now, RunCase, data)
}

// ReadBucketPreservation reads the preservation record under b that an
// earlier run of targets left: preservation.json (its step ended), else
// the checkpoint runs/…-snapshot.json naming the most snapshots (the
// latest of those) of a step that was stopped while it ran. It returns
// the record and its key; none that names a snapshot is (nil, "", nil).
// A record of other targets is a *ConflictError.
func ReadBucketPreservation(ctx context.Context, b bucket.Bucket, targets []string) (*Recorded, string, error) {
	var rec preservationFile
	ok, err := getJSON(ctx, b, PreservationJSON, &rec)
	if err != nil {
		return nil, "", err
	}
	if ok {
		r, err := rec.recorded(b.String()+PreservationJSON, b.String(), targets)
		return r, PreservationJSON, err
	}
	keys, err := runKeys(ctx, b, RunSnapshot)
	if err != nil {
		return nil, "", err
	}
	var best *Recorded
	var bestKey string
	for _, k := range keys {
		var rec preservationFile
		if _, err := getJSON(ctx, b, k, &rec); err != nil {
			return nil, "", err
		}
		r, err := rec.recorded(b.String()+k, b.String(), targets)
		if err != nil {
			return nil, "", err
		}
		if len(r.Snapshots) > 0 && (best == nil || len(r.Snapshots) >= len(best.Snapshots)) {
			best, bestKey = r, k
		}
	}
	return best, bestKey, nil
}

// BucketPreservation keeps the record of a preservation step under a
// case prefix while it runs (Checkpoint) and when it ends (Save).
type BucketPreservation struct {
	ctx     context.Context
	b       bucket.Bucket
	last    string // the snapshots of the latest checkpoint written
	written int
}

// NewBucketPreservation returns the recorder of a preservation step
// under b.
func NewBucketPreservation(ctx context.Context, b bucket.Bucket) *BucketPreservation {
	return &BucketPreservation{ctx: ctx, b: b}
}

// Checkpoint writes the record of a running step as a new run object
// each time the snapshots it names change (one is made, completes, is
// copied, locked, …): what a rerun needs to acquire them after a kill
// without preserving again. A record that names no snapshot is not
// written: a rerun would preserve anyway. At most maxCheckpoints are
// written.
func (p *BucketPreservation) Checkpoint(r *report.Preservation) error {
	state := snapshotState(r.Snapshots)
	if len(r.Snapshots) == 0 || state == p.last || p.written >= maxCheckpoints {
		return nil
	}
	data, err := r.JSON()
	if err != nil {
		return err
	}
	if _, err := putRun(p.ctx, p.b, time.Now(), RunSnapshot, data); err != nil {
		return err
	}
	p.last = state
	p.written++
	return nil
}

// snapshotState is what of the snapshots a checkpoint is written for:
// their ids, states, copies and locks (not their progress).
func snapshotState(ss []report.PreservedSnapshot) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "%s %s %s %s %v;", s.SnapshotID, s.State, s.Acquire, lockState(s.Lock), len(s.Copies))
		for _, c := range s.Copies {
			fmt.Fprintf(&b, "%s %s %s,", c.SnapshotID, c.State, lockState(c.Lock))
		}
	}
	return b.String()
}

func lockState(l *report.SnapshotLock) string {
	if l == nil {
		return "-"
	}
	return l.Mode + "/" + l.State
}

// Save writes the record of a step that ended: preservation.json and
// preservation.txt when it made or chose a snapshot, else (nothing to
// acquire, and a rerun preserves again) a run object
// runs/…-snapshot.json. It returns the key of the JSON record.
func (p *BucketPreservation) Save(r *report.Preservation) (string, error) {
	data, err := r.JSON()
	if err != nil {
		return "", err
	}
	if len(r.Snapshots) == 0 {
		return putRun(p.ctx, p.b, time.Now(), RunSnapshot, data)
	}
	var text bytes.Buffer
	if err := r.Text(&text); err != nil {
		return "", err
	}
	if err := putNew(p.ctx, p.b, PreservationJSON, data); err != nil {
		return "", err
	}
	return PreservationJSON, putNew(p.ctx, p.b, PreservationText, text.Bytes())
}
