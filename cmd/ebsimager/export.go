package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/dirlock"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

type exportOptions struct {
	out    string
	format string
	split  string
	hashes string
	ext4   bool
	ntfs   bool
	force  bool
	quiet  bool
	json   bool
	keys   openOptions
	e01    e01Options
	s3     s3Options // --out s3://bucket/prefix/NAME
	s3out  *exportS3
	caseMeta
}

// exportWorkers is one: the image writer and its hashes are the
// bottleneck, and blocks read ahead out of order only fill the reordering
// window (measured: the same wall time, twice the memory with two).
const exportWorkers = 1

func newExportCommand() *cobra.Command {
	o := &exportOptions{}
	cmd := &cobra.Command{
		Use:   "export DIR --out FILE",
		Short: "Rebuild the volume from an evidence directory as a sparse raw image",
		Long: `Rebuild the whole volume held in evidence directory DIR as a sparse raw image
of VolumeSize GiB. Unlisted and all-zero blocks are holes, which read as
zeros, exactly as on a restored volume. Every block is verified as it is
read; the whole-image hashes (MD5, SHA-1 and SHA-256 by default, computed in
parallel in the same pass) are written beside the image, in md5sum/sha1sum/
sha256sum -c format, before the image is renamed into place.

With --format e01, --out BASE writes BASE.E01, BASE.E02, … (zlib chunks of
32 KiB compressed on every core, case metadata in the header sections, MD5
and SHA-1 inside, and BASE.md5, BASE.sha1, BASE.sha256 beside it: E01 has no
place for SHA-256). The case fields default to those given to acquire.

--ext4 and --ntfs keep the original tool's flags: the image is rebuilt the
same way (no mkfs, nothing overlaid), then checked to hold that file system,
in the volume or in a partition.` + exportS3Help,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.out == "" {
				return usagef("--out FILE is required")
			}
			if o.format != "raw" && o.format != "e01" {
				return usagef("--format %q: want raw or e01", o.format)
			}
			if o.format == "e01" && (o.split != "" || o.ext4 || o.ntfs || cmd.Flags().Changed("hash")) {
				return usagef("--split, --hash, --ext4 and --ntfs go with --format raw; an E01 is segmented by --segment-size and always holds MD5, SHA-1 and SHA-256")
			}
			if err := o.e01.refuseUnless(cmd, o.format == "e01", "--format raw (segment it with --split)"); err != nil {
				return err
			}
			if err := o.checkS3(cmd); err != nil {
				return err
			}
			o.e01.replace = o.force
			if o.ext4 && o.ntfs {
				return usagef("give at most one of --ext4 and --ntfs")
			}
			split, err := parseSize(o.split)
			if err != nil {
				return usagef("--split: %v", err)
			}
			algs, err := digest.ParseList(o.hashes)
			if err != nil {
				return usagef("--hash: %v", err)
			}
			return runExport(cmd, args[0], o, split, algs)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "image file to write (with --split: FILE.001, FILE.002, …), or s3://bucket/prefix/NAME")
	f.StringVar(&o.format, "format", "raw", "image format: raw, or e01 (EnCase 6 style EWF: BASE.E01, BASE.E02, …)")
	f.StringVar(&o.split, "split", "", "split the image into segments of at most this size (at least 1MiB, whole 512-byte sectors), e.g. 2GiB or 650MB")
	f.StringVar(&o.hashes, "hash", "md5,sha1,sha256", "whole-image hashes to compute")
	f.BoolVar(&o.ext4, "ext4", false, "check that the image holds an ext2/3/4 file system")
	f.BoolVar(&o.ntfs, "ntfs", false, "check that the image holds an NTFS file system")
	f.BoolVar(&o.force, "force", false, "replace an existing image and its checksum files (regular files only)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	o.keys.addFlags(cmd)
	o.e01.addFlags(cmd)
	o.caseMeta.addFlags(cmd)
	o.s3.addFlags(cmd)
	return cmd
}

type exportResult struct {
	Evidence string            `json:"evidence"`
	Files    []string          `json:"files"`
	Size     int64             `json:"size"`
	Blocks   int64             `json:"blocks"`
	Hashes   map[string]string `json:"hashes"`
	FSCheck  string            `json:"fs_check,omitempty"`
	// Uploaded is the bytes sent to S3 (the objects' sizes).
	Uploaded int64 `json:"uploaded_bytes,omitempty"`
	// Objects are the objects written to S3, as the record lists them.
	Objects []report.ExportObject `json:"objects,omitempty"`
}

func runExport(cmd *cobra.Command, dir string, o *exportOptions, split int64, algs []string) error {
	ev, err := openEvidence(cmd.Context(), dir)
	if err != nil {
		return err
	}
	unseal, err := o.keys.unseal(ev, true)
	if err != nil {
		return err
	}
	size := ev.Meta.VolumeSizeGiB << 30
	if o.format == "raw" {
		if split, err = splitSize(o.split, split, size); err != nil {
			return err
		}
	}
	if !o.s3.on() {
		lock, err := o.claim(ev, size, split)
		if err != nil {
			return err
		}
		defer lock.Release()
	}
	defer o.s3out.close()
	w, err := o.create(cmd.Context(), ev, size, split, algs)
	if err != nil {
		return err
	}
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.json, 5*time.Second)
	start := time.Now()
	out, img, err := o.write(cmd, ev, unseal, w, status)
	step := newStep(report.StepExport, start, err)
	if err == nil {
		step.Export = &report.Export{Format: o.format, Segments: out.Files, Size: out.Size, Blocks: out.Blocks, Hashes: out.Hashes, FileSystemCheck: out.FSCheck}
		if o.s3.on() {
			err = o.s3out.record(cmd.Context(), &out, step.Export, img.Files, img.HashFiles, o.s3.lock)
			out.Objects = step.Export.Objects
		}
	}
	if ev.Bucket != nil {
		// Evidence in S3 is written once: the step goes in a run object.
		if rerr := recordExportS3(cmd.Context(), ev.Bucket, step); rerr != nil && err == nil {
			err = unrecordedError{fmt.Errorf("the image is complete, but the export could not be recorded in %s: %w", ev.Bucket, rerr)}
		}
	} else if rerr := appendStep(dir, step); rerr != nil && err == nil {
		err = fmt.Errorf("recording the export: %w", rerr)
	}
	if err != nil {
		return err
	}
	return printExport(cmd.OutOrStdout(), out, o.json)
}

