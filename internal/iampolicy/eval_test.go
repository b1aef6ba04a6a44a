package iampolicy

import (
	"strings"
	"testing"
)

func TestLike(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "arn:aws:ec2:us-east-1::snapshot/snap-1", true},
		{"arn:aws:ec2:*::snapshot/*", "arn:aws:ec2:us-east-1::snapshot/snap-1", true},
		{"arn:aws:ec2:*::snapshot/*", "arn:aws:ec2:us-east-1:111122223333:volume/vol-1", false},
		{"arn:aws:ec2:us-east-1:*:volume/*", "arn:aws:ec2:us-east-1:111122223333:volume/vol-1", true},
		{"arn:aws:ec2:us-east-1:*:volume/*", "arn:aws:ec2:eu-west-1:111122223333:volume/vol-1", false},
		{"ec2.*.amazonaws.com", "ec2.eu-west-1.amazonaws.com", true},
		{"ec2.*.amazonaws.com", "s3.eu-west-1.amazonaws.com", false},
		{"snap-?", "snap-1", true},
		{"snap-?", "snap-12", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"[", "[", true},
	} {
		if got := like(c.pattern, c.s); got != c.want {
			t.Errorf("like(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

// TestAllows checks what the policies allow and refuse, call by call.
func TestAllows(t *testing.T) {
	const (
		snap    = "arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0"
		euSnap  = "arn:aws:ec2:eu-west-1::snapshot/snap-0123456789abcdef0"
		vol     = "arn:aws:ec2:us-east-1:" + testAccount + ":volume/vol-0123456789abcdef0"
		inst    = "arn:aws:ec2:us-east-1:" + testAccount + ":instance/i-0123456789abcdef0"
		key     = "arn:aws:kms:us-east-1:" + testAccount + ":key/1234abcd-12ab-34cd-56ef-1234567890ab"
		other   = "arn:aws:kms:us-east-1:" + testAccount + ":key/99999999-12ab-34cd-56ef-1234567890ab"
		viaEC2  = "ec2.us-east-1.amazonaws.com"
		viaS3   = "s3.us-east-1.amazonaws.com"
		inUSE1  = "aws:RequestedRegion=us-east-1"
		inEUW1  = "aws:RequestedRegion=eu-west-1"
		shareTo = "ec2:Add/userId=" + forensic
	)
	east := Options{Region: "us-east-1", Account: testAccount}
	for _, c := range []struct {
		o       Options
		action  string
		res     string
		context []string // key=value[,value]
		want    bool
	}{
		{Options{Flows: Acquire}, "ebs:GetSnapshotBlock", snap, nil, true},
		{Options{Flows: Acquire}, "ebs:GetSnapshotBlock", "*", nil, false},
		{Options{Flows: Acquire}, "ebs:PutSnapshotBlock", snap, nil, false},
		{Options{Flows: Acquire}, "ec2:DescribeSnapshots", "*", []string{inUSE1}, true},
		{Options{Flows: Acquire}, "ec2:CreateSnapshot", snap, nil, false},
		{with(east, Acquire), "ebs:ListSnapshotBlocks", snap, nil, true},
		{with(east, Acquire), "ebs:ListSnapshotBlocks", euSnap, nil, false},
		{with(east, Acquire), "EBS:listsnapshotblocks", snap, nil, true}, // actions ignore case
		{with(east, Acquire), "ec2:DescribeSnapshots", "*", []string{inUSE1}, true},
		{with(east, Acquire), "ec2:DescribeSnapshots", "*", []string{inEUW1}, false},
		{with(east, Acquire), "ec2:DescribeSnapshots", "*", nil, false},
		{with(east, Acquire), "kms:Decrypt", other, []string{"kms:ViaService=" + viaEC2}, true},
		{with(east, Acquire), "kms:Decrypt", other, []string{"kms:ViaService=" + viaS3}, false},
		{with(east, Acquire), "kms:Decrypt", other, nil, false},
		{with(east, Acquire), "kms:Encrypt", other, []string{"kms:ViaService=" + viaEC2}, false},
		{with(east, Acquire), "kms:CreateGrant", other, []string{"kms:ViaService=" + viaEC2}, false},
		{with(east, Acquire), "kms:CreateGrant", other, []string{"kms:ViaService=" + viaEC2, "kms:GrantIsForAWSResource=true"}, true},
		{Options{Flows: Acquire, Region: "us-east-1", KMSKey: key}, "kms:Decrypt", key, []string{"kms:ViaService=" + viaEC2}, true},
		{Options{Flows: Acquire, Region: "us-east-1", KMSKey: key}, "kms:Decrypt", other, []string{"kms:ViaService=" + viaEC2}, false},
		{with(east, Snapshot), "ec2:CreateSnapshots", inst, nil, true},
		{with(east, Snapshot), "ec2:CreateSnapshots", vol, nil, true},
		{with(east, Snapshot), "ec2:CreateSnapshots", snap, nil, true},
		{with(east, Snapshot), "ec2:CreateSnapshot", inst, nil, false},
		{with(east, Snapshot), "ec2:CreateSnapshot", vol, nil, true},
		{with(east, Snapshot), "ec2:CreateSnapshot", strings.Replace(vol, testAccount, forensic, 1), nil, false},
		{with(east, Snapshot), "ec2:CreateTags", snap, []string{"ec2:CreateAction=CreateSnapshots"}, true},
		{with(east, Snapshot), "ec2:CreateTags", snap, []string{"ec2:CreateAction=CopySnapshot"}, false},
		{with(east, Snapshot), "ec2:CreateTags", snap, nil, false}, // no retagging of an existing snapshot
		{with(east, Snapshot), "ec2:CreateTags", snap, []string{"aws:TagKeys=ebsimager:device,ebsimager:volume"}, true},
		{with(east, Snapshot), "ec2:CreateTags", snap, []string{"aws:TagKeys=ebsimager:volume"}, true},
		{with(east, Snapshot), "ec2:CreateTags", snap, []string{"aws:TagKeys=ebsimager:volume,ebsimager:case-number"}, false},
		{with(east, Snapshot), "ec2:CreateTags", vol, []string{"aws:TagKeys=ebsimager:volume"}, false},
		{with(east, Copy), "ec2:CreateTags", snap, []string{"aws:TagKeys=ebsimager:volume"}, false},
		{with(east, Snapshot), "ec2:CreateTags", vol, []string{"ec2:CreateAction=CreateSnapshots"}, false},
		{with(east, Snapshot), "ec2:LockSnapshot", snap, nil, true},
		{with(east, Snapshot), "ec2:DeleteSnapshot", snap, nil, false},
		{with(east, Snapshot), "ec2:ModifySnapshotAttribute", snap, []string{shareTo}, false},
		{with(east, Share), "ec2:ModifySnapshotAttribute", snap, []string{shareTo}, true},
		{with(east, Share), "ec2:ModifySnapshotAttribute", snap, []string{"ec2:Add/group=all"}, false},
		{with(east, Share), "ec2:ModifySnapshotAttribute", snap, []string{shareTo, "ec2:Add/group=all"}, false},
		{Options{Flows: Share, ShareWith: []string{forensic}}, "ec2:ModifySnapshotAttribute", snap, []string{shareTo}, true},
		{Options{Flows: Share, ShareWith: []string{forensic}}, "ec2:ModifySnapshotAttribute", snap, []string{"ec2:Add/userId=" + testAccount}, false},
		{Options{Flows: Share, ShareWith: []string{forensic}}, "ec2:ModifySnapshotAttribute", snap, []string{"ec2:Add/userId=" + forensic + "," + testAccount}, false},
		{Options{Flows: Share, ShareWith: []string{forensic}}, "ec2:ModifySnapshotAttribute", snap, nil, false},
		{with(east, Copy), "ec2:CopySnapshot", snap, nil, true},
		{with(east, Copy), "ec2:CreateTags", snap, []string{"ec2:CreateAction=CopySnapshot"}, true},
		{with(east, Copy), "ec2:CreateTags", snap, []string{"ec2:CreateAction=CreateSnapshots"}, false},
		{Options{Flows: Copy, Region: "us-east-1", CopyRegion: "eu-west-1"}, "ec2:CopySnapshot", euSnap, nil, true},
		{Options{Flows: Copy, Region: "us-east-1", CopyRegion: "eu-west-1"}, "ec2:CopySnapshot", snap, nil, false},
		{Options{Flows: Copy, Region: "us-east-1", KMSKey: key}, "kms:GenerateDataKeyWithoutPlaintext", key, []string{"kms:ViaService=" + viaEC2}, true},
		{Options{Flows: Copy, Region: "us-east-1", KMSKey: key}, "kms:GenerateDataKeyWithoutPlaintext", other, []string{"kms:ViaService=" + viaEC2}, false},
		{Options{Flows: Copy, Region: "us-east-1", KMSKey: key}, "kms:ReEncryptFrom", other, []string{"kms:ViaService=" + viaEC2}, true}, // the source's key
		{Options{Flows: Copy, Region: "us-east-1", KMSKey: key}, "kms:ReEncryptTo", other, []string{"kms:ViaService=" + viaEC2}, false},
		{Options{Flows: Copy, Region: "us-east-1", KMSKey: key}, "kms:ReEncryptFrom", other, nil, false},
	} {
		p, err := Build(c.o)
		if err != nil {
			t.Fatalf("%+v: %v", c.o, err)
		}
		ctx := map[string][]string{}
		for _, kv := range c.context {
			k, v, _ := strings.Cut(kv, "=")
			ctx[k] = strings.Split(v, ",")
		}
		if got := p.Allows(Request{Action: c.action, Resource: c.res, Context: ctx}); got != c.want {
			t.Errorf("%s %+v: %s on %s with %v: allowed %v, want %v", c.o.Flows, c.o, c.action, c.res, c.context, got, c.want)
		}
	}
}

func with(o Options, f Flow) Options {
	o.Flows = f
	return o
}

func TestOptionErrors(t *testing.T) {
	const key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, "choose at least one of --snapshot, --share, --copy and --acquire"},
		{Options{Flows: 1 << 6}, "choose at least one"},
		{Options{Flows: Acquire, Region: "US-EAST-1"}, `--region "US-EAST-1": not a Region name`},
		{Options{Flows: Acquire, Region: "us-east-1\"}"}, "not a Region name"},
		{Options{Flows: Acquire, Region: "*"}, "not a Region name"},
		{Options{Flows: Acquire, CopyRegion: "eu-west-1"}, "--copy-region is where --copy makes the copy: add --copy"},
		{Options{Flows: Copy, CopyRegion: "europe"}, `--copy-region "europe": not a Region name`},
		{Options{Flows: Snapshot, Account: "1234"}, `--account "1234": an AWS account id is 12 digits`},
		{Options{Flows: Snapshot, Account: "*"}, "12 digits"},
		{Options{Flows: Acquire, ShareWith: []string{"111122223333"}}, "--share-with names the accounts --share shares with: add --share"},
		{Options{Flows: Share, ShareWith: []string{"all"}}, `--share-with "all": an AWS account id is 12 digits`},
		{Options{Flows: Share, ShareWith: make([]string, 501)}, "501 accounts, more than the 500"},
		{Options{Flows: Snapshot, KMSKey: key}, "--kms-key is the key --copy encrypts the copy under and --acquire decrypts it with: add --copy or --acquire"},
		{Options{Flows: Copy, KMSKey: "alias/forensics"}, "an alias does not authorize the use of a key in IAM"},
		{Options{Flows: Copy, KMSKey: "arn:aws:kms:us-east-1:111122223333:alias/forensics"}, "an alias does not authorize"},
		{Options{Flows: Copy, KMSKey: "1234abcd-12ab-34cd-56ef-1234567890ab"}, "not a KMS key ARN"},
		{Options{Flows: Copy, KMSKey: key + "\n"}, "not a KMS key ARN"},
		{Options{Flows: Copy, KMSKey: "arn:aws:kms:us-east-1:111122223333:key/*"}, "not a KMS key ARN"},
		{Options{Flows: Copy, Region: "eu-west-1", KMSKey: key}, "--kms-key is in us-east-1, not in the Region of the copy (eu-west-1)"},
		{Options{Flows: Copy, Region: "us-east-1", CopyRegion: "eu-west-1", KMSKey: key}, "not in the Region of the copy (eu-west-1)"},
		{Options{Flows: Acquire, Region: "eu-west-1", KMSKey: key}, "--kms-key is in us-east-1, not in --region (eu-west-1)"},
		{Options{Flows: Copy, Region: "cn-north-1", CopyRegion: "us-east-1"}, "different AWS partitions (aws, aws-cn)"},
	} {
		_, err := Build(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.o, err, c.want)
		}
	}
}

