package live

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// rewriter serves the emulator, with every ListSnapshotBlocks response
// after the first passed through edit.
type rewriter struct {
	srv   *emulator.Server
	lists atomic.Int32
	edit  func(body []byte) []byte
}

func (rw *rewriter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet || len(p) != 3 || p[2] != "blocks" || rw.lists.Add(1) == 1 {
		rw.srv.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	rw.srv.ServeHTTP(rec, r)
	body := rw.edit(rec.Body.Bytes())
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// openRewritten opens a fully allocated 1 GiB snapshot, in chunks of 100
// slots, through a server whose later listings edit changes.
func openRewritten(t *testing.T, edit func([]byte) []byte) *Volume {
	t.Helper()
	srv := emulator.New(emulator.Options{})
	if err := srv.AddSynthetic(synthID + "=1GiB,1,3"); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(&rewriter{srv: srv, edit: edit})
	t.Cleanup(hs.Close)
	snap := &ebs.Snapshot{API: emulatortest.Client(t, hs.URL), ID: synthID, Policy: fastPolicy, Stats: &ebs.Stats{}}
	v, err := Open(context.Background(), snap, nil, Options{chunk: 100, Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// A listing that changes the volume's size is refused, not believed.
func TestListingThatChangesSizeIsRefused(t *testing.T) {
	v := openRewritten(t, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"VolumeSize":1`), []byte(`"VolumeSize":2`), 1)
	})
	_, err := v.ReadAt(make([]byte, 10), 1500*block.Size)
	if err == nil || !strings.Contains(err.Error(), "volume size 2 GiB, but 1 GiB when first listed") {
		t.Fatalf("a listing with another size: %v", err)
	}
	if v.Size() != gib {
		t.Fatalf("size %d after a hostile listing, want %d", v.Size(), gib)
	}
}

// A block token longer than the API allows is refused before it is kept.
func TestOverlongTokenIsRefused(t *testing.T) {
	long := strings.Repeat("A", maxTokenLen+1)
	v := openRewritten(t, func(b []byte) []byte {
		i := bytes.Index(b, []byte(`"BlockToken":"`)) + len(`"BlockToken":"`)
		j := i + bytes.IndexByte(b[i:], '"')
		return append(append(append([]byte{}, b[:i]...), long...), b[j:]...)
	})
	_, err := v.ReadAt(make([]byte, 10), 1500*block.Size)
	if err == nil || !strings.Contains(err.Error(), "longer than the 256 the API allows") {
		t.Fatalf("an overlong token: %v", err)
	}
}

// Close ends a read waiting on a slow service at once, with an error.
func TestCloseEndsReads(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{Readahead: -1})
	e.srv.SetLatency(time.Hour, 0)
	done := make(chan error)
	go func() {
		_, err := v.ReadAt(make([]byte, 10), 0)
		done <- err
	}()
	for deadline := time.Now().Add(time.Minute); !v.gets.busy(0); time.Sleep(time.Millisecond) { // the Get is under way
		if time.Now().After(deadline) {
			t.Fatal("the Get did not start in a minute")
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a read cut short by Close: %v, want context.Canceled", err)
	}
}

// Stats prices the requests at the Region's list prices.
func TestStatsCost(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	v := e.open(t, rawID, Options{Region: "us-east-1", Readahead: -1})
	for _, i := range []int64{0, 1, 2} {
		readBlock(t, v, i)
	}
	s := v.Stats()
	want := float64(s.ListCalls)/1000*0.0006 + float64(s.GetCalls)/1000*0.003 // us-east-1, per 1,000
	if s.ListCalls != 1 || s.GetCalls != 3 || s.CostUSD != want || s.PriceAssumed {
		t.Fatalf("stats %+v: want 1 List and 3 Gets priced at us-east-1's %v", s, want)
	}
	if w := e.open(t, rawID, Options{Region: "xx-nowhere-1"}); !w.Stats().PriceAssumed {
		t.Fatal("an unknown Region's prices were not marked assumed")
	}
}
