package acquire

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/store"
)

const snapID = "snap-00000000000000a01"

// fastPolicy keeps the real policy's shape with test-sized waits.
var fastPolicy = ebs.Policy{Base: 2 * time.Millisecond, Max: 20 * time.Millisecond, ThrottleBase: time.Millisecond}

type env struct {
	srv      *emulator.Server
	endpoint string
}

func newEnv(t *testing.T, o emulator.Options, specs ...string) *env {
	t.Helper()
	o.TrackBlocks = true
	srv, endpoint := emulatortest.Start(t, o)
	for _, s := range specs {
		if err := srv.AddSynthetic(s); err != nil {
			t.Fatal(err)
		}
	}
	return &env{srv: srv, endpoint: endpoint}
}

func (e *env) snapshot(t *testing.T, id string) *ebs.Snapshot {
	return &ebs.Snapshot{API: emulatortest.Client(t, e.endpoint), ID: id, Policy: fastPolicy, Stats: &ebs.Stats{}, AttemptTimeout: 10 * time.Second}
}

// acquireInto runs one acquisition of id into dir and finishes the store
// when it completes.
func (e *env) acquireInto(ctx context.Context, t *testing.T, id, dir string, o Options) (Result, error) {
	return e.acquireWith(ctx, t, e.snapshot(t, id), dir, o, func(s sink.Sink) sink.Sink { return s })
}

// acquireWith runs the two phases of an acquisition of snap into dir:
// learn the volume's size, open the store for it, run; wrap may change
// what the sink declares.
func (e *env) acquireWith(ctx context.Context, t *testing.T, snap *ebs.Snapshot, dir string, o Options, wrap func(sink.Sink) sink.Sink) (Result, error) {
	src := NewSnapshot(snap)
	info, err := src.Info(ctx)
	if err != nil {
		return Result{}, err
	}
	st, err := store.Create(dir, store.Meta{SnapshotID: snap.ID, Region: "us-east-1", VolumeSizeGiB: info.VolumeGiB, BlockSize: info.BlockSize}, store.Options{})
	if err != nil {
		return Result{}, err
	}
	s := st.Sink()
	res, err := New(src, o).Run(ctx, wrap(s))
	if err != nil {
		s.Abort()
		return res, err
	}
	s.Started, s.Finished = res.Started, res.Finished
	_, err = s.Close()
	return res, err
}

// failFast is a sink that declares FailFast, as a stream does.
type failFast struct{ sink.Sink }

func (f failFast) Caps() sink.Caps {
	c := f.Sink.Caps()
	c.FailFast = true
	return c
}

