package preflight

import (
	"context"
	"fmt"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
)

// BenchmarkCheck measures the pre-flight of n readable snapshots against
// the emulator on loopback, half of them encrypted (each of those costs
// one List request): the latency it adds before an acquisition lists,
// and the requests it makes per snapshot.
func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("snapshots=%d", n), func(b *testing.B) {
			meta := map[string]emulator.SnapshotMeta{}
			var ids []string
			for i := range n {
				id := fmt.Sprintf("snap-0b%015x", i)
				ids = append(ids, id)
				if i%2 == 1 {
					meta[id] = emulator.SnapshotMeta{KMSKeyID: keyARN}
				}
			}
			s, cfg := startEmu(b, emulator.Options{SnapshotMeta: meta}, ids...)
			s.ResetCounters()
			b.ResetTimer()
			for b.Loop() {
				if _, err := Check(context.Background(), cfg, ids); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c := s.Counters()
			per := float64(b.N * n)
			b.ReportMetric(float64(c.Total(emulator.OpDescribeSnapshots))/float64(b.N), "describes/op")
			b.ReportMetric(float64(c.Total("DescribeSnapshotAttribute"))/per, "attributes/snapshot")
			b.ReportMetric(float64(c.Total(emulator.OpListSnapshotBlocks))/per, "lists/snapshot")
			b.ReportMetric(float64(c.Total(emulator.OpGetSnapshotBlock)), "gets")
		})
	}
}
