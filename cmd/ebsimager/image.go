package main

import (
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/image/raw"
)

// imageSink is where acquire --image puts blocks: straight into an image.
type imageSink interface {
	Has(index int64) bool
	Put(index int64, sum block.Sum, data []byte) error
	Close() (map[string]string, error)
	Abort() error
}

// rawSink writes blocks into a sparse raw image in arrival order; the
// image's hashes are computed when it is closed.
type rawSink struct{ w *raw.RandomWriter }

func openImageSink(path string, info ebs.Info, force bool, hashes []string) (imageSink, error) {
	w, err := raw.CreateRandom(path, info.VolumeBytes(), raw.Options{Hashes: hashes, Force: force})
	if err != nil {
		return nil, err
	}
	return rawSink{w}, nil
}

// Has is always false: a direct image is not resumable (an evidence
// directory is), so every block is fetched.
func (rawSink) Has(int64) bool { return false }

func (s rawSink) Put(index int64, _ block.Sum, data []byte) error {
	return s.w.WriteBlockAt(index, data)
}

func (s rawSink) Close() (map[string]string, error) {
	res, err := s.w.Close()
	return res.Sums, err
}

func (s rawSink) Abort() error { return s.w.Abort() }
