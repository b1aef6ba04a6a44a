package ec2test

// The EC2 DescribeSnapshots and STS tests, moved here from the emulator
// package so that its test binary does not build the EC2 SDK.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// queryConfig is an SDK configuration that sends every service to
// endpoint, as AWS_ENDPOINT_URL does, with no retries.
func queryConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("emulator", "emulator", ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

func apiCode(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an API error, got %v", err)
	}
	return ae.ErrorCode()
}

// status returns the HTTP status of a failed call.
func status(err error) int { return httpStatus(err) }

// newClock is a clock at a fixed instant.
func newClock() *clock { return &clock{time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)} }

// Now reads the clock.
func (c *clock) Now() time.Time { return c.t }

// listed is what the moved tests need of a listing: its blocks.
type listed struct{ blocks map[int64][]byte }

func listAll(t *testing.T, c *ebs.Client, snap string, _, _ int32) listed {
	t.Helper()
	return listed{readAll(t, c, snap)}
}

func TestDescribeSnapshots(t *testing.T) {
	start := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	s, ep := emulatortest.Start(t, emulator.Options{SnapshotMeta: map[string]emulator.SnapshotMeta{
		"snap-0a": {VolumeID: "vol-0123456789abcdef0", StartTime: start, Description: "web server root",
			KMSKeyID: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			Tags:     []emulator.Tag{{Key: "Name", Value: "web-1"}, {Key: "case", Value: "2024-017"}}},
		"snap-0c": {OwnerID: "444455556666"},
	}})
	for _, spec := range []string{"snap-0a=8GiB,0.01", "snap-0b=2GiB,0.01", "snap-0c=1GiB,0"} {
		if err := s.AddSynthetic(spec); err != nil {
			t.Fatal(err)
		}
	}
	cfg := queryConfig(ep)
	c := ec2.NewFromConfig(cfg)
	ctx := context.Background()

	out, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-0a"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Snapshots) != 1 {
		t.Fatalf("%d snapshots, want 1", len(out.Snapshots))
	}
	got := out.Snapshots[0]
	if aws.ToString(got.SnapshotId) != "snap-0a" || aws.ToString(got.VolumeId) != "vol-0123456789abcdef0" ||
		got.State != ec2types.SnapshotStateCompleted || aws.ToString(got.Progress) != "100%" ||
		!aws.ToTime(got.StartTime).Equal(start) || aws.ToString(got.OwnerId) != "111122223333" ||
		aws.ToInt32(got.VolumeSize) != 8 || aws.ToString(got.Description) != "web server root" ||
		!aws.ToBool(got.Encrypted) || !strings.HasSuffix(aws.ToString(got.KmsKeyId), ":key/1234abcd-12ab-34cd-56ef-1234567890ab") ||
		got.StorageTier != ec2types.StorageTierStandard {
		t.Fatalf("snap-0a: %+v", got)
	}
	if len(got.Tags) != 2 || aws.ToString(got.Tags[0].Key) != "Name" || aws.ToString(got.Tags[0].Value) != "web-1" ||
		aws.ToString(got.Tags[1].Key) != "case" || aws.ToString(got.Tags[1].Value) != "2024-017" {
		t.Fatalf("snap-0a tags: %+v", got.Tags)
	}

	// Defaults: a hashed volume id, the caller's account, the fixed start
	// time, unencrypted; the same on every call.
	out, err = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-0b"}})
	if err != nil {
		t.Fatal(err)
	}
	b := out.Snapshots[0]
	if vol := aws.ToString(b.VolumeId); len(vol) != len("vol-")+17 || !strings.HasPrefix(vol, "vol-0") ||
		aws.ToString(b.OwnerId) != "111122223333" || !aws.ToTime(b.StartTime).Equal(emulator.DefaultStartTime) ||
		aws.ToBool(b.Encrypted) || b.KmsKeyId != nil || len(b.Tags) != 0 || aws.ToInt32(b.VolumeSize) != 2 {
		t.Fatalf("snap-0b defaults: %+v", b)
	}
	again, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-0b"}})
	if err != nil || aws.ToString(again.Snapshots[0].VolumeId) != aws.ToString(b.VolumeId) {
		t.Fatalf("default volume id changed: %v %v", again, err)
	}

	// Every snapshot, in id order; then owner and filters.
	ids := func(in *ec2.DescribeSnapshotsInput) string {
		t.Helper()
		out, err := c.DescribeSnapshots(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		var l []string
		for _, s := range out.Snapshots {
			l = append(l, aws.ToString(s.SnapshotId))
		}
		return strings.Join(l, " ")
	}
	filter := func(name string, values ...string) []ec2types.Filter {
		return []ec2types.Filter{{Name: aws.String(name), Values: values}}
	}
	for _, tc := range []struct {
		in   *ec2.DescribeSnapshotsInput
		want string
	}{
		{&ec2.DescribeSnapshotsInput{}, "snap-0a snap-0b snap-0c"},
		{&ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}}, "snap-0a snap-0b"},
		{&ec2.DescribeSnapshotsInput{OwnerIds: []string{"444455556666"}}, "snap-0c"},
		{&ec2.DescribeSnapshotsInput{RestorableByUserIds: []string{"self"}}, "snap-0a snap-0b snap-0c"},
		{&ec2.DescribeSnapshotsInput{RestorableByUserIds: []string{"999988887777"}}, ""},
		{&ec2.DescribeSnapshotsInput{Filters: filter("encrypted", "true")}, "snap-0a"},
		{&ec2.DescribeSnapshotsInput{Filters: filter("tag:case", "2024-*")}, "snap-0a"},
		{&ec2.DescribeSnapshotsInput{Filters: filter("tag-key", "Na?e")}, "snap-0a"},
		{&ec2.DescribeSnapshotsInput{Filters: filter("volume-size", "1", "2")}, "snap-0b snap-0c"},
		{&ec2.DescribeSnapshotsInput{Filters: filter("description", "*server*")}, "snap-0a"},
		{&ec2.DescribeSnapshotsInput{Filters: append(filter("status", "completed"), filter("snapshot-id", "snap-0[bc]", "snap-0c")...)}, "snap-0c"},
	} {
		if got := ids(tc.in); got != tc.want {
			t.Errorf("DescribeSnapshots(owners %v, restorable %v, filters %v) = %q, want %q",
				tc.in.OwnerIds, tc.in.RestorableByUserIds, tc.in.Filters, got, tc.want)
		}
	}

	// Pages of MaxResults follow NextToken to the end.
	var pages []string
	p := ec2.NewDescribeSnapshotsPaginator(c, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, aws.ToString(out.Snapshots[0].SnapshotId))
	}
	if strings.Join(pages, " ") != "snap-0a" {
		t.Errorf("pages start %q, want one page", pages)
	}
	for i := 0; i < 5; i++ {
		if err := s.AddSynthetic("snap-1" + string(rune('0'+i)) + "=1GiB,0"); err != nil {
			t.Fatal(err)
		}
	}
	pages = nil
	p = ec2.NewDescribeSnapshotsPaginator(c, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(5)})
	var total int
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += len(out.Snapshots)
		pages = append(pages, aws.ToString(out.Snapshots[0].SnapshotId))
	}
	if strings.Join(pages, " ") != "snap-0a snap-12" || total != 8 {
		t.Errorf("8 snapshots in pages of 5: pages start %q, %d in all", pages, total)
	}

	// Errors, as the SDK decodes them.
	for _, tc := range []struct {
		in   *ec2.DescribeSnapshotsInput
		code string
	}{
		{&ec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-0a", "snap-0f"}}, "InvalidSnapshot.NotFound"},
		{&ec2.DescribeSnapshotsInput{SnapshotIds: []string{"vol-0a"}}, "InvalidSnapshotID.Malformed"},
		{&ec2.DescribeSnapshotsInput{Filters: filter("no-such-filter", "x")}, "InvalidParameterValue"},
		{&ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(2)}, "InvalidParameterValue"},
		{&ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(5), SnapshotIds: []string{"snap-0a"}}, "InvalidParameterCombination"},
		{&ec2.DescribeSnapshotsInput{DryRun: aws.Bool(true)}, "DryRunOperation"},
	} {
		_, err := c.DescribeSnapshots(ctx, tc.in)
		if code := apiCode(t, err); code != tc.code {
			t.Errorf("DescribeSnapshots(%+v): %v, want %s", tc.in, err, tc.code)
		}
	}
	_, err = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-0f"}})
	if !strings.Contains(err.Error(), "The snapshot 'snap-0f' does not exist.") || status(err) != http.StatusBadRequest {
		t.Errorf("not found: %v (status %d)", err, status(err))
	}

	ctr := s.Counters()
	if ctr.Count(emulator.OpDescribeSnapshots, emulator.OutcomeOK) != 17 ||
		ctr.Count(emulator.OpDescribeSnapshots, "InvalidSnapshot.NotFound") != 2 ||
		ctr.Count(emulator.OpDescribeSnapshots, "DryRunOperation") != 1 {
		t.Errorf("counters:\n%s", ctr)
	}
}

