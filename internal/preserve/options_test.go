package preserve

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/report"
)

func TestParseDurations(t *testing.T) {
	for s, want := range map[string]int{"30d": 30, "30": 30, "720h": 30, "1d": 1, "36500d": 36500, "24h0m0s": 1} {
		if got, err := ParseDays(s); err != nil || got != want {
			t.Errorf("ParseDays(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "25h", "1.5d", "-1d", "d", "30m", "1w", "99999999999d"} {
		if got, err := ParseDays(s); err == nil {
			t.Errorf("ParseDays(%q) = %d, want an error", s, got)
		}
	}
	for s, want := range map[string]int{"24h": 24, "24": 24, "1d": 24, "72h": 72, "90m0s": -1} {
		got, err := ParseHours(s)
		if want < 0 {
			if err == nil {
				t.Errorf("ParseHours(%q) = %d, want an error", s, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseHours(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
}

func TestCheckTargets(t *testing.T) {
	if err := CheckTargets([]string{"i-0123456789abcdef0", "vol-0123456789abcdef0", "i-01234567", "vol-89abcdef"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{nil, {"snap-0123456789abcdef0"}, {"i-0123456789ABCDEF0"}, {"i-0123"}, {"vol-0123456789abcdef0 "},
		{"i-0123456789abcdef0", "i-0123456789abcdef0"}, slices.Repeat([]string{"vol-0123456789abcdef0"}, 101)} {
		err := CheckTargets(bad)
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != ebs.KindInvalid || pe.API != "" {
			t.Errorf("CheckTargets(%q) = %v, want an invalid-input error", bad, err)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	good := Options{Wait: true, Lock: LockCompliance, LockDays: 30, CoolOffHours: 24, ShareWith: []string{"111122223333"},
		Copy: true, KMSKey: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", CopyRegion: "eu-west-1",
		Devices: []string{"/dev/sdf", "/dev/xvda"}, Tags: []report.Tag{{Key: "team", Value: strings.Repeat("v", 256)}, {Key: strings.Repeat("k", 128), Value: ""}}}
	if err := good.Check(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Options)
		want string
	}{
		"lock mode":        {func(o *Options) { o.Lock = "forever" }, `invalid lock mode "forever"`},
		"no duration":      {func(o *Options) { o.LockDays = 0 }, "--lock needs --lock-duration of 1 to 36500 days (got 0)"},
		"long duration":    {func(o *Options) { o.LockDays = 36501 }, "(got 36501)"},
		"cool-off":         {func(o *Options) { o.CoolOffHours = 73 }, "--cool-off must be 1 to 72 hours (got 73)"},
		"governance cool":  {func(o *Options) { o.Lock = LockGovernance }, "--cool-off applies to a compliance lock only"},
		"duration no lock": {func(o *Options) { o.Lock, o.CoolOffHours = "", 0 }, "--lock-duration and --cool-off apply to --lock"},
		"account":          {func(o *Options) { o.ShareWith = []string{"11112222333"} }, `invalid account "11112222333" to share with: want 12 digits`},
		"no wait":          {func(o *Options) { o.Wait = false }, "locking, sharing and copying need completed snapshots: drop --no-wait"},
		"copy without key": {func(o *Options) { o.KMSKey = "" }, "--copy and --kms-key go together"},
		"managed key":      {func(o *Options) { o.KMSKey = "alias/aws/ebs" }, "--kms-key alias/aws/ebs is an AWS managed key"},
		"managed key ARN":  {func(o *Options) { o.KMSKey = "arn:aws:kms:eu-west-1:111122223333:alias/aws/ebs" }, "is an AWS managed key"},
		"region":           {func(o *Options) { o.CopyRegion = "Mars" }, `invalid --copy-region "Mars"`},
		"device":           {func(o *Options) { o.Devices = []string{"sdf"} }, `invalid device "sdf"`},
		"aws tag":          {func(o *Options) { o.Tags = []report.Tag{{Key: "AWS:x", Value: "y"}} }, "the aws: prefix is reserved for AWS"},
		"own tag":          {func(o *Options) { o.Tags = []report.Tag{{Key: "ebsimager:case-number", Value: "y"}} }, "prefix is ebsimager's own"},
		"long key":         {func(o *Options) { o.Tags = []report.Tag{{Key: strings.Repeat("k", 129)}} }, "is 129 characters: EC2 allows 128"},
		"long value":       {func(o *Options) { o.Tags = []report.Tag{{Key: "k", Value: strings.Repeat("v", 257)}} }, "tag k is 257 characters"},
		"twice":            {func(o *Options) { o.Tags = []report.Tag{{Key: "k"}, {Key: "k"}} }, `tag "k" given twice`},
		"case number":      {func(o *Options) { o.Case.CaseNumber = strings.Repeat("c", 257) }, "case number is 257 characters"},
		"timeout":          {func(o *Options) { o.Timeout = -time.Second }, "must not be negative"},
		"too many tags": {func(o *Options) {
			o.Tags = nil
			for i := range 42 {
				o.Tags = append(o.Tags, report.Tag{Key: strings.Repeat("k", i+1)})
			}
		}, "42 tags: EC2 allows 50"},
	} {
		o := good
		tc.edit(&o)
		err := o.Check()
		var pe *Error
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &pe) || pe.Kind != ebs.KindInvalid {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestTagsAndDescription(t *testing.T) {
	o := Options{Case: report.Case{CaseNumber: "2024-017", EvidenceNumber: "E-3", Examiner: "J. Doe"}, Tool: report.Tool{Version: "1.2.3"},
		Tags: []report.Tag{{Key: "team", Value: "ir"}}}
	at := time.Date(2026, 12, 5, 16, 0, 0, 0, time.FixedZone("CET", 3600))
	got := tagsText(append(o.tags(at, "i-0123456789abcdef0"), deviceTags("/dev/sdf", "vol-0123456789abcdef0")...))
	want := "ebsimager:case-number=2024-017 ebsimager:evidence-number=E-3 ebsimager:examiner=J. Doe ebsimager:tool=ebsimager 1.2.3 " +
		"ebsimager:created=2026-12-05T15:00:00Z ebsimager:instance=i-0123456789abcdef0 team=ir ebsimager:device=/dev/sdf ebsimager:volume=vol-0123456789abcdef0"
	if got != want {
		t.Errorf("tags\n%s\nwant\n%s", got, want)
	}
	if got := tagsText(append((&Options{}).tags(at, ""), deviceTags("", "vol-89abcdef")...)); got != "ebsimager:tool=ebsimager ebsimager:created=2026-12-05T15:00:00Z ebsimager:volume=vol-89abcdef" {
		t.Errorf("no case: %s", got)
	}
	if d := o.description("snapshot of vol-89abcdef"); d != "ebsimager preservation, case 2024-017, evidence E-3: snapshot of vol-89abcdef" {
		t.Errorf("description %q", d)
	}
	if d := (&Options{}).description("x"); d != "ebsimager preservation, no case number: x" {
		t.Errorf("description %q", d)
	}
	long := Options{Case: report.Case{CaseNumber: strings.Repeat("é", 128)}}
	if d := long.description("x"); len(d) > 255 || !strings.HasSuffix(d, "...") || !utf8.ValidString(d) {
		t.Errorf("long description: %d bytes %q", len(d), d)
	}
}

func TestErrorKinds(t *testing.T) {
	for code, want := range map[string]ebs.Kind{
		"UnauthorizedOperation": ebs.KindAccessDenied, "InvalidInstanceID.NotFound": ebs.KindNotFound, "InvalidVolume.NotFound": ebs.KindNotFound,
		"InvalidSnapshot.NotFound": ebs.KindNotFound, "IncorrectState": ebs.KindInvalid, "InvalidInstanceID.Malformed": ebs.KindInvalid,
		"SnapshotLimitExceeded": ebs.KindQuota, "RequestLimitExceeded": ebs.KindOther, "InternalError": ebs.KindOther,
	} {
		err := apiError("ec2:CreateSnapshots", "i-0123456789abcdef0", &smithy.GenericAPIError{Code: code, Message: "m"})
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != want || pe.Code != code {
			t.Errorf("%s: %+v, want kind %v", code, pe, want)
		}
	}
	err := apiError("ec2:CreateSnapshots", "i-0123456789abcdef0", &smithy.GenericAPIError{Code: "UnauthorizedOperation", Message: "You are not authorized to perform this operation."})
	if got := err.Error(); got != "ec2:CreateSnapshots i-0123456789abcdef0: access denied (the caller needs ec2:CreateSnapshots): UnauthorizedOperation: You are not authorized to perform this operation." {
		t.Errorf("denied: %s", got)
	}
	for _, msg := range []string{"Snapshots encrypted with the AWS Managed CMK can’t be shared. Specify another snapshot.", "Encrypted snapshots with EBS default key cannot be shared"} {
		err := apiError("ec2:ModifySnapshotAttribute", "snap-0123", &smithy.GenericAPIError{Code: "OperationNotPermitted", Message: msg})
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != ebs.KindInvalid || pe.Hint != copyHint {
			t.Errorf("%q: %+v", msg, pe)
		}
	}
	if k := classifyCreate(&smithy.GenericAPIError{Code: "RequestLimitExceeded"}); k != ebs.KindTransient {
		t.Errorf("a throttled create: %v", k)
	}
	if k := classifyCreate(errors.New("read: connection reset by peer")); k.Retryable() {
		t.Errorf("a create with no answer is retried (%v): it may have made a snapshot", k)
	}
	if k := classifyEventual(&smithy.GenericAPIError{Code: "InvalidSnapshot.NotFound"}); k != ebs.KindTransient {
		t.Errorf("not found right after creation: %v", k)
	}
}

func TestNotCompletedError(t *testing.T) {
	err := &NotCompletedError{Timeout: time.Minute, Pending: []Snapshot{
		{SnapshotID: "snap-01", VolumeID: "vol-01", InstanceID: "i-01", Device: "/dev/sdf", State: "pending", Progress: "45%"},
		{SnapshotID: "snap-02", VolumeID: "vol-02", State: "pending"},
	}}
	want := "2 snapshots not completed within 1m0s: snap-01 of vol-01 (i-01 /dev/sdf) is pending at 45%; snap-02 of vol-02 is pending at (unknown)"
	if err.Error() != want {
		t.Errorf("%s\nwant\n%s", err, want)
	}
}

func TestBounded(t *testing.T) {
	s := strings.Repeat("é", maxSummary)
	b := bounded(s)
	if len(b) > maxSummary+len("…") || !utf8.ValidString(b) || !strings.HasSuffix(b, "…") {
		t.Errorf("bounded: %d bytes", len(b))
	}
	if bounded("short") != "short" {
		t.Error("short")
	}
}
