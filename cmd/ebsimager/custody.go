package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/awsctx"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/store"
)

// gatherContext asks STS who is acquiring and EC2 what the snapshot is,
// in the background while the acquisition runs; denied calls are
// recorded, never fatal.
func gatherContext(ctx context.Context, cfg aws.Config, id string) func() report.AWS {
	done := make(chan report.AWS, 1)
	go func() { done <- awsctx.Gather(ctx, cfg, id) }()
	return func() report.AWS { return <-done }
}

// acquisitionRecord is the chain-of-custody record of a finished
// acquisition.
func acquisitionRecord(kind, location string, meta map[string]string, res acquire.Result, resumed int64, awsInfo report.AWS) *report.Report {
	rec := report.New(res.Info.SnapshotID, res.Info.VolumeGiB, res.Info.BlockSize, kind, location)
	rec.Case = report.CaseFromFields(meta)
	run := report.NewRun(toolVersion(), commandLine(), res.Started)
	run.FinishedAt = res.Finished
	rec.Acquisition = &report.Acquisition{
		Run: run, AWS: awsInfo,
		Blocks: res.Listed, Bytes: (res.Listed) * int64(res.Info.BlockSize),
		FetchedBlocks: res.Stored, FetchedBytes: res.Bytes, ResumedBlocks: resumed,
		Requests: report.Requests{ListCalls: res.Counts.ListCalls, GetCalls: res.Counts.GetCalls,
			RetriesByKind: res.Counts.Retries, ErrorsByKind: map[string]int64{}},
	}
	return rec
}

// recordEvidence completes the record of an evidence directory: the
// manifest's totals and SHA-256, the block map, and the partitions and
// file systems (read from the evidence itself), then saves it.
func recordEvidence(dir string, rec *report.Report, sum store.Summary, changed func(*report.BlockMap) error) error {
	rec.Acquisition.Blocks, rec.Acquisition.Bytes = sum.Blocks, sum.Bytes
	rec.Acquisition.ManifestSHA256 = sum.ManifestSHA256.Hex()
	ev, err := store.Open(dir)
	if err != nil {
		return err
	}
	mr, c, err := ev.Manifest()
	if err != nil {
		return err
	}
	rec.BlockMap = report.NewBlockMap(block.Slots(rec.Evidence.VolumeSizeGiB))
	err = rec.BlockMap.AddManifest(mr)
	c.Close()
	if err == nil && changed != nil {
		err = changed(rec.BlockMap)
	}
	if err != nil {
		return fmt.Errorf("mapping blocks: %w", err)
	}
	layout, err := inspectPath(dir, &openOptions{})
	if err != nil {
		rec.LayoutError = err.Error()
	} else {
		rec.Layout = layout
	}
	// Running acquire again on complete evidence renews the record of the
	// acquisition; what was done to the evidence since stays recorded.
	if old, err := report.Load(dir); err == nil {
		for _, s := range old.Steps {
			if err := rec.AppendStep(s); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return rec.Save(dir)
}

// appendStep adds a step to the record of an evidence directory, if it
// has one; evidence acquired before records existed has none to extend.
func appendStep(dir string, step report.Step) error {
	rec, err := report.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := rec.AppendStep(step); err != nil {
		return err
	}
	return rec.Save(dir)
}

// newStep starts a step of kind.
func newStep(kind string, started time.Time, err error) report.Step {
	s := report.Step{Kind: kind, Run: report.NewRun(toolVersion(), commandLine(), started), Outcome: "ok"}
	s.Run.FinishedAt = time.Now()
	if err != nil {
		s.Outcome, s.Error = "failed", err.Error()
	}
	return s
}
