package acquire

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// counting is a sink that keeps nothing: the benchmark measures the
// limits, not the disk.
type counting struct{ n atomic.Int64 }

func (c *counting) Caps() sink.Caps             { return sink.Caps{} }
func (c *counting) Has(int64) bool              { return false }
func (c *counting) Put(block.Block) error       { c.n.Add(1); return nil }
func (c *counting) Close() (sink.Result, error) { return sink.Result{}, nil }
func (c *counting) Abort() error                { return nil }

// BenchmarkAccountShares acquires a fully allocated 1 GiB "root"
// snapshot and a 4 GiB fully allocated "data" snapshot at once, against
// the emulator with latency and per-snapshot and account quotas, under
// one Account at the account's quota ("none": without one, each
// snapshot's limiter alone). It logs the blocks each volume stored in
// each second of the run and the emulator's throttles, and reports when
// each volume finished. It measures; it asserts nothing but the counts.
//
//	go test -run '^$' -bench AccountShares -benchtime 1x -v ./internal/acquire
func BenchmarkAccountShares(b *testing.B) {
	for _, c := range []struct {
		account, snapshot float64
		latency, burst    time.Duration
		shared            bool
	}{
		{400, 300, 10 * time.Millisecond, 100 * time.Millisecond, true},
		{400, 300, 10 * time.Millisecond, 100 * time.Millisecond, false},
		{400, 400, 10 * time.Millisecond, 100 * time.Millisecond, true},
		{400, 400, 10 * time.Millisecond, 100 * time.Millisecond, false},
		{1000, 1000, 10 * time.Millisecond, 100 * time.Millisecond, true},
	} {
		name := fmt.Sprintf("account%g-snapshot%g-%v-burst%v", c.account, c.snapshot, c.latency, c.burst)
		if !c.shared {
			name += "-none"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				share(b, c.account, c.snapshot, c.latency, c.burst, c.shared)
			}
		})
	}
}

func share(b *testing.B, account, snapshot float64, latency, burst time.Duration, shared bool) {
	const (
		root = "snap-0000000000000a0a1"
		data = "snap-0000000000000d0d2"
	)
	ids := []string{root, data}
	srv, endpoint := emulatortest.Start(b, emulator.Options{
		Latency: latency, GetRatePerSnapshot: snapshot, GetRatePerAccount: account, GetBurst: emulator.Burst{Time: burst},
	})
	for _, s := range []string{root + "=1GiB,1,1", data + "=4GiB,1,2"} {
		if err := srv.AddSynthetic(s); err != nil {
			b.Fatal(err)
		}
	}
	var acct *ebs.Account
	if shared {
		acct = ebs.NewAccount(account)
	}
	runs := make([]*Acquisition, len(ids))
	sinks := make([]*counting, len(ids))
	for i, id := range ids {
		snap := &ebs.Snapshot{API: emulatortest.Client(b, endpoint), ID: id, Stats: &ebs.Stats{}}
		runs[i] = New(NewSnapshot(snap), Options{Account: acct, Name: id})
		sinks[i] = &counting{}
	}
	var (
		wg       sync.WaitGroup
		finished = make([]time.Duration, len(ids))
		results  = make([]Result, len(ids))
		table    [][]int64 // blocks stored by each volume in each second
		done     = make(chan struct{})
		sampled  = make(chan struct{})
	)
	start := time.Now()
	go func() { // one sample a second, of both volumes at once
		defer close(sampled)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := make([]int64, len(ids))
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			row := make([]int64, len(ids))
			for i := range ids {
				n := sinks[i].n.Load()
				row[i], last[i] = n-last[i], n
			}
			table = append(table, row)
		}
	}()
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := runs[i].Run(context.Background(), sinks[i])
			if err != nil {
				b.Error(err)
			}
			results[i], finished[i] = res, time.Since(start)
		}()
	}
	wg.Wait()
	close(done)
	<-sampled
	elapsed := time.Since(start)

	ctr := srv.Counters()
	ok := ctr.Count(emulator.OpGetSnapshotBlock, emulator.OutcomeOK)
	thrA := ctr.Count(emulator.OpGetSnapshotBlock, "RequestThrottledException/ACCOUNT_THROTTLED")
	thrS := ctr.Count(emulator.OpGetSnapshotBlock, "RequestThrottledException/RESOURCE_LEVEL_THROTTLE")
	if want := int64(2048 + 8192); ok != want || results[0].Stored != 2048 || results[1].Stored != 8192 {
		b.Fatalf("%d blocks served, %d and %d stored; want %d, 2048 and 8192", ok, results[0].Stored, results[1].Stored, want)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "\n  second  root/s  data/s  total/s\n")
	for i, row := range table {
		fmt.Fprintf(&s, "  %6d  %6d  %6d  %7d\n", i+1, row[0], row[1], row[0]+row[1])
	}
	fmt.Fprintf(&s, "  root done at %.1f s, data at %.1f s (%.0f blocks/s over the run)\n", finished[0].Seconds(), finished[1].Seconds(), float64(ok)/elapsed.Seconds())
	fmt.Fprintf(&s, "  emulator: %d Gets, %d ok, %d ACCOUNT_THROTTLED, %d RESOURCE_LEVEL_THROTTLE", ctr.Total(emulator.OpGetSnapshotBlock), ok, thrA, thrS)
	if acct != nil {
		st := acct.Stats()
		fmt.Fprintf(&s, "; account turns: root %d, data %d", st[root], st[data])
	}
	b.Log(s.String())
	b.ReportMetric(finished[0].Seconds(), "root-s")
	b.ReportMetric(finished[1].Seconds(), "data-s")
	b.ReportMetric(float64(thrA), "account-throttles")
	b.ReportMetric(float64(thrS), "snapshot-throttles")
}
