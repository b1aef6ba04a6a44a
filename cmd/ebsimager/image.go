package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/outfile"
)

// claimImage makes an image output this process's for the whole write:
// it takes the output's lock (exit 12 while another process holds it),
// removes the temporary files a killed writer of the same output left
// (only under the lock, and only names our writers make), and checks
// every file the image will create, replace or remove (see outfile.Check:
// exit 8 for an existing file without --force, and always for anything
// but a regular file, or for a file of what is being read).
func claimImage(in *outfile.Inputs, lockPath, what string, force bool, names, cleanup func() ([]string, error)) (*dirlock.Lock, error) {
	lock, removed, err := in.Claim(lockPath, what, force, names, cleanup)
	for _, name := range removed {
		fmt.Fprintf(os.Stderr, "ebsimager: removed %s, left by an interrupted run\n", name)
	}
	var c *outfile.ConflictError
	if errors.As(err, &c) && c.Exists {
		return nil, withHint(err, "pass --force to replace it, or choose another output")
	}
	return lock, err
}

// readInputs is what a command reads, for outfile checks: evidence
// directories and images (an E01 with every segment of its set), and the
// key files of keys (nil for none).
func readInputs(paths []string, keys *openOptions) (*outfile.Inputs, error) {
	in := &outfile.Inputs{}
	if keys != nil {
		paths = append(append(append([]string(nil), paths...), keys.identities...), keys.passphraseFile)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			err = in.AddDir(p)
		} else {
			err = in.AddFile(p)
		}
		if err != nil {
			return nil, err
		}
		if isE01(p) {
			segs, err := ewf.Outputs(e01Base(p))
			if err != nil {
				return nil, err
			}
			for _, s := range segs {
				if err := in.AddFile(s); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return nil, err
				}
			}
		}
	}
	return in, nil
}

// checkOutput checks a single-file output (see outfile.Check) against
// what the command reads.
func checkOutput(in *outfile.Inputs, path string, force bool) error {
	err := in.Check(path, force)
	var c *outfile.ConflictError
	if errors.As(err, &c) && c.Exists {
		return withHint(err, "pass --force to replace it")
	}
	return err
}

// imageSink is where acquire --image puts blocks: straight into an image.
// Listed is told each block to come, in ascending order, before any
// worker fetches it (acquire.Options.Listed).
type imageSink interface {
	Has(index int64) bool
	Put(index int64, sum block.Sum, data []byte) error
	Listed(index int64)
	Close() (map[string]string, error)
	Abort() error
}

// rawSink writes blocks into a sparse raw image as they arrive; the image
// is hashed in order while they do (raw.ListedWriter), within
// raw.DefaultWindow block copies.
type rawSink struct {
	w    *raw.ListedWriter
	lock *dirlock.Lock
}

func openImageSink(path string, info ebs.Info, force bool, hashes []string) (imageSink, error) {
	size := info.VolumeBytes()
	lock, err := claimImage(&outfile.Inputs{}, path+".lock", "acquire", force,
		func() ([]string, error) { return raw.Outputs(path, size, 0) },
		func() ([]string, error) { return raw.RemovePartials(path) })
	if err != nil {
		return nil, err
	}
	w, err := raw.CreateListed(path, size, raw.Options{Hashes: hashes, Force: force}, raw.DefaultWindow)
	if err != nil {
		lock.Release()
		return nil, err
	}
	return rawSink{w, lock}, nil
}

// Has is always false: a direct image is not resumable (an evidence
// directory is), so every block is fetched.
func (rawSink) Has(int64) bool { return false }

// Listed ignores the error of a bad listing: the writer keeps it, and
// Put and Close return it.
func (s rawSink) Listed(index int64) { s.w.Listed(index) }

func (s rawSink) Put(index int64, _ block.Sum, data []byte) error {
	return s.w.WriteBlockAt(index, data)
}

func (s rawSink) Close() (map[string]string, error) {
	defer s.lock.Release()
	res, err := s.w.Close()
	return res.Sums, err
}

func (s rawSink) Abort() error {
	defer s.lock.Release()
	return s.w.Abort()
}
