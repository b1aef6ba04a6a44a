package iampolicy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Flow is one step of ebsimager that a policy can grant.
type Flow uint8

// The steps. Their calls, from the code that makes them:
//
//   - Acquire: the EBS direct APIs' ListSnapshotBlocks, GetSnapshotBlock
//     and ListChangedBlocks (incremental --base, diff); EC2
//     DescribeSnapshots (the record and the pre-flight) and
//     DescribeSnapshotAttribute (the pre-flight's public check); the
//     snapshot's KMS key, through EBS, when it is encrypted. The same
//     calls serve block, budget, diff, verify --against-snapshot, and
//     inspect, ls, cat, timeline, triage and mount of a live snapshot.
//     STS GetCallerIdentity needs no permission: IAM never denies it.
//   - Snapshot: EC2 DescribeInstances, DescribeVolumes, CreateSnapshots
//     (an instance's volumes at once), CreateSnapshot (a volume), tags on
//     the new snapshots in the same request, then CreateTags of each
//     snapshot's device and volume (CreateSnapshots tags a set alike),
//     DescribeSnapshots (waiting for completed) and LockSnapshot, whose
//     answer is the lock (no DescribeLockedSnapshots).
//   - Share: EC2 ModifySnapshotAttribute (createVolumePermission) and
//     DescribeSnapshotAttribute.
//   - Copy: EC2 CopySnapshot with tags on the copy, DescribeSnapshots
//     and LockSnapshot for the copy, and the KMS keys through EBS: the
//     copy's key and the source snapshot's key.
//   - S3Write: evidence written to s3://bucket/prefix/ (internal/s3store,
//     by SDK call): PutObject, CreateMultipartUpload, UploadPart and
//     CompleteMultipartUpload are s3:PutObject; AbortMultipartUpload is
//     s3:AbortMultipartUpload; HeadObject and GetObject (a rerun reads
//     what is stored) are s3:GetObject; ListObjectsV2 is s3:ListBucket;
//     with a lock, GetObjectLockConfiguration is
//     s3:GetBucketObjectLockConfiguration, a PUT carrying a retention or
//     a legal hold (and PutObjectRetention, PutObjectLegalHold after a
//     multipart upload) is also s3:PutObjectRetention or
//     s3:PutObjectLegalHold, and HeadObject shows the lock only to a
//     caller with s3:GetObjectRetention and s3:GetObjectLegalHold.
//   - S3Read: evidence read from s3://bucket/prefix/ (verify, export,
//     inspect, ls, cat, triage, mount, diff, case summarize):
//     ListObjectsV2, HeadObject and GetObject, and the PutObject of
//     verify's run record (runs/…-verify.json), once.
//
// Every PutObject and CompleteMultipartUpload carries If-None-Match: *,
// and the policy requires it (s3:if-none-match): no step can overwrite
// an object, whatever its code does.
const (
	Acquire Flow = 1 << iota
	Snapshot
	Share
	Copy
	S3Write
	S3Read
)

// AllFlows is every step.
const AllFlows = Acquire | Snapshot | Share | Copy | S3Write | S3Read

// s3Flows are the steps on S3 evidence.
const s3Flows = S3Write | S3Read

var flowNames = []struct {
	f    Flow
	name string
}{{Snapshot, "snapshot"}, {Share, "share"}, {Copy, "copy"}, {Acquire, "acquire"}, {S3Write, "s3-write"}, {S3Read, "s3-read"}}

