package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// BenchmarkIncremental compares a full acquisition of a child snapshot
// with an incremental one from its parent's evidence. The case is
// a synthetic 64 GiB parent, 10% allocated, and a child differing in 1% of
// the slots; EBSIMAGER_BENCH_GIB sets another volume size. The parent's
// evidence is acquired once, untimed. Each op is one acquisition into a
// fresh directory; get-calls/op and list-calls/op are the emulator's
// counts. Run it alone:
//
//	go test ./cmd/ebsimager -run '^$' -bench Incremental -benchtime 1x
func BenchmarkIncremental(b *testing.B) {
	gib := 64 // the synthetic volume
	if v := os.Getenv("EBSIMAGER_BENCH_GIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("EBSIMAGER_BENCH_GIB: %v", err)
		}
		gib = n
	}
	srv, endpoint := emulatortest.Start(b, emulator.Options{})
	// 10% allocated parent, 1% changed child, as the issue asks.
	if err := srv.AddSynthetic(snapIncParent + "=" + strconv.Itoa(gib) + "GiB,0.1,31"); err != nil {
		b.Fatal(err)
	}
	if err := srv.AddChild(snapIncChild + "=child-of:" + snapIncParent + ",0.01,32"); err != nil {
		b.Fatal(err)
	}
	c := &cli{endpoint: endpoint}
	dir := b.TempDir()
	base := filepath.Join(dir, "base")
	run := func(args ...string) acquireSummary {
		b.Helper()
		out, err := c.command(context.Background(), args...).Output()
		if err != nil {
			b.Fatalf("ebsimager %v: %v", args, err)
		}
		var s acquireSummary
		if err := json.Unmarshal(out, &s); err != nil {
			b.Fatal(err)
		}
		return s
	}
	run("acquire", snapIncParent, "--out", base, "--json")
	for _, mode := range []string{"full", "incremental"} {
		b.Run(mode, func(b *testing.B) {
			out := filepath.Join(dir, mode)
			args := []string{"acquire", snapIncChild, "--out", out, "--json"}
			if mode == "incremental" {
				args = append(args, "--base", base)
			}
			srv.ResetCounters()
			var s acquireSummary
			for b.Loop() {
				b.StopTimer()
				if err := os.RemoveAll(out); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				s = run(args...)
			}
			ctr := srv.Counters()
			n := float64(b.N)
			b.ReportMetric(float64(ctr.Total(emulator.OpGetSnapshotBlock))/n, "get-calls/op")
			b.ReportMetric(float64(ctr.Total(emulator.OpListSnapshotBlocks)+ctr.Total(emulator.OpListChangedBlocks))/n, "list-calls/op")
			b.ReportMetric(float64(s.Fetched), "fetched-blocks")
			b.ReportMetric(float64(s.Blocks), "blocks")
			if err := os.RemoveAll(out); err != nil {
				b.Fatal(err)
			}
		})
	}
}
