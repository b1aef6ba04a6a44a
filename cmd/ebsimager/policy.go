package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/iampolicy"
	"github.com/ebsimager/ebsimager/internal/s3store"
)

func newPolicyCommand() *cobra.Command {
	var (
		o              iampolicy.Options
		steps          struct{ snapshot, share, copy, acquire, s3Write, s3Read bool }
		explain, quiet bool
		s3URL          string
		bucketPolicy   bool
	)
	cmd := &cobra.Command{
		Use:   "policy [--snapshot] [--share] [--copy] [--acquire] [--s3-write] [--s3-read] [--s3 s3://BUCKET/PREFIX/] [--kms-key ARN]",
		Short: "Print the least-privilege IAM policy for the steps you run",
		Long: `Print the IAM identity policy that lets ebsimager run the chosen steps and
nothing more, as JSON on stdout, for the role or user that runs them.
Choose one or more steps:

  --snapshot  preserve an instance or a volume: DescribeInstances and
              DescribeVolumes, CreateSnapshots or CreateSnapshot with the
              tags in the same request, then each snapshot's device and
              volume tags (those two keys only), DescribeSnapshots to wait
              for them, and LockSnapshot
  --share     add accounts to a snapshot's createVolumePermission (never
              the public), and read it back
  --copy      CopySnapshot under another KMS key, with the tags in the same
              request; wait for the copy and lock it
  --acquire   read snapshots through the EBS direct APIs (acquire, block,
              budget, diff, verify --against-snapshot, and inspect, ls, cat,
              timeline, triage and mount of a live snapshot), with
              DescribeSnapshots and DescribeSnapshotAttribute for the record
              and the pre-flight checks, and the snapshot's KMS key
  --s3-write  write evidence to --s3 (acquire, export, conversions and
              import-4n6ir with --out s3://…): list the prefix and read
              what it holds (a rerun resumes), PutObject only with
              If-None-Match (an object is created once, never
              overwritten), multipart uploads and their abort, under the
              prefix only; with --object-lock MODE or --legal-hold, the
              bucket's Object Lock check, the retention in that mode and
              legal holds that can be placed, never lifted. Never
              s3:DeleteObject or s3:BypassGovernanceRetention
  --s3-read   read evidence from --s3 (verify, export, inspect, ls, cat,
              triage, mount, diff --base-evidence, case summarize):
              ListBucket under the prefix, GetObject (and HEAD), and
              verify's run record (runs/…-verify.json), created once

--s3 s3://BUCKET/PREFIX/ is the evidence's place (default: every bucket);
the ARNs are arn:aws:s3:::BUCKET (listing keys under PREFIX only) and
arn:aws:s3:::BUCKET/PREFIX*. A bucket encrypted with SSE-KMS under a
customer managed key also needs kms:GenerateDataKey (writer) and
kms:Decrypt on that key, which this policy does not grant.

--bucket-policy prints instead the bucket policy the evidence bucket of
--s3 should carry: it denies to everyone deleting an evidence object or a
version of it, bypassing a governance retention, lifting a legal hold,
and any request without TLS.

Each statement allows its actions on the ARN types they authorize: "*" only
for the Describe calls, which support no resource-level permission, and then
only in --region. KMS keys may be used only by EBS (kms:ViaService), and
grants created only for AWS resources. STS GetCallerIdentity, which the
records use, needs no permission.

--region, --copy-region, --account, --kms-key and --share-with narrow the
ARNs and the conditions; stderr says what is left wide (--quiet hides it).
AWS_REGION and profiles are not read: the same flags print the same policy
anywhere. --explain says on stderr what each statement is for.

A snapshot encrypted under a customer managed key and shared with another
account can be used there only if the key's own key policy lets that
account use the key: an IAM policy cannot grant that.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range []struct {
				on bool
				f  iampolicy.Flow
			}{{steps.snapshot, iampolicy.Snapshot}, {steps.share, iampolicy.Share}, {steps.copy, iampolicy.Copy}, {steps.acquire, iampolicy.Acquire},
				{steps.s3Write, iampolicy.S3Write}, {steps.s3Read, iampolicy.S3Read}} {
				if s.on {
					o.Flows |= s.f
				}
			}
			if s3URL != "" {
				u, err := s3store.ParseURL(s3URL)
				if err != nil {
					return usagef("--s3: %v", err)
				}
				o.S3Bucket, o.S3Prefix = u.Bucket, u.Prefix
			}
			o.ObjectLock = strings.ToUpper(o.ObjectLock)
			p, err := buildPolicy(o, bucketPolicy)
			if err != nil {
				return usageError{err}
			}
			stderr := cmd.ErrOrStderr()
			if !quiet {
				for _, n := range p.Notes {
					fmt.Fprintf(stderr, "ebsimager: note: %s\n", n)
				}
			}
			if explain {
				fmt.Fprint(stderr, p.Explain())
			}
			_, err = cmd.OutOrStdout().Write(p.JSON())
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&steps.snapshot, "snapshot", false, "grant the preservation step: snapshot, tag, wait and lock")
	f.BoolVar(&steps.share, "share", false, "grant sharing snapshots with other accounts")
	f.BoolVar(&steps.copy, "copy", false, "grant copying snapshots under another KMS key")
	f.BoolVar(&steps.acquire, "acquire", false, "grant reading snapshots through the EBS direct APIs")
	f.StringVar(&o.KMSKey, "kms-key", "", "ARN of the key of the copy and of the snapshots acquired (default: any key, used by EBS only)")
	// Its own --region, which shadows the global one: the policy reads no
	// AWS_REGION or profile, so that the same flags print the same policy.
	f.StringVar(&o.Region, "region", "", "Region of the ARNs (default: every Region; AWS_REGION and profiles are not read)")
	f.StringVar(&o.Account, "account", "", "account id that owns the instances and volumes to snapshot (default: any)")
	f.StringVar(&o.CopyRegion, "copy-region", "", "Region the copy is made in (default: --region)")
	f.StringArrayVar(&o.ShareWith, "share-with", nil, "account id the snapshots may be shared with (repeatable; default: any account, never the public)")
	f.BoolVar(&steps.s3Write, "s3-write", false, "grant writing evidence to --s3 (--out s3://…)")
	f.BoolVar(&steps.s3Read, "s3-read", false, "grant reading evidence from --s3 (verify, export, inspect… s3://…)")
	f.StringVar(&s3URL, "s3", "", "s3://BUCKET/PREFIX/ the evidence is written to or read from (default: every bucket)")
	f.StringVar(&o.ObjectLock, "object-lock", "", "governance or compliance: the retention --s3-write writes with (as acquire's --object-lock)")
	f.BoolVar(&o.LegalHold, "legal-hold", false, "--s3-write places legal holds (as acquire's --legal-hold)")
	f.BoolVar(&bucketPolicy, "bucket-policy", false, "print the bucket policy of --s3's evidence bucket instead")
	f.BoolVar(&explain, "explain", false, "say on stderr what each statement is for")
	f.BoolVar(&quiet, "quiet", false, "do not say on stderr what the policy leaves wide")
	return cmd
}

// buildPolicy returns the identity policy of o, or with bucketPolicy the
// bucket policy of o's evidence bucket, which takes no step.
func buildPolicy(o iampolicy.Options, bucketPolicy bool) (*iampolicy.Policy, error) {
	if !bucketPolicy {
		return iampolicy.Build(o)
	}
	if o.Flows != 0 || o.KMSKey != "" || o.Account != "" || o.CopyRegion != "" || len(o.ShareWith) > 0 || o.ObjectLock != "" || o.LegalHold {
		return nil, errors.New("--bucket-policy takes --s3 and --region only: it is the bucket's policy, not a step's")
	}
	return iampolicy.BucketPolicy(o.S3Bucket, o.S3Prefix, o.Region)
}
