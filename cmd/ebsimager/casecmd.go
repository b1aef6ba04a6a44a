package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// newCaseCommand is the case command group: what is done with a case
// as a whole.
func newCaseCommand(aws *awsOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "case",
		Short: "Work with a case: the evidence of many targets, e.g. the workers of an indexed job",
		Args:  cobra.NoArgs, // an unknown subcommand is a stray argument: exit 2
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	sum := newCaseSummarizeCommand(aws)
	sum.SilenceUsage, sum.SilenceErrors = true, true
	wrapArgs(sum)
	cmd.AddCommand(sum)
	return cmd
}

func newCaseSummarizeCommand(aws *awsOptions) *cobra.Command {
	var (
		targets   string
		asJSON    bool
		pathStyle bool
	)
	cmd := &cobra.Command{
		Use:   "summarize DIR|s3://bucket/prefix/ [--targets FILE] [--json]",
		Short: "Gather the summaries of an indexed job's workers into one case report",
		Long: fmt.Sprintf(`Gather every worker summary (*%s, written by acquire --targets FILE as
a worker of an indexed job) under DIR into one case report, and check
each evidence directory's manifest.jsonl against the SHA-256 its summary
gives. With --targets FILE, each summary's target is checked against the
line of its index, and the indexes no summary reports are listed as
missing.

DIR is read within itself: no symlink leads out of it, a summary that is
a symlink is refused, summaries are found at most %d levels down, and no
evidence or case directory is entered. The manifest check is quick; run
verify on an evidence directory to check every block.

s3://bucket/prefix/ is a case in S3 (workers with --out
s3://bucket/prefix/{target}/): it is listed one level at a time (at
most %d keys and prefixes; the evidence's blocks are not listed),
summaries are found at most %d prefixes down, no evidence or case
prefix is entered, and each evidence prefix's manifest.jsonl is read
and hashed: a snapshot target's, or each volume's of an instance or a
volume target (prefix/i-…/snap-…/).

Exit status: 0 when every worker completed and its evidence matches its
summary; 4 when a summary disagrees with its evidence, with the targets
file or with another summary; else 3 when an index is missing or a
worker did not complete (run those workers again: they resume).`, casework.WorkerSuffix, casework.MaxSummaryDepth, casework.MaxSummaryEntries, casework.MaxSummaryDepth),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var list []string
			if targets != "" {
				var err error
				if list, err = readTargetsFile(targets); err != nil {
					return err
				}
			}
			s, err := summarizeCase(cmd, aws, args[0], pathStyle, targets, list)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				err = enc.Encode(s)
			} else {
				err = s.WriteText(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			return summaryError(s)
		},
	}
	cmd.Flags().StringVar(&targets, "targets", "", "the job's targets file: check each summary's target, and list the missing indexes")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the case report as JSON")
	cmd.Flags().BoolVar(&pathStyle, "s3-path-style", false, "for s3://bucket/prefix/: address the bucket in the path (automatic for an IP-address or localhost endpoint)")
	return cmd
}

// summarizeCase summarizes the case at where: a directory, or a prefix
// in S3.
func summarizeCase(cmd *cobra.Command, aws *awsOptions, where string, pathStyle bool, targetsFile string, targets []string) (*casework.CaseSummary, error) {
	if !s3store.IsURL(where) {
		if pathStyle {
			return nil, usagef("--s3-path-style applies to s3://bucket/prefix/")
		}
		return casework.Summarize(where, targetsFile, targets)
	}
	u, err := s3store.ParseURL(where)
	if err != nil {
		return nil, usagef("%v", err)
	}
	cfg, err := aws.config(cmd.Context())
	if err != nil {
		return nil, err
	}
	b := s3store.New(cfg, s3store.Options{PathStyle: pathStyle}).Bucket(u, s3store.Lock{})
	return casework.SummarizeBucket(cmd.Context(), b, targetsFile, targets)
}

// summaryError is the error of a case summary that is not complete.
func summaryError(s *casework.CaseSummary) error {
	switch s.ExitCode {
	case exitOK:
		return nil
	case exitMismatch:
		return mismatchError{fmt.Sprintf("case %s: %s: a summary disagrees with its evidence, its targets file or another summary", s.Directory, ui.Plural(int64(len(s.Problems)), "problem"))}
	}
	return fmt.Errorf("case %s: %d missing indexes, %s: %w", s.Directory, len(s.Missing), ui.Plural(int64(len(s.Workers)), "worker summary"), casework.ErrWorkersMissing)
}