// TestStable checks that the same options give the same bytes, whatever
// the order of the accounts.
func TestStable(t *testing.T) {
	a, err := Build(Options{Flows: AllFlows, Region: "us-east-1", ShareWith: []string{forensic, testAccount, forensic}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(Options{Flows: AllFlows, Region: "us-east-1", ShareWith: []string{testAccount, forensic}})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.JSON()) != string(b.JSON()) {
		t.Fatalf("differ:\n%s\n%s", a.JSON(), b.JSON())
	}
	if !strings.HasSuffix(string(a.JSON()), "}\n") || !strings.Contains(string(a.JSON()), "\n  \"Statement\": [\n    {\n      \"Sid\"") {
		t.Fatalf("not two-space indented with a final newline:\n%s", a.JSON())
	}
	if strings.Count(a.Explain(), "\n") != len(a.Statement) {
		t.Fatalf("explain: %q", a.Explain())
	}
}

// TestPartition checks the ARNs of the China and GovCloud partitions.
func TestPartition(t *testing.T) {
	for region, want := range map[string]string{"cn-north-1": "arn:aws-cn:ec2:cn-north-1::snapshot/*",
		"us-gov-west-1": "arn:aws-us-gov:ec2:us-gov-west-1::snapshot/*", "eu-west-1": "arn:aws:ec2:eu-west-1::snapshot/*"} {
		p, err := Build(Options{Flows: Acquire, Region: region})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Statement[0].Resource; len(got) != 1 || got[0] != want {
			t.Errorf("%s: %v, want %s", region, got, want)
		}
	}
	p, err := Build(Options{Flows: Copy, KMSKey: "arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(p.JSON()), `"arn:aws-cn:ec2:*::snapshot/*"`) {
		t.Fatalf("the key's partition is not the policy's:\n%s", p.JSON())
	}
}
