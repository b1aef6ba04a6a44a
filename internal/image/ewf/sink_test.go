package ewf

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/sink/sinktest"
)

// The E01 sink (a Writer behind the reordering window) passes the sink
// suite; its hashes are the media's, read back through our reader.
func TestSinkE01(t *testing.T) {
	base := func(dir string) string { return filepath.Join(dir, "image") }
	sinktest.Run(t, sinktest.Target{
		Open: func(t *testing.T, dir string, size int64) sink.Sink {
			s, err := CreateSink(base(dir), size, Options{Level: LevelFast})
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
			names, err := SinkOutputs(base(dir))
			if err != nil {
				panic(err)
			}
			return names
		},
		Hashes: []string{"md5", "sha1", "sha256"},
	})
}