// TestDescribeWrittenSnapshot checks that a snapshot made with the write
// API reports what StartSnapshot was given.
func TestDescribeWrittenSnapshot(t *testing.T) {
	clk := newClock()
	_, ep := emulatortest.Start(t, emulator.Options{Now: clk.Now})
	ctx := context.Background()
	st, err := emulatortest.Client(t, ep).StartSnapshot(ctx, &ebs.StartSnapshotInput{
		VolumeSize:  aws.Int64(3),
		Description: aws.String("uploaded"),
		Tags:        []types.Tag{{Key: aws.String("team"), Value: aws.String("ir")}},
		Encrypted:   aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ec2.NewFromConfig(queryConfig(ep)).DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(st.SnapshotId)}})
	if err != nil {
		t.Fatal(err)
	}
	got := out.Snapshots[0]
	if got.State != ec2types.SnapshotStatePending || aws.ToString(got.Progress) != "0%" || aws.ToString(got.Description) != "uploaded" ||
		!aws.ToBool(got.Encrypted) || !aws.ToTime(got.StartTime).Equal(clk.Now()) || aws.ToInt32(got.VolumeSize) != 3 ||
		len(got.Tags) != 1 || aws.ToString(got.Tags[0].Key) != "team" || aws.ToString(got.Tags[0].Value) != "ir" {
		t.Fatalf("written snapshot: %+v", got)
	}
}

