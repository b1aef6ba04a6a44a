package block

import (
	"errors"
	"testing"
)

func TestZeroSum(t *testing.T) {
	// The value EBS-API.md quotes for a block of zeros.
	if got, want := ZeroSum.Base64(), "B4VNL+8pega6gWheZgwzLeNtXRjVRpJ9MNqtbX/aFUE="; got != want {
		t.Fatalf("ZeroSum = %s, want %s", got, want)
	}
}

func TestFileNameRoundTrip(t *testing.T) {
	f := FileInfo{Index: 42, Snapshot: "snap-056e0b1bd07ad91b2", Sum: SumOf([]byte("x")), VolumeGiB: 8, BlockSize: Size}
	name := FileName(f)
	want := "0000000042_snap-056e0b1bd07ad91b2_2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881_8_524288"
	if name != want {
		t.Fatalf("FileName = %s\nwant %s", name, want)
	}
	got, ext, err := ParseFileName(name + ".zst.age")
	if err != nil {
		t.Fatal(err)
	}
	if got != f || ext != ".zst.age" {
		t.Fatalf("ParseFileName = %+v %q, want %+v .zst.age", got, ext, f)
	}
}

func TestParseFileNameRejects(t *testing.T) {
	for _, name := range []string{
		"",
		"42_snap-1_" + ZeroSum.Hex() + "_8_524288",
		"0000000042_snap-XYZ_" + ZeroSum.Hex() + "_8_524288",
		"0000000042_snap-1_abcd_8_524288",
		"0000000042_snap-1_" + ZeroSum.Hex() + "_0_524288",
		"0000000042_snap-1_" + ZeroSum.Hex() + "_8",
	} {
		if _, _, err := ParseFileName(name); err == nil {
			t.Errorf("ParseFileName(%q) accepted", name)
		}
	}
}

func TestSnapshotID(t *testing.T) {
	for id, ok := range map[string]bool{
		"snap-0123456789abcdef0":           true,
		"snap-1":                           true,
		"snap-":                            false,
		"snap-ABC":                         false,
		"vol-123":                          false,
		"snap-" + string(make([]byte, 60)): false,
	} {
		if ValidSnapshotID(id) != ok {
			t.Errorf("ValidSnapshotID(%q) = %v", id, !ok)
		}
	}
	var e *InvalidSnapshotIDError
	if err := CheckSnapshotID("bad"); !errors.As(err, &e) || e.ID != "bad" {
		t.Fatalf("CheckSnapshotID(bad) = %v", err)
	}
}

func TestIsZero(t *testing.T) {
	p := make([]byte, 1003)
	if !IsZero(p) {
		t.Fatal("zeros not zero")
	}
	for _, i := range []int{0, 7, 8, 999, 1002} {
		p[i] = 1
		if IsZero(p) {
			t.Fatalf("byte %d set but IsZero", i)
		}
		p[i] = 0
	}
}

func TestParseBase64(t *testing.T) {
	s, err := ParseBase64(ZeroSum.Base64())
	if err != nil || s != ZeroSum {
		t.Fatalf("ParseBase64 = %v, %v", s, err)
	}
	if _, err := ParseBase64("AAAA"); err == nil {
		t.Fatal("short digest accepted")
	}
}
