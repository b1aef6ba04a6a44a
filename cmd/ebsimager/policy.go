package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/iampolicy"
)

func newPolicyCommand() *cobra.Command {
	var (
		o              iampolicy.Options
		steps          struct{ snapshot, share, copy, acquire bool }
		explain, quiet bool
	)
	cmd := &cobra.Command{
		Use:   "policy [--snapshot] [--share] [--copy] [--acquire] [--kms-key ARN]",
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
			}{{steps.snapshot, iampolicy.Snapshot}, {steps.share, iampolicy.Share}, {steps.copy, iampolicy.Copy}, {steps.acquire, iampolicy.Acquire}} {
				if s.on {
					o.Flows |= s.f
				}
			}
			p, err := iampolicy.Build(o)
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
	f.BoolVar(&explain, "explain", false, "say on stderr what each statement is for")
	f.BoolVar(&quiet, "quiet", false, "do not say on stderr what the policy leaves wide")
	return cmd
}
