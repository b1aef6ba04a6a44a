package main

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/awsctx"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/preflight"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
)

// gatherContext asks STS who is acquiring and EC2 what the snapshot is,
// in the background while the acquisition runs; denied calls are
// recorded, never fatal.
func gatherContext(ctx context.Context, cfg aws.Config, id string) func() report.AWS {
	return awsctx.Start(ctx, cfg, id)
}

// gatherDescribed is gatherContext for a snapshot the pre-flight asked
// EC2 about: its answer and calls are recorded, not asked again.
func gatherDescribed(ctx context.Context, cfg aws.Config, pre preflight.Result) func() report.AWS {
	return awsctx.StartDescribed(ctx, cfg, pre.Snapshot, pre.Described())
}

// checkReadable is the pre-flight of snapshot id, before any block is
// fetched: the error says why the EBS direct APIs cannot read it.
func checkReadable(ctx context.Context, cfg aws.Config, id string) (preflight.Result, error) {
	rs, err := preflight.Check(ctx, cfg, []string{id})
	if len(rs) != 1 {
		return preflight.Result{Snapshot: id, Region: cfg.Region}, err
	}
	if rs[0].Err != nil {
		return rs[0], rs[0].Err
	}
	return rs[0], err
}

// tool is this run of ebsimager, as records name it.
func tool() report.Tool {
	return report.Tool{Version: toolVersion(), CommandLine: commandLine()}
}

// acquisitionRecord is the chain-of-custody record of a finished
// acquisition.
func acquisitionRecord(kind, location string, meta map[string]string, res acquire.Result, resumed int64, awsInfo report.AWS) *report.Report {
	return report.NewAcquisition(tool(), kind, location, meta, report.Acquired{
		SnapshotID: res.Info.SnapshotID, VolumeGiB: res.Info.VolumeGiB, BlockSize: res.Info.BlockSize,
		Started: res.Started, Finished: res.Finished,
		Listed: res.Listed, Fetched: res.Stored, FetchedBytes: res.Bytes, Resumed: resumed,
		Requests: report.Requests{ListCalls: res.Counts.ListCalls, GetCalls: res.Counts.GetCalls, RetriesByKind: res.Counts.Retries},
	}, awsInfo)
}

// recordEvidence completes the record of an evidence directory from its
// manifest and the layout read from the evidence itself, then saves it.
func recordEvidence(dir string, rec *report.Report, sum store.Summary, changed func(*report.BlockMap) error) error {
	ev, err := store.Open(dir)
	if err != nil {
		return err
	}
	mr, c, err := ev.Manifest()
	if err != nil {
		return err
	}
	defer c.Close()
	return rec.CompleteEvidence(dir, report.EvidenceFacts{
		Blocks: sum.Blocks, Bytes: sum.Bytes, ManifestSHA256: sum.ManifestSHA256.Hex(),
		Manifest: mr, Changed: changed,
		Layout: func() (*inspect.Layout, error) { return inspectPath(dir, &openOptions{}) },
	})
}

// appendStep adds a step to the record of an evidence directory, if it
// has one.
func appendStep(dir string, step report.Step) error { return report.AppendTo(dir, step) }

// newStep starts a step of kind.
func newStep(kind string, started time.Time, err error) report.Step {
	return report.NewStep(tool(), kind, started, err)
}
