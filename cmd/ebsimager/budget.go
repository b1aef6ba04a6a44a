package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/cost"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/preflight"
	"github.com/ebsimager/ebsimager/internal/ui"
)

func newBudgetCommand(aws *awsOptions) *cobra.Command {
	var (
		asJSON              bool
		quiet               bool
		priceGet, priceList float64
	)
	cmd := &cobra.Command{
		Use:   "budget SNAPSHOT",
		Short: "List a snapshot and estimate what acquiring it will cost and take",
		Long: `List SNAPSHOT (10,000 blocks per call, the API maximum) and report the volume
size, the allocated blocks and bytes to download, the List calls this
listing made (an acquisition's listing makes the same; AWS returns short
pages over sparse stretches, so a sparse volume takes more than its blocks
fill) and the Get calls an acquisition needs, its estimated cost from the
price table for the Region (us-east-1's when the Region is not in the
table), and the time it takes at the default per-snapshot quota of 1,000
blocks/s. Listing is billed too: it costs what the List calls of the
acquisition will.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			snap, cfg, err := aws.snapshot(ctx, args[0])
			if err != nil {
				return err
			}
			status := ui.NewStatus(cmd.ErrOrStderr(), quiet || asJSON, 5*time.Second)
			var (
				info   ebs.Info
				blocks int64
			)
			err = snap.List(ctx, 0, func(p ebs.Page) error {
				info = p.Info
				blocks += int64(len(p.Refs))
				status.Update(fmt.Sprintf("listing %s: %d blocks so far", snap.ID, blocks))
				return nil
			})
			status.Done("")
			if err != nil {
				return preflight.Diagnose(ctx, cfg, snap.ID, err)
			}
			// The listing's own List calls (retries included) are what an
			// acquisition's listing will make: short pages over sparse
			// stretches count too.
			in := cost.Inputs{SnapshotID: snap.ID, Region: cfg.Region, VolumeSizeGiB: info.VolumeGiB, Blocks: blocks, BlockSize: int64(info.BlockSize),
				ListRequests: snap.Stats.Counts().ListCalls}
			for _, p := range []struct {
				name string
				v    float64
			}{{"price-get", priceGet}, {"price-list", priceList}} {
				if math.IsNaN(p.v) || math.IsInf(p.v, 0) || p.v < 0 {
					return usagef("--%s %v: want a price of 0 or more", p.name, p.v)
				}
			}
			if cmd.Flags().Changed("price-get") {
				in.GetPricePer1000 = &priceGet
			}
			if cmd.Flags().Changed("price-list") {
				in.ListPricePer1000 = &priceList
			}
			e := cost.Compute(in)
			return printBudget(cmd.OutOrStdout(), e, snap.Stats.Counts(), asJSON)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the estimate as JSON")
	f.BoolVarP(&quiet, "quiet", "q", false, "print no progress")
	f.Float64Var(&priceGet, "price-get", 0, "USD per 1,000 GetSnapshotBlock calls (default: the Region's price)")
	f.Float64Var(&priceList, "price-list", 0, "USD per 1,000 List calls (default: the Region's price)")
	return cmd
}

func printBudget(w io.Writer, e cost.Estimate, made ebs.Counts, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(e)
	}
	fmt.Fprintf(w, "snapshot        %s (%s)\n", e.SnapshotID, e.Region)
	fmt.Fprintf(w, "volume size     %d GiB (%d bytes), %d blocks of %d bytes\n", e.VolumeSizeGiB, e.VolumeSizeBytes, e.VolumeBlocks, e.BlockSize)
	fmt.Fprintf(w, "allocated       %d blocks (%.1f%% of the volume)\n", e.Blocks, 100*float64(e.Blocks)/float64(max(e.VolumeBlocks, 1)))
	fmt.Fprintf(w, "download        %s (%d bytes)\n", ui.Bytes(e.DownloadBytes), e.DownloadBytes)
	fmt.Fprintf(w, "requests        %d List + %d Get\n", e.ListRequests, e.GetRequests)
	assumed := ""
	if e.PriceAssumed {
		assumed = fmt.Sprintf(" (no price for %s in the table: us-east-1 prices assumed; override with --price-get/--price-list)", e.Region)
	}
	fmt.Fprintf(w, "estimated cost  $%.4f = %d Get × $%g/1000 + %d List × $%g/1000%s\n",
		e.EstimatedCostUSD, e.GetRequests, e.PriceGetPer1000, e.ListRequests, e.PriceListPer1000, assumed)
	fmt.Fprintf(w, "estimated time  %s at %.0f blocks/s (the per-snapshot quota)\n",
		ui.Duration(time.Duration(e.EstimatedSeconds*float64(time.Second))), e.QuotaBlocksPerSecond)
	fmt.Fprintf(w, "this listing    %s made\n", ui.Plural(made.ListCalls, "List call"))
	return nil
}
