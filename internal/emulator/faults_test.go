package emulator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// TestRateLimits runs bursts against token buckets on a frozen clock, so
// the counts are exact.
func TestRateLimits(t *testing.T) {
	clk := newClock()
	s, ep := emulatortest.Start(t, emulator.Options{Now: clk.Now, GetRatePerSnapshot: 10})
	c := emulatortest.Client(t, ep)
	for _, spec := range []string{"snap-0a=1GiB", "snap-0b=1GiB"} {
		if err := s.AddSynthetic(spec); err != nil {
			t.Fatal(err)
		}
	}
	la, lb := listAll(t, c, "snap-0a", 10000, 0), listAll(t, c, "snap-0b", 10000, 0)
	burst := func(id string, l listing, n int) (ok int, reasons map[string]int) {
		reasons = map[string]int{}
		for i := 0; i < n; i++ {
			_, err := getBlock(c, id, int64(i), l.token(int64(i)))
			if err == nil {
				ok++
				continue
			}
			var rt *types.RequestThrottledException
			var ae smithy.APIError
			switch {
			case errors.As(err, &rt):
				reasons[string(rt.Reason)]++
			case errors.As(err, &ae) && ae.ErrorCode() == "ThrottlingException" && status(err) == 429:
				reasons["429"]++
			default:
				t.Fatalf("get %d: %v", i, err)
			}
		}
		return ok, reasons
	}

	// Per snapshot: a burst of 10 (one second's worth), then 5 per half second.
	ok, r := burst("snap-0a", la, 25)
	if ok != 10 || r["RESOURCE_LEVEL_THROTTLE"] != 15 {
		t.Errorf("per-snapshot burst: %d ok, %v; want 10 ok, 15 RESOURCE_LEVEL_THROTTLE", ok, r)
	}
	ok, _ = burst("snap-0b", lb, 10) // another snapshot has its own bucket
	if ok != 10 {
		t.Errorf("second snapshot: %d ok, want 10", ok)
	}
	clk.Advance(500 * time.Millisecond)
	if ok, _ := burst("snap-0a", la, 8); ok != 5 {
		t.Errorf("after half a second: %d ok, want 5", ok)
	}

	// Per account, answered as ThrottlingException.
	s2, ep2 := emulatortest.Start(t, emulator.Options{Now: clk.Now, GetRatePerAccount: 4, ThrottleAs: emulator.Throttling, ListRate: 2})
	c = emulatortest.Client(t, ep2)
	for _, spec := range []string{"snap-0a=1GiB", "snap-0b=1GiB"} {
		if err := s2.AddSynthetic(spec); err != nil {
			t.Fatal(err)
		}
	}
	la, lb = listAll(t, c, "snap-0a", 10000, 0), listAll(t, c, "snap-0b", 10000, 0)
	okA, rA := burst("snap-0a", la, 3)
	okB, rB := burst("snap-0b", lb, 3)
	if okA+okB != 4 || rA["429"]+rB["429"] != 2 {
		t.Errorf("per-account: %d ok, %v %v; want 4 ok, 2 throttled", okA+okB, rA, rB)
	}
	// The two listings above used the ListSnapshotBlocks burst of 2;
	// ListChangedBlocks has its own bucket.
	ctx := context.Background()
	lists := func(n int) (throttled int) {
		for i := 0; i < n; i++ {
			_, err := c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0a")})
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "ThrottlingException" {
				throttled++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		return throttled
	}
	if n := lists(3); n != 3 {
		t.Errorf("ListRate 2 after two lists: %d of 3 throttled, want 3", n)
	}
	clk.Advance(time.Second)
	if n := lists(3); n != 1 {
		t.Errorf("ListRate 2 a second later: %d of 3 throttled, want 1", n)
	}
	if _, err := c.ListChangedBlocks(ctx, &ebs.ListChangedBlocksInput{SecondSnapshotId: aws.String("snap-0a")}); err != nil {
		t.Errorf("ListChangedBlocks has its own bucket: %v", err)
	}
	// SetRates lifts the limits while serving.
	s2.SetRates(0, 0, 0)
	if ok, _ := burst("snap-0a", la, 20); ok != 20 {
		t.Errorf("after SetRates(0, 0, 0): %d of 20 ok", ok)
	}
	if got := s2.Counters().Count(emulator.OpListSnapshotBlocks, "ThrottlingException"); got != 4 {
		t.Errorf("counted %d throttled lists, want 4", got)
	}
}

// TestBurstOption: Options.GetBurst reaches the server's buckets, and a
// depth given as a time follows the rate SetRates sets.
func TestBurstOption(t *testing.T) {
	clk := newClock()
	s, ep := emulatortest.Start(t, emulator.Options{Now: clk.Now, GetRatePerSnapshot: 100,
		GetBurst: emulator.Burst{Time: 50 * time.Millisecond}})
	c := emulatortest.Client(t, ep)
	if err := s.AddSynthetic("snap-0a=1GiB"); err != nil {
		t.Fatal(err)
	}
	l := listAll(t, c, "snap-0a", 10000, 0)
	admitted := func(n int) (ok int) {
		for i := range n {
			_, err := getBlock(c, "snap-0a", int64(i), l.token(int64(i)))
			var rt *types.RequestThrottledException
			switch {
			case err == nil:
				ok++
			case !errors.As(err, &rt):
				t.Fatalf("get %d: %v", i, err)
			}
		}
		return ok
	}
	if ok := admitted(8); ok != 5 {
		t.Errorf("50 ms at 100/s: %d of 8 admitted, want 5", ok)
	}
	s.SetRates(200, 0, 0)
	if ok := admitted(15); ok != 10 {
		t.Errorf("50 ms at 200/s: %d of 15 admitted, want 10", ok)
	}
	clk.Advance(10 * time.Millisecond)
	if ok := admitted(3); ok != 2 {
		t.Errorf("10 ms later at 200/s: %d of 3 admitted, want 2", ok)
	}
}

// outcomeOf classifies one Get the way a verifying client sees it.
func outcomeOf(t *testing.T, f fetched, err error) string {
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			if r := reasonOf(err); r != "" {
				return ae.ErrorCode() + "/" + r
			}
			return ae.ErrorCode()
		}
		t.Fatalf("get: %v", err)
	}
	switch {
	case f.readErr != nil:
		return emulator.OutcomeDropped
	case len(f.body) == block.Size/2 && f.length == block.Size:
		return emulator.OutcomeTruncated
	case int(f.length) != len(f.body):
		return emulator.OutcomeBadLength
	}
	if f.verify() != nil {
		return "checksum-mismatch" // bad checksum header or corrupted body
	}
	return emulator.OutcomeOK
}

