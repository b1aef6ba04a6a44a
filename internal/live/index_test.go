package live

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// The index gives back exactly the allocation it was told, as bits and
// as merged ranges, whether a chunk is empty, full, mixed or short.
func TestIndexRanges(t *testing.T) {
	const slots, chunk = 5000, 300 // 17 chunks, the last of 200 slots
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 20 {
		alloc := make([]bool, slots)
		for c := int64(0); c*chunk < slots; c++ {
			start, end := c*chunk, min((c+1)*chunk, slots)
			kind := rng.IntN(4) // empty, full, dense runs, sparse
			for i := start; i < end; i++ {
				switch kind {
				case 1:
					alloc[i] = true
				case 2:
					alloc[i] = rng.IntN(10) != 0
				case 3:
					alloc[i] = rng.IntN(10) == 0
				}
			}
		}
		x := newIndex(slots, chunk)
		for _, c := range rng.Perm(int(x.chunks())) {
			start, end := x.span(int64(c))
			bits := make([]uint64, (end-start+63)/64)
			for i := start; i < end; i++ {
				if alloc[i] {
					bits[(i-start)/64] |= 1 << ((i - start) % 64)
				}
			}
			x.set(int64(c), bits)
		}
		var want []volume.Range
		for i := int64(0); i < slots; i++ {
			got, known := x.test(i)
			if !known || got != alloc[i] {
				t.Fatalf("round %d: slot %d: %v (known %v), want %v", round, i, got, known, alloc[i])
			}
			if !alloc[i] {
				continue
			}
			if k := len(want) - 1; k >= 0 && want[k].End() == i*block.Size {
				want[k].Len += block.Size
			} else {
				want = append(want, volume.Range{Off: i * block.Size, Len: block.Size})
			}
		}
		if want == nil {
			want = []volume.Range{}
		}
		if got := x.ranges(); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: ranges\n got %v\nwant %v", round, got, want)
		}
	}
}
