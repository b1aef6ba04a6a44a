package emulator_test

import (
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
)

func TestParseSnapshotMetaPreflight(t *testing.T) {
	m := map[string]emulator.SnapshotMeta{}
	const arn = "arn:aws:outposts:us-east-1:111122223333:outpost/op-0123456789abcdef0"
	for _, spec := range []string{
		"snap-0a:storage-tier=archive", "snap-0a:public=true", "snap-0a:outpost-arn=" + arn, "snap-0a:state=pending",
		"snap-0b:storage-tier=standard", "snap-0b:public=false", "snap-0b:state=error",
	} {
		if err := emulator.ParseSnapshotMeta(spec, m); err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
	}
	if a := m["snap-0a"]; a.StorageTier != "archive" || !a.Public || a.OutpostARN != arn || a.State != "pending" {
		t.Fatalf("snap-0a: %+v", a)
	}
	if b := m["snap-0b"]; b.StorageTier != "standard" || b.Public || b.OutpostARN != "" || b.State != "error" {
		t.Fatalf("snap-0b: %+v", b)
	}
	for _, bad := range []string{"snap-0a:storage-tier=glacier", "snap-0a:public=yes", "snap-0a:outpost-arn=op-0123",
		"snap-0a:state=available", "snap-0a:state="} {
		if err := emulator.ParseSnapshotMeta(bad, m); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
