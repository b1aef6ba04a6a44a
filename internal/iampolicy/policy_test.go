package iampolicy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// authorizes is, for every action a policy may hold, the resource types
// it can be scoped to, from the Service Authorization Reference (Amazon
// EC2, Amazon Elastic Block Store, AWS KMS) and the EC2 user guide's
// example policies ("Resource-level permissions specified for the
// CopySnapshot action apply to the new snapshot only"). An action with
// none supports no resource-level permission: its Resource must be "*".
// It is written apart from the catalogue, so that the two check each
// other; it is also the closed list of actions.
var authorizes = map[string][]string{
	"ebs:GetSnapshotBlock":                {"ec2:snapshot"},
	"ebs:ListChangedBlocks":               {"ec2:snapshot"},
	"ebs:ListSnapshotBlocks":              {"ec2:snapshot"},
	"ec2:CopySnapshot":                    {"ec2:snapshot"},
	"ec2:CreateSnapshot":                  {"ec2:snapshot", "ec2:volume"},
	"ec2:CreateSnapshots":                 {"ec2:instance", "ec2:snapshot", "ec2:volume"},
	"ec2:CreateTags":                      {"ec2:snapshot"}, // and other types, but ebsimager tags snapshots only
	"ec2:DescribeInstances":               nil,
	"ec2:DescribeSnapshotAttribute":       {"ec2:snapshot"},
	"ec2:DescribeSnapshots":               nil,
	"ec2:DescribeVolumes":                 nil,
	"ec2:LockSnapshot":                    {"ec2:snapshot"},
	"ec2:ModifySnapshotAttribute":         {"ec2:snapshot"},
	"kms:CreateGrant":                     {"kms:key"},
	"kms:Decrypt":                         {"kms:key"},
	"kms:DescribeKey":                     {"kms:key"},
	"kms:GenerateDataKeyWithoutPlaintext": {"kms:key"},
	"kms:ReEncryptFrom":                   {"kms:key"},
	"kms:ReEncryptTo":                     {"kms:key"},
	// Amazon S3: the bucket for listing and its Object Lock
	// configuration, the object for the rest.
	"s3:AbortMultipartUpload":             {"s3:object"},
	"s3:GetBucketObjectLockConfiguration": {"s3:bucket"},
	"s3:GetObject":                        {"s3:object"},
	"s3:GetObjectLegalHold":               {"s3:object"},
	"s3:GetObjectRetention":               {"s3:object"},
	"s3:ListBucket":                       {"s3:bucket"},
	"s3:PutObject":                        {"s3:object"},
	"s3:PutObjectLegalHold":               {"s3:object"},
	"s3:PutObjectRetention":               {"s3:object"},
}

// flowActions is what each step calls, from the code that calls it (and,
// for KMS, the EBS encryption requirements: CreateGrant, Decrypt,
// DescribeKey, GenerateDataKeyWithoutPlaintext, ReEncrypt).
var flowActions = map[Flow][]string{
	Acquire: {"ebs:GetSnapshotBlock", "ebs:ListChangedBlocks", "ebs:ListSnapshotBlocks",
		"ec2:DescribeSnapshotAttribute", "ec2:DescribeSnapshots",
		"kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey"},
	Snapshot: {"ec2:CreateSnapshot", "ec2:CreateSnapshots", "ec2:CreateTags", "ec2:DescribeInstances",
		"ec2:DescribeSnapshots", "ec2:DescribeVolumes", "ec2:LockSnapshot"},
	Share: {"ec2:DescribeSnapshotAttribute", "ec2:ModifySnapshotAttribute"},
	Copy: {"ec2:CopySnapshot", "ec2:CreateTags", "ec2:DescribeSnapshots", "ec2:LockSnapshot",
		"kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext",
		"kms:ReEncryptFrom", "kms:ReEncryptTo"},
	// internal/s3store's calls without a lock (TestS3LockActions checks
	// the lock's); never s3:DeleteObject. The reader's PutObject is
	// verify's run record (TestS3Allows checks where).
	S3Write: {"s3:AbortMultipartUpload", "s3:GetObject", "s3:ListBucket", "s3:PutObject"},
	S3Read:  {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}, // PutObject: verify's run records only
}

const (
	testKey     = "arn:aws:kms:eu-west-1:222233334444:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	testAccount = "111122223333"
	forensic    = "555566667777"
)

