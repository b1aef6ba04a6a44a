package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// BenchmarkAcquireToS3 acquires a fully allocated 1 GiB snapshot (2,048
// blocks) from the emulator into a directory and into moto's S3 (behind
// the checksum-checking proxy), in the same run, through the binary, and
// reports each one's MiB/s and the S3 requests per GiB by method, then
// times verify of the evidence in S3.
//
//	go test ./cmd/ebsimager -run '^$' -bench BenchmarkAcquireToS3 -benchtime 1x -v
func BenchmarkAcquireToS3(b *testing.B) {
	srv, endpoint := emulatortest.Start(b, emulator.Options{TrackBlocks: true})
	if err := srv.AddSynthetic(snapA + "=1GiB,1.0,7"); err != nil {
		b.Fatal(err)
	}
	proxy, run := benchS3(b, endpoint, true)
	const gib = 1 << 30
	for i := 0; i < b.N; i++ {
		srv.ResetCounters()
		dir := run("acquire", snapA, "--out", filepath.Join(b.TempDir(), "ev"), "--quiet")
		proxy.Counts()
		toS3 := run("acquire", snapA, "--out", fmt.Sprintf("s3://bench/run-%d/", i), "--object-lock", "governance", "--retain-days", "1", "--quiet")
		counts := proxy.Counts()
		verify := run("verify", fmt.Sprintf("s3://bench/run-%d/", i), "--quiet")
		b.ReportMetric(gib/verify.Seconds()/(1<<20), "s3-verify-MiB/s")
		b.ReportMetric(gib/dir.Seconds()/(1<<20), "dir-MiB/s")
		b.ReportMetric(gib/toS3.Seconds()/(1<<20), "s3-MiB/s")
		var total int64
		for m, n := range counts {
			b.ReportMetric(float64(n), m+"/GiB")
			total += n
		}
		b.ReportMetric(float64(total), "s3-requests/GiB")
	}
}

// benchS3 starts moto behind the checksum-checking proxy with a bucket
// "bench" (Object Lock enabled when locked), and returns the proxy (for
// its request counts) and a function that runs the binary against the
// emulator at endpoint and that S3, and times it.
func benchS3(b *testing.B, endpoint string, locked bool) (*testenv.S3Proxy, func(args ...string) time.Duration) {
	proxy := testenv.NewS3Proxy(b, testenv.Moto(b))
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("emulator", "emulator", ""), BaseEndpoint: aws.String(proxy.URL)}
	api := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	in := &s3.CreateBucketInput{Bucket: aws.String("bench")}
	if locked {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := api.CreateBucket(context.Background(), in); err != nil {
		b.Fatal(err)
	}
	c := &cli{endpoint: endpoint, env: []string{"AWS_ENDPOINT_URL_S3=" + proxy.URL}}
	return proxy, func(args ...string) time.Duration {
		start := time.Now()
		if out, err := c.command(context.Background(), args...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
		return time.Since(start)
	}
}
