package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// BenchmarkIncrementalS3 times an incremental acquisition of a child
// snapshot (1% of the slots changed) of a fully allocated 1 GiB parent
// (2,048 blocks), in each combination of a base and an output in a
// directory or in moto's S3 (behind the checksum-checking proxy), through
// the binary, and reports each one's seconds and the S3 requests it made
// by method. The bases are acquired once, untimed.
//
//	go test ./cmd/ebsimager -run '^$' -bench BenchmarkIncrementalS3 -benchtime 1x -v
func BenchmarkIncrementalS3(b *testing.B) {
	srv, endpoint := emulatortest.Start(b, emulator.Options{})
	if err := srv.AddSynthetic(snapIncParent + "=1GiB,1.0,41"); err != nil {
		b.Fatal(err)
	}
	if err := srv.AddChild(snapIncChild + "=child-of:" + snapIncParent + ",0.01,42"); err != nil {
		b.Fatal(err)
	}
	proxy, run := benchS3(b, endpoint, false)
	dir := b.TempDir()
	bases := map[string]string{"dir": filepath.Join(dir, "base"), "s3": "s3://bench/base/"}
	for _, base := range bases {
		run("acquire", snapIncParent, "--out", base, "--quiet")
	}
	for i := 0; i < b.N; i++ {
		for _, tc := range []struct{ from, to string }{{"dir", "dir"}, {"dir", "s3"}, {"s3", "dir"}, {"s3", "s3"}} {
			out := filepath.Join(dir, fmt.Sprintf("out-%d-%s", i, tc.from))
			if tc.to == "s3" {
				out = fmt.Sprintf("s3://bench/out-%d-%s/", i, tc.from)
			}
			proxy.Counts()
			took := run("acquire", snapIncChild, "--base", bases[tc.from], "--out", out, "--quiet")
			name := tc.from + "-to-" + tc.to
			b.ReportMetric(took.Seconds(), name+"-s")
			var total int64
			for m, n := range proxy.Counts() {
				b.ReportMetric(float64(n), name+"-"+strings.ToLower(m))
				total += n
			}
			b.ReportMetric(float64(total), name+"-s3-requests")
		}
	}
}