func TestGetCallerIdentity(t *testing.T) {
	_, ep := emulatortest.Start(t, emulator.Options{})
	ctx := context.Background()
	out, err := sts.NewFromConfig(queryConfig(ep)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Account) != "111122223333" || aws.ToString(out.Arn) != "arn:aws:iam::111122223333:user/emulator" ||
		aws.ToString(out.UserId) != "AIDAEMULATOR000000001" {
		t.Fatalf("default identity: %s %s %s", aws.ToString(out.Account), aws.ToString(out.Arn), aws.ToString(out.UserId))
	}

	want := emulator.Identity{Account: "444455556666", ARN: "arn:aws:sts::444455556666:assumed-role/IR/examiner", UserID: "AROAEXAMPLE:examiner"}
	_, ep = emulatortest.Start(t, emulator.Options{Identity: want})
	out, err = sts.NewFromConfig(queryConfig(ep)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if got := (emulator.Identity{Account: aws.ToString(out.Account), ARN: aws.ToString(out.Arn), UserID: aws.ToString(out.UserId)}); got != want {
		t.Fatalf("identity %+v, want %+v", got, want)
	}
	// The snapshot owner defaults to the caller's account.
	s, ep := emulatortest.Start(t, emulator.Options{Identity: want})
	if err := s.AddSynthetic("snap-0a=1GiB,0"); err != nil {
		t.Fatal(err)
	}
	d, err := ec2.NewFromConfig(queryConfig(ep)).DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	if err != nil || len(d.Snapshots) != 1 || aws.ToString(d.Snapshots[0].OwnerId) != "444455556666" {
		t.Fatalf("owner of snap-0a: %+v %v", d, err)
	}
}

func TestContextCallsDenied(t *testing.T) {
	s, ep := emulatortest.Start(t, emulator.Options{DenyDescribeSnapshots: true, DenyGetCallerIdentity: true})
	if err := s.AddSynthetic("snap-0a=1GiB,0.01"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := queryConfig(ep)
	_, err := ec2.NewFromConfig(cfg).DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-0a"}})
	if apiCode(t, err) != "UnauthorizedOperation" || status(err) != http.StatusForbidden ||
		!strings.Contains(err.Error(), "not authorized to perform: ec2:DescribeSnapshots") {
		t.Errorf("denied DescribeSnapshots: %v (status %d)", err, status(err))
	}
	// DryRun answers a denied caller with the denial too.
	_, err = ec2.NewFromConfig(cfg).DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{DryRun: aws.Bool(true)})
	if apiCode(t, err) != "UnauthorizedOperation" {
		t.Errorf("denied DryRun: %v", err)
	}
	_, err = sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if apiCode(t, err) != "AccessDenied" || status(err) != http.StatusForbidden ||
		!strings.Contains(err.Error(), "sts:GetCallerIdentity") {
		t.Errorf("denied GetCallerIdentity: %v (status %d)", err, status(err))
	}
	// The EBS direct APIs on the same listener are unaffected.
	if l := listAll(t, emulatortest.Client(t, ep), "snap-0a", 0, 0); len(l.blocks) == 0 {
		t.Error("snap-0a lists no blocks")
	}
	ctr := s.Counters()
	if ctr.Count(emulator.OpDescribeSnapshots, "UnauthorizedOperation") != 2 || ctr.Count(emulator.OpGetCallerIdentity, "AccessDenied") != 1 {
		t.Errorf("counters:\n%s", ctr)
	}
}