// reference lists and fetches the snapshot block by block with the bare
// SDK client: the expected content of a correct acquisition.
func (e *env) reference(t *testing.T, id string) map[int64]block.Sum {
	t.Helper()
	c := emulatortest.Client(t, e.endpoint)
	want := map[int64]block.Sum{}
	var token *string
	for {
		out, err := c.ListSnapshotBlocks(context.Background(), &ebsapi.ListSnapshotBlocksInput{SnapshotId: aws.String(id), NextToken: token, MaxResults: aws.Int32(10000)})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range out.Blocks {
			got, err := c.GetSnapshotBlock(context.Background(), &ebsapi.GetSnapshotBlockInput{SnapshotId: aws.String(id), BlockIndex: b.BlockIndex, BlockToken: b.BlockToken})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			buf.ReadFrom(got.BlockData)
			got.BlockData.Close()
			want[int64(*b.BlockIndex)] = block.SumOf(buf.Bytes())
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	if len(want) == 0 {
		t.Fatal("reference snapshot has no blocks")
	}
	return want
}

// checkStore asserts the evidence directory holds exactly want, that every
// stored file's bytes hash to the name it carries (nothing unverified was
// stored), and that no temporary file is left.
func checkStore(t *testing.T, dir string, want map[int64]block.Sum) {
	t.Helper()
	got := map[int64]block.Sum{}
	err := filepath.WalkDir(filepath.Join(dir, "blocks"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".journal" {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
			return nil
		}
		fi, _, err := block.ParseFileName(d.Name())
		if err != nil {
			t.Errorf("stray file %s", p)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if s := block.SumOf(data); s != fi.Sum {
			t.Errorf("block %d stored with sha256 %s but named %s", fi.Index, s.Hex(), fi.Sum.Hex())
		}
		got[fi.Index] = fi.Sum
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("store holds %d blocks, want %d", len(got), len(want))
	}
	for i, s := range want {
		if got[i] != s {
			t.Fatalf("block %d: stored %s, want %s", i, got[i].Hex(), s.Hex())
		}
	}
}

func TestAcquireExactCallsAndContent(t *testing.T) {
	// 1 GiB at 40%: about 820 blocks, so one List page of 10,000.
	e := newEnv(t, emulator.Options{}, snapID+"=1GiB,0.4,11")
	want := e.reference(t, snapID)
	e.srv.ResetCounters()
	dir := filepath.Join(t.TempDir(), "ev")
	res, err := e.acquireInto(context.Background(), t, snapID, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkStore(t, dir, want)
	c := e.srv.Counters()
	lists := (int64(len(want)) + 9999) / 10000
	if c.Total("ListSnapshotBlocks") != lists || c.Total("GetSnapshotBlock") != int64(len(want)) {
		t.Fatalf("made %d List and %d Get calls, want exactly %d and %d", c.Total("ListSnapshotBlocks"), c.Total("GetSnapshotBlock"), lists, len(want))
	}
	if res.Listed != int64(len(want)) || res.Stored != int64(len(want)) || res.Counts.TotalRetries() != 0 {
		t.Fatalf("result %+v", res)
	}
	ev, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	vr, err := ev.Verify(context.Background(), nil, nil)
	if err != nil || !vr.OK() || vr.ContentChecked != int64(len(want)) {
		t.Fatalf("verify: %+v %v", vr, err)
	}
}

func TestAcquireSeveralPages(t *testing.T) {
	// 1 GiB at 30% in pages of 100 (the API minimum): about seven pages,
	// fetched while the listing goes on.
	e := newEnv(t, emulator.Options{}, snapID+"=1GiB,0.3,5")
	want := e.reference(t, snapID)
	e.srv.ResetCounters()
	dir := filepath.Join(t.TempDir(), "ev")
	snap := e.snapshot(t, snapID)
	snap.PageSize = 100
	res, err := e.acquireWith(context.Background(), t, snap, dir, Options{}, func(s sink.Sink) sink.Sink { return s })
	if err != nil {
		t.Fatal(err)
	}
	checkStore(t, dir, want)
	c := e.srv.Counters()
	if want := (res.Listed + 99) / 100; want < 3 || c.Total("ListSnapshotBlocks") != want || c.Total("GetSnapshotBlock") != res.Listed {
		t.Fatalf("%d blocks: %d List and %d Get calls", res.Listed, c.Total("ListSnapshotBlocks"), c.Total("GetSnapshotBlock"))
	}
}

func TestAcquireUnderFaults(t *testing.T) {
	e := newEnv(t, emulator.Options{Seed: 3, Faults: emulator.Faults{
		ServerError: 0.08, Throttle: 0.08, Drop: 0.05, Truncate: 0.05, BadChecksum: 0.05, BadLength: 0.04, Corrupt: 0.05,
		ListServerError: 0.3, ListThrottle: 0.2,
	}}, snapID+"=1GiB,0.5,9")
	clean := newEnv(t, emulator.Options{}, snapID+"=1GiB,0.5,9")
	want := clean.reference(t, snapID)
	dir := filepath.Join(t.TempDir(), "ev")
	res, err := e.acquireInto(context.Background(), t, snapID, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkStore(t, dir, want)
	c := e.srv.Counters()
	for _, outcome := range []string{"dropped", "truncated", "bad-checksum", "bad-length", "corrupted"} {
		if c.Count("GetSnapshotBlock", outcome) == 0 {
			t.Errorf("no %s fault was injected; counters:\n%s", outcome, c)
		}
	}
	if res.Counts.Retries["corrupt"] == 0 || res.Counts.Retries["transient"] == 0 || res.Counts.Retries["throttle"] == 0 {
		t.Fatalf("retries by kind %v: every kind of fault should have been retried", res.Counts.Retries)
	}
}

func TestAcquireFailedBlockThenResume(t *testing.T) {
	const bad = 100
	e := newEnv(t, emulator.Options{}, snapID+"=1GiB,1,2") // every slot allocated, so block 100 is listed
	e.srv.SetFaults(emulator.Faults{FailBlocks: []emulator.BlockFault{{Snapshot: snapID, Index: bad, Error: emulator.FaultBadChecksum}}})
	dir := filepath.Join(t.TempDir(), "ev")
	_, err := e.acquireInto(context.Background(), t, snapID, dir, Options{})
	var inc *IncompleteError
	if !errors.As(err, &inc) || len(inc.Failed) != 1 || inc.Failed[0].Index != bad || !strings.Contains(err.Error(), "block 100") {
		t.Fatalf("err = %v, want an IncompleteError naming block %d", err, bad)
	}
	if _, err := os.Stat(filepath.Join(dir, store.ManifestName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an incomplete acquisition wrote a manifest")
	}
	// The next run fetches only the failed block.
	e.srv.SetFaults(emulator.Faults{})
	before := e.srv.BlockGets(snapID, 0)
	res, err := e.acquireInto(context.Background(), t, snapID, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != 1 || res.Skipped != 2047 || e.srv.BlockGets(snapID, 0) != before {
		t.Fatalf("resume fetched %d blocks (skipped %d); block 0 fetched %d times", res.Stored, res.Skipped, e.srv.BlockGets(snapID, 0))
	}
	checkStore(t, dir, e.reference(t, snapID))
}

func TestAcquirePermanentErrorsStopAtOnce(t *testing.T) {
	for name, tc := range map[string]struct {
		faults emulator.Faults
		id     string
		kind   ebs.Kind
	}{
		"access denied": {emulator.Faults{Deny: map[string]string{snapID: emulator.DenyUnauthorizedAccount}}, snapID, ebs.KindAccessDenied},
		"kms denied":    {emulator.Faults{Deny: map[string]string{snapID: emulator.DenyDependencyAccessDenied}}, snapID, ebs.KindAccessDenied},
		"not found":     {emulator.Faults{}, "snap-0000000000000dead", ebs.KindNotFound},
		"denied block":  {emulator.Faults{FailBlocks: []emulator.BlockFault{{Snapshot: snapID, Index: 7, Error: "AccessDeniedException"}}}, snapID, ebs.KindAccessDenied},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{Faults: tc.faults}, snapID+"=1GiB,1,2")
			dir := filepath.Join(t.TempDir(), "ev")
			_, err := e.acquireInto(context.Background(), t, tc.id, dir, Options{})
			if ebs.KindOf(err) != tc.kind {
				t.Fatalf("err = %v (kind %v), want kind %v", err, ebs.KindOf(err), tc.kind)
			}
			if n := e.srv.Counters().Total("GetSnapshotBlock"); n > 2*DefaultWorkers {
				t.Fatalf("%d Get calls after a permanent error: the run did not stop", n)
			}
		})
	}
}

func TestAcquireRecoversInvalidatedTokens(t *testing.T) {
	e := newEnv(t, emulator.Options{InvalidateOnRelist: true}, snapID+"=1GiB,0.5,4")
	want := e.reference(t, snapID)
	dir := filepath.Join(t.TempDir(), "ev")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Re-list the snapshot behind the acquisition's back while it runs,
	// invalidating every token it holds.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := emulatortest.Client(t, e.endpoint)
		for ctx.Err() == nil {
			c.ListSnapshotBlocks(ctx, &ebsapi.ListSnapshotBlocksInput{SnapshotId: aws.String(snapID), MaxResults: aws.Int32(100)})
			time.Sleep(300 * time.Millisecond)
		}
	}()
	res, err := e.acquireInto(ctx, t, snapID, dir, Options{Workers: 4, MaxRate: 1000})
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	checkStore(t, dir, want)
	if res.Counts.Retries["block-token"] == 0 {
		t.Fatalf("no token was refreshed (retries %v); the test did not exercise invalidation", res.Counts.Retries)
	}
}

func TestAcquireRecoversExpiredTokens(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, emulator.Options{Now: clock, BlockTokenTTL: time.Hour}, snapID+"=1GiB,0.5,4")
	want := e.reference(t, snapID)
	dir := filepath.Join(t.TempDir(), "ev")
	var once sync.Once
	res, err := e.acquireInto(context.Background(), t, snapID, dir, Options{
		Workers: 2,
		// Two hours pass between the listing and the first fetch: every
		// listed token has expired.
		Want: func(int64) bool {
			once.Do(func() { mu.Lock(); now = now.Add(2 * time.Hour); mu.Unlock() })
			return true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkStore(t, dir, want)
	if res.Counts.Retries["block-token"] == 0 {
		t.Fatalf("no token was refreshed (retries %v)", res.Counts.Retries)
	}
}

func TestManifestMatchesAcrossRuns(t *testing.T) {
	e := newEnv(t, emulator.Options{}, snapID+"=1GiB,0.2,8")
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, dir := range []string{a, b} {
		if _, err := e.acquireInto(context.Background(), t, snapID, dir, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if ea, eb := entries(t, a), entries(t, b); ea != eb || ea == "" {
		t.Fatal("two acquisitions of one snapshot have different manifest entries")
	}
}

// entries returns the manifest's block lines: everything but the times.
func entries(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, store.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []string
	for _, l := range lines {
		if strings.Contains(l, `"type":"block"`) || strings.Contains(l, `"type":"end"`) {
			out = append(out, l)
		}
	}
	_ = manifest.Format
	return strings.Join(out, "\n")
}

// FailFast (an E01 stream) stops at the first block that fails after
// every retry, and says so with an IncompleteError naming it (exit 3),
// not with the bare fetch error.
func TestAcquireFailFastIsIncomplete(t *testing.T) {
	const bad = 100
	e := newEnv(t, emulator.Options{}, snapID+"=1GiB,1,2")
	e.srv.SetFaults(emulator.Faults{FailBlocks: []emulator.BlockFault{{Snapshot: snapID, Index: bad, Error: emulator.FaultBadChecksum}}})
	_, err := e.acquireWith(context.Background(), t, e.snapshot(t, snapID), filepath.Join(t.TempDir(), "ev"), Options{},
		func(s sink.Sink) sink.Sink { return failFast{s} })
	var inc *IncompleteError
	if !errors.As(err, &inc) || !inc.Stopped || len(inc.Failed) != 1 || inc.Failed[0].Index != bad ||
		!strings.HasPrefix(err.Error(), "1 block failed after every retry:\n  block 100: ") {
		t.Fatalf("err = %v, want an IncompleteError that stopped at block %d", err, bad)
	}
}
