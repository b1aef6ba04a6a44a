package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// BenchmarkExportToS3 exports the same evidence (a 1 GiB volume with a
// quarter of its blocks listed: 256 MiB of data, 512 blocks) to a local
// raw file, to a raw object in moto's S3 (behind the checksum-checking
// proxy; every byte of the GiB is sent, holes as zeros), and to an E01
// in S3, through the binary, and reports each one's volume MiB/s
// (1 GiB / wall time), and the S3 requests of each by method.
//
//	go test ./cmd/ebsimager -run '^$' -bench BenchmarkExportToS3 -benchtime 1x -v
func BenchmarkExportToS3(b *testing.B) {
	srv, endpoint := emulatortest.Start(b, emulator.Options{})
	if err := srv.AddSynthetic(snapA + "=1GiB,0.25,7"); err != nil {
		b.Fatal(err)
	}
	proxy, run := benchS3(b, endpoint, false)
	ev := filepath.Join(b.TempDir(), "ev")
	run("acquire", snapA, "--out", ev, "--quiet")
	const gib = 1 << 30
	for i := 0; i < b.N; i++ {
		local := run("export", ev, "--out", filepath.Join(b.TempDir(), "disk.raw"), "--quiet")
		proxy.Counts()
		raw := run("export", ev, "--out", fmt.Sprintf("s3://bench/%d/disk.raw", i), "--quiet")
		rawCounts := proxy.Counts()
		e01 := run("export", ev, "--format", "e01", "--out", fmt.Sprintf("s3://bench/%d/disk", i), "--quiet")
		e01Counts := proxy.Counts()
		b.ReportMetric(gib/local.Seconds()/(1<<20), "local-raw-MiB/s")
		b.ReportMetric(gib/raw.Seconds()/(1<<20), "s3-raw-MiB/s")
		b.ReportMetric(gib/e01.Seconds()/(1<<20), "s3-e01-MiB/s")
		for m, n := range rawCounts {
			b.ReportMetric(float64(n), "raw-"+m)
		}
		for m, n := range e01Counts {
			b.ReportMetric(float64(n), "e01-"+m)
		}
	}
}
