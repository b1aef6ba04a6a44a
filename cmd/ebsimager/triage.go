package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/live"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/triage"
	"github.com/ebsimager/ebsimager/internal/volume"
)

func newTriageCommand(aws *awsOptions) *cobra.Command {
	var (
		out         string
		profiles    []string
		privateKeys bool
		keys        openOptions
		lo          liveOptions
	)
	cmd := &cobra.Command{
		Use:   "triage SOURCE --out DIR [--profile NAME|FILE]...",
		Short: "Collect the artifacts of a profile from a snapshot, evidence or an image",
		Long: `Collect the files a profile names (logs, histories, hives, accounts …)
from every file system of SOURCE: a snapshot (snap-…) read live through the
EBS direct APIs, an evidence directory, a raw image or an E01, without
imaging it. The metadata is walked first; every block the files need is
then fetched in parallel, each checked against the SHA-256 AWS served it
with, and the files are written one by one.

--profile takes a built-in profile (linux, windows), a profile file (one
path with globs a line; * ? [...] within a name, ** for any depth, and the
options max=SIZE, list and private), or a KAPE target file (.tkape: Path,
FileMask, Recursive); repeat it to apply several. Without it, each
partition gets linux or windows from what it holds.

DIR must be new or empty. It receives files/pN/<path as on disk> (unsafe
bytes in names written %XX, a named stream as NAME%3ASTREAM), files.csv
(partition, path, inode, size, MD5, SHA-1, SHA-256, the four times and
the blocks read), listing.csv (what list-only rules list: /tmp, /var/tmp,
/dev/shm), a bodyfile per file system, SHA256SUMS (check it with
sha256sum -c from DIR), and the record report.json, .txt and .html: the
source, the profiles, what was collected, withheld and not found, the
requests and their cost, and every block read with its AWS checksum.
Private keys are withheld unless --private-keys is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out DIR is required")
			}
			var loaded []*triage.Profile
			for _, name := range profiles {
				p, err := triage.Load(name)
				if err != nil {
					return usageError{err}
				}
				loaded = append(loaded, p)
			}
			started := time.Now()
			o := volumeOptions(&keys)
			var sums live.SumLog
			lo.sums = &sums
			var err error
			if o.Snapshot, err = lo.opener(aws, args[0]); err != nil {
				return err
			}
			rec, err := runTriage(cmd.Context(), args[0], o, triage.Options{Out: out, Profiles: loaded, PrivateKeys: privateKeys, Tool: tool(), Started: started}, &lo, &sums)
			if rec != nil {
				printTriage(cmd.OutOrStdout(), out, rec)
			}
			return lo.finish(cmd.ErrOrStderr(), err)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the collection into `DIR` (new or empty)")
	cmd.Flags().StringArrayVar(&profiles, "profile", nil, "a built-in profile (linux, windows), a profile file or a KAPE .tkape `file`; repeatable")
	cmd.Flags().BoolVar(&privateKeys, "private-keys", false, "also collect private keys (SSH user and host keys), withheld by default")
	keys.addFlags(cmd)
	lo.addFlags(cmd)
	return cmd
}

// runTriage opens source and triages it with o.
func runTriage(ctx context.Context, source string, vo volume.Options, o triage.Options, lo *liveOptions, sums *live.SumLog) (_ *report.Triage, err error) {
	v, err := volume.Open(ctx, source, vo)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := v.Close(); err == nil {
			err = cerr
		}
	}()
	o.Partitions, o.Bodyfile = triage.DiskParts, triage.Bodyfile
	o.Source = triage.Source(source, v)
	switch fi, serr := os.Stat(source); {
	case lo.vol != nil:
		o.ChecksumSource = report.ChecksumAWS
		o.Sums = func([]int64) (map[int64]block.Sum, error) { return sums.Sums(), nil }
		o.Cost = func() triage.Cost {
			s := lo.vol.Stats()
			return triage.Cost{Requests: report.Requests{ListCalls: s.ListCalls, GetCalls: s.GetCalls, RetriesByKind: s.Retries},
				FetchedBlocks: s.Fetched, FetchedBytes: s.Bytes, CostUSD: s.CostUSD, PriceAssumed: s.PriceAssumed}
		}
	case serr == nil && fi.IsDir():
		o.ChecksumSource, o.Sums = report.ChecksumManifest, triage.EvidenceSums(source)
	default:
		if s, ok := v.(interface {
			BlockSums([]int64) (map[int64]block.Sum, error)
		}); ok { // evidence in S3
			o.ChecksumSource, o.Sums = report.ChecksumManifest, s.BlockSums
		}
	}
	return triage.Run(ctx, v, o)
}

// printTriage says what a triage collected and what it took.
func printTriage(w io.Writer, out string, rec *report.Triage) {
	f := rec.Figures
	fmt.Fprintf(w, "collected %d files (%d bytes) into %s; %d listed, %d withheld, %d rules found nothing, %d errors\n",
		f.Files, f.Bytes, out, rec.Listed, len(rec.Withheld), len(rec.NotFound), len(rec.Errors))
	fmt.Fprintf(w, "%.2f s, first file after %.2f s; %d blocks read of %d allocated\n", f.Seconds, f.FirstFileSeconds, f.BlocksRead, f.AllocatedBlocks)
	if q := f.Requests; q != nil {
		fmt.Fprintf(w, "%d List and %d Get calls (Gets = %.2f%% of the allocated blocks), about $%.4f\n",
			q.ListCalls, q.GetCalls, 100*f.GetsPerAllocated, f.CostUSD)
	}
	fmt.Fprintf(w, "record: %s/report.txt; check the files with: (cd %s && sha256sum -c %s)\n", out, out, triage.SumsName)
}
