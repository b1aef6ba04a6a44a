package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// BenchmarkConvertToS3 compresses the evidence of a fully allocated
// 1 GiB snapshot (2,048 blocks) with zstd in place, and from the same
// directory into moto's S3 (behind the checksum-checking proxy) under a
// governance lock, in the same run, through the binary; it reports each
// one's MiB/s (of blocks as served) and the S3 requests per GiB by
// method.
//
//	go test ./cmd/ebsimager -run '^$' -bench BenchmarkConvertToS3 -benchtime 1x -v
func BenchmarkConvertToS3(b *testing.B) {
	srv, endpoint := emulatortest.Start(b, emulator.Options{TrackBlocks: true})
	if err := srv.AddSynthetic(snapA + "=1GiB,1.0,7"); err != nil {
		b.Fatal(err)
	}
	proxy, run := benchS3(b, endpoint, true)
	const gib = 1 << 30
	ev := filepath.Join(b.TempDir(), "ev")
	run("acquire", snapA, "--out", ev, "--quiet")
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(b.TempDir(), "copy")
		if out, err := exec.Command("cp", "-a", ev, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		inPlace := run("compress", dst, "--quiet")
		proxy.Counts()
		toS3 := run("compress", ev, "--out", fmt.Sprintf("s3://bench/z-%d/", i), "--object-lock", "governance", "--retain-days", "1", "--quiet")
		counts := proxy.Counts()
		b.ReportMetric(gib/inPlace.Seconds()/(1<<20), "in-place-MiB/s")
		b.ReportMetric(gib/toS3.Seconds()/(1<<20), "s3-MiB/s")
		var total int64
		for m, n := range counts {
			b.ReportMetric(float64(n), m+"/GiB")
			total += n
		}
		b.ReportMetric(float64(total), "s3-requests/GiB")
	}
}
