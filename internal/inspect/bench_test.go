package inspect_test

import (
	"os"
	"testing"

	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
)

// BenchmarkInspectSample inspects the 1 GiB sample disk from a file, as
// the CLI does with a rebuilt raw image.
func BenchmarkInspectSample(b *testing.B) {
	path, err := sampledisk.Extract(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inspect.Inspect(f, sampledisk.Size); err != nil {
			b.Fatal(err)
		}
	}
}
