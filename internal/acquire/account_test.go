package acquire

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// Two snapshots acquired at once under one Account, against an emulator
// with an account quota (no burst: every jitter above the rate is
// throttled) and a lower per-snapshot one: both evidence directories hold
// exactly the snapshots' blocks, and every GetSnapshotBlock the emulator
// saw, throttled or not, was a turn of the account given to its snapshot.
func TestAcquireTwoSnapshotsUnderOneAccount(t *testing.T) {
	const (
		root = "snap-0000000000000a0a1"
		data = "snap-0000000000000d0d2"
	)
	e := newEnv(t, emulator.Options{Seed: 5, GetBurst: emulator.Burst{Requests: 1}}, root+"=1GiB,0.05,3", data+"=1GiB,0.2,4")
	refs := map[string]map[int64]block.Sum{root: e.reference(t, root), data: e.reference(t, data)}
	e.srv.SetRates(300, 400, 0)
	e.srv.ResetCounters()

	acct := ebs.NewAccount(400)
	snaps := map[string]*ebs.Snapshot{root: e.snapshot(t, root), data: e.snapshot(t, data)}
	dirs := map[string]string{root: filepath.Join(t.TempDir(), root), data: filepath.Join(t.TempDir(), data)}
	results := map[string]Result{}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for id, snap := range snaps {
		wg.Add(1)
		name := id
		if id == data {
			name = "" // the account knows it by its id all the same
		}
		go func() {
			defer wg.Done()
			res, err := e.acquireWith(context.Background(), t, snap, dirs[id], Options{Account: acct, Name: name}, func(s sink.Sink) sink.Sink { return s })
			if err != nil {
				t.Errorf("%s: %v", id, err)
			}
			mu.Lock()
			results[id] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	c := e.srv.Counters()
	turns, throttles := acct.Stats(), acct.Throttles()
	var blocks, retried int64
	for id, snap := range snaps {
		checkStore(t, dirs[id], refs[id])
		n := int64(len(refs[id]))
		blocks += n
		gets := snap.Stats.Counts().GetCalls
		var seen int64
		for i := range refs[id] {
			seen += int64(e.srv.BlockGets(id, i))
		}
		if turns[id] != gets || seen != gets || results[id].Stored != n {
			t.Errorf("%s: %d turns of the account, %d Get attempts made, %d seen by the emulator, %d of %d blocks stored", id, turns[id], gets, seen, results[id].Stored, n)
		}
		retried += results[id].Counts.Retries["throttle"]
	}
	var total, acctThrottled int64
	for id := range snaps {
		total += turns[id]
		acctThrottled += throttles[id]
	}
	ok := c.Count(emulator.OpGetSnapshotBlock, emulator.OutcomeOK)
	thrA := c.Count(emulator.OpGetSnapshotBlock, "RequestThrottledException/ACCOUNT_THROTTLED")
	thrS := c.Count(emulator.OpGetSnapshotBlock, "RequestThrottledException/RESOURCE_LEVEL_THROTTLE")
	if ok != blocks || c.Total(emulator.OpGetSnapshotBlock) != total || thrA != acctThrottled || thrA+thrS != retried || ok+thrA+thrS != total {
		t.Fatalf("emulator: %d Gets (%d ok, %d account and %d snapshot throttles); account: %d turns, %d account throttles; %d throttle retries; %d blocks",
			c.Total(emulator.OpGetSnapshotBlock), ok, thrA, thrS, total, acctThrottled, retried, blocks)
	}
	t.Logf("%d blocks in %d turns: %d account and %d snapshot throttles", blocks, total, thrA, thrS)
}

// An account throttle is not a snapshot's to learn from: with the
// account's quota below the Account's rate (another client in the
// account, a quota lowered) and no quota on the snapshots,
// every throttle is ACCOUNT_THROTTLED, and neither snapshot's pacer
// learns a rate from them. Without an Account they are all the limiters
// have to go by, and both pacers take them as their own.
func TestAccountThrottlesTeachNoPacer(t *testing.T) {
	const (
		root = "snap-0000000000000a0a1"
		data = "snap-0000000000000d0d2"
	)
	for _, shared := range []bool{true, false} {
		e := newEnv(t, emulator.Options{GetRatePerAccount: 100, GetBurst: emulator.Burst{Requests: 10}},
			root+"=1GiB,0.05,3", data+"=1GiB,0.05,4")
		var acct *ebs.Account
		if shared {
			acct = ebs.NewAccount(300)
		}
		runs := map[string]*Acquisition{}
		for _, id := range []string{root, data} {
			src := NewSnapshot(e.snapshot(t, id))
			runs[id] = New(src, Options{Account: acct, Workers: 16})
		}
		var wg sync.WaitGroup
		for id, a := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := a.Run(context.Background(), &counting{})
				if err != nil || res.Stored != res.Listed || res.Listed == 0 {
					t.Errorf("%s: %d of %d blocks stored: %v", id, res.Stored, res.Listed, err)
				}
			}()
		}
		wg.Wait()
		c := e.srv.Counters()
		thrA := c.Count(emulator.OpGetSnapshotBlock, "RequestThrottledException/ACCOUNT_THROTTLED")
		thrS := c.Count(emulator.OpGetSnapshotBlock, "RequestThrottledException/RESOURCE_LEVEL_THROTTLE")
		if thrA == 0 || thrS != 0 {
			t.Fatalf("shared %v: %d account and %d snapshot throttles, want some and none", shared, thrA, thrS)
		}
		for id, a := range runs {
			if r := a.limiter.Rate(); (r == 0) != shared {
				t.Errorf("shared %v: %s's pacer runs at %v after %d account throttles", shared, id, r, thrA)
			}
		}
		if shared {
			var counted int64
			for _, n := range acct.Throttles() {
				counted += n
			}
			if counted != thrA {
				t.Errorf("the account counted %d of %d account throttles", counted, thrA)
			}
		}
	}
}
