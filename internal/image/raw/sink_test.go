package raw

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/sink/sinktest"
)

var sinkHashes = []string{"md5", "sha1", "sha256"}

// rawTarget is a raw image at DIR/image.raw as a sink under test.
func rawTarget(split int64, open func(path string, size int64, o Options) (sink.Sink, error)) sinktest.Target {
	path := func(dir string) string { return filepath.Join(dir, "image.raw") }
	return sinktest.Target{
		Open: func(t *testing.T, dir string, size int64) sink.Sink {
			s, err := open(path(dir), size, Options{Hashes: sinkHashes, Split: split})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Read: func(t *testing.T, dir string, res sink.Result) io.ReaderAt {
			r, err := Open(res.Files[0])
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		},
		Finals: func(dir string) []string {
			names, err := Outputs(path(dir), 16*block.Size, split)
			if err != nil {
				panic(err)
			}
			return names
		},
		Hashes: sinkHashes,
	}
}

func TestSinkListed(t *testing.T) {
	sinktest.Run(t, rawTarget(0, func(path string, size int64, o Options) (sink.Sink, error) {
		return CreateListedSink(path, size, o, 4) // a small window: some blocks are read back
	}))
}

func TestSinkOrdered(t *testing.T) {
	sinktest.Run(t, rawTarget(0, func(path string, size int64, o Options) (sink.Sink, error) {
		return CreateSink(path, size, o)
	}))
}

func TestSinkOrderedSplit(t *testing.T) {
	sinktest.Run(t, rawTarget(3*block.Size, func(path string, size int64, o Options) (sink.Sink, error) {
		return CreateSink(path, size, o)
	}))
}

func TestSinkRandom(t *testing.T) {
	sinktest.Run(t, rawTarget(0, func(path string, size int64, o Options) (sink.Sink, error) {
		return CreateRandomSink(path, size, o)
	}))
}
