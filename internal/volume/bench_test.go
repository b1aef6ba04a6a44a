package volume_test

import (
	"context"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/volume"
	"github.com/ebsimager/ebsimager/internal/volume/volumetest"
)

// BenchmarkEvidenceSequential reads 64 MiB of plain evidence in 64 KiB
// reads, as a file-system walker does: each block is found in the
// manifest, read, checked and cached once.
func BenchmarkEvidenceSequential(b *testing.B) {
	disk := volumetest.Disk()
	var allocated []int64
	for i := int64(0); i < 128; i++ {
		allocated = append(allocated, i)
	}
	dir := writeEvidence(b, disk, allocated, plainForm())
	buf := make([]byte, 64<<10)
	b.SetBytes(128 * block.Size)
	for b.Loop() {
		v, err := volume.Open(context.Background(), dir, volume.Options{})
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < 128*block.Size; off += int64(len(buf)) {
			if _, err := v.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		v.Close()
	}
}
