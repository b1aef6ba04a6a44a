package main

import (
	"context"
	"runtime/debug"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func toolVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok && version == "0.1.0-dev" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return version + "+" + s.Value[:12]
			}
		}
	}
	return version
}

// awsOptions are the global flags of every command that talks to AWS.
type awsOptions struct {
	region   string
	profile  string
	endpoint string
}

func (o *awsOptions) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.region, "region", "", "AWS Region (default: AWS_REGION or the profile's region)")
	f.StringVar(&o.profile, "profile", "", "shared config profile (default: AWS_PROFILE or default)")
	f.StringVar(&o.endpoint, "endpoint-url", "", "endpoint for every AWS service, e.g. an emulator or a VPC endpoint\n(default: AWS_ENDPOINT_URL_EBS / AWS_ENDPOINT_URL, as the SDK reads them)")
}

// config loads the AWS configuration from the standard chain.
func (o *awsOptions) config(ctx context.Context) (aws.Config, error) {
	return ebs.LoadConfig(ctx, ebs.Options{Region: o.region, Profile: o.profile, Endpoint: o.endpoint})
}

// snapshot validates id and returns a reader of it.
func (o *awsOptions) snapshot(ctx context.Context, id string) (*ebs.Snapshot, aws.Config, error) {
	if err := block.CheckSnapshotID(id); err != nil {
		return nil, aws.Config{}, err
	}
	cfg, err := o.config(ctx)
	if err != nil {
		return nil, aws.Config{}, err
	}
	return &ebs.Snapshot{API: ebs.NewClient(cfg), ID: id, Stats: &ebs.Stats{}}, cfg, nil
}

func newRootCommand() *cobra.Command {
	aws := &awsOptions{}
	root := &cobra.Command{
		Use:   "ebsimager",
		Short: "Turn an AWS EBS snapshot into verified forensic evidence",
		Long: `ebsimager reads an EBS snapshot through the EBS direct APIs (no volume
restore, no instance stop), verifies every block against the SHA-256 AWS
served it with, and keeps it as an evidence directory, a sparse raw image
or an E01, with a manifest an examiner can re-check at any time.

Credentials come from the standard AWS chain: environment, shared config
and credentials files, SSO and role-assuming profiles, and IMDS.

` + exitCodesHelp,
		Version:       toolVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	aws.addFlags(root)
	root.AddCommand(
		newBudgetCommand(aws),
		newAcquireCommand(aws),
		newBlockCommand(aws),
		newVerifyCommand(aws),
		newExportCommand(),
		newEmulateCommand(),
		newDemoCommand(),
		newInspectCommand(),
		newImport4n6irCommand(),
		newDiffCommand(aws),
	)
	root.AddCommand(newTransformCommands()...)
	for _, c := range root.Commands() {
		c.SilenceUsage, c.SilenceErrors = true, true
		if c.Args == nil {
			c.Args = cobra.NoArgs
		}
		wrapArgs(c)
	}
	return root
}

// wrapArgs turns argument-count errors into usage errors (exit 2).
func wrapArgs(c *cobra.Command) {
	args := c.Args
	c.Args = func(cmd *cobra.Command, a []string) error {
		if err := args(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}
