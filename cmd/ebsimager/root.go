package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// version is set at build time with -ldflags "-X main.version=…", and
// commit with -X main.commit=… where the build has no VCS information
// (a container build with -trimpath from a source tree without .git).
var (
	version = "0.1.0-dev"
	commit  = ""
)

func toolVersion() string {
	if commit != "" {
		return version + "+" + commit[:min(12, len(commit))]
	}
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
	globalAWS = aws
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
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		for _, name := range []string{"compress", "codec"} {
			if strings.HasSuffix(err.Error(), "needs an argument: --"+name) {
				return withHint(usageError{err}, "--"+name+" needs a value"+valueExample(name))
			}
		}
		return usageError{err}
	})
	aws.addFlags(root)
	root.AddCommand(
		newBudgetCommand(aws),
		newAcquireCommand(aws),
		newSnapshotCommand(aws),
		newBlockCommand(aws),
		newVerifyCommand(aws),
		newExportCommand(),
		newEmulateCommand(),
		newDemoCommand(),
		newInspectCommand(aws),
		newLsCommand(aws),
		newCatCommand(aws),
		newTimelineCommand(aws),
		newImport4n6irCommand(),
		newDiffCommand(aws),
		newMountCommand(aws),
		newTriageCommand(aws),
		newPolicyCommand(),
		newCaseCommand(aws),
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

// wrapArgs makes c's positional-argument check the shared one: every
// error is a usage error (exit 2) that names the missing or the stray
// argument and its likely cause, and a flag that swallowed the next flag
// as its value ("--compress --recipient …") is caught first.
func wrapArgs(c *cobra.Command) {
	check := c.Args
	c.Args = func(cmd *cobra.Command, a []string) error {
		if err := swallowedFlag(cmd); err != nil {
			return usageError{err}
		}
		if check(cmd, a) == nil {
			return nil
		}
		return usageError{argsError(cmd, check, a)}
	}
}

// swallowedFlag reports a flag whose value is one of the command's own
// flags: a flag that needs a value takes the next word, whatever it is.
func swallowedFlag(cmd *cobra.Command) error {
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if err != nil || f.Value.Type() == "bool" {
			return
		}
		v := strings.Trim(f.Value.String(), "[]") // an array flag's values print as [a,b]
		name, _, _ := strings.Cut(strings.TrimPrefix(v, "--"), "=")
		if strings.HasPrefix(v, "--") && cmd.Flags().Lookup(name) != nil {
			err = fmt.Errorf("--%s took %q as its value: --%s needs a value of its own%s", f.Name, v, f.Name, valueExample(f.Name))
		}
	})
	return err
}

// valueExample shows how to give flag name a value, where a flag's values
// are few.
func valueExample(name string) string {
	switch name {
	case "compress":
		return " (zstd, gzip or none: write --compress zstd)"
	case "codec":
		return " (zstd or gzip: write --codec zstd)"
	}
	return ""
}

// argsError explains why check refused the arguments a of cmd. The
// largest prefix of a that check accepts tells how many cmd takes: with
// one, the word after it is the stray one; with none, one is missing.
func argsError(cmd *cobra.Command, check cobra.PositionalArgs, a []string) error {
	usage := "usage: " + cmd.UseLine()
	for k := len(a) - 1; k >= 0; k-- {
		if check(cmd, a[:k]) != nil {
			continue
		}
		stray := a[k]
		return fmt.Errorf("unexpected argument %q%s (%s)", stray, strayCause(cmd, stray), usage)
	}
	return fmt.Errorf("missing argument: %s takes %s (%s)", cmd.CommandPath(), argNames(cmd), usage)
}

// strayCause guesses why a word ended up as an argument.
func strayCause(cmd *cobra.Command, stray string) string {
	switch strings.ToLower(stray) {
	case "zstd", "gzip", "none":
		for _, name := range []string{"compress", "codec"} {
			if cmd.Flags().Lookup(name) != nil {
				return fmt.Sprintf(": did you mean --%s %s?", name, stray)
			}
		}
	case "true", "false", "yes", "no", "on", "off":
		return ": switches such as --force take no value (write --force, or --force=false)"
	}
	if strings.HasPrefix(stray, "-") {
		return ": a flag value that begins with - needs the --flag=value form"
	}
	return fmt.Sprintf(": %s takes %s", cmd.CommandPath(), argNames(cmd))
}

// argNames is the arguments of cmd's usage line (the words before its
// flags), or "no arguments".
func argNames(cmd *cobra.Command) string {
	var names []string
	for _, w := range strings.Fields(cmd.Use)[1:] {
		if strings.ContainsAny(w[:1], "-([") {
			break
		}
		names = append(names, w)
	}
	if len(names) == 0 {
		return "no arguments"
	}
	return strings.Join(names, " ")
}
