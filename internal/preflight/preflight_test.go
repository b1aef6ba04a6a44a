package preflight

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/report"
)

const keyARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// fakeEC2 answers DescribeSnapshots from snaps and
// DescribeSnapshotAttribute from public, counting the calls.
type fakeEC2 struct {
	mu       sync.Mutex
	snaps    map[string]ec2types.Snapshot
	public   map[string]bool
	deny     bool   // DescribeSnapshots is denied
	leaveOut string // a snapshot the answer leaves out
	describe [][]string
	attrs    []string
}

func (f *fakeEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describe = append(f.describe, in.SnapshotIds)
	if f.deny {
		return nil, &smithy.GenericAPIError{Code: "UnauthorizedOperation", Message: "You are not authorized to perform this operation."}
	}
	out := &ec2.DescribeSnapshotsOutput{}
	for _, id := range in.SnapshotIds {
		s, ok := f.snaps[id]
		if id == f.leaveOut {
			continue
		}
		if !ok {
			return nil, &smithy.GenericAPIError{Code: "InvalidSnapshot.NotFound", Message: fmt.Sprintf("The snapshot '%s' does not exist.", id)}
		}
		out.Snapshots = append(out.Snapshots, s)
	}
	// A hostile answer may list snapshots nobody asked about.
	out.Snapshots = append(out.Snapshots, ec2types.Snapshot{SnapshotId: aws.String("snap-0ff0000000000000f"), State: ec2types.SnapshotStatePending})
	return out, nil
}

func (f *fakeEC2) DescribeSnapshotAttribute(_ context.Context, in *ec2.DescribeSnapshotAttributeInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := aws.ToString(in.SnapshotId)
	f.attrs = append(f.attrs, id)
	if in.Attribute != ec2types.SnapshotAttributeNameCreateVolumePermission {
		return nil, fmt.Errorf("attribute %q", in.Attribute)
	}
	out := &ec2.DescribeSnapshotAttributeOutput{SnapshotId: in.SnapshotId,
		CreateVolumePermissions: []ec2types.CreateVolumePermission{{UserId: aws.String("444455556666")}}}
	if f.public[id] {
		out.CreateVolumePermissions = append(out.CreateVolumePermissions, ec2types.CreateVolumePermission{Group: ec2types.PermissionGroupAll})
	}
	return out, nil
}

// fakeEBS answers ListSnapshotBlocks with one block, or with deny's
// error for a snapshot; GetSnapshotBlock must never be called.
type fakeEBS struct {
	mu    sync.Mutex
	deny  map[string]error
	lists []string
	gets  int
}

func (f *fakeEBS) ListSnapshotBlocks(_ context.Context, in *ebsapi.ListSnapshotBlocksInput, _ ...func(*ebsapi.Options)) (*ebsapi.ListSnapshotBlocksOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := aws.ToString(in.SnapshotId)
	f.lists = append(f.lists, fmt.Sprintf("%s/%d", id, aws.ToInt32(in.MaxResults)))
	if err := f.deny[id]; err != nil {
		return nil, err
	}
	return &ebsapi.ListSnapshotBlocksOutput{BlockSize: aws.Int32(block.Size), VolumeSize: aws.Int64(1),
		Blocks: []ebstypes.Block{{BlockIndex: aws.Int32(0), BlockToken: aws.String("dG9rZW4=")}}}, nil
}

func (f *fakeEBS) ListChangedBlocks(context.Context, *ebsapi.ListChangedBlocksInput, ...func(*ebsapi.Options)) (*ebsapi.ListChangedBlocksOutput, error) {
	return nil, errors.New("not called")
}

func (f *fakeEBS) GetSnapshotBlock(context.Context, *ebsapi.GetSnapshotBlockInput, ...func(*ebsapi.Options)) (*ebsapi.GetSnapshotBlockOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	return nil, errors.New("a pre-flight never fetches a block")
}

