package emulator_test

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
)

func TestSpecParse(t *testing.T) {
	s := emulator.Spec{
		Raws:       []string{"snap-0c0=disk.raw"},
		Parents:    []string{"snap-0c0=snap-0b0"},
		Synthetics: []string{"snap-0b0=8GiB,0.5,7"},
		Children:   []string{"snap-0d0=child-of:snap-0b0,0.1"},
		FailBlocks: []string{"snap-0b0:42=BadChecksum"},
		Denies:     []string{"snap-0e0", "snap-0f0=DEPENDENCY_ACCESS_DENIED"},
		Metas:      []string{"snap-0b0:description=nightly"},
		GetBurst:   "100ms", ListBurst: "5",
		ListZeroBlocks: true,
	}
	o := emulator.Options{ThrottleAs: emulator.RequestThrottled}
	srcs, err := s.Parse(&o)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 3 || srcs[0].ID != "snap-0c0" || srcs[0].RawPath != "disk.raw" || srcs[0].Raw.Parent != "snap-0b0" || !srcs[0].Raw.ListZeroBlocks ||
		srcs[1].Synthetic == nil || srcs[1].Synthetic.ID != "snap-0b0" || srcs[2].Child == nil || srcs[2].Child.Parent != "snap-0b0" {
		t.Fatalf("sources %+v", srcs)
	}
	if len(o.Faults.FailBlocks) != 1 || o.Faults.FailBlocks[0] != (emulator.BlockFault{Snapshot: "snap-0b0", Index: 42, Error: "BadChecksum"}) {
		t.Fatalf("fail blocks %+v", o.Faults.FailBlocks)
	}
	if o.Faults.Deny["snap-0e0"] != emulator.DenyUnauthorizedAccount || o.Faults.Deny["snap-0f0"] != emulator.DenyDependencyAccessDenied {
		t.Fatalf("denials %v", o.Faults.Deny)
	}
	if o.SnapshotMeta["snap-0b0"].Description != "nightly" || o.GetBurst.String() != "100ms" || o.ListBurst.String() != "5" {
		t.Fatalf("meta %+v, bursts %v %v", o.SnapshotMeta, o.GetBurst, o.ListBurst)
	}

	for _, tc := range []struct {
		spec emulator.Spec
		o    emulator.Options
		want string
	}{
		{emulator.Spec{Parents: []string{"snap-0c0"}}, emulator.Options{}, `--parent "snap-0c0": want snap-CHILD=snap-PARENT`},
		{emulator.Spec{Parents: []string{"snap-0c0=snap-0b0"}}, emulator.Options{}, "--parent snap-0c0: not a --snapshot"},
		{emulator.Spec{Raws: []string{"snap-0c0"}}, emulator.Options{}, `--snapshot "snap-0c0": want snap-ID=PATH`},
		{emulator.Spec{Raws: []string{"bad=x"}}, emulator.Options{}, `--snapshot "bad=x": `},
		{emulator.Spec{FailBlocks: []string{"snap-0b0:1=Nope"}}, emulator.Options{}, "unknown error kind"},
		{emulator.Spec{Denies: []string{"snap-0b0=WHY"}}, emulator.Options{}, "unknown reason"},
		{emulator.Spec{}, emulator.Options{Faults: emulator.Faults{Throttle: 2}}, "throttle fraction 2"},
		{emulator.Spec{}, emulator.Options{ListRate: math.Inf(1)}, "--list-rate +Inf: want a finite number"},
		{emulator.Spec{GetBurst: "0"}, emulator.Options{}, "--get-burst: "},
		{emulator.Spec{GetBurst: "1s", ListBurst: "fast"}, emulator.Options{}, "--list-burst: "},
		{emulator.Spec{GetBurst: "1s", ListBurst: "1s"}, emulator.Options{ThrottleAs: "Slow"}, `--throttle-as "Slow": want`},
	} {
		o := tc.o
		if _, err := tc.spec.Parse(&o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error containing %q", tc.spec, err, tc.want)
		}
	}
}

func TestLineLog(t *testing.T) {
	var buf bytes.Buffer
	logf := emulator.LineLog(&buf, "emu: ")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); logf("request %d of %s", i, strings.Repeat("x", 200)) }()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 50 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "emu: request ") || !strings.HasSuffix(l, strings.Repeat("x", 200)) {
			t.Fatalf("interleaved line %q", l)
		}
	}
}
