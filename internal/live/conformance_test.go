package live

import (
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/volume"
	"github.com/ebsimager/ebsimager/internal/volume/volumetest"
)

// The shared Volume suite, over a snapshot written through the emulator's
// write API (so it lists exactly the allocated blocks, the all-zero one
// included) and read through the production fetch stack; the damaged
// block is served with a checksum that does not match, every attempt.
func TestVolumeSuite(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"defaults", Options{}},
		// Small chunks and a small cache: many chunks listed lazily,
		// evictions under concurrent readers.
		{"small", Options{chunk: 100, CacheBytes: 3 << 19, TokenBytes: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			volumetest.Run(t, volumetest.Factory{
				Open: func(t *testing.T, disk []byte, allocated []int64) volume.Volume {
					e := newEnv(t, emulator.Options{})
					return e.open(t, e.write(t, disk, allocated), c.o)
				},
				Damage: func(t *testing.T, disk []byte, allocated []int64, damaged int64) volume.Volume {
					e := newEnv(t, emulator.Options{})
					id := e.write(t, disk, allocated)
					e.srv.SetFaults(emulator.Faults{FailBlocks: []emulator.BlockFault{{Snapshot: id, Index: damaged, Error: emulator.FaultBadChecksum}}})
					return e.open(t, id, c.o)
				},
			})
		})
	}
}
