package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/outfile"
	"github.com/ebsimager/ebsimager/internal/sink"
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

// openListedImage claims the raw image at path for acquire (see
// claimImage) and starts it as a sink: blocks are written as they arrive
// and the image is hashed in order while they do (raw.ListedSink),
// within raw.DefaultWindow block copies.
func openListedImage(path string, size int64, o raw.Options) (*dirlock.Lock, sink.Sink, error) {
	lock, err := claimImage(&outfile.Inputs{}, path+".lock", "acquire", o.Force,
		func() ([]string, error) { return raw.Outputs(path, size, 0) },
		func() ([]string, error) { return raw.RemovePartials(path) })
	if err != nil {
		return nil, nil, err
	}
	s, err := raw.CreateListedSink(path, size, o, raw.DefaultWindow)
	if err != nil {
		lock.Release()
		return nil, nil, err
	}
	return lock, s, nil
}