// String names the steps of f, as the command's flags do.
func (f Flow) String() string {
	var names []string
	for _, n := range flowNames {
		if f&n.f != 0 {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "+")
}

// Options choose the steps and narrow the ARNs. An empty Region or
// Account is IAM's wildcard, "*", which IAM accepts in an ARN.
type Options struct {
	Flows Flow
	// Region is where the snapshots are made and read ("" = any).
	Region string
	// CopyRegion is where Copy makes the copy ("" = Region).
	CopyRegion string
	// Account owns the instances and volumes that Snapshot reads ("" =
	// any). Snapshot ARNs name no account, and the keys of shared
	// snapshots belong to another one, so it scopes nothing else.
	Account string
	// KMSKey is the ARN of the key Copy encrypts the copy under, which is
	// then the key Acquire decrypts with. "" = any key, used only through
	// EBS in the Region (kms:ViaService).
	KMSKey string
	// ShareWith are the accounts Share may add to a snapshot's
	// createVolumePermission ("" = any account, never the public).
	ShareWith []string
	// S3Bucket and S3Prefix are where S3Write writes evidence and S3Read
	// reads it: the objects under the prefix ("" = every bucket, or the
	// whole bucket). The prefix is empty or ends in "/".
	S3Bucket, S3Prefix string
	// ObjectLock is the retention mode S3Write writes with, GOVERNANCE or
	// COMPLIANCE ("" = none), and LegalHold whether it places legal
	// holds: acquire's --object-lock and --legal-hold.
	ObjectLock string
	LegalHold  bool
}

// Policy is an IAM policy document. Statements come sorted by Sid, and
// each one's actions and resources sorted, so the same options always
// give the same bytes.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
	// Notes say what the options left wide, for the user (not IAM).
	Notes []string `json:"-"`
}

// PolicyVersion is the current IAM policy language version.
const PolicyVersion = "2012-10-17"

// Statement is one Allow statement.
type Statement struct {
	Sid    string `json:"Sid"`
	Effect string `json:"Effect"`
	// Principal is "*" in a bucket policy's statements, absent from an
	// identity policy's.
	Principal Values    `json:"Principal,omitempty"`
	Action    Values    `json:"Action"`
	Resource  Values    `json:"Resource"`
	Condition Condition `json:"Condition,omitempty"`
	// Purpose says what the statement is for, for --explain.
	Purpose string `json:"-"`
}

// Condition maps an operator ("StringEquals") to condition keys and the
// values they may take.
type Condition map[string]map[string]Values

// Values are an element's strings. IAM takes one value as a string or as
// a list of one: it is written as a string, which reads better.
type Values []string

// MarshalJSON writes one value as a string, others as a list.
func (v Values) MarshalJSON() ([]byte, error) {
	if len(v) == 1 {
		return json.Marshal(v[0])
	}
	return json.Marshal([]string(v))
}

// UnmarshalJSON reads a string or a list of strings.
func (v *Values) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*v = Values{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(v))
}

// JSON renders p as IAM takes it: two-space indent, a final newline.
func (p *Policy) JSON() []byte {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		panic(err) // strings, slices and maps of them always marshal
	}
	return append(b, '\n')
}

// Build returns the policy for the steps o chooses.
func Build(o Options) (*Policy, error) {
	sc, err := newScope(o)
	if err != nil {
		return nil, err
	}
	p := sc.build(o.Flows)
	p.Notes = sc.notes()
	return p, nil
}

// build returns the statements of the catalogue that flows need.
func (sc *scope) build(flows Flow) *Policy {
	p := &Policy{Version: PolicyVersion, Statement: []Statement{}}
	for _, e := range catalogue {
		var actions []string
		for f, a := range e.actions {
			if flows&f != 0 {
				actions = append(actions, a...)
			}
		}
		if e.keep != nil {
			actions = slices.DeleteFunc(actions, func(a string) bool { return !e.keep(sc, a) })
		}
		if len(actions) == 0 {
			continue
		}
		slices.Sort(actions)
		res := e.resources(sc)
		slices.Sort(res)
		st := Statement{Sid: e.sid, Effect: "Allow", Action: slices.Compact(actions),
			Resource: slices.Compact(res), Purpose: e.purpose}
		if e.condition != nil {
			st.Condition = e.condition(sc)
		}
		p.Statement = append(p.Statement, st)
	}
	slices.SortFunc(p.Statement, func(a, b Statement) int { return strings.Compare(a.Sid, b.Sid) })
	return p
}