const (
	snapOK       = "snap-0000000000000000a"
	snapPending  = "snap-0000000000000000b"
	snapError    = "snap-0000000000000000c"
	snapArchive  = "snap-0000000000000000d"
	snapOutpost  = "snap-0000000000000000e"
	snapPublic   = "snap-00000000000000010"
	snapKMS      = "snap-00000000000000011"
	snapKMSOK    = "snap-00000000000000012"
	outpostARN   = "arn:aws:outposts:us-east-1:111122223333:outpost/op-0123456789abcdef0"
	denyMessage  = "You are not authorized to access snapshot."
	missingSnap  = "snap-00000000000000099"
	checkRegion  = "eu-west-1"
	kmsDeniedMsg = "snapshot " + snapKMS + " is encrypted, and the caller may not use KMS key " + keyARN + " (kms:Decrypt denied: DEPENDENCY_ACCESS_DENIED)"
)

func snapshot(id string, state ec2types.SnapshotState, tier ec2types.StorageTier) ec2types.Snapshot {
	return ec2types.Snapshot{SnapshotId: aws.String(id), State: state, StorageTier: tier, Progress: aws.String("100%"),
		VolumeId: aws.String("vol-0123456789abcdef0"), VolumeSize: aws.Int32(8), Encrypted: aws.Bool(false)}
}

func fakes() (*fakeEC2, *fakeEBS) {
	e := &fakeEC2{snaps: map[string]ec2types.Snapshot{}, public: map[string]bool{snapPublic: true}}
	for _, id := range []string{snapOK, snapPublic} {
		e.snaps[id] = snapshot(id, ec2types.SnapshotStateCompleted, ec2types.StorageTierStandard)
	}
	p := snapshot(snapPending, ec2types.SnapshotStatePending, ec2types.StorageTierStandard)
	p.Progress = aws.String("42%")
	e.snaps[snapPending] = p
	e.snaps[snapError] = snapshot(snapError, ec2types.SnapshotStateError, ec2types.StorageTierStandard)
	e.snaps[snapArchive] = snapshot(snapArchive, ec2types.SnapshotStateCompleted, ec2types.StorageTierArchive)
	o := snapshot(snapOutpost, ec2types.SnapshotStateCompleted, ec2types.StorageTierStandard)
	o.OutpostArn = aws.String(outpostARN)
	e.snaps[snapOutpost] = o
	for _, id := range []string{snapKMS, snapKMSOK} {
		k := snapshot(id, ec2types.SnapshotStateCompleted, ec2types.StorageTierStandard)
		k.Encrypted, k.KmsKeyId = aws.Bool(true), aws.String(keyARN)
		e.snaps[id] = k
	}
	b := &fakeEBS{deny: map[string]error{snapKMS: &ebstypes.AccessDeniedException{Message: aws.String(denyMessage),
		Reason: ebstypes.AccessDeniedExceptionReasonDependencyAccessDenied}}}
	return e, b
}

func testChecker(e *fakeEC2, b *fakeEBS) checker {
	return checker{ec2: e, ebs: b, region: checkRegion, probe: true}
}

// apis lists the calls of r as "api/outcome".
func apis(r Result) string {
	var s []string
	for _, c := range r.Calls {
		s = append(s, c.API+"/"+c.Outcome)
	}
	return strings.Join(s, " ")
}

