package ebs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

const (
	parentID    = "snap-0a1000000000000a1"
	childID     = "snap-0c1000000000000c1"
	strangerID  = "snap-0f1000000000000f1"
	writeBaseID = "snap-0b1000000000000b1"
)

func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

var fast = ebs.Policy{Sleep: noSleep}

// kindOf names a change the way ListChangedBlocks implies it.
func kindOf(c ebs.Change) string {
	switch {
	case c.FirstToken != "" && c.SecondToken != "":
		return "changed"
	case c.SecondToken != "":
		return "added"
	}
	return "removed"
}

// collect walks Changes and returns the kind of every changed index,
// checking that pages ascend without repeating an index.
func collect(t *testing.T, s *ebs.Snapshot, base string) (map[int64]string, []ebs.Change, int) {
	t.Helper()
	got := map[int64]string{}
	var all []ebs.Change
	pages := 0
	err := s.Changes(context.Background(), base, 0, func(p ebs.ChangePage) error {
		pages++
		if p.SnapshotID != s.ID || p.VolumeGiB != 1 || p.BlockSize != block.Size || p.Expiry.IsZero() {
			t.Fatalf("page info %+v, expiry %v", p.Info, p.Expiry)
		}
		for _, c := range p.Changes {
			if _, dup := got[c.Index]; dup {
				t.Fatalf("index %d listed twice", c.Index)
			}
			got[c.Index] = kindOf(c)
			all = append(all, c)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	return got, all, pages
}

// listAll returns every listed block of a snapshot with its token.
func listAll(t *testing.T, s *ebs.Snapshot) map[int64]block.Ref {
	t.Helper()
	out := map[int64]block.Ref{}
	err := s.List(context.Background(), 0, func(p ebs.Page) error {
		for _, r := range p.Refs {
			out[r.Index] = r
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", s.ID, err)
	}
	return out
}

func fetchSum(t *testing.T, s *ebs.Snapshot, ref block.Ref) block.Sum {
	t.Helper()
	b, err := s.Fetch(context.Background(), ref, make([]byte, block.Size))
	if err != nil {
		t.Fatalf("fetching %s block %d: %v", s.ID, ref.Index, err)
	}
	return b.Sum
}

// expected derives the changes from the two full listings and the
// blocks' contents, without ListChangedBlocks.
func expected(t *testing.T, first, second *ebs.Snapshot) map[int64]string {
	t.Helper()
	a, b := listAll(t, first), listAll(t, second)
	want := map[int64]string{}
	for i, rb := range b {
		ra, ok := a[i]
		switch {
		case !ok:
			want[i] = "added"
		case fetchSum(t, first, ra) != fetchSum(t, second, rb):
			want[i] = "changed"
		}
	}
	for i := range a {
		if _, ok := b[i]; !ok {
			want[i] = "removed"
		}
	}
	return want
}

func counts(m map[int64]string) map[string]int {
	c := map[string]int{}
	for _, k := range m {
		c[k]++
	}
	return c
}

func TestChangesSyntheticChild(t *testing.T) {
	srv, ep := emulatortest.Start(t, emulator.Options{})
	if err := srv.AddSynthetic(parentID + "=1GiB,0.1,3"); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddChild(childID + "=child-of:" + parentID + ",0.3,9"); err != nil {
		t.Fatal(err)
	}
	api := emulatortest.Client(t, ep)
	stats := &ebs.Stats{}
	child := &ebs.Snapshot{API: api, ID: childID, Policy: fast, Stats: stats, PageSize: 100}
	parent := &ebs.Snapshot{API: api, ID: parentID, Policy: fast}

	got, all, pages := collect(t, child, parentID)
	calls := stats.Counts().ListCalls
	want := expected(t, parent, child)
	if !maps.Equal(got, want) {
		t.Fatalf("changes differ from the listings: got %v, want %v", counts(got), counts(want))
	}
	c := counts(got)
	if c["added"] == 0 || c["changed"] == 0 || c["removed"] == 0 {
		t.Fatalf("fixture lacks a kind: %v", c)
	}
	if wantPages := (len(all) + 99) / 100; pages < wantPages {
		t.Fatalf("%d changes in %d pages of 100", len(all), pages)
	}
	if calls != int64(pages) {
		t.Fatalf("%d List calls for %d pages", calls, pages)
	}
	if n := srv.Counters().Count("ListChangedBlocks", emulator.OutcomeOK); n != int64(pages) {
		t.Fatalf("emulator served %d ListChangedBlocks for %d pages", n, pages)
	}

	// The tokens work: a changed block's two tokens fetch the two versions.
	for _, ch := range all {
		if kindOf(ch) != "changed" {
			continue
		}
		a := fetchSum(t, parent, block.Ref{Index: ch.Index, Token: ch.FirstToken})
		b := fetchSum(t, child, block.Ref{Index: ch.Index, Token: ch.SecondToken})
		if a == b {
			t.Fatalf("changed block %d has the same bytes in both snapshots", ch.Index)
		}
		break
	}

	// Starting part-way gives the tail of the same walk.
	start := all[len(all)/2].Index
	var tail []int64
	err := child.Changes(context.Background(), parentID, start, func(p ebs.ChangePage) error {
		for _, c := range p.Changes {
			tail = append(tail, c.Index)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var wantTail []int64
	for _, c := range all[len(all)/2:] {
		wantTail = append(wantTail, c.Index)
	}
	if !slices.Equal(tail, wantTail) {
		t.Fatalf("from %d: %d indexes, want %d", start, len(tail), len(wantTail))
	}
}

func TestChangesWriteAPIChild(t *testing.T) {
	srv, ep := emulatortest.Start(t, emulator.Options{})
	if err := srv.AddSynthetic(writeBaseID + "=1GiB,0.01,4"); err != nil {
		t.Fatal(err)
	}
	api := emulatortest.Client(t, ep)
	ctx := context.Background()
	base := &ebs.Snapshot{API: api, ID: writeBaseID, Policy: fast}
	listed := slices.Sorted(maps.Keys(listAll(t, base)))
	if len(listed) < 2 {
		t.Fatalf("base lists %d blocks", len(listed))
	}
	st, err := api.StartSnapshot(ctx, &ebsapi.StartSnapshotInput{VolumeSize: aws.Int64(1), ParentSnapshotId: aws.String(writeBaseID)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(st.SnapshotId)
	put := func(i int64, fill byte) {
		data := bytes.Repeat([]byte{fill}, block.Size)
		sum := sha256.Sum256(data)
		_, err := api.PutSnapshotBlock(ctx, &ebsapi.PutSnapshotBlockInput{
			SnapshotId: aws.String(id), BlockIndex: aws.Int32(int32(i)), BlockData: bytes.NewReader(data),
			DataLength: aws.Int32(block.Size), Checksum: aws.String(block.Sum(sum).Base64()),
			ChecksumAlgorithm: types.ChecksumAlgorithmChecksumAlgorithmSha256,
		})
		if err != nil {
			t.Fatalf("putting block %d: %v", i, err)
		}
	}
	free := int64(0)
	for slices.Contains(listed, free) {
		free++
	}
	put(listed[1], 0x5a) // overwrites a parent block: changed
	put(free, 0xa5)      // a slot the parent does not list: added
	if _, err := api.CompleteSnapshot(ctx, &ebsapi.CompleteSnapshotInput{SnapshotId: aws.String(id), ChangedBlocksCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	got, _, _ := collect(t, &ebs.Snapshot{API: api, ID: id, Policy: fast}, writeBaseID)
	want := map[int64]string{listed[1]: "changed", free: "added"}
	if !maps.Equal(got, want) {
		t.Fatalf("write-API child: got %v, want %v", got, want)
	}
}

func TestChangesWithoutBase(t *testing.T) {
	srv, ep := emulatortest.Start(t, emulator.Options{})
	if err := srv.AddSynthetic(parentID + "=1GiB,0.05,3"); err != nil {
		t.Fatal(err)
	}
	s := &ebs.Snapshot{API: emulatortest.Client(t, ep), ID: parentID, Policy: fast, PageSize: 100}
	got, _, _ := collect(t, s, "")
	want := map[int64]string{}
	for i := range listAll(t, s) {
		want[i] = "added"
	}
	if len(want) == 0 || !maps.Equal(got, want) {
		t.Fatalf("no base: %d changes, want every one of the %d listed blocks as added", len(got), len(want))
	}
}

func TestChangesUnrelated(t *testing.T) {
	srv, ep := emulatortest.Start(t, emulator.Options{})
	for _, spec := range []string{parentID + "=1GiB,0.1,3", strangerID + "=1GiB,0.1,4"} {
		if err := srv.AddSynthetic(spec); err != nil {
			t.Fatal(err)
		}
	}
	stats := &ebs.Stats{}
	s := &ebs.Snapshot{API: emulatortest.Client(t, ep), ID: strangerID, Policy: fast, Stats: stats}
	called := false
	err := s.Changes(context.Background(), parentID, 0, func(ebs.ChangePage) error { called = true; return nil })
	if ebs.KindOf(err) != ebs.KindInvalid || ebs.Reason(err) != "UNRELATED_SNAPSHOTS" || called {
		t.Fatalf("unrelated snapshots: kind %v, reason %q, fn called %v: %v", ebs.KindOf(err), ebs.Reason(err), called, err)
	}
	if !strings.HasPrefix(err.Error(), "listing changes from "+parentID+" to "+strangerID+": ") {
		t.Fatalf("error %q does not say what was listed", err)
	}
	if n := stats.Counts().ListCalls; n != 1 {
		t.Fatalf("a permanent error took %d List calls", n)
	}
}

// TestChangesPageTokenExpiry moves the emulator's clock past the NextToken
// lifetime between pages: the walk restarts after the last index seen
// and still yields every change exactly once.
func TestChangesPageTokenExpiry(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	srv, ep := emulatortest.Start(t, emulator.Options{Now: now, PageTokenTTL: time.Minute})
	if err := srv.AddSynthetic(parentID + "=1GiB,0.1,3"); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddChild(childID + "=child-of:" + parentID + ",0.3,9"); err != nil {
		t.Fatal(err)
	}
	api := emulatortest.Client(t, ep)
	want, all, pages := collect(t, &ebs.Snapshot{API: api, ID: childID, Policy: fast, PageSize: 100}, parentID)
	if pages < 3 {
		t.Fatalf("fixture has %d pages; want at least 3", pages)
	}

	stats := &ebs.Stats{}
	s := &ebs.Snapshot{API: api, ID: childID, Policy: fast, Stats: stats, PageSize: 100}
	got := map[int64]string{}
	n := 0
	err := s.Changes(context.Background(), parentID, 0, func(p ebs.ChangePage) error {
		n++
		for _, c := range p.Changes {
			if _, dup := got[c.Index]; dup {
				return fmt.Errorf("index %d twice", c.Index)
			}
			got[c.Index] = kindOf(c)
		}
		if n == 1 {
			clock.Add(int64(2 * time.Minute)) // the first page's NextToken expires
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Changes across an expired page token: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("after a restart: %d changes, want %d", len(got), len(all))
	}
	if srv.Counters().Count("ListChangedBlocks", "ValidationException") != 1 {
		t.Fatalf("the expired token was not refused once: %s", srv.Counters())
	}
	if calls := stats.Counts().ListCalls; calls != int64(n)+1 {
		t.Fatalf("%d List calls for %d pages and one refusal", calls, n)
	}
}

func TestChangesRetriesThrottling(t *testing.T) {
	srv, ep := emulatortest.Start(t, emulator.Options{Seed: 7, Faults: emulator.Faults{ListThrottle: 0.3, ListServerError: 0.2}})
	if err := srv.AddSynthetic(parentID + "=1GiB,0.1,3"); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddChild(childID + "=child-of:" + parentID + ",0.3,9"); err != nil {
		t.Fatal(err)
	}
	api := emulatortest.Client(t, ep)
	stats := &ebs.Stats{}
	got, _, _ := collect(t, &ebs.Snapshot{API: api, ID: childID, Policy: fast, Stats: stats, PageSize: 100}, parentID)
	srv.SetFaults(emulator.Faults{})
	want, _, _ := collect(t, &ebs.Snapshot{API: api, ID: childID, Policy: fast, PageSize: 100}, parentID)
	if !maps.Equal(got, want) {
		t.Fatalf("with faults: %v, without: %v", counts(got), counts(want))
	}
	r := stats.Counts().Retries
	if r["throttle"] == 0 || r["transient"] == 0 {
		t.Fatalf("no retries counted under injected faults: %v", r)
	}
}

// fakeAPI serves scripted ListChangedBlocks pages.
type fakeAPI struct {
	ebs.API
	pages []*ebsapi.ListChangedBlocksOutput
	calls int
}

func (f *fakeAPI) ListChangedBlocks(_ context.Context, in *ebsapi.ListChangedBlocksInput, _ ...func(*ebsapi.Options)) (*ebsapi.ListChangedBlocksOutput, error) {
	if f.calls >= len(f.pages) {
		return nil, errors.New("no more pages")
	}
	f.calls++
	return f.pages[f.calls-1], nil
}

func changed(i int32, first, second string) types.ChangedBlock {
	cb := types.ChangedBlock{BlockIndex: aws.Int32(i)}
	if first != "" {
		cb.FirstBlockToken = aws.String(first)
	}
	if second != "" {
		cb.SecondBlockToken = aws.String(second)
	}
	return cb
}

func page(next string, blocks ...types.ChangedBlock) *ebsapi.ListChangedBlocksOutput {
	out := &ebsapi.ListChangedBlocksOutput{ChangedBlocks: blocks, BlockSize: aws.Int32(block.Size), VolumeSize: aws.Int64(1)}
	if next != "" {
		out.NextToken = aws.String(next)
	}
	return out
}

func TestChangesRefusesBadPages(t *testing.T) {
	for name, tc := range map[string]struct {
		base  string
		pages []*ebsapi.ListChangedBlocksOutput
		want  string
	}{
		"descending across pages": {parentID, []*ebsapi.ListChangedBlocksOutput{page("n", changed(5, "a", "")), page("", changed(5, "", "b"))}, "index 5 after 5: listing is not ascending"},
		"no token":                {parentID, []*ebsapi.ListChangedBlocksOutput{page("", changed(1, "", ""))}, "changed block 1 has neither a first nor a second token"},
		"beyond the volume":       {parentID, []*ebsapi.ListChangedBlocksOutput{page("", changed(2048, "", "b"))}, "index 2048 beyond the 1 GiB volume"},
		"first token, no base":    {"", []*ebsapi.ListChangedBlocksOutput{page("", changed(3, "a", "b"))}, "changed block 3 has a first token but no first snapshot was named"},
		"no index":                {parentID, []*ebsapi.ListChangedBlocksOutput{page("", types.ChangedBlock{SecondBlockToken: aws.String("b")})}, "changed block without index"},
		"block size": {parentID, []*ebsapi.ListChangedBlocksOutput{{BlockSize: aws.Int32(512), VolumeSize: aws.Int64(1)}},
			"block size 512, this tool handles 524288"},
	} {
		t.Run(name, func(t *testing.T) {
			s := &ebs.Snapshot{API: &fakeAPI{pages: tc.pages}, ID: childID, Policy: fast}
			err := s.Changes(context.Background(), tc.base, 0, func(ebs.ChangePage) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}

	// fn's error stops the walk after the page that raised it.
	api := &fakeAPI{pages: []*ebsapi.ListChangedBlocksOutput{page("n", changed(1, "a", "b")), page("", changed(2, "", "b"))}}
	stop := errors.New("stop here")
	err := (&ebs.Snapshot{API: api, ID: childID, Policy: fast}).Changes(context.Background(), parentID, 0, func(ebs.ChangePage) error { return stop })
	if !errors.Is(err, stop) || api.calls != 1 {
		t.Fatalf("fn error: %v after %d calls", err, api.calls)
	}
}

// BenchmarkListChangedBlocks64GiB walks the changes between a synthetic
// 64 GiB parent (half its slots listed) and a child that differs in 1% of
// its slots, over loopback with the real SDK, and reports the List calls.
func BenchmarkListChangedBlocks64GiB(b *testing.B) {
	srv, ep := emulatortest.Start(b, emulator.Options{})
	if err := srv.AddSynthetic(parentID + "=64GiB,0.5,3"); err != nil {
		b.Fatal(err)
	}
	if err := srv.AddChild(childID + "=child-of:" + parentID + ",0.01,9"); err != nil {
		b.Fatal(err)
	}
	api := emulatortest.Client(b, ep)
	var changes, calls int64
	b.ResetTimer()
	for b.Loop() {
		stats := &ebs.Stats{}
		s := &ebs.Snapshot{API: api, ID: childID, Policy: fast, Stats: stats}
		changes = 0
		err := s.Changes(context.Background(), parentID, 0, func(p ebs.ChangePage) error {
			changes += int64(len(p.Changes))
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		calls = stats.Counts().ListCalls
	}
	b.ReportMetric(float64(changes), "changes/op")
	b.ReportMetric(float64(calls), "list-calls/op")
}
