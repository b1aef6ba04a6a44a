package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// BenchmarkAcquireInstance times `acquire i-…` of a two-volume instance
// on the emulator, in process: the preservation step (CreateSnapshots,
// waiting for completed) and the acquisition of both volumes at once
// under one account limiter. The emulator adds 10 ms to every request and
// enforces AWS's quotas scaled down fivefold, so that the limiters, not
// this machine, set the pace: GetSnapshotBlock 200/s for the account
// (and --account-rate 200) and 120/s for each snapshot. The small root
// volume and the larger data volume share the account's rate, 100/s
// each, until the root is done; then the data volume runs at its own
// snapshot's quota. It reports the
// API calls by action, and logs (-v) each volume's Gets per second from
// the account limiter's history.
//
//	go test ./cmd/ebsimager -run '^$' -bench BenchmarkAcquireInstance -benchtime 1x -v
func BenchmarkAcquireInstance(b *testing.B) {
	const inst = "i-0b0000000000000b1"
	srv, endpoint := emulatortest.StartInstance(b, emulator.Options{
		Latency: 10 * time.Millisecond, GetRatePerSnapshot: 120, GetRatePerAccount: 200, ListRate: 10,
		GetBurst: emulator.Burst{Time: 100 * time.Millisecond}, // a tenth of a second's worth: the quota holds second by second
	}, inst,
		emulatortest.SyntheticVolume("/dev/xvda", 1, 0.1, 1), // about 200 blocks
		emulatortest.SyntheticVolume("/dev/sdf", 1, 0.5, 2),  // about 1,000 blocks
	)
	for _, kv := range [][2]string{{"AWS_ACCESS_KEY_ID", "emulator"}, {"AWS_SECRET_ACCESS_KEY", "emulator"}, {"AWS_REGION", "us-east-1"},
		{"AWS_EC2_METADATA_DISABLED", "true"}, {"AWS_CONFIG_FILE", "/nonexistent"}, {"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"}} {
		b.Setenv(kv[0], kv[1])
	}
	aws := &awsOptions{endpoint: endpoint}
	cmd := &cobra.Command{}
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetContext(context.Background())
	var last *acquireOptions
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		srv.ResetCounters()
		o := &acquireOptions{out: filepath.Join(b.TempDir(), "case"), quiet: true, maxAttempts: 10, hashes: "none",
			seal: sealOptions{compress: "none"}, e01: e01Options{compression: "fast"}, preserve: preserveOptions{wait: true, timeout: time.Minute},
			account: ebs.NewAccount(200)}
		b.StartTimer()
		if _, err := runCase(context.Background(), cmd, aws, []string{inst}, o); err != nil {
			b.Fatal(err)
		}
		last = o
	}
	b.StopTimer()
	cnt := srv.Counters()
	for _, op := range []string{"CreateSnapshots", "DescribeInstances", "DescribeSnapshots", "ListSnapshotBlocks", "GetSnapshotBlock"} {
		b.ReportMetric(float64(cnt.Total(op)), op+"/op")
	}
	b.Logf("API calls of the last run:\n%s", cnt)
	cs, err := casework.Load(last.out, []string{inst})
	if err != nil || cs == nil {
		b.Fatalf("case.json: %v", err)
	}
	b.Logf("%s", throughputTable(cs, last.account.History()))
}

// throughputTable renders each volume's account turns (Gets) per second.
func throughputTable(cs *casework.Case, hist []ebs.AccountSecond) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "second")
	for _, v := range cs.Volumes {
		fmt.Fprintf(&sb, "  %s %s", v.Device, v.SnapshotID)
	}
	sb.WriteString("\n")
	sort.Slice(hist, func(i, j int) bool { return hist[i].At.Before(hist[j].At) })
	for i, h := range hist {
		fmt.Fprintf(&sb, "%6d", i)
		for _, v := range cs.Volumes {
			fmt.Fprintf(&sb, "  %*d", len(v.Device)+len(v.SnapshotID)+1, h.Granted[v.SnapshotID])
		}
		sb.WriteString("\n")
	}
	for _, v := range cs.Volumes {
		fmt.Fprintf(&sb, "%s %s: %d blocks in %.2f s, %d Gets, %d retries\n", v.Device, v.SnapshotID, v.Blocks, v.Seconds, v.GetCalls, v.Retries)
	}
	return sb.String()
}