// write runs the verified blocks of ev into the image on the acquire
// pipeline, and finishes it.
func (o *exportOptions) write(cmd *cobra.Command, ev *store.Evidence, unseal store.Unseal, w sink.Sink, status *ui.Status) (exportResult, sink.Result, error) {
	run := acquire.New(acquire.NewEvidence(ev, unseal), acquire.Options{Workers: exportWorkers, Progress: drawProgress(status)})
	res, err := run.Run(cmd.Context(), w)
	status.Done("")
	if err != nil {
		w.Abort()
		return exportResult{}, sink.Result{}, err
	}
	img, err := w.Close()
	if err != nil {
		return exportResult{}, sink.Result{}, err
	}
	out := exportResult{Evidence: ev.Dir, Files: img.Files, Size: ev.Meta.VolumeSizeGiB << 30, Blocks: res.Stored, Hashes: img.Hashes}
	if o.ext4 || o.ntfs {
		want := "ntfs"
		if o.ext4 {
			want = "ext"
		}
		where, err := checkFileSystem(img.Files, want)
		if err != nil {
			return exportResult{}, sink.Result{}, err
		}
		out.FSCheck = where
	}
	return out, img, nil
}

func printExport(w io.Writer, r exportResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	size := imageSizeText(r.Files, r.Size)
	if r.Uploaded > 0 {
		size = uploadedText(r)
	}
	fmt.Fprintf(w, "exported %s: %s into %s (%s)\n", r.Evidence, ui.Plural(r.Blocks, "block"), r.Files[0], size)
	for _, f := range r.Files[1:] {
		fmt.Fprintf(w, "  segment %s\n", f)
	}
	for _, alg := range digest.Algorithms() {
		if v, ok := r.Hashes[alg]; ok {
			fmt.Fprintf(w, "  %-7s %s\n", alg, v)
		}
	}
	if r.FSCheck != "" {
		fmt.Fprintf(w, "  file system: %s\n", r.FSCheck)
	}
	return nil
}

// claim makes the output image this export's for its whole run (see
// claimImage). What it reads is the evidence directory and the key files:
// no output may be one of them or lie inside the evidence.
func (o *exportOptions) claim(ev *store.Evidence, size, split int64) (*dirlock.Lock, error) {
	dirs := []string{ev.Dir}
	if ev.Bucket != nil {
		dirs = nil // read from S3: no local input to protect
	}
	in, err := readInputs(dirs, &o.keys)
	if err != nil {
		return nil, err
	}
	if o.format == "e01" {
		base := e01Base(o.out)
		return claimImage(in, e01Lock(base), "export", o.force, func() ([]string, error) { return ewf.SinkOutputs(base) },
			func() ([]string, error) { return ewf.RemoveTemps(base) })
	}
	return claimImage(in, o.out+".lock", "export", o.force,
		func() ([]string, error) { return raw.Outputs(o.out, size, split) },
		func() ([]string, error) { return raw.RemovePartials(o.out) })
}

// create opens the output image as a sink.
func (o *exportOptions) create(ctx context.Context, ev *store.Evidence, size, split int64, algs []string) (sink.Sink, error) {
	if o.s3.on() {
		return o.createS3(ctx, ev, size, split, algs)
	}
	if o.format == "e01" {
		opts, err := o.e01.options(e01Metadata(ev.Meta.SnapshotID, mergeCase(ev.Meta.Case, &o.caseMeta), ev.Meta.CreatedAt))
		if err != nil {
			return nil, err
		}
		return ewf.CreateSink(e01Base(o.out), size, opts)
	}
	return raw.CreateSink(o.out, size, raw.Options{Split: split, Hashes: algs, Force: o.force})
}
