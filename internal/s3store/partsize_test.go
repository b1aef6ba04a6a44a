package s3store

import "testing"

func TestPartSize(t *testing.T) {
	for _, c := range []struct {
		size int64
		want int
	}{
		{0, DefaultPartSize},
		{1 << 30, DefaultPartSize},
		{maxParts * DefaultPartSize, DefaultPartSize}, // 156.25 GiB: exactly 10,000 parts
		{maxParts*DefaultPartSize + 1, 17 << 20},      // one byte more: the next whole MiB
		{1 << 40, 105 << 20},                          // 1 TiB: 104.9 MiB, rounded up
		{MaxObjectSize, 525 << 20},                    // 5 TiB
		{MaxObjectSize * 1000, MaxPartSize},           // never past S3's part limit
	} {
		got := PartSize(c.size)
		if got != c.want {
			t.Errorf("PartSize(%d) = %d, want %d", c.size, got, c.want)
		}
		if c.size <= MaxObjectSize && int64(got)*maxParts < c.size {
			t.Errorf("PartSize(%d) = %d: %d parts do not hold it", c.size, got, maxParts)
		}
	}
}