func TestFaultRates(t *testing.T) {
	faults := emulator.Faults{ServerError: 0.08, Throttle: 0.04, Drop: 0.04, Truncate: 0.04, BadChecksum: 0.04, BadLength: 0.04, Corrupt: 0.04}
	const n = 600
	run := func(n int) ([]string, emulator.Counters) {
		s, ep := emulatortest.Start(t, emulator.Options{Seed: 7, Faults: faults})
		c := emulatortest.Client(t, ep)
		if err := s.AddSynthetic("snap-0a=1GiB"); err != nil {
			t.Fatal(err)
		}
		l := listAll(t, c, "snap-0a", 10000, 0)
		seq := make([]string, n)
		for i := range seq {
			f, err := getBlock(c, "snap-0a", int64(i), l.token(int64(i)))
			seq[i] = outcomeOf(t, f, err)
		}
		return seq, s.Counters()
	}
	seq, cn := run(n)
	seen := map[string]int{}
	for _, o := range seq {
		seen[o]++
	}
	t.Logf("outcomes of %d gets: %v", n, seen)
	// Tolerances: binomial(600, p) has sd sqrt(600 p (1-p)): 4.8 for p = 0.04.
	within := func(name string, got int, p float64) {
		want := p * n
		if d := float64(got) - want; d < -20 || d > 20 {
			t.Errorf("%s: %d of %d, want about %.0f", name, got, n, want)
		}
	}
	within("5xx", seen["InternalServerException"]+seen["ServiceUnavailableException"], faults.ServerError)
	within("throttle", seen["RequestThrottledException/ACCOUNT_THROTTLED"], faults.Throttle)
	within("drop", seen[emulator.OutcomeDropped], faults.Drop)
	within("truncate", seen[emulator.OutcomeTruncated], faults.Truncate)
	within("bad length", seen[emulator.OutcomeBadLength], faults.BadLength)
	within("checksum mismatch", seen["checksum-mismatch"], faults.BadChecksum+faults.Corrupt)
	within("ok", seen[emulator.OutcomeOK], 1-faults.ServerError-6*0.04)
	if seen["ServiceUnavailableException"] == 0 {
		t.Error("no 503 among the 5xx")
	}
	// The server's counters agree with what the client saw.
	op := emulator.OpGetSnapshotBlock
	for name, pair := range map[string][2]int64{
		"dropped":   {cn.Count(op, emulator.OutcomeDropped), int64(seen[emulator.OutcomeDropped])},
		"truncated": {cn.Count(op, emulator.OutcomeTruncated), int64(seen[emulator.OutcomeTruncated])},
		"mismatch":  {cn.Count(op, emulator.OutcomeBadChecksum) + cn.Count(op, emulator.OutcomeCorrupted), int64(seen["checksum-mismatch"])},
		"500":       {cn.Count(op, "InternalServerException"), int64(seen["InternalServerException"])},
		"ok":        {cn.Count(op, emulator.OutcomeOK), int64(seen[emulator.OutcomeOK])},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s: server counted %d, client saw %d", name, pair[0], pair[1])
		}
	}
	if cn.Total(op) != n {
		t.Errorf("server counted %d gets, want %d", cn.Total(op), n)
	}
	// Same seed, same faults for the same (block, attempt).
	seq2, _ := run(n / 3)
	for i := range seq2 {
		if seq[i] != seq2[i] {
			t.Fatalf("get %d: %s, then %s with the same seed", i, seq[i], seq2[i])
		}
	}
}

