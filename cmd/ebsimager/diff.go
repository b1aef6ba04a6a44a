package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/diff"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/ui"
	"github.com/ebsimager/ebsimager/internal/volume"
)

type diffOptions struct {
	json         bool
	out          string
	force        bool
	baseEvidence string
	evidence     string
	quiet        bool
	keys         openOptions
	s3PathStyle  bool
}

func newDiffCommand(aws *awsOptions) *cobra.Command {
	o := &diffOptions{}
	cmd := &cobra.Command{
		Use:   "diff BASE_SNAPSHOT SNAPSHOT",
		Short: "List the blocks, partitions and files that changed between two snapshots",
		Long: `List the blocks that differ between BASE_SNAPSHOT and SNAPSHOT, two snapshots
of one volume's lineage, through ListChangedBlocks (every page). Consecutive
blocks of one kind are merged into runs: added (only SNAPSHOT lists the
block), removed (only BASE_SNAPSHOT does: it reads as zeros now) or changed
(both do: written again). Totals count blocks, bytes and kinds.

--out FILE writes the original tool's changelog (--compare): a
"blockindex|offset|length" header, then one line per changed block.

--base-evidence DIR|IMAGE|s3://BUCKET/PREFIX/ (an evidence directory,
evidence in S3, or a raw or E01 image of BASE_SNAPSHOT) maps the changes to the base's partitions and, for ext2/3/4
and NTFS, names the files and file-system structures whose data or metadata
differ, and whether each was added, deleted or changed. The new snapshot's
blocks that this needs are fetched through the API (verified, as acquire
does), or read from --evidence DIR|IMAGE of SNAPSHOT when given.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.evidence != "" && o.baseEvidence == "" {
				return usagef("--evidence needs --base-evidence: files are named by comparing both snapshots")
			}
			for _, id := range args {
				if err := block.CheckSnapshotID(id); err != nil {
					return err
				}
			}
			if o.s3PathStyle && !s3store.IsURL(o.baseEvidence) && !s3store.IsURL(o.evidence) {
				return usagef("--s3-path-style applies to --base-evidence or --evidence s3://bucket/prefix/")
			}
			if o.out != "" {
				in, err := readInputs(localPaths(o.baseEvidence, o.evidence), &o.keys)
				if err != nil {
					return err
				}
				if err := checkOutput(in, o.out, o.force); err != nil {
					return err
				}
			}
			return runDiff(cmd, aws, o, args[0], args[1])
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.json, "json", false, "print the diff as JSON")
	f.StringVar(&o.out, "out", "", "write the changelog (blockindex|offset|length) to FILE")
	f.BoolVar(&o.force, "force", false, "replace an existing --out file")
	f.StringVar(&o.baseEvidence, "base-evidence", "", "evidence (a directory or s3://bucket/prefix/) or raw/E01 image of BASE_SNAPSHOT: map changes to partitions and files")
	f.StringVar(&o.evidence, "evidence", "", "evidence (a directory or s3://bucket/prefix/) or raw/E01 image of SNAPSHOT, read instead of fetching its blocks")
	f.BoolVar(&o.s3PathStyle, "s3-path-style", false, s3PathStyleUsage)
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress")
	o.keys.addFlags(cmd)
	return cmd
}

func runDiff(cmd *cobra.Command, aws *awsOptions, o *diffOptions, baseID, id string) error {
	ctx := cmd.Context()
	var base, next volume.Volume
	if o.baseEvidence != "" {
		var err error
		if base, err = openDiffSource(ctx, o.baseEvidence, baseID, &o.keys, o.s3PathStyle); err != nil {
			return err
		}
		defer base.Close()
	}
	if o.evidence != "" {
		var err error
		if next, err = openDiffSource(ctx, o.evidence, id, &o.keys, o.s3PathStyle); err != nil {
			return err
		}
		defer next.Close()
	}
	snap, _, err := aws.snapshot(ctx, id)
	if err != nil {
		return err
	}
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.json, 5*time.Second) // a line every 5 s off a terminal, as budget does
	defer status.Done("")
	b := diff.NewBuilder(baseID, id)
	tokens := map[int64]string{} // the new snapshot's blocks, to fetch for file names
	keepTokens := base != nil && next == nil
	pages := 0
	err = snap.Changes(ctx, baseID, 0, func(p ebs.ChangePage) error {
		pages++
		b.SetVolume(p.VolumeGiB)
		for _, c := range p.Changes {
			if err := b.Add(diff.Change{Index: c.Index, InBase: c.FirstToken != "", InNew: c.SecondToken != ""}); err != nil {
				return err
			}
			if keepTokens && c.SecondToken != "" {
				tokens[c.Index] = c.SecondToken
			}
		}
		status.Update(fmt.Sprintf("listing changes from %s to %s: %d blocks in %d pages", baseID, id, b.Diff().Totals.Blocks, pages))
		return nil
	})
	if ebs.Reason(err) == "UNRELATED_SNAPSHOTS" {
		return withHint(fmt.Errorf("%s and %s are not snapshots of one volume's lineage (UNRELATED_SNAPSHOTS): %w", baseID, id, err),
			"ListChangedBlocks compares a snapshot only with an earlier or later snapshot of the same volume")
	}
	if err != nil {
		return err
	}
	d := b.Diff()
	if base != nil {
		nv := next
		if next == nil {
			fetcher := ebs.NewFetcher(snap, ebs.FetchOptions{})
			nv = volume.NewOverlay(ctx, base, id, d.Size(), d.Patches(), func(ctx context.Context, index int64, buf []byte) ([]byte, error) {
				blk, err := fetcher.Fetch(ctx, block.Ref{Index: index, Token: tokens[index]}, buf)
				return blk.Data, err
			})
		}
		err := d.MapFiles(ctx, base, nv, func(p diff.Progress) {
			status.Update(fmt.Sprintf("%s: %d of %d changed blocks compared", p.Stage, p.Done, p.Total))
		})
		if err != nil {
			return err
		}
	}
	counts := snap.Stats.Counts()
	d.ListCalls, d.GetCalls = counts.ListCalls, counts.GetCalls
	if o.out != "" {
		if err := atomicfile.Write(o.out, func(w io.Writer) error { return diff.WriteChangelog(w, d) }); err != nil {
			return fmt.Errorf("writing %s: %w", o.out, err)
		}
	}
	status.Done("")
	if o.json {
		return diff.WriteJSON(cmd.OutOrStdout(), d)
	}
	return diff.WriteText(cmd.OutOrStdout(), d)
}

// openDiffSource opens an evidence directory or image, which must hold
// snapshot id when it says which snapshot it holds. The whole manifest of
// evidence is checked first, as diff always has.
func openDiffSource(ctx context.Context, path, id string, keys *openOptions, pathStyle bool) (volume.Volume, error) {
	o := volumeOptionsS3(keys, pathStyle)
	o.SnapshotID, o.CheckManifest = id, true
	return volume.Open(ctx, path, o)
}

// localPaths are the paths that name local files: an s3:// source is
// never the file an output would overwrite.
func localPaths(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if !s3store.IsURL(p) {
			out = append(out, p)
		}
	}
	return out
}
