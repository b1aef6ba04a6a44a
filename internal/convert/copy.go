package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/store"
)

// Converting into new evidence (compress SRC --out s3://…): evidence in
// S3 is written once, and may be under Object Lock, so it cannot be
// converted in place. Copy reads every block of the source evidence (a
// directory, or a bucket's prefix through store.Evidence.Bucket), checked
// as every read of evidence is (stored bytes, then the decoded block
// against its SHA-256), and hands it to a sink that writes it in the new
// form: store.Remote, which seals it, writes it once with the SHA-256 of
// its stored bytes and journals it. The sink resumes (sink.Caps.Resumes):
// a rerun after an interruption reads and writes only the blocks it does
// not hold. The source is never written to.

// CopyOptions says how Copy reads the source.
type CopyOptions struct {
	// Unseal opens the source's stored blocks (its form).
	Unseal store.Unseal
	// Workers is how many blocks are converted at once; 0 means
	// GOMAXPROCS.
	Workers int
	// Progress and ProgressEvery are the pipeline's (acquire.Options).
	Progress      func(acquire.Progress)
	ProgressEvery time.Duration
}

// Source is what Copy found of the source evidence before it read a
// block: its manifest's header, totals and SHA-256 (checked against its
// checksum file or object).
type Source struct {
	Header         manifest.Header
	Trailer        manifest.Trailer
	ManifestSHA256 string
}

// Copied is what Copy did.
type Copied struct {
	Source
	// Converted blocks were read, checked and handed to the sink by this
	// run; Resumed ones the sink already held (an interrupted run's).
	Converted, Resumed int64
	// StoredBefore is the stored bytes of the source's blocks read by
	// this run.
	StoredBefore int64
	Started      time.Time
}

// ReadSource reads ev's manifest to its end and checks it against its
// header and its checksum, so that a conversion names the manifest it
// starts from before it reads a block.
func ReadSource(ev *store.Evidence) (Source, error) {
	mr, c, err := ev.Manifest()
	if err != nil {
		return Source{}, err
	}
	defer c.Close()
	if err := ev.CheckHeader(mr.Header()); err != nil {
		return Source{}, err
	}
	for {
		_, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Source{}, err
		}
	}
	if err := ev.CheckManifestSum(mr.Sum()); err != nil {
		return Source{}, err
	}
	return Source{Header: mr.Header(), Trailer: mr.Trailer(), ManifestSHA256: mr.Sum().Hex()}, nil
}

// Copy hands every block of ev, read and checked, to dst, skipping those
// dst already has. The first block that cannot be read (tampered with, a
// wrong key) stops it: its error is returned (a *store.Mismatch for
// evidence that does not match its record), and dst is aborted, so it
// writes no manifest; what it stored stays for a rerun. On success dst is
// left open: the caller closes it, which writes its manifest.
func Copy(ctx context.Context, ev *store.Evidence, src Source, dst sink.Sink, o CopyOptions) (*Copied, error) {
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	in := acquire.NewEvidence(ev, o.Unseal)
	res, err := acquire.New(in, acquire.Options{Workers: workers, MaxFailed: 1, Progress: o.Progress, ProgressEvery: o.ProgressEvery}).Run(ctx, dst)
	var inc *acquire.IncompleteError
	if errors.As(err, &inc) && len(inc.Failed) > 0 {
		err = inc.Failed[0].Err
	}
	if err != nil {
		err = fmt.Errorf("converting %s stopped: %w", ev.Dir, err)
		if aerr := dst.Abort(); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return nil, err
	}
	if got := res.Stored + res.Skipped; got != src.Trailer.Blocks {
		dst.Abort()
		return nil, fmt.Errorf("%s lists %d blocks, %d were converted", ev.Dir, src.Trailer.Blocks, got)
	}
	return &Copied{Source: src, Converted: res.Stored, Resumed: res.Skipped, StoredBefore: in.StoredBytes(), Started: res.Started}, nil
}
