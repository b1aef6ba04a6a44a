package preflight

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/report"
)

// The emulator tests run Check through the real SDK against the
// project's emulator, which answers EC2 and the EBS direct APIs on one
// endpoint, and read its counters: a pre-flight never fetches a block.

const (
	emuSnap  = "snap-0e0000000000000e1"
	emuKMS   = "snap-0e0000000000000e2"
	emuSpec  = "=1GiB,0.05,9"
	emuCalls = report.APIDescribeSnapshots + "/ok " + report.APIDescribeSnapshotAttribute + "/ok"
)

// emuConfig points every service at endpoint with fake credentials, as
// AWS_ENDPOINT_URL does for the acquire command.
func emuConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("emulator", "emulator", ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

func startEmu(t testing.TB, o emulator.Options, ids ...string) (*emulator.Server, aws.Config) {
	t.Helper()
	s, ep := emulatortest.Start(t, o)
	for _, id := range ids {
		if err := s.AddSynthetic(id + emuSpec); err != nil {
			t.Fatal(err)
		}
	}
	return s, emuConfig(ep)
}

// noGets fails the test if the emulator served any GetSnapshotBlock.
func noGets(t testing.TB, s *emulator.Server) {
	t.Helper()
	if n := s.Counters().Total(emulator.OpGetSnapshotBlock); n != 0 {
		t.Fatalf("%d GetSnapshotBlock requests; a pre-flight fetches none", n)
	}
}

func TestEmulatorKMSDenied(t *testing.T) {
	s, cfg := startEmu(t, emulator.Options{
		SnapshotMeta: map[string]emulator.SnapshotMeta{emuKMS: {KMSKeyID: keyARN}},
		Faults:       emulator.Faults{Deny: map[string]string{emuKMS: emulator.DenyDependencyAccessDenied}},
	}, emuKMS, emuSnap)
	rs, err := Check(context.Background(), cfg, []string{emuKMS, emuSnap})
	var pe *Error
	if !errors.As(err, &pe) || pe.Reason != KMSDenied || pe.KMSKey != keyARN || len(rs) != 2 || rs[0].Err != pe || rs[1].Err != nil {
		t.Fatalf("Check: %v, %+v", err, rs)
	}
	want := "snapshot " + emuKMS + " is encrypted, and the caller may not use KMS key " + keyARN + " (kms:Decrypt denied: DEPENDENCY_ACCESS_DENIED)"
	if err.Error() != want {
		t.Fatalf("message\n%s\nwant\n%s", err, want)
	}
	if got := apis(rs[0]); got != emuCalls+" "+report.APIListSnapshotBlocks+"/denied" {
		t.Fatalf("calls %q", got)
	}
	c := s.Counters()
	if c.Total(emulator.OpDescribeSnapshots) != 1 || c.Count(emulator.OpListSnapshotBlocks, "AccessDeniedException/DEPENDENCY_ACCESS_DENIED") != 1 || c.Total(emulator.OpListSnapshotBlocks) != 1 {
		t.Fatalf("counters %s; want one DescribeSnapshots for both, one List (of the encrypted snapshot only)", c)
	}
	noGets(t, s)
}

func TestEmulatorReadable(t *testing.T) {
	const key = "arn:aws:kms:us-east-1:111122223333:key/allowed"
	s, cfg := startEmu(t, emulator.Options{
		SnapshotMeta: map[string]emulator.SnapshotMeta{emuKMS: {KMSKeyID: key}},
	}, emuKMS, emuSnap)
	rs, err := Check(context.Background(), cfg, []string{emuSnap, emuKMS})
	if err != nil || len(rs) != 2 || !rs[0].Checked || !rs[1].Checked || !rs[0].PublicChecked || rs[0].Public {
		t.Fatalf("Check: %v, %+v", err, rs)
	}
	if rs[0].Info.SnapshotID != emuSnap || rs[0].Info.State != "completed" || rs[0].Info.StorageTier != "standard" || rs[1].Info.KMSKeyID != key {
		t.Fatalf("answers %+v %+v", rs[0].Info, rs[1].Info)
	}
	if got := apis(rs[0]); got != emuCalls {
		t.Fatalf("calls %q, want %q", got, emuCalls)
	}
	if got := apis(rs[1]); got != emuCalls+" "+report.APIListSnapshotBlocks+"/ok" {
		t.Fatalf("calls %q", got)
	}
	c := s.Counters()
	if c.Total(emulator.OpDescribeSnapshots) != 1 || c.Count(emulator.OpListSnapshotBlocks, emulator.OutcomeOK) != 1 || c.Total(emulator.OpListSnapshotBlocks) != 1 {
		t.Fatalf("counters %s; want one DescribeSnapshots, one List (the encrypted snapshot's probe)", c)
	}
	noGets(t, s)
	d := rs[0].Described()
	if d.Snapshot != rs[0].Info || len(d.Calls) != 2 {
		t.Fatalf("described %+v", d)
	}
}

// TestEmulatorStarted: a snapshot begun with StartSnapshot and not
// completed is pending.
func TestEmulatorStarted(t *testing.T) {
	s, cfg := startEmu(t, emulator.Options{})
	out, err := ebsapi.NewFromConfig(cfg).StartSnapshot(context.Background(), &ebsapi.StartSnapshotInput{VolumeSize: aws.Int64(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.SnapshotId)
	rs, err := Check(context.Background(), cfg, []string{id})
	want := "snapshot " + id + " is still pending (0% done): the EBS direct APIs read only completed snapshots"
	var pe *Error
	if !errors.As(err, &pe) || pe.Reason != Pending || err.Error() != want || rs[0].Err != pe {
		t.Fatalf("Check: %v, want %q", err, want)
	}
	if got := apis(rs[0]); got != report.APIDescribeSnapshots+"/ok" {
		t.Fatalf("calls %q", got)
	}
	if c := s.Counters(); c.Total(emulator.OpListSnapshotBlocks) != 0 {
		t.Fatalf("counters %s", c)
	}
	noGets(t, s)

	// Read live with no pre-flight, the listing's refusal is explained.
	_, lerr := ebsapi.NewFromConfig(cfg).ListSnapshotBlocks(context.Background(), &ebsapi.ListSnapshotBlocksInput{SnapshotId: aws.String(id)})
	if lerr == nil {
		t.Fatal("the emulator listed a pending snapshot")
	}
	got := Diagnose(context.Background(), cfg, id, lerr)
	if !errors.As(got, &pe) || got.Error() != want || !errors.Is(got, lerr) {
		t.Fatalf("Diagnose: %v", got)
	}
	noGets(t, s)
}

// TestEmulatorUnreadable: every reason EC2's answer gives, and the same
// reasons from the direct APIs' refusals when DescribeSnapshots is
// denied; no Get either way.
func TestEmulatorUnreadable(t *testing.T) {
	const (
		archived = "snap-0e0000000000000a1"
		public   = "snap-0e0000000000000a2"
		outpost  = "snap-0e0000000000000a3"
		pending  = "snap-0e0000000000000a4"
		failed   = "snap-0e0000000000000a5"
		arn      = "arn:aws:outposts:us-east-1:111122223333:outpost/op-0123456789abcdef0"
	)
	meta := map[string]emulator.SnapshotMeta{
		archived: {StorageTier: "archive"},
		public:   {Public: true},
		outpost:  {OutpostARN: arn},
		pending:  {State: "pending"},
		failed:   {State: "error"},
	}
	for _, tc := range []struct {
		id       string
		reason   Reason
		checked  string // the message when EC2 answers
		refusal  string // the message from the direct APIs' refusal alone
		calls    string
		attempts int64 // DescribeSnapshotAttribute requests
	}{
		{archived, Archived,
			"snapshot " + archived + " is in the archive storage tier: the EBS direct APIs cannot read an archived snapshot", "",
			report.APIDescribeSnapshots + "/ok", 0},
		{public, Public,
			"snapshot " + public + " is public: the EBS direct APIs do not read public snapshots", "",
			emuCalls, 1},
		{outpost, Outpost,
			"snapshot " + outpost + " is a local snapshot on AWS Outposts (" + arn + "): the EBS direct APIs do not read Outposts local snapshots",
			"snapshot " + outpost + " is a local snapshot on AWS Outposts: the EBS direct APIs do not read Outposts local snapshots",
			report.APIDescribeSnapshots + "/ok", 0},
		{pending, Pending,
			"snapshot " + pending + " is still pending (0% done): the EBS direct APIs read only completed snapshots",
			"snapshot " + pending + " is still pending: the EBS direct APIs read only completed snapshots",
			report.APIDescribeSnapshots + "/ok", 0},
		{failed, NotDone,
			"snapshot " + failed + " is in state error, not completed: the EBS direct APIs read only completed snapshots", "",
			report.APIDescribeSnapshots + "/ok", 0},
	} {
		t.Run(string(tc.reason), func(t *testing.T) {
			s, cfg := startEmu(t, emulator.Options{SnapshotMeta: meta}, tc.id)
			rs, err := Check(context.Background(), cfg, []string{tc.id})
			var pe *Error
			if !errors.As(err, &pe) || pe.Reason != tc.reason || err.Error() != tc.checked || len(rs) != 1 || rs[0].Err != pe {
				t.Fatalf("Check: %v\nwant %s: %s", err, tc.reason, tc.checked)
			}
			if got := apis(rs[0]); got != tc.calls {
				t.Fatalf("calls %q, want %q", got, tc.calls)
			}
			c := s.Counters()
			if c.Total(emulator.OpDescribeSnapshots) != 1 || c.Total("DescribeSnapshotAttribute") != tc.attempts || c.Total(emulator.OpListSnapshotBlocks) != 0 {
				t.Fatalf("counters %s", c)
			}
			noGets(t, s)

			// EC2 denied: not checked, nothing stops; the listing's refusal
			// says the same.
			s, cfg = startEmu(t, emulator.Options{SnapshotMeta: meta, DenyDescribeSnapshots: true}, tc.id)
			rs, err = Check(context.Background(), cfg, []string{tc.id})
			if err != nil || rs[0].Checked || apis(rs[0]) != report.APIDescribeSnapshots+"/denied" {
				t.Fatalf("Check with DescribeSnapshots denied: %v, %+v", err, rs)
			}
			_, lerr := ebsapi.NewFromConfig(cfg).ListSnapshotBlocks(context.Background(), &ebsapi.ListSnapshotBlocksInput{SnapshotId: aws.String(tc.id)})
			want := tc.refusal
			if want == "" {
				want = tc.checked
			}
			got := Explain(lerr, rs[0])
			if !errors.As(got, &pe) || pe.Reason != tc.reason || got.Error() != want || !errors.Is(got, lerr) {
				t.Fatalf("Explain(%v) = %v\nwant %s", lerr, got, want)
			}
			noGets(t, s)
		})
	}
}