// optionSets are the options every property is checked under.
func optionSets(flows Flow) []Options {
	sets := []Options{
		{Flows: flows},
		{Flows: flows, Region: "us-east-1", Account: testAccount},
		{Flows: flows, Region: "cn-north-1"},
	}
	if flows&Copy != 0 {
		sets = append(sets,
			Options{Flows: flows, Region: "us-east-1", CopyRegion: "eu-west-1", KMSKey: testKey},
			Options{Flows: flows, CopyRegion: "eu-west-1"})
	} else if flows&Acquire != 0 {
		sets = append(sets, Options{Flows: flows, Region: "eu-west-1", KMSKey: testKey})
	}
	if flows&Share != 0 {
		sets = append(sets, Options{Flows: flows, Region: "us-east-1", ShareWith: []string{forensic, testAccount}})
	}
	if flows&s3Flows != 0 {
		sets = append(sets, Options{Flows: flows, Region: "us-east-1", S3Bucket: "evidence", S3Prefix: "ir-15/"},
			Options{Flows: flows, S3Bucket: "evidence"})
	}
	if flows&S3Write != 0 {
		sets = append(sets, Options{Flows: flows, S3Bucket: "evidence", S3Prefix: "a/b/", ObjectLock: "COMPLIANCE", LegalHold: true},
			Options{Flows: flows, Region: "cn-north-1", S3Bucket: "evidence", ObjectLock: "GOVERNANCE"})
	}
	return sets
}

// decoded is an IAM policy as IAM reads it, for a strict decode.
type decoded struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    oneOrMany
		Resource  oneOrMany
		Condition map[string]map[string]oneOrMany
	}
}

// oneOrMany is IAM's string-or-list of strings.
type oneOrMany []string

func (v *oneOrMany) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		*v = oneOrMany{s}
		return err
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	if len(l) < 2 {
		return fmt.Errorf("a list of %d: one value is written as a string", len(l))
	}
	*v = l
	return nil
}

var (
	actionRE = regexp.MustCompile(`^(ebs|ec2|kms|s3):[A-Z][A-Za-z]+$`)
	sidRE    = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	// arn:PARTITION:SERVICE:REGION:ACCOUNT:TYPE/ID
	arnRE = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):(ec2|kms):([a-z0-9-]+|\*):([0-9]{12}|\*)?:([a-z]+)/(\*|[A-Za-z0-9-]+)$`)
	// arn:PARTITION:s3:::BUCKET and arn:PARTITION:s3:::BUCKET/PREFIX*
	// (and the run records: BUCKET/PREFIXruns/* and BUCKET/PREFIX*/runs/*)
	s3ARNRE = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):s3:::([a-z0-9.-]+|\*)(/(.*))?$`)
)

// TestPolicyShape checks every policy against IAM's grammar and the
// Service Authorization Reference, independently of the catalogue.
func TestPolicyShape(t *testing.T) {
	for flows := Flow(1); flows <= AllFlows; flows++ {
		for _, o := range optionSets(flows) {
			name := fmt.Sprintf("%s/%+v", flows, o)
			p, err := Build(o)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var d decoded
			dec := json.NewDecoder(bytes.NewReader(p.JSON()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, p.JSON())
			}
			if d.Version != "2012-10-17" || len(d.Statement) == 0 {
				t.Fatalf("%s: version %q, %d statements", name, d.Version, len(d.Statement))
			}
			var sids []string
			for _, st := range d.Statement {
				if !sidRE.MatchString(st.Sid) || st.Effect != "Allow" || len(st.Action) == 0 || len(st.Resource) == 0 {
					t.Fatalf("%s: statement %+v", name, st)
				}
				sids = append(sids, st.Sid)
				if !slices.IsSorted(st.Action) || !slices.IsSorted(st.Resource) || len(slices.Compact(slices.Clone(st.Resource))) != len(st.Resource) {
					t.Errorf("%s: %s: actions or resources not sorted", name, st.Sid)
				}
				for _, a := range st.Action {
					types, known := authorizes[a]
					if !actionRE.MatchString(a) || !known {
						t.Fatalf("%s: %s: action %q is not in the closed list", name, st.Sid, a)
					}
					for _, r := range st.Resource {
						checkResource(t, name+": "+st.Sid+": "+a, r, types, o)
					}
				}
			}
			if !slices.IsSorted(sids) || len(slices.Compact(slices.Clone(sids))) != len(sids) {
				t.Fatalf("%s: Sids not sorted and unique: %v", name, sids)
			}
		}
	}
}

// checkResource checks that r is "*" for an action without resource-level
// permissions, else an ARN of one of types, in the Region of o when o
// names one.
func checkResource(t *testing.T, name, r string, types []string, o Options) {
	t.Helper()
	if len(types) == 0 {
		if r != "*" {
			t.Errorf("%s: resource %q: the action supports no resource-level permission", name, r)
		}
		return
	}
	if strings.HasPrefix(r, "arn:aws:s3:") || strings.Contains(r, ":s3:::") {
		checkS3Resource(t, name, r, types, o)
		return
	}
	m := arnRE.FindStringSubmatch(r)
	if m == nil {
		t.Fatalf("%s: resource %q is not an ARN of %v", name, r, types)
	}
	if !slices.Contains(types, m[2]+":"+m[5]) {
		t.Errorf("%s: resource %q: the action authorizes %v only", name, r, types)
	}
	if m[2] == "ec2" && m[5] == "snapshot" && m[4] != "" {
		t.Errorf("%s: %q: a snapshot ARN names no account", name, r)
	}
	if o.Region != "" && m[3] != o.Region && m[3] != o.CopyRegion {
		t.Errorf("%s: %q: not in %s or %s", name, r, o.Region, o.CopyRegion)
	}
	if o.KMSKey != "" && m[2] == "kms" && r != o.KMSKey && !strings.HasSuffix(r, ":*:key/*") {
		t.Errorf("%s: %q is neither the key nor any key", name, r)
	}
}

