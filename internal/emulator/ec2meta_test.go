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

func TestParseInstanceSpec(t *testing.T) {
	id, vols, err := emulator.ParseInstanceSpec("i-0123456789abcdef0=/dev/xvda:/tmp/a,b.raw,/dev/xvdb:synthetic:8GiB,0.5,7,xvdc:synthetic:1GiB")
	if err != nil {
		t.Fatal(err)
	}
	if id != "i-0123456789abcdef0" || len(vols) != 3 {
		t.Fatalf("%s %+v", id, vols)
	}
	if v := vols[0]; v.Device != "/dev/xvda" || v.RawPath != "/tmp/a,b.raw" || v.Synthetic != nil {
		t.Errorf("root %+v", v)
	}
	if v := vols[1]; v.Device != "/dev/xvdb" || v.RawPath != "" || *v.Synthetic != (emulator.SyntheticSpec{VolumeGiB: 8, Fraction: 0.5, Seed: 7}) {
		t.Errorf("data %+v", v)
	}
	if v := vols[2]; v.Device != "xvdc" || *v.Synthetic != (emulator.SyntheticSpec{VolumeGiB: 1, Fraction: 1, Seed: 1}) {
		t.Errorf("third %+v", v)
	}
	for _, bad := range []string{"i-0123456789abcdef0", "i-0123=/dev/xvda:x", "i-0123456789abcdef0=/dev/xvda",
		"i-0123456789abcdef0=/dev/xvda:synthetic:8MiB", "i-0123456789abcdef0=/Dev/X:disk", "i-0123456789abcdef0=/dev/xvda:synthetic:1GiB,2"} {
		if _, _, err := emulator.ParseInstanceSpec(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	v, err := emulator.ParseVolumeSpec("vol-0123456789abcdef0=synthetic:2TiB,0.001")
	if err != nil || v.ID != "vol-0123456789abcdef0" || v.Synthetic.VolumeGiB != 2048 || v.Synthetic.Fraction != 0.001 {
		t.Fatalf("volume %+v %v", v, err)
	}
	if _, err := emulator.ParseVolumeSpec("vol-xyz=disk.raw"); err == nil {
		t.Error("vol-xyz parsed")
	}
	m := map[string]emulator.VolumeSpec{}
	for _, spec := range []string{"vol-01234567:encrypted=true", "vol-01234567:kms-key=arn:aws:kms:us-east-1:111122223333:key/k", "vol-01234567:tag:Name=db"} {
		if err := emulator.ParseVolumeMeta(spec, m); err != nil {
			t.Fatal(err)
		}
	}
	if v := m["vol-01234567"]; !v.Encrypted || v.KMSKeyID != "arn:aws:kms:us-east-1:111122223333:key/k" || len(v.Tags) != 1 || v.Tags[0] != (emulator.Tag{Key: "Name", Value: "db"}) {
		t.Fatalf("volume meta %+v", v)
	}
	// Volume ids are fixed functions of the instance and device.
	for _, tc := range [][3]string{
		{"i-0123456789abcdef0", "/dev/xvda", "vol-00000047f3eb55ce2"},
		{"i-0123456789abcdef0", "/dev/xvdb", "vol-0cea6ad05b031e251"},
		{"i-01234567", "/dev/xvda", "vol-04b971697a4e6815c"},
	} {
		if got := emulator.VolumeID(tc[0], tc[1]); got != tc[2] {
			t.Errorf("VolumeID(%s, %s) = %s, want %s", tc[0], tc[1], got, tc[2])
		}
	}
}

// TestSpecInstances reads the instance flags into sources, with metadata
// applied to the derived volume ids.
func TestSpecInstances(t *testing.T) {
	inst := "i-0123456789abcdef0"
	vol := emulator.VolumeID(inst, "/dev/xvdb")
	var o emulator.Options
	o.ThrottleAs = emulator.RequestThrottled
	srcs, err := emulator.Spec{Instances: []string{inst + "=/dev/xvda:synthetic:1GiB,/dev/xvdb:synthetic:2GiB"},
		VolumeMetas: []string{vol + ":encrypted=true"}, GetBurst: emulator.DefaultBurst.String(), ListBurst: emulator.DefaultBurst.String()}.Parse(&o)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 || srcs[0].ID != inst || len(srcs[0].Instance) != 2 || srcs[0].Instance[1].ID != vol || !srcs[0].Instance[1].Encrypted || srcs[0].Instance[0].Encrypted {
		t.Fatalf("sources %+v", srcs)
	}
	s := emulator.New(o)
	defer s.Close()
	if err := s.AddSources(srcs); err != nil {
		t.Fatal(err)
	}
	if err := s.AddInstance(inst, srcs[0].Instance); err == nil {
		t.Fatal("the same instance added twice")
	}
}
