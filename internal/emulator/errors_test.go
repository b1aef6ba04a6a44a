package emulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// TestErrors checks every error the emulator sends as the SDK decodes it:
// the typed error, its reason, and the HTTP status.
func TestErrors(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{})
	c := emulatortest.Client(t, ep)
	for _, spec := range []string{"snap-0a=1GiB", "snap-0b=1GiB", "snap-0c=1GiB", "snap-0d=1GiB", "snap-0e=1GiB"} {
		if err := s.AddSynthetic(spec); err != nil {
			t.Fatal(err)
		}
	}
	s.SetFaults(emulator.Faults{
		Deny: map[string]string{"snap-0b": emulator.DenyUnauthorizedAccount, "snap-0c": emulator.DenyDependencyAccessDenied},
		FailBlocks: []emulator.BlockFault{
			{Snapshot: "snap-0a", Index: 1, Error: "InternalServerException"},
			{Snapshot: "snap-0a", Index: 2, Error: "ServiceUnavailableException"},
			{Snapshot: "snap-0a", Index: 3, Error: "RequestThrottledException"},
			{Snapshot: "snap-0a", Index: 4, Error: "ThrottlingException"},
			{Snapshot: "snap-0a", Index: 5, Error: "AccessDeniedException"},
			{Snapshot: "snap-0a", Index: 6, Error: "ResourceNotFoundException"},
			{Snapshot: "snap-0a", Index: 7, Error: "ValidationException"},
			{Snapshot: "snap-0a", Index: 8, Error: "ServiceQuotaExceededException"},
		},
	})
	ctx := context.Background()
	l := listAll(t, c, "snap-0a", 100, 0)
	pending, err := c.StartSnapshot(ctx, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1)})
	if err != nil {
		t.Fatal(err)
	}
	list := func(id string) error {
		_, err := c.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id)})
		return err
	}
	get := func(id string, i int64) error {
		_, err := getBlock(c, id, i, l.token(i))
		return err
	}
	changed := func(first, second string) error {
		_, err := c.ListChangedBlocks(ctx, &ebs.ListChangedBlocksInput{FirstSnapshotId: aws.String(first), SecondSnapshotId: aws.String(second)})
		return err
	}

	cases := []struct {
		name   string
		err    error
		typ    string
		reason string
		status int
	}{
		{"malformed id", list("snap-XYZ"), "ValidationException", "INVALID_SNAPSHOT_ID", 400},
		{"malformed id on get", get("vol-0a", 0), "ValidationException", "INVALID_SNAPSHOT_ID", 400},
		{"unknown id", list("snap-0f"), "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", 404},
		{"unknown id on get", get("snap-0f", 0), "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", 404},
		{"denied", list("snap-0b"), "AccessDeniedException", "UNAUTHORIZED_ACCOUNT", 403},
		{"denied key", get("snap-0c", 0), "AccessDeniedException", "DEPENDENCY_ACCESS_DENIED", 403},
		{"denied first", changed("snap-0c", "snap-0a"), "AccessDeniedException", "DEPENDENCY_ACCESS_DENIED", 403},
		{"pending", list(aws.ToString(pending.SnapshotId)), "ValidationException", "INVALID_SNAPSHOT_ID", 400},
		{"index past the volume", get("snap-0a", 2048), "ValidationException", "INVALID_BLOCK", 400},
		{"unrelated", changed("snap-0d", "snap-0e"), "ValidationException", "UNRELATED_SNAPSHOTS", 400},
		{"fail 500", get("snap-0a", 1), "InternalServerException", "", 500},
		{"fail 503", get("snap-0a", 2), "ServiceUnavailableException", "", 503},
		{"fail throttled", get("snap-0a", 3), "RequestThrottledException", "ACCOUNT_THROTTLED", 400},
		{"fail throttling", get("snap-0a", 4), "ThrottlingException", "", 429},
		{"fail denied", get("snap-0a", 5), "AccessDeniedException", "UNAUTHORIZED_ACCOUNT", 403},
		{"fail not found", get("snap-0a", 6), "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", 404},
		{"fail token", get("snap-0a", 7), "ValidationException", "INVALID_BLOCK_TOKEN", 400},
		{"fail quota", get("snap-0a", 8), "ServiceQuotaExceededException", "DEPENDENCY_SERVICE_QUOTA_EXCEEDED", 402},
	}
	for _, tc := range cases {
		var ae smithy.APIError
		if !errors.As(tc.err, &ae) {
			t.Errorf("%s: %v, want an API error", tc.name, tc.err)
			continue
		}
		if ae.ErrorCode() != tc.typ || reasonOf(tc.err) != tc.reason || status(tc.err) != tc.status {
			t.Errorf("%s: %s reason %q status %d, want %s reason %q status %d",
				tc.name, ae.ErrorCode(), reasonOf(tc.err), status(tc.err), tc.typ, tc.reason, tc.status)
		}
	}
	if err := get("snap-0a", 0); err != nil {
		t.Errorf("block without a fault: %v", err)
	}
	cn := s.Counters()
	if got := cn.Count(emulator.OpGetSnapshotBlock, "ValidationException"); got != 3 {
		t.Errorf("Get ValidationException count %d, want 3", got)
	}
	if got := cn.Count(emulator.OpGetSnapshotBlock, "AccessDeniedException/DEPENDENCY_ACCESS_DENIED"); got != 1 {
		t.Errorf("Get denied-key count %d, want 1", got)
	}
	if got := cn.Count(emulator.OpGetSnapshotBlock, "ok"); got != 1 {
		t.Errorf("Get ok count %d, want 1", got)
	}
	if got := cn.Total(emulator.OpGetSnapshotBlock); got != 13 {
		t.Errorf("Get total %d, want 13", got)
	}
}