// entry is one statement of the catalogue: the actions each step needs
// in it, and how its resources and condition follow from the options.
type entry struct {
	sid, purpose string
	actions      map[Flow][]string
	resources    func(*scope) []string
	condition    func(*scope) Condition
	// keep, when set, keeps only the actions the options need.
	keep func(*scope, string) bool
}

// DeviceTagKeys are the tags the preservation step adds to each snapshot
// of an instance's crash-consistent set after CreateSnapshots, which tags
// the whole set alike (internal/preserve: TagPrefix + "device" and
// "volume"; a cmd test keeps the two in step).
var DeviceTagKeys = []string{"ebsimager:device", "ebsimager:volume"}

// Actions, by service. No wildcard: each names one call.
const (
	ebsGetSnapshotBlock   = "ebs:GetSnapshotBlock"
	ebsListChangedBlocks  = "ebs:ListChangedBlocks"
	ebsListSnapshotBlocks = "ebs:ListSnapshotBlocks"

	ec2CopySnapshot              = "ec2:CopySnapshot"
	ec2CreateSnapshot            = "ec2:CreateSnapshot"
	ec2CreateSnapshots           = "ec2:CreateSnapshots"
	ec2CreateTags                = "ec2:CreateTags"
	ec2DescribeInstances         = "ec2:DescribeInstances"
	ec2DescribeSnapshotAttribute = "ec2:DescribeSnapshotAttribute"
	ec2DescribeSnapshots         = "ec2:DescribeSnapshots"
	ec2DescribeVolumes           = "ec2:DescribeVolumes"
	ec2LockSnapshot              = "ec2:LockSnapshot"
	ec2ModifySnapshotAttribute   = "ec2:ModifySnapshotAttribute"

	kmsCreateGrant                     = "kms:CreateGrant"
	kmsDecrypt                         = "kms:Decrypt"
	kmsDescribeKey                     = "kms:DescribeKey"
	kmsGenerateDataKeyWithoutPlaintext = "kms:GenerateDataKeyWithoutPlaintext"
	kmsReEncryptFrom                   = "kms:ReEncryptFrom"
	kmsReEncryptTo                     = "kms:ReEncryptTo"

	s3AbortMultipartUpload             = "s3:AbortMultipartUpload"
	s3GetBucketObjectLockConfiguration = "s3:GetBucketObjectLockConfiguration"
	s3GetObject                        = "s3:GetObject"
	s3GetObjectLegalHold               = "s3:GetObjectLegalHold"
	s3GetObjectRetention               = "s3:GetObjectRetention"
	s3ListBucket                       = "s3:ListBucket"
	s3PutObject                        = "s3:PutObject"
	s3PutObjectLegalHold               = "s3:PutObjectLegalHold"
	s3PutObjectRetention               = "s3:PutObjectRetention"
)