// checkS3Resource checks an S3 ARN: the bucket of o (or every bucket
// when o names none), the objects under o's prefix exactly.
func checkS3Resource(t *testing.T, name, r string, types []string, o Options) {
	t.Helper()
	m := s3ARNRE.FindStringSubmatch(r)
	if m == nil {
		t.Fatalf("%s: resource %q is not an S3 ARN", name, r)
	}
	kind := "s3:bucket"
	if m[3] != "" {
		kind = "s3:object"
	}
	if !slices.Contains(types, kind) {
		t.Errorf("%s: resource %q: the action authorizes %v only", name, r, types)
	}
	if want := cmp.Or(o.S3Bucket, "*"); m[2] != want {
		t.Errorf("%s: %q: not bucket %s", name, r, want)
	}
	if p := o.S3Prefix; kind == "s3:object" && m[4] != p+"*" && m[4] != p+"runs/*" && m[4] != p+"*/runs/*" {
		t.Errorf("%s: %q: not the objects under %q", name, r, o.S3Prefix)
	}
	if want := "aws"; o.Region != "" && strings.HasPrefix(o.Region, "cn-") && m[1] != "aws-cn" || o.Region == "" && m[1] != want {
		t.Errorf("%s: %q: the partition of %q", name, r, o.Region)
	}
}

// TestFlowActions checks that each step grants exactly what it calls.
func TestFlowActions(t *testing.T) {
	for f, want := range flowActions {
		p, err := Build(Options{Flows: f})
		if err != nil {
			t.Fatal(err)
		}
		got := actions(p)
		if !slices.Equal(got, want) {
			t.Errorf("%s: actions\n%v\nwant\n%v", f, got, want)
		}
	}
}

func actions(p *Policy) []string {
	var a []string
	for _, st := range p.Statement {
		a = append(a, st.Action...)
	}
	slices.Sort(a)
	return slices.Compact(a)
}

// grants is every (Sid, action, resource, condition) of p.
func grants(p *Policy) map[string]bool {
	g := map[string]bool{}
	for _, st := range p.Statement {
		c, _ := json.Marshal(st.Condition)
		for _, a := range st.Action {
			for _, r := range st.Resource {
				g[st.Sid+" "+a+" "+r+" "+string(c)] = true
			}
		}
	}
	return g
}

// TestUnion checks that the policy of several steps grants exactly what
// the policies of each step grant together: nothing more, nothing less.
// Through Build with options every step takes, and through the scope's
// build with every option (a copy Region, a key, accounts to share with),
// which Build refuses for steps that do not use them.
func TestUnion(t *testing.T) {
	for _, region := range []string{"", "us-east-1"} {
		for flows := Flow(1); flows <= AllFlows; flows++ {
			p, err := Build(Options{Flows: flows, Region: region, Account: testAccount})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, n := range flowNames {
				if flows&n.f != 0 {
					q, err := Build(Options{Flows: n.f, Region: region, Account: testAccount})
					if err != nil {
						t.Fatal(err)
					}
					maps.Copy(want, grants(q))
				}
			}
			sameGrants(t, fmt.Sprintf("%s in %q", flows, region), grants(p), want)
		}
	}
	for _, o := range optionSets(AllFlows) {
		sc, err := newScope(o)
		if err != nil {
			t.Fatal(err)
		}
		for flows := Flow(1); flows <= AllFlows; flows++ {
			want := map[string]bool{}
			for _, n := range flowNames {
				if flows&n.f != 0 {
					maps.Copy(want, grants(sc.build(n.f)))
				}
			}
			sameGrants(t, fmt.Sprintf("%s %+v", flows, o), grants(sc.build(flows)), want)
		}
	}
}

func sameGrants(t *testing.T, name string, got, want map[string]bool) {
	t.Helper()
	if len(got) == 0 {
		t.Fatalf("%s: grants nothing", name)
	}
	for g := range got {
		if !want[g] {
			t.Errorf("%s: grants %s that no single step does", name, g)
		}
	}
	for g := range want {
		if !got[g] {
			t.Errorf("%s: misses %s", name, g)
		}
	}
}
