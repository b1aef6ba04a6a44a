package casework

import (
	"context"
	"fmt"
	"time"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/report"
)

// Place is where a case is recorded: a case directory (Dir) or a
// bucket prefix (Bucket). The acquisition of its volumes goes to
// <place>/<snapshot-id>/ either way.
type Place interface {
	// Load returns the case to resume for targets, nil when there is
	// none; a case of other targets is a *ConflictError.
	Load(targets []string) (*Case, error)
	// Preservation returns the snapshots an earlier preservation of
	// targets recorded, and the name of its record; nil when a new
	// preservation is to be made.
	Preservation(targets []string) (*Recorded, string, error)
	// Checkpoint records a preservation while it runs, SavePreservation
	// when it ended (returning the name of its record).
	Checkpoint(r *report.Preservation) error
	SavePreservation(r *report.Preservation) (string, error)
	// SavePlan records a case planned and not acquired yet, where a rerun
	// must find it (a directory: case.json; a bucket needs none, the
	// plan following from the targets and the preservation record).
	SavePlan(c *Case) error
	// Save records how a run of c went, returning the name written.
	Save(c *Case) (string, error)
	String() string
}

// Dir is a case directory.
type Dir string

func (d Dir) Load(targets []string) (*Case, error) { return Load(string(d), targets) }

// Preservation reads DIR/preservation.json; one that names no snapshot
// (its run made none) is set aside, for a new preservation to be
// recorded without losing it.
func (d Dir) Preservation(targets []string) (*Recorded, string, error) {
	found, err := ReadPreservation(string(d), targets)
	if err != nil || found == nil {
		return nil, "", err
	}
	if len(found.Snapshots) > 0 {
		return found, PreservationJSON, nil
	}
	if _, err := SetAsidePreservation(string(d)); err != nil {
		return nil, "", fmt.Errorf("setting aside the record of a preservation that made nothing: %w", err)
	}
	return nil, "", nil
}

func (d Dir) Checkpoint(r *report.Preservation) error { return r.Save(string(d)) }

func (d Dir) SavePreservation(r *report.Preservation) (string, error) {
	return PreservationJSON, r.Save(string(d))
}

func (d Dir) SavePlan(c *Case) error { return c.Save(string(d)) }

func (d Dir) Save(c *Case) (string, error) { return JSONName, c.Save(string(d)) }

func (d Dir) String() string { return string(d) }

// Bucket is a case under a bucket prefix, written once object by
// object (see bucketcase.go).
type Bucket struct {
	ctx context.Context
	b   bucket.Bucket
	pr  *BucketPreservation
}

// NewBucket returns the case place of the prefix of b.
func NewBucket(ctx context.Context, b bucket.Bucket) *Bucket {
	return &Bucket{ctx: ctx, b: b, pr: NewBucketPreservation(ctx, b)}
}

func (p *Bucket) Load(targets []string) (*Case, error) { return LoadBucket(p.ctx, p.b, targets) }

func (p *Bucket) Preservation(targets []string) (*Recorded, string, error) {
	return ReadBucketPreservation(p.ctx, p.b, targets)
}

func (p *Bucket) Checkpoint(r *report.Preservation) error { return p.pr.Checkpoint(r) }

func (p *Bucket) SavePreservation(r *report.Preservation) (string, error) { return p.pr.Save(r) }

func (p *Bucket) SavePlan(*Case) error { return nil }

func (p *Bucket) Save(c *Case) (string, error) { return c.SaveBucket(p.ctx, p.b, time.Now()) }

func (p *Bucket) String() string { return p.b.String() }