// catalogue is every statement any step needs. A statement's resources
// and condition do not depend on the steps chosen, only its actions do,
// so the policy of several steps grants exactly what their policies
// grant together.
var catalogue = []entry{
	{
		sid:     "EC2Describe",
		purpose: "find an instance's volumes and devices, wait for snapshots to complete, read a snapshot's record (these actions support no resource-level permission)",
		actions: map[Flow][]string{
			Acquire:  {ec2DescribeSnapshots},
			Snapshot: {ec2DescribeInstances, ec2DescribeVolumes, ec2DescribeSnapshots},
			Copy:     {ec2DescribeSnapshots},
		},
		resources: func(*scope) []string { return []string{"*"} },
		condition: func(s *scope) Condition { return s.requestedRegion() },
	},
	{
		sid:       "EBSReadSnapshotBlocks",
		purpose:   "list and read a snapshot's blocks, and the blocks changed since a base snapshot, through the EBS direct APIs",
		actions:   map[Flow][]string{Acquire: {ebsGetSnapshotBlock, ebsListChangedBlocks, ebsListSnapshotBlocks}},
		resources: func(s *scope) []string { return s.snapshots(s.regions()...) },
	},
	{
		sid:       "EC2ReadSnapshotPermissions",
		purpose:   "read a snapshot's createVolumePermission: the pre-flight refuses a public snapshot, and sharing records who may use it",
		actions:   map[Flow][]string{Acquire: {ec2DescribeSnapshotAttribute}, Share: {ec2DescribeSnapshotAttribute}},
		resources: func(s *scope) []string { return s.snapshots(s.regions()...) },
	},
	{
		sid:     "EC2CreateSnapshotsOfInstance",
		purpose: "snapshot every attached EBS volume of an instance as one crash-consistent set (CreateSnapshots authorizes the instance, its volumes and the new snapshots)",
		actions: map[Flow][]string{Snapshot: {ec2CreateSnapshots}},
		resources: func(s *scope) []string {
			return append(s.snapshots(s.region), s.ec2Owned(s.region, "instance"), s.ec2Owned(s.region, "volume"))
		},
	},
	{
		sid:       "EC2CreateSnapshotOfVolume",
		purpose:   "snapshot one volume (CreateSnapshot authorizes the volume and the new snapshot)",
		actions:   map[Flow][]string{Snapshot: {ec2CreateSnapshot}},
		resources: func(s *scope) []string { return append(s.snapshots(s.region), s.ec2Owned(s.region, "volume")) },
	},
	{
		sid:       "EC2TagNewSnapshots",
		purpose:   "tag the new snapshots with the case fields, in the request that creates them only: no existing resource can be retagged",
		actions:   map[Flow][]string{Snapshot: {ec2CreateTags}},
		resources: func(s *scope) []string { return s.snapshots(s.region) },
		condition: func(*scope) Condition {
			return Condition{"StringEquals": {"ec2:CreateAction": {"CreateSnapshot", "CreateSnapshots"}}}
		},
	},
	{
		sid:       "EC2TagSnapshotDevices",
		purpose:   "tag each snapshot of an instance's set with its own device and volume, which CreateSnapshots cannot: these two tag keys only",
		actions:   map[Flow][]string{Snapshot: {ec2CreateTags}},
		resources: func(s *scope) []string { return s.snapshots(s.region) },
		condition: func(*scope) Condition {
			return Condition{"ForAllValues:StringEquals": {"aws:TagKeys": DeviceTagKeys},
				"Null": {"aws:TagKeys": {"false"}}}
		},
	},
	{
		sid:       "EC2LockSnapshots",
		purpose:   "lock the evidence snapshots (EBS Snapshot Lock) so that nobody can delete them",
		actions:   map[Flow][]string{Snapshot: {ec2LockSnapshot}, Copy: {ec2LockSnapshot}},
		resources: func(s *scope) []string { return s.snapshots(s.regions()...) },
	},
	{
		sid:       "EC2ShareSnapshots",
		purpose:   "add accounts to a snapshot's createVolumePermission; the condition forbids making it public",
		actions:   map[Flow][]string{Share: {ec2ModifySnapshotAttribute}},
		resources: func(s *scope) []string { return s.snapshots(s.regions()...) },
		condition: func(s *scope) Condition { return s.shareCondition() },
	},
	{
		sid:       "EC2CopySnapshots",
		purpose:   "copy a snapshot, re-encrypting it under the copy's key (CopySnapshot authorizes the new snapshot only)",
		actions:   map[Flow][]string{Copy: {ec2CopySnapshot}},
		resources: func(s *scope) []string { return s.snapshots(s.copyRegion) },
	},
	{
		sid:       "EC2TagCopies",
		purpose:   "tag the copies, in the CopySnapshot request only",
		actions:   map[Flow][]string{Copy: {ec2CreateTags}},
		resources: func(s *scope) []string { return s.snapshots(s.copyRegion) },
		condition: func(*scope) Condition {
			return Condition{"StringEquals": {"ec2:CreateAction": {"CopySnapshot"}}}
		},
	},
	{
		sid:       "KMSReadSnapshotKey",
		purpose:   "decrypt an encrypted snapshot's blocks: EBS uses the snapshot's key on the caller's behalf, and only EBS may (kms:ViaService)",
		actions:   map[Flow][]string{Acquire: {kmsDecrypt, kmsDescribeKey}},
		resources: func(s *scope) []string { return s.keys(s.regions()) },
		condition: func(s *scope) Condition { return s.viaEBS(s.keyRegions(s.regions())) },
	},
	{
		sid:       "KMSReadSnapshotKeyGrants",
		purpose:   "let EBS hold a grant on the snapshot's key while it reads, for AWS resources only (kms:GrantIsForAWSResource)",
		actions:   map[Flow][]string{Acquire: {kmsCreateGrant}},
		resources: func(s *scope) []string { return s.keys(s.regions()) },
		condition: func(s *scope) Condition { return s.grantForEBS(s.keyRegions(s.regions())) },
	},
	{
		sid:       "KMSCopyDestinationKey",
		purpose:   "encrypt the copy under its key (a customer managed key the forensic account can use), through EBS only",
		actions:   map[Flow][]string{Copy: {kmsDecrypt, kmsDescribeKey, kmsGenerateDataKeyWithoutPlaintext, kmsReEncryptFrom, kmsReEncryptTo}},
		resources: func(s *scope) []string { return s.keys([]string{s.copyRegion}) },
		condition: func(s *scope) Condition { return s.viaEBS(s.keyRegions([]string{s.copyRegion})) },
	},
	{
		sid:       "KMSCopyDestinationKeyGrants",
		purpose:   "let EBS hold a grant on the copy's key, for AWS resources only",
		actions:   map[Flow][]string{Copy: {kmsCreateGrant}},
		resources: func(s *scope) []string { return s.keys([]string{s.copyRegion}) },
		condition: func(s *scope) Condition { return s.grantForEBS(s.keyRegions([]string{s.copyRegion})) },
	},
	{
		sid:       "KMSCopySourceKey",
		purpose:   "decrypt the source snapshot for the copy, under whatever key it has (its owner's key policy must allow it too), through EBS only",
		actions:   map[Flow][]string{Copy: {kmsDecrypt, kmsDescribeKey, kmsReEncryptFrom}},
		resources: func(s *scope) []string { return s.anyKey([]string{s.region}) },
		condition: func(s *scope) Condition { return s.viaEBS([]string{s.region}) },
	},
	{
		sid:       "KMSCopySourceKeyGrants",
		purpose:   "let EBS hold a grant on the source snapshot's key, for AWS resources only",
		actions:   map[Flow][]string{Copy: {kmsCreateGrant}},
		resources: func(s *scope) []string { return s.anyKey([]string{s.region}) },
		condition: func(s *scope) Condition { return s.grantForEBS([]string{s.region}) },
	},
	{
		sid:       "S3ListEvidence",
		purpose:   "list the evidence under the prefix (what a rerun finds stored, the blocks verify checks, a case's worker summaries), and no other key of the bucket (s3:prefix); it also makes S3 answer a GET or HEAD of a key not yet written under the prefix with 404, not 403 (S3 checks it with the key as s3:prefix)",
		actions:   map[Flow][]string{S3Write: {s3ListBucket}, S3Read: {s3ListBucket}},
		resources: func(s *scope) []string { return []string{s.bucketARN()} },
		condition: func(s *scope) Condition { return s.prefixCondition() },
	},
	{
		sid:       "S3ReadEvidence",
		purpose:   "read the evidence objects and their checksums and metadata (GetObject, and HeadObject, which is s3:GetObject)",
		actions:   map[Flow][]string{S3Write: {s3GetObject}, S3Read: {s3GetObject}},
		resources: func(s *scope) []string { return []string{s.objectsARN()} },
	},
	{
		sid:       "S3WriteEvidenceOnce",
		purpose:   "create each evidence object once under the prefix: PutObject and CompleteMultipartUpload only with If-None-Match: * (s3:if-none-match), so that no object is ever overwritten; nothing is ever deleted (no s3:DeleteObject)",
		actions:   map[Flow][]string{S3Write: {s3PutObject}},
		resources: func(s *scope) []string { return []string{s.objectsARN()} },
		condition: func(*scope) Condition { return writeOnce() },
	},
	{
		sid:       "S3WriteEvidenceParts",
		purpose:   "start a multipart upload and send its parts (they create no object: s3:ObjectCreationOperation is false; completing it needs If-None-Match)",
		actions:   map[Flow][]string{S3Write: {s3PutObject}},
		resources: func(s *scope) []string { return []string{s.objectsARN()} },
		condition: func(*scope) Condition {
			return Condition{"Bool": {"s3:ObjectCreationOperation": {"false"}}}
		},
	},
	{
		sid:       "S3AbortUploads",
		purpose:   "abort a multipart upload that failed, which leaves nothing under its key",
		actions:   map[Flow][]string{S3Write: {s3AbortMultipartUpload}},
		resources: func(s *scope) []string { return []string{s.objectsARN()} },
	},
	{
		sid:       "S3RecordRuns",
		purpose:   "leave the record of a run beside the evidence it read (verify's runs/<time>-<tag>-verify.json), once (If-None-Match): the evidence's own objects are never written",
		actions:   map[Flow][]string{S3Read: {s3PutObject}},
		resources: func(s *scope) []string { return s.runsARNs() },
		condition: func(*scope) Condition { return writeOnce() },
	},
	{
		sid:       "S3CheckObjectLock",
		purpose:   "refuse a bucket without Object Lock before anything is written to it",
		actions:   map[Flow][]string{S3Write: {s3GetBucketObjectLockConfiguration}},
		resources: func(s *scope) []string { return []string{s.bucketARN()} },
		keep:      func(s *scope, _ string) bool { return s.o.ObjectLock != "" || s.o.LegalHold },
	},
	{
		sid:       "S3RetainEvidence",
		purpose:   "write each object with the retention of --object-lock, in that mode only (on the PUT itself, or set after a multipart upload a store did not lock); shortening a governance retention needs s3:BypassGovernanceRetention, never granted",
		actions:   map[Flow][]string{S3Write: {s3PutObjectRetention}},
		resources: func(s *scope) []string { return []string{s.objectsARN()} },
		condition: func(s *scope) Condition {
			return Condition{"StringEquals": {"s3:object-lock-mode": {s.o.ObjectLock}}}
		},
		keep: func(s *scope, _ string) bool { return s.o.ObjectLock != "" },
	},
	{
		sid:       "S3HoldEvidence",
		purpose:   "place a legal hold on each object, never lift one (s3:object-lock-legal-hold ON only)",
		actions:   map[Flow][]string{S3Write: {s3PutObjectLegalHold}},
		resources: func(s *scope) []string { return []string{s.objectsARN()} },
		condition: func(*scope) Condition {
			return Condition{"StringEquals": {"s3:object-lock-legal-hold": {"ON"}}}
		},
		keep: func(s *scope, _ string) bool { return s.o.LegalHold },
	},
	{
		sid:       "S3ReadEvidenceLock",
		purpose:   "see the retention and legal hold of an object written in parts, to set them if the store did not (HeadObject shows them only to a caller with these)",
		actions:   map[Flow][]string{S3Write: {s3GetObjectLegalHold, s3GetObjectRetention}},
		resources: func(s *scope) []string { return []string{s.objectsARN()} },
		keep: func(s *scope, a string) bool {
			return a == s3GetObjectRetention && s.o.ObjectLock != "" || a == s3GetObjectLegalHold && s.o.LegalHold
		},
	},
}

// Explain renders one line per statement: its Sid and what it is for.
func (p *Policy) Explain() string {
	var b strings.Builder
	for _, st := range p.Statement {
		fmt.Fprintf(&b, "%s: %s.\n", st.Sid, st.Purpose)
	}
	return b.String()
}
