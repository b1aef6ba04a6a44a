package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/report"
)

// BenchmarkTriageLive triages a Linux-like disk (the artifacts of
// TestTriageLinux among 320 MiB of filler: 40 users' homes of 8 MiB of
// random data each, each with a shell history) read live from the emulator,
// which answers every request after 20 ms, with the built-in profile: it
// reports the Gets against the volume's allocated blocks, the seconds
// and the time to the first file.
//
//	go test -run '^$' -bench TriageLive -benchtime 1x ./cmd/ebsimager
func BenchmarkTriageLive(b *testing.B) {
	d := buildLinuxDisk(b, 320<<20)
	srv, endpoint := emulatortest.Start(b, emulator.Options{Latency: 20 * time.Millisecond})
	if err := srv.AddRawImage(snapLinux, d.path, emulator.RawOptions{}); err != nil {
		b.Fatal(err)
	}
	c := &cli{endpoint: endpoint}
	var rec report.Triage
	for i := 0; b.Loop(); i++ {
		out := filepath.Join(b.TempDir(), "out")
		cmd := c.command(context.Background(), "triage", snapLinux, "--out", out)
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("triage: %v\n%s", err, o)
		}
		js, err := os.ReadFile(filepath.Join(out, report.JSONName))
		if err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(js, &rec); err != nil {
			b.Fatal(err)
		}
	}
	f := rec.Figures
	b.ReportMetric(float64(f.Requests.GetCalls), "gets/op")
	b.ReportMetric(float64(f.AllocatedBlocks), "allocated-blocks")
	b.ReportMetric(100*f.GetsPerAllocated, "gets-%-of-allocated")
	b.ReportMetric(f.Seconds, "seconds/op")
	b.ReportMetric(f.FirstFileSeconds, "first-file-s/op")
	b.ReportMetric(float64(f.Files), "files")
	b.Logf("%d files, %d bytes; %d List, %d Get calls for %d allocated blocks (%.2f%%); %.2f s, first file after %.2f s",
		f.Files, f.Bytes, f.Requests.ListCalls, f.Requests.GetCalls, f.AllocatedBlocks, 100*f.GetsPerAllocated, f.Seconds, f.FirstFileSeconds)
}
