package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/store"
)

// Options configures Open.
type Options struct {
	// Unseal is asked, once an evidence directory is opened, how to
	// decode its compressed or encrypted blocks (the command asks for a
	// key here). Nil reads plain evidence only.
	Unseal func(ev *store.Evidence) (store.Unseal, error)
	// SnapshotID, when set, is the snapshot the source must hold: an
	// evidence directory of another snapshot is refused
	// (*store.OtherSnapshotError) before any key is asked for, as is
	// another snapshot's ID. Images do not say which snapshot they hold.
	SnapshotID string
	// CheckManifest makes Open of an evidence directory read the whole
	// manifest first: every line, and its SHA-256 against
	// manifest.jsonl.sha256. Without it a read looks up only the lines
	// it needs, so opening a 64 TiB volume's manifest (about 50 GB) costs
	// nothing; Ranges reads and checks the whole manifest either way.
	CheckManifest bool
	// CacheBlocks is how many decoded 512 KiB blocks an evidence volume
	// keeps; 0 means DefaultCacheBlocks.
	CacheBlocks int
	// Snapshot opens a live snapshot, "snap-…", read through the EBS
	// direct APIs (package live builds it; this package does not talk to
	// AWS). Nil refuses snapshot IDs.
	Snapshot func(ctx context.Context, id string) (Volume, error)
	// Bucket opens "s3://bucket/prefix/" as a bucket.Bucket (package
	// s3store builds it; this package does not talk to AWS). Nil refuses
	// S3 evidence.
	Bucket func(ctx context.Context, url string) (bucket.Bucket, error)
}

// ErrNotSupported is returned for a source of a kind this version does
// not read yet: S3 evidence ("s3://…").
var ErrNotSupported = errors.New("not supported yet")

// Open opens source as a volume:
//
//   - an evidence directory (plain, compressed or sealed);
//   - a raw image FILE, or a split one (FILE.001, FILE.002, …; FILE.001
//     or FILE may be named);
//   - an E01 set (any segment, normally BASE.E01), told from a raw image
//     by the EWF signature, not by its name;
//   - a snapshot ID, "snap-…", through o.Snapshot, when no file or
//     directory of that name exists;
//   - evidence in S3, "s3://bucket/prefix/", through o.Bucket: blocks
//     fetched with a GET each as they are read, and checked.
//
// ctx bounds the opening of a live snapshot.
func Open(ctx context.Context, source string, o Options) (Volume, error) {
	if strings.HasPrefix(source, "s3://") {
		if o.Bucket == nil {
			return nil, fmt.Errorf("reading %s: evidence in S3 is %w here", source, ErrNotSupported)
		}
		b, err := o.Bucket(ctx, source)
		if err != nil {
			return nil, err
		}
		return openRemote(ctx, b, o)
	}
	fi, err := os.Stat(source)
	switch {
	case err == nil && fi.IsDir():
		return openEvidence(source, o)
	case err == nil:
		return openImage(source)
	case block.CheckSnapshotID(source) == nil:
		if o.SnapshotID != "" && source != o.SnapshotID {
			return nil, fmt.Errorf("%s is not %s", source, o.SnapshotID)
		}
		if o.Snapshot == nil {
			return nil, fmt.Errorf("%s: no file of that name, and a snapshot is not read live here: %w", source, fs.ErrNotExist)
		}
		return o.Snapshot(ctx, source)
	}
	v, ierr := openImage(source) // the base name of a split raw image?
	if errors.Is(ierr, fs.ErrNotExist) {
		return nil, err // no: nothing by that name
	}
	return v, ierr
}

// openImage opens an E01 set or a raw image.
func openImage(path string) (Volume, error) {
	if f, err := os.Open(path); err == nil {
		isE01 := ewf.IsSegment(f)
		f.Close()
		if isE01 {
			r, err := ewf.Open(path)
			if err != nil {
				return nil, err
			}
			return e01{r}, nil
		}
	}
	r, err := raw.Open(path)
	if err != nil {
		return nil, err
	}
	return rawImage{r}, nil
}
