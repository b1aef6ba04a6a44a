package main

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/cost"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/preflight"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
)

// snapshotCheckOptions are verify's flags that compare the evidence with
// the snapshot it came from.
type snapshotCheckOptions struct {
	against     bool
	full        bool
	workers     int
	maxRate     float64
	maxAttempts int
}

func (o *snapshotCheckOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.against, "against-snapshot", false, "also list the snapshot again (AWS access) and require exactly the manifest's block indexes")
	f.BoolVar(&o.full, "full", false, "with --against-snapshot: fetch every block again and compare its AWS checksum with the manifest's")
	f.IntVar(&o.workers, "workers", 0, fmt.Sprintf("with --full: most requests in flight (default: adaptive, up to %d)", acquire.DefaultWorkers))
	f.Float64Var(&o.maxRate, "max-rate", 0, "with --full: most blocks per second (default: no cap)")
	f.IntVar(&o.maxAttempts, "max-attempts", 10, "with --full: attempts per block before it counts as not fetched (throttling aside)")
}

// manifestSums yields a manifest's blocks, in index order, for
// acquire.Check.
type manifestSums struct{ r *manifest.Reader }

func (m manifestSums) Next() (int64, block.Sum, error) {
	e, err := m.r.Next()
	if err != nil {
		return 0, block.Sum{}, err
	}
	sum, err := e.Sum()
	if err != nil {
		return 0, block.Sum{}, fmt.Errorf("block %d: %w", e.Index, err)
	}
	return e.Index, sum, nil
}

// run compares the evidence with its snapshot, after printing the calls
// it will make and their cost. Differences become problems of res.
func (o *snapshotCheckOptions) run(cmd *cobra.Command, aws *awsOptions, ev *store.Evidence, res *store.VerifyResult) (*report.SnapshotCheck, error) {
	if o.workers < 0 || o.maxAttempts < 0 || o.maxRate < 0 || math.IsNaN(o.maxRate) || math.IsInf(o.maxRate, 0) {
		return nil, usagef("--workers, --max-attempts and --max-rate must be finite and not negative")
	}
	ctx := cmd.Context()
	snap, cfg, err := aws.snapshot(ctx, ev.Meta.SnapshotID)
	if err != nil {
		return nil, err
	}
	snap.Policy.MaxAttempts = o.maxAttempts
	est := cost.Compute(cost.Inputs{SnapshotID: snap.ID, Region: cfg.Region, VolumeSizeGiB: ev.Meta.VolumeSizeGiB,
		Blocks: res.Blocks, BlockSize: int64(ev.Meta.BlockSize)})
	price := est.ListCostUSD
	gets := int64(0)
	if o.full {
		price, gets = est.EstimatedCostUSD, est.GetRequests
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: comparing with %s (%s): about %d List + %d Get calls, estimated $%.4f\n",
		snap.ID, cfg.Region, est.ListRequests, gets, price)
	mr, c, err := ev.Manifest()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r, err := acquire.Check(ctx, snap, manifestSums{mr}, acquire.CheckOptions{
		Full: o.full, Workers: o.workers, MaxRate: o.maxRate,
		Info: func(i ebs.Info) error {
			if i.VolumeGiB != ev.Meta.VolumeSizeGiB || i.BlockSize != ev.Meta.BlockSize {
				res.Problems = append(res.Problems, store.Problem{Index: -1, Name: snap.ID, Kind: "snapshot",
					Detail: fmt.Sprintf("the snapshot lists a %d GiB volume of %d-byte blocks, the evidence holds %d GiB of %d-byte blocks",
						i.VolumeGiB, i.BlockSize, ev.Meta.VolumeSizeGiB, ev.Meta.BlockSize)})
			}
			return nil
		},
	})
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("comparing with %s: %w", snap.ID, preflight.Diagnose(ctx, cfg, snap.ID, err))
	}
	addSnapshotProblems(res, snap.ID, r)
	return snapshotCheckRecord(snap.ID, o.full, r, price), nil
}

// snapshotCheckRecord is the record of a comparison with the snapshot.
func snapshotCheckRecord(id string, full bool, r *acquire.CheckResult, price float64) *report.SnapshotCheck {
	sc := &report.SnapshotCheck{SnapshotID: id, Full: full, Listed: r.Listed, Fetched: r.Fetched,
		Missing: orEmpty(r.Missing), Extra: orEmpty(r.Extra), Differ: orEmpty(r.Differ), Failed: orEmpty(r.Failed),
		MissingCount: r.MissingCount, ExtraCount: r.ExtraCount, DifferCount: r.DifferCount, FailedCount: r.FailedCount,
		Requests: report.Requests{ListCalls: r.Counts.ListCalls, GetCalls: r.Counts.GetCalls,
			RetriesByKind: r.Counts.Retries, ErrorsByKind: map[string]int64{}},
		EstimatedCostUSD: price}
	if sc.Requests.RetriesByKind == nil {
		sc.Requests.RetriesByKind = map[string]int64{}
	}
	return sc
}

// addSnapshotProblems makes each difference from the snapshot a problem
// of the verification.
func addSnapshotProblems(res *store.VerifyResult, id string, r *acquire.CheckResult) {
	for _, i := range r.Missing {
		res.Problems = append(res.Problems, store.Problem{Index: i, Name: id, Kind: "snapshot", Detail: "the manifest holds this block, the snapshot does not list it"})
	}
	for _, i := range r.Extra {
		res.Problems = append(res.Problems, store.Problem{Index: i, Name: id, Kind: "snapshot", Detail: "the snapshot lists this block, the manifest does not hold it"})
	}
	for _, i := range r.Differ {
		res.Problems = append(res.Problems, store.Problem{Index: i, Name: id, Kind: "snapshot", Detail: "AWS serves this block with another checksum than the manifest's"})
	}
	res.MoreProblems += r.MissingCount + r.ExtraCount + r.DifferCount - int64(len(r.Missing)+len(r.Extra)+len(r.Differ))
}

func orEmpty(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

func printSnapshotCheck(w io.Writer, s *report.SnapshotCheck) {
	what := "listing"
	if s.Full {
		what = "listing and every block's AWS checksum"
	}
	outcome := store.CompareMatch
	detail := fmt.Sprintf("%s %s: %d blocks listed, %d fetched; %d List + %d Get calls made", s.SnapshotID, what, s.Listed, s.Fetched,
		s.Requests.ListCalls, s.Requests.GetCalls)
	switch {
	case s.MissingCount+s.ExtraCount+s.DifferCount > 0:
		outcome = store.CompareDiffers
		detail += fmt.Sprintf("; %d missing from the snapshot, %d extra in it, %d with another checksum", s.MissingCount, s.ExtraCount, s.DifferCount)
	case s.FailedCount > 0:
		outcome = store.CompareNotPossible
		detail += fmt.Sprintf("; %d blocks could not be fetched", s.FailedCount)
	}
	printComparison(w, "the snapshot", outcome, detail)
}
