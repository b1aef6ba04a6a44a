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

func startEmu(t *testing.T, o emulator.Options, ids ...string) (*emulator.Server, aws.Config) {
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
func noGets(t *testing.T, s *emulator.Server) {
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