func TestCheckReasons(t *testing.T) {
	const (
		describeOK = report.APIDescribeSnapshots + "/ok"
		attrOK     = report.APIDescribeSnapshotAttribute + "/ok"
	)
	for _, tc := range []struct {
		id     string
		reason Reason
		msg    string
		hint   string
		calls  string
	}{
		{snapOK, "", "", "", describeOK + " " + attrOK},
		{snapKMSOK, "", "", "", describeOK + " " + attrOK + " " + report.APIListSnapshotBlocks + "/ok"},
		{snapPending, Pending,
			"snapshot " + snapPending + " is still pending (42% done): the EBS direct APIs read only completed snapshots",
			"wait until it completes (aws ec2 wait snapshot-completed --snapshot-ids " + snapPending + "), then run the same command again",
			describeOK},
		{snapError, NotDone,
			"snapshot " + snapError + " is in state error, not completed: the EBS direct APIs read only completed snapshots",
			"a snapshot that failed never completes: take a new snapshot of the volume (ebsimager snapshot vol-…) and acquire that",
			describeOK},
		{snapArchive, Archived,
			"snapshot " + snapArchive + " is in the archive storage tier: the EBS direct APIs cannot read an archived snapshot",
			"restore it first: aws ec2 restore-snapshot-tier --snapshot-id " + snapArchive + " --temporary-restore-days 7 (or --permanent-restore); " +
				"a restore takes up to 72 hours, and aws ec2 describe-snapshot-tier-status shows it; then run the same command again",
			describeOK},
		{snapOutpost, Outpost,
			"snapshot " + snapOutpost + " is a local snapshot on AWS Outposts (" + outpostARN + "): the EBS direct APIs do not read Outposts local snapshots",
			"copy it to the Region first (aws ec2 copy-snapshot --source-region eu-west-1 --source-snapshot-id " + snapOutpost + ", with no --destination-outpost-arn), then acquire the copy",
			describeOK},
		{snapPublic, Public,
			"snapshot " + snapPublic + " is public: the EBS direct APIs do not read public snapshots",
			"copy it into your account first (aws ec2 copy-snapshot --source-region eu-west-1 --source-snapshot-id " + snapPublic + "), then acquire the copy",
			describeOK + " " + attrOK},
		{snapKMS, KMSDenied, kmsDeniedMsg,
			"grant the caller kms:Decrypt (and kms:DescribeKey) on " + keyARN + " in the key policy or a grant, " +
				"or have its owner copy the snapshot re-encrypted under a key the caller may use (ebsimager snapshot --copy --kms-key KEY)",
			describeOK + " " + attrOK + " " + report.APIListSnapshotBlocks + "/denied"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			e, b := fakes()
			rs, err := testChecker(e, b).check(context.Background(), []string{tc.id})
			if len(rs) != 1 || rs[0].Snapshot != tc.id || !rs[0].Checked || rs[0].Region != checkRegion {
				t.Fatalf("results %+v", rs)
			}
			r := rs[0]
			if got := apis(r); got != tc.calls {
				t.Errorf("calls %q, want %q", got, tc.calls)
			}
			if b.gets != 0 {
				t.Errorf("%d Get calls", b.gets)
			}
			if tc.reason == "" {
				if err != nil || r.Err != nil {
					t.Fatalf("readable snapshot: %v, %v", err, r.Err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe != r.Err || pe.Reason != tc.reason || pe.Snapshot != tc.id {
				t.Fatalf("error %v (%+v), want reason %s", err, r.Err, tc.reason)
			}
			if err.Error() != tc.msg {
				t.Errorf("message\n%s\nwant\n%s", err, tc.msg)
			}
			if pe.Hint() != tc.hint {
				t.Errorf("hint\n%s\nwant\n%s", pe.Hint(), tc.hint)
			}
		})
	}
}

func TestCheckKMSProbe(t *testing.T) {
	e, b := fakes()
	rs, err := testChecker(e, b).check(context.Background(), []string{snapKMS, snapOK, snapKMSOK})
	var pe *Error
	if !errors.As(err, &pe) || pe.Reason != KMSDenied || pe.KMSKey != keyARN || rs[0].Err != pe || rs[1].Err != nil || rs[2].Err != nil {
		t.Fatalf("check: %v %+v", err, rs)
	}
	// One List page of the API's smallest size, only for the encrypted
	// snapshots; none for the others; and never a Get.
	if got := strings.Join(b.lists, " "); got != snapKMS+"/100 "+snapKMSOK+"/100" || b.gets != 0 {
		t.Fatalf("lists %q, gets %d", got, b.gets)
	}
	var cause *ebstypes.AccessDeniedException
	if !errors.As(err, &cause) || aws.ToString(cause.Message) != denyMessage {
		t.Fatalf("the KMS denial does not wrap the refusal: %v", err)
	}
	// Without the probe (Diagnose), the encrypted snapshot is not listed.
	b.lists = nil
	c := testChecker(e, b)
	c.probe = false
	if _, err := c.check(context.Background(), []string{snapKMS}); err != nil || len(b.lists) != 0 {
		t.Fatalf("no probe: %v, lists %q", err, b.lists)
	}
}

func TestCheckBatches(t *testing.T) {
	e, b := fakes()
	var ids []string
	for i := range 450 {
		id := fmt.Sprintf("snap-%017x", 0x1000+i)
		e.snaps[id] = snapshot(id, ec2types.SnapshotStateCompleted, ec2types.StorageTierStandard)
		ids = append(ids, id)
	}
	ids = append(ids, ids[0], snapPending) // a repeat, and one that cannot be read
	rs, err := testChecker(e, b).check(context.Background(), ids)
	var sizes []int
	for _, d := range e.describe {
		sizes = append(sizes, len(d))
	}
	if fmt.Sprint(sizes) != "[200 200 51]" {
		t.Fatalf("DescribeSnapshots batches %v, want [200 200 51]", sizes)
	}
	if len(e.attrs) != 450 || len(rs) != 452 || rs[450].Snapshot != ids[0] || !rs[450].Checked || rs[451].Err == nil || rs[451].Err.Reason != Pending {
		t.Fatalf("%d attribute calls, %d results", len(e.attrs), len(rs))
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Snapshot != snapPending {
		t.Fatalf("err %v", err)
	}
	for _, r := range rs[:450] {
		if r.Err != nil || !r.Checked || r.Info == nil || r.Info.SnapshotID != r.Snapshot {
			t.Fatalf("result %+v", r)
		}
	}
}

func TestCheckNotFound(t *testing.T) {
	e, b := fakes()
	rs, err := testChecker(e, b).check(context.Background(), []string{snapArchive, missingSnap, snapOK})
	if len(e.describe) != 4 {
		t.Fatalf("%d DescribeSnapshots calls, want 4 (the list, then each alone)", len(e.describe))
	}
	if !rs[0].Checked || rs[1].Checked || !rs[2].Checked || rs[0].Err == nil || rs[0].Err.Reason != Archived || rs[1].Err != nil || rs[2].Err != nil {
		t.Fatalf("results %+v", rs)
	}
	if got := apis(rs[1]); got != report.APIDescribeSnapshots+"/failed "+report.APIDescribeSnapshots+"/failed" {
		t.Fatalf("calls of the missing snapshot %q", got)
	}
	if rs[1].Calls[1].Code != "InvalidSnapshot.NotFound" {
		t.Fatalf("call %+v", rs[1].Calls[1])
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Snapshot != snapArchive || strings.Contains(err.Error(), missingSnap) {
		t.Fatalf("err %v", err)
	}

	// An answer that leaves a snapshot out is recorded as failed for it.
	e.leaveOut = snapOK
	rs, err = testChecker(e, b).check(context.Background(), []string{snapOK})
	if err != nil || rs[0].Checked || apis(rs[0]) != report.APIDescribeSnapshots+"/failed" ||
		rs[0].Calls[0].Error != "the answer lists 1 snapshots, none of them "+snapOK {
		t.Fatalf("left out: %v %+v", err, rs)
	}
}

// TestCheckNotChecked: a denied DescribeSnapshots blocks nothing, and the
// refusals of the direct APIs are still explained.
func TestCheckNotChecked(t *testing.T) {
	e, b := fakes()
	e.deny = true
	rs, err := testChecker(e, b).check(context.Background(), []string{snapKMS, snapOK})
	if err != nil || len(rs) != 2 || rs[0].Checked || rs[1].Checked || rs[0].Info != nil {
		t.Fatalf("check: %v %+v", err, rs)
	}
	if got := apis(rs[0]); got != report.APIDescribeSnapshots+"/denied" || len(e.attrs) != 0 || len(b.lists) != 0 {
		t.Fatalf("calls %q, %d attribute calls, lists %q", got, len(e.attrs), b.lists)
	}
	if rs[0].Calls[0].Code != "UnauthorizedOperation" || rs[0].Calls[0].Attempts != 1 {
		t.Fatalf("call %+v", rs[0].Calls[0])
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&ebstypes.ValidationException{Message: aws.String("The snapshot '" + snapOK + "' is not completed; only completed snapshots can be read."),
			Reason: ebstypes.ValidationExceptionReasonInvalidSnapshotId},
			"snapshot " + snapOK + " is still pending: the EBS direct APIs read only completed snapshots"},
		{&ebstypes.ValidationException{Message: aws.String("The snapshot is archived.")},
			"snapshot " + snapOK + " is in the archive storage tier: the EBS direct APIs cannot read an archived snapshot"},
		{&ebstypes.ValidationException{Message: aws.String("Public snapshots are not supported.")},
			"snapshot " + snapOK + " is public: the EBS direct APIs do not read public snapshots"},
		{&ebstypes.ValidationException{Message: aws.String("Local snapshots on an Outpost are not supported.")},
			"snapshot " + snapOK + " is a local snapshot on AWS Outposts: the EBS direct APIs do not read Outposts local snapshots"},
		{&ebstypes.ValidationException{Message: aws.String("The snapshot '" + snapOK + "' is in the error state; only completed snapshots can be read.")},
			"snapshot " + snapOK + " is in state error, not completed: the EBS direct APIs read only completed snapshots"},
		{&ebstypes.AccessDeniedException{Message: aws.String(denyMessage), Reason: ebstypes.AccessDeniedExceptionReasonDependencyAccessDenied},
			"snapshot " + snapOK + " is encrypted, and the caller may not use its KMS key (kms:Decrypt denied: DEPENDENCY_ACCESS_DENIED)"},
	} {
		got := Explain(fmt.Errorf("listing blocks: %w", tc.err), rs[1])
		var pe *Error
		if !errors.As(got, &pe) || got.Error() != tc.want || !errors.Is(got, tc.err) {
			t.Errorf("Explain(%v) = %v, want %q", tc.err, got, tc.want)
		}
	}
	// What it cannot explain is returned as it is.
	for _, err := range []error{
		&ebstypes.ResourceNotFoundException{Message: aws.String("The snapshot '" + snapOK + "' does not exist."), Reason: ebstypes.ResourceNotFoundExceptionReasonSnapshotNotFound},
		&ebstypes.AccessDeniedException{Message: aws.String(denyMessage), Reason: ebstypes.AccessDeniedExceptionReasonUnauthorizedAccount},
		&ebstypes.ValidationException{Message: aws.String("public archive"), Reason: ebstypes.ValidationExceptionReasonInvalidBlockToken},
		&ebstypes.InternalServerException{Message: aws.String("archive")},
		errors.New("connection reset"),
	} {
		if got := Explain(err, rs[1]); got != err {
			t.Errorf("Explain(%v) = %v, want it unchanged", err, got)
		}
	}
	if Explain(nil, rs[1]) != nil {
		t.Error("Explain(nil) is not nil")
	}
}

// TestExplainChecked: a refusal during the listing of a snapshot the
// pre-flight saw is explained by what EC2 said, whatever its words.
func TestExplainChecked(t *testing.T) {
	r := Result{Snapshot: snapArchive, Region: checkRegion, Checked: true,
		Info: &report.SnapshotInfo{SnapshotID: snapArchive, State: "completed", StorageTier: "archive"}}
	refusal := &ebstypes.AccessDeniedException{Message: aws.String("nope"), Reason: ebstypes.AccessDeniedExceptionReasonUnauthorizedAccount}
	got := Explain(refusal, r)
	var pe *Error
	if !errors.As(got, &pe) || pe.Reason != Archived || !errors.Is(got, refusal) {
		t.Fatalf("Explain = %v", got)
	}
	// A refusal already explained stays as it is.
	if again := Explain(got, r); again != got {
		t.Fatalf("Explain twice = %v", again)
	}
	r.Info.StorageTier = "standard"
	if got := Explain(refusal, r); got != refusal {
		t.Fatalf("a denial by IAM of a readable snapshot: %v", got)
	}
}

func TestCheckBounds(t *testing.T) {
	e, b := fakes()
	ids := make([]string, MaxSnapshots+1)
	for i := range ids {
		ids[i] = snapOK
	}
	if _, err := testChecker(e, b).check(context.Background(), ids); err == nil || err.Error() != "checking 10001 snapshots: at most 10000 at once" {
		t.Fatalf("too many: %v", err)
	}
	if _, err := testChecker(e, b).check(context.Background(), []string{snapOK, "vol-0123"}); err == nil || !strings.Contains(err.Error(), `invalid snapshot id "vol-0123"`) {
		t.Fatalf("bad id: %v", err)
	}
	if len(e.describe) != 0 {
		t.Fatalf("%d calls for refused input", len(e.describe))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := testChecker(e, b).check(ctx, []string{snapOK}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}
