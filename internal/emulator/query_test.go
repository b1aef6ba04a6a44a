package emulator_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// TestQueryWire checks the raw responses: the XML envelopes, the routing
// by credential scope and by Action, and the authentication errors.
func TestQueryWire(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{})
	if err := s.AddSynthetic("snap-0a=1GiB,0"); err != nil {
		t.Fatal(err)
	}
	post := func(form, auth string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, ep+"/", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	sig := func(service string) string {
		return "AWS4-HMAC-SHA256 Credential=emulator/20240501/us-east-1/" + service + "/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
	}
	describe := url.Values{"Action": {"DescribeSnapshots"}, "Version": {"2016-11-15"}, "SnapshotId.1": {"snap-0a"}}.Encode()
	identity := url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}}.Encode()

	code, body := post(describe, sig("ec2"))
	for _, want := range []string{
		`<?xml version="1.0" encoding="UTF-8"?>`,
		`<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`,
		`<snapshotSet><item><snapshotId>snap-0a</snapshotId><volumeId>vol-0`,
		`<status>completed</status><startTime>2024-01-01T00:00:00.000Z</startTime><progress>100%</progress><ownerId>111122223333</ownerId><volumeSize>1</volumeSize><description></description><encrypted>false</encrypted><storageTier>standard</storageTier></item></snapshotSet></DescribeSnapshotsResponse>`,
	} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("DescribeSnapshots: %d\n%s\nwant it to contain %s", code, body, want)
		}
	}
	code, body = post(identity, sig("sts"))
	if want := `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/emulator</Arn><UserId>AIDAEMULATOR000000001</UserId><Account>111122223333</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>`; code != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("GetCallerIdentity: %d\n%s", code, body)
	}

	for _, tc := range []struct {
		name, form, auth string
		status           int
		want             string
	}{
		{"not found", url.Values{"Action": {"DescribeSnapshots"}, "SnapshotId.1": {"snap-0f"}}.Encode(), sig("ec2"), 400,
			`<Response><Errors><Error><Code>InvalidSnapshot.NotFound</Code><Message>The snapshot &#39;snap-0f&#39; does not exist.</Message></Error></Errors><RequestID>`},
		{"unsigned ec2", describe, "", 400, `<Code>MissingAuthenticationToken</Code>`},
		{"unsigned sts", identity, "", 400, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code>`},
		{"other scheme", describe, "AWS4-ECDSA-P256-SHA256 Credential=x", 400, `<Code>IncompleteSignature</Code>`},
		{"scoped to ebs", describe, sig("ebs"), 403, `<Code>SignatureDoesNotMatch</Code><Message>Credential should be scoped to correct service: &#39;ec2&#39;.</Message>`},
		{"sts action on ec2", identity, sig("ec2"), 400, `<Response><Errors><Error><Code>InvalidAction</Code><Message>The action GetCallerIdentity is not valid for this web service.</Message>`},
		{"ec2 action on sts", describe, sig("sts"), 400, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidAction</Code>`},
		{"no action", "Version=2016-11-15", sig("ec2"), 400, `<Code>MissingAction</Code>`},
		{"unknown parameter", describe + "&Bogus=1", sig("ec2"), 400, `<Code>UnknownParameter</Code><Message>The parameter Bogus is not recognized</Message>`},
	} {
		code, body := post(tc.form, tc.auth)
		if code != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d\n%s\nwant %d and %s", tc.name, code, body, tc.status, tc.want)
		}
	}
}

func TestParseSnapshotMeta(t *testing.T) {
	m := map[string]emulator.SnapshotMeta{}
	for _, spec := range []string{
		"snap-0a:volume-id=vol-0a", "snap-0a:owner=444455556666", "snap-0a:start-time=2024-05-01T12:00:00+02:00",
		"snap-0a:encrypted=true", "snap-0a:kms-key=arn:aws:kms:us-east-1:111122223333:key/k", "snap-0a:description=a, b=c",
		"snap-0a:tag:Name=web", "snap-0a:tag:empty=", "snap-0b:encrypted=false",
	} {
		if err := emulator.ParseSnapshotMeta(spec, m); err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
	}
	a := m["snap-0a"]
	if a.VolumeID != "vol-0a" || a.OwnerID != "444455556666" || !a.StartTime.Equal(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)) ||
		!a.Encrypted || a.KMSKeyID != "arn:aws:kms:us-east-1:111122223333:key/k" || a.Description != "a, b=c" ||
		len(a.Tags) != 2 || a.Tags[0] != (emulator.Tag{Key: "Name", Value: "web"}) || a.Tags[1] != (emulator.Tag{Key: "empty"}) {
		t.Fatalf("parsed %+v", a)
	}
	if _, ok := m["snap-0b"]; !ok || len(m) != 2 {
		t.Fatalf("parsed %v", m)
	}
	for _, bad := range []string{"snap-0a", "snap-0a:volume-id", "vol-0a:owner=1", "snap-0a:start-time=yesterday",
		"snap-0a:encrypted=yes", "snap-0a:colour=red", "snap-0a:tag:=x"} {
		if err := emulator.ParseSnapshotMeta(bad, m); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