func TestFaultsPerAttempt(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{Seed: 3, TrackBlocks: true,
		Faults: emulator.Faults{ServerError: 0.5}})
	c := emulatortest.Client(t, ep)
	if err := s.AddSynthetic("snap-0a=1GiB"); err != nil {
		t.Fatal(err)
	}
	l := listAll(t, c, "snap-0a", 10000, 0)
	// Retrying a block eventually succeeds: the draw changes with the attempt.
	for i := int64(0); i < 20; i++ {
		tries := 0
		for {
			tries++
			if _, err := getBlock(c, "snap-0a", i, l.token(i)); err == nil {
				break
			}
			if tries > 40 {
				t.Fatalf("block %d failed 40 times at a 0.5 fault rate", i)
			}
		}
		if got := s.BlockGets("snap-0a", i); got != tries {
			t.Errorf("BlockGets(%d) = %d, want %d", i, got, tries)
		}
	}
	// Faults change at runtime; counters reset.
	s.SetFaults(emulator.Faults{})
	s.ResetCounters()
	if s.BlockGets("snap-0a", 0) != 0 || s.Counters().Total(emulator.OpGetSnapshotBlock) != 0 {
		t.Error("counters survived ResetCounters")
	}
	mustGet(t, c, "snap-0a", 0, l.token(0))
	cn := s.Counters()
	if s.BlockGets("snap-0a", 0) != 1 || cn.Count(emulator.OpGetSnapshotBlock, emulator.OutcomeOK) != 1 || cn.BytesServed != block.Size {
		t.Errorf("after reset: BlockGets %d, counters %s", s.BlockGets("snap-0a", 0), cn)
	}
	// Fixed block faults of each broken-response kind.
	s.SetFaults(emulator.Faults{FailBlocks: []emulator.BlockFault{
		{Snapshot: "snap-0a", Index: 1, Error: emulator.FaultDrop},
		{Snapshot: "snap-0a", Index: 2, Error: emulator.FaultTruncate},
		{Snapshot: "snap-0a", Index: 3, Error: emulator.FaultBadChecksum},
		{Snapshot: "snap-0a", Index: 4, Error: emulator.FaultBadLength},
		{Snapshot: "snap-0a", Index: 5, Error: emulator.FaultCorrupt},
	}})
	want := map[int64]string{1: emulator.OutcomeDropped, 2: emulator.OutcomeTruncated, 3: "checksum-mismatch", 4: emulator.OutcomeBadLength, 5: "checksum-mismatch"}
	for round := 0; round < 2; round++ {
		for i, w := range want {
			f, err := getBlock(c, "snap-0a", i, l.token(i))
			if got := outcomeOf(t, f, err); got != w {
				t.Errorf("block %d: %s, want %s", i, got, w)
			}
		}
	}
	f, _ := getBlock(c, "snap-0a", 5, l.token(5))
	good := mustGet(t, c, "snap-0a", 6, l.token(6))
	if len(f.body) != block.Size || f.length != block.Size || len(good) != block.Size {
		t.Error("a corrupted block changed length")
	}
}

func TestLatency(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{Latency: 30 * time.Millisecond, Jitter: 10 * time.Millisecond})
	c := emulatortest.Client(t, ep)
	if err := s.AddSynthetic("snap-0a=1GiB"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l := listAll(t, c, "snap-0a", 10000, 0)
	mustGet(t, c, "snap-0a", 0, l.token(0))
	if d := time.Since(start); d < 60*time.Millisecond { // a lower bound only: sleeps never end early
		t.Errorf("two requests took %v with 30 ms latency each", d)
	}
	s.SetLatency(0, 0)
}