// reasonOf returns the Reason of a typed EBS error, "" for others.
func reasonOf(err error) string {
	var (
		ad *types.AccessDeniedException
		ve *types.ValidationException
		nf *types.ResourceNotFoundException
		rt *types.RequestThrottledException
		sq *types.ServiceQuotaExceededException
	)
	switch {
	case errors.As(err, &ad):
		return string(ad.Reason)
	case errors.As(err, &ve):
		return string(ve.Reason)
	case errors.As(err, &nf):
		return string(nf.Reason)
	case errors.As(err, &rt):
		return string(rt.Reason)
	case errors.As(err, &sq):
		return string(sq.Reason)
	}
	return ""
}

func TestNoAuthorization(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{})
	if err := s.AddSynthetic("snap-0a=1GiB"); err != nil {
		t.Fatal(err)
	}
	for _, auth := range []string{"", "Basic dXNlcjpwYXNz", "AWS4-HMAC-SHA256 Credential=AKID/20240501/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"} {
		req, err := http.NewRequest("GET", ep+"/snapshots/snap-0a/blocks", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var msg struct{ Message string }
		if resp.StatusCode != 403 || resp.Header.Get("X-Amzn-ErrorType") == "" || json.Unmarshal(body, &msg) != nil || msg.Message == "" {
			t.Errorf("Authorization %q: %d %s %s, want 403 with a JSON error", auth, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
		}
	}
	req, _ := http.NewRequest("GET", ep+"/snapshots/snap-0a/blocks", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Amzn-ErrorType"); got != "MissingAuthenticationTokenException" {
		t.Errorf("no Authorization: error type %q", got)
	}
	if got := s.Counters().Count(emulator.OpListSnapshotBlocks, "MissingAuthenticationTokenException"); got != 2 {
		t.Errorf("counted %d missing-token requests, want 2", got)
	}
	if !strings.Contains(s.Counters().String(), "ListSnapshotBlocks: 4 (IncompleteSignatureException 2, MissingAuthenticationTokenException 2)") {
		t.Errorf("counters dump:\n%s", s.Counters().String())
	}
}
