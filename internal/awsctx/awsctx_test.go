package awsctx

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/report"
)

const snap = "snap-0123456789abcdef0"

// config points every service at endpoint with fake credentials, as
// AWS_ENDPOINT_URL does for the acquire command.
func config(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("emulator", "emulator", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

// fastRetries shortens the retry policy for the length of a test.
func fastRetries(t *testing.T, timeout time.Duration) {
	t.Helper()
	oldTimeout, oldDelay := attemptTimeout, retryDelay
	attemptTimeout, retryDelay = timeout, time.Millisecond
	t.Cleanup(func() { attemptTimeout, retryDelay = oldTimeout, oldDelay })
}

func start(t *testing.T, o emulator.Options) (*emulator.Server, string) {
	t.Helper()
	s, ep := emulatortest.Start(t, o)
	if err := s.AddSynthetic(snap + "=8GiB,0.01"); err != nil {
		t.Fatal(err)
	}
	return s, ep
}

func TestGather(t *testing.T) {
	started := time.Date(2024, 4, 30, 23, 15, 0, 0, time.UTC)
	s, ep := start(t, emulator.Options{
		Identity: emulator.Identity{Account: "444455556666", ARN: "arn:aws:sts::444455556666:assumed-role/IR/jo", UserID: "AROAEXAMPLE:jo"},
		SnapshotMeta: map[string]emulator.SnapshotMeta{snap: {
			VolumeID: "vol-0fedcba9876543210", OwnerID: "111122223333", StartTime: started, Description: "nightly",
			KMSKeyID: "arn:aws:kms:us-east-1:111122223333:key/k1",
			Tags:     []emulator.Tag{{Key: "case", Value: "2024-017"}, {Key: "Name", Value: "web-1"}},
		}},
	})
	got := Gather(context.Background(), config(ep), snap)
	want := Context{
		Region: "us-east-1", Endpoint: ep,
		CallerIdentity: &report.CallerIdentity{Account: "444455556666", ARN: "arn:aws:sts::444455556666:assumed-role/IR/jo", UserID: "AROAEXAMPLE:jo"},
		Snapshot: &report.SnapshotInfo{SnapshotID: snap, VolumeID: "vol-0fedcba9876543210", State: "completed", Progress: "100%",
			StartTime: started, OwnerID: "111122223333", VolumeSizeGiB: 8, Description: "nightly", Encrypted: true,
			KMSKeyID: "arn:aws:kms:us-east-1:111122223333:key/k1", StorageTier: "standard",
			Tags: []report.Tag{{Key: "Name", Value: "web-1"}, {Key: "case", Value: "2024-017"}}},
		Calls: []report.Call{
			{API: report.APIGetCallerIdentity, Outcome: report.OutcomeOK, Attempts: 1},
			{API: report.APIDescribeSnapshots, Outcome: report.OutcomeOK, Attempts: 1},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Gather:\n got %+v\n     %+v\n     %+v\nwant %+v\n     %+v\n     %+v", got, got.CallerIdentity, got.Snapshot, want, want.CallerIdentity, want.Snapshot)
	}
	ctr := s.Counters()
	if ctr.Total(emulator.OpGetCallerIdentity) != 1 || ctr.Total(emulator.OpDescribeSnapshots) != 1 {
		t.Fatalf("requests:\n%s", ctr)
	}
}

func TestGatherDenied(t *testing.T) {
	fastRetries(t, 5*time.Second)
	s, ep := start(t, emulator.Options{DenyDescribeSnapshots: true, DenyGetCallerIdentity: true})
	got := Gather(context.Background(), config(ep), snap)
	if got.CallerIdentity != nil || got.Snapshot != nil || len(got.Calls) != 2 {
		t.Fatalf("denied: %+v", got)
	}
	for i, want := range []struct{ api, code, msg string }{
		{report.APIGetCallerIdentity, "AccessDenied", "is not authorized to perform: sts:GetCallerIdentity"},
		{report.APIDescribeSnapshots, "UnauthorizedOperation", "is not authorized to perform: ec2:DescribeSnapshots"},
	} {
		c := got.Calls[i]
		if c.API != want.api || c.Outcome != report.OutcomeDenied || c.Code != want.code || c.Attempts != 1 || !strings.Contains(c.Error, want.msg) {
			t.Errorf("call %d: %+v, want %s denied with %s", i, c, want.api, want.code)
		}
	}
	// A denial is not retried.
	if ctr := s.Counters(); ctr.Total(emulator.OpGetCallerIdentity) != 1 || ctr.Total(emulator.OpDescribeSnapshots) != 1 {
		t.Fatalf("requests:\n%s", ctr)
	}
	// The record of a denied acquisition says so.
	r := report.New(snap, 8, 524288, report.KindEvidenceDirectory, "ev")
	r.Acquisition = &report.Acquisition{AWS: got, Run: report.Run{StartedAt: time.Now()}}
	if _, err := r.JSON(); err != nil {
		t.Fatal(err)
	}
	if len(r.Notes) != 4 || !strings.Contains(r.Notes[0], "If the snapshot is encrypted") {
		t.Fatalf("notes of a denied acquisition: %q", r.Notes)
	}
}

func TestGatherNotFound(t *testing.T) {
	fastRetries(t, 5*time.Second)
	s, ep := start(t, emulator.Options{})
	got := Gather(context.Background(), config(ep), "snap-0fffffffffffffff0")
	c := got.Calls[1]
	if got.Snapshot != nil || c.Outcome != report.OutcomeFailed || c.Code != "InvalidSnapshot.NotFound" || c.Attempts != 1 ||
		c.Error != "The snapshot 'snap-0fffffffffffffff0' does not exist." {
		t.Fatalf("unknown snapshot: %+v", c)
	}
	if got.CallerIdentity == nil || got.Calls[0].Outcome != report.OutcomeOK {
		t.Fatalf("identity: %+v", got.Calls[0])
	}
	if n := s.Counters().Total(emulator.OpDescribeSnapshots); n != 1 {
		t.Fatalf("an unknown snapshot was asked for %d times", n)
	}
}

// flaky answers the first n Query requests with status and code, then
// passes requests to h.
func flaky(t *testing.T, h http.Handler, n int32, status int, code string) (string, *atomic.Int32) {
	t.Helper()
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= n {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(status)
			if strings.Contains(r.Header.Get("Authorization"), "/sts/") {
				w.Write([]byte(`<ErrorResponse><Error><Type>Receiver</Type><Code>` + code + `</Code><Message>try later</Message></Error><RequestId>1</RequestId></ErrorResponse>`))
				return
			}
			w.Write([]byte(`<Response><Errors><Error><Code>` + code + `</Code><Message>try later</Message></Error></Errors><RequestID>1</RequestID></Response>`))
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &seen
}

func TestGatherRetries(t *testing.T) {
	fastRetries(t, 5*time.Second)
	for _, tc := range []struct {
		name   string
		status int
		code   string
	}{
		{"unavailable", http.StatusServiceUnavailable, "Unavailable"},
		{"throttled", http.StatusBadRequest, "RequestLimitExceeded"},
		{"server error", http.StatusInternalServerError, "InternalError"},
	} {
		emu := emulator.New(emulator.Options{})
		if err := emu.AddSynthetic(snap + "=1GiB,0"); err != nil {
			t.Fatal(err)
		}
		// Two failures: GetCallerIdentity fails once, then DescribeSnapshots once.
		ep, seen := flaky(t, emu, 1, tc.status, tc.code)
		got := Gather(context.Background(), config(ep), snap)
		if got.Calls[0].Outcome != report.OutcomeOK || got.Calls[0].Attempts != 2 || got.CallerIdentity == nil ||
			got.Calls[1].Outcome != report.OutcomeOK || got.Calls[1].Attempts != 1 || got.Snapshot == nil || seen.Load() != 3 {
			t.Errorf("%s: %+v after %d requests", tc.name, got.Calls, seen.Load())
		}
		// Failing every time: three attempts, then the error is recorded.
		ep, seen = flaky(t, emu, 100, tc.status, tc.code)
		got = Gather(context.Background(), config(ep), snap)
		for _, c := range got.Calls {
			if c.Outcome != report.OutcomeFailed || c.Attempts != 3 || c.Code != tc.code || c.Error != "try later" {
				t.Errorf("%s, always failing: %+v", tc.name, c)
			}
		}
		if seen.Load() != 6 {
			t.Errorf("%s: %d requests, want 6", tc.name, seen.Load())
		}
	}
	// Errors that will not change are not retried.
	ep, seen := flaky(t, http.NotFoundHandler(), 100, http.StatusBadRequest, "InvalidParameterValue")
	got := Gather(context.Background(), config(ep), snap)
	if got.Calls[0].Attempts != 1 || got.Calls[1].Attempts != 1 || seen.Load() != 2 {
		t.Errorf("a permanent error was retried: %+v", got.Calls)
	}
}

func TestGatherUnreachable(t *testing.T) {
	fastRetries(t, 200*time.Millisecond)
	// A port nothing listens on: refused at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	got := Gather(context.Background(), config("http://"+addr), snap)
	for _, c := range got.Calls {
		if c.Outcome != report.OutcomeFailed || c.Attempts != 3 || c.Code != "" || !strings.Contains(c.Error, "connection refused") {
			t.Errorf("unreachable: %+v", c)
		}
	}
	// A server that never answers: each attempt times out.
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) })
	begin := time.Now()
	got = Gather(context.Background(), config(srv.URL), snap)
	for _, c := range got.Calls {
		if c.Outcome != report.OutcomeFailed || c.Attempts != 3 || !strings.Contains(c.Error, "deadline exceeded") {
			t.Errorf("hanging server: %+v", c)
		}
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("six timed-out attempts of 200ms took %s", d)
	}
	// A cancelled acquisition stops asking.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got = Gather(ctx, config(srv.URL), snap)
	for _, c := range got.Calls {
		if c.Outcome != report.OutcomeFailed || c.Attempts != 1 || !strings.Contains(c.Error, "context canceled") {
			t.Errorf("cancelled: %+v", c)
		}
	}
}

// The context calls wait as ebs.Policy does (equal jitter: half fixed,
// half random, doubling) and sort errors with Classify.
func TestGatherPolicy(t *testing.T) {
	fastRetries(t, 5*time.Second)
	retryDelay = 40 * time.Millisecond
	var waits []time.Duration
	sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return ctx.Err() }
	t.Cleanup(func() { sleep = nil })
	ep, seen := flaky(t, http.NotFoundHandler(), 100, http.StatusServiceUnavailable, "Unavailable")
	got := Gather(context.Background(), config(ep), snap)
	if len(got.Calls) != 2 || got.Calls[0].Attempts != 3 || got.Calls[1].Attempts != 3 || seen.Load() != 6 || len(waits) != 4 {
		t.Fatalf("calls %+v, %d requests, waits %v", got.Calls, seen.Load(), waits)
	}
	for i, d := range waits {
		lo := retryDelay << (i % 2) // each call's first retry, then its second
		if d < lo || d > 2*lo {
			t.Errorf("wait %d: %v, want in [%v, %v]", i, d, lo, 2*lo)
		}
	}
	for code, want := range map[string]ebs.Kind{
		"AccessDenied": ebs.KindAccessDenied, "UnauthorizedOperation": ebs.KindAccessDenied,
		"RequestLimitExceeded": ebs.KindTransient, "Throttling": ebs.KindTransient, "InternalError": ebs.KindTransient,
		"InvalidSnapshot.NotFound": ebs.KindInvalid, "InvalidParameterValue": ebs.KindInvalid,
	} {
		if k := Classify(&smithy.GenericAPIError{Code: code}); k != want {
			t.Errorf("Classify(%s) = %v, want %v", code, k, want)
		}
	}
	if k := Classify(context.DeadlineExceeded); k != ebs.KindTransient {
		t.Errorf("Classify(a timeout) = %v", k)
	}
}

// Start makes the same calls in the background and hands back the same
// record.
func TestStart(t *testing.T) {
	s, ep := start(t, emulator.Options{})
	wait := Start(context.Background(), config(ep), snap)
	got := wait()
	if got.CallerIdentity == nil || got.Snapshot == nil || got.Snapshot.SnapshotID != snap || len(got.Calls) != 2 ||
		got.Calls[0].Outcome != report.OutcomeOK || got.Calls[1].Outcome != report.OutcomeOK {
		t.Fatalf("Start: %+v", got)
	}
	if ctr := s.Counters(); ctr.Total(emulator.OpGetCallerIdentity) != 1 || ctr.Total(emulator.OpDescribeSnapshots) != 1 {
		t.Fatalf("requests:\n%s", ctr)
	}
}
