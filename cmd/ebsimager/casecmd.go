package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/casework"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// newCaseCommand is the case command group: what is done with a case
// as a whole.
func newCaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "case",
		Short: "Work with a case: the evidence of many targets, e.g. the workers of an indexed job",
		Args:  cobra.NoArgs, // an unknown subcommand is a stray argument: exit 2
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	sum := newCaseSummarizeCommand()
	sum.SilenceUsage, sum.SilenceErrors = true, true
	wrapArgs(sum)
	cmd.AddCommand(sum)
	return cmd
}

func newCaseSummarizeCommand() *cobra.Command {
	var (
		targets string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "summarize DIR [--targets FILE] [--json]",
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

Exit status: 0 when every worker completed and its evidence matches its
summary; 4 when a summary disagrees with its evidence, with the targets
file or with another summary; else 3 when an index is missing or a
worker did not complete (run those workers again: they resume).`, casework.WorkerSuffix, casework.MaxSummaryDepth),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var list []string
			if targets != "" {
				var err error
				if list, err = readTargetsFile(targets); err != nil {
					return err
				}
			}
			s, err := casework.Summarize(args[0], targets, list)
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
	return cmd
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
