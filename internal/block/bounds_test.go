package block

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestVolumeBounds(t *testing.T) {
	if MaxSlots != 134217728 || MaxSlots > math.MaxInt32 {
		t.Fatalf("MaxSlots = %d", MaxSlots)
	}
	for _, gib := range []int64{1, 8, MaxVolumeGiB} {
		if err := CheckVolumeGiB(gib); err != nil {
			t.Errorf("%d GiB: %v", gib, err)
		}
	}
	for _, gib := range []int64{0, -1, MaxVolumeGiB + 1, 99999999999, math.MaxInt64, math.MinInt64} {
		if err := CheckVolumeGiB(gib); err == nil || !strings.Contains(err.Error(), "EBS volumes are at most 64 TiB") {
			t.Errorf("%d GiB: %v", gib, err)
		}
	}
	var beyond *BeyondVolumeError
	if err := CheckIndex(2048, 2048); !errors.As(err, &beyond) || err.Error() != "block 2048 is beyond the volume of 2048 blocks" {
		t.Errorf("CheckIndex(2048, 2048) = %v", err)
	}
	if err := CheckIndex(-1, 2048); err == nil {
		t.Error("CheckIndex(-1) accepted")
	}
	if err := CheckIndex(2047, 2048); err != nil {
		t.Errorf("CheckIndex(2047, 2048) = %v", err)
	}
	// A file name cannot claim a volume no EBS volume has.
	sum := SumOf(nil).Hex()
	for _, vol := range []string{"99999999999", "65537", "0"} {
		name := "0000000001_snap-0a_" + sum + "_" + vol + "_524288"
		if _, _, err := ParseFileName(name); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, _, err := ParseFileName("0000000001_snap-0a_" + sum + "_65536_524288"); err != nil {
		t.Errorf("a 64 TiB name: %v", err)
	}
}
