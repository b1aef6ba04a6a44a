package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/digest"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/manifest"
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
}

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

--ext4 and --ntfs keep the original tool's flags: the image is rebuilt the
same way (no mkfs, nothing overlaid), then checked to hold that file system,
in the volume or in a partition.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.out == "" {
				return usagef("--out FILE is required")
			}
			if o.format != "raw" {
				return usagef("--format %q: this build writes raw", o.format)
			}
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
	f.StringVar(&o.out, "out", "", "image file to write (with --split: FILE.001, FILE.002, …)")
	f.StringVar(&o.format, "format", "raw", "image format: raw")
	f.StringVar(&o.split, "split", "", "split the image into segments of this size, e.g. 2GiB or 650MB")
	f.StringVar(&o.hashes, "hash", "md5,sha1,sha256", "whole-image hashes to compute")
	f.BoolVar(&o.ext4, "ext4", false, "check that the image holds an ext2/3/4 file system")
	f.BoolVar(&o.ntfs, "ntfs", false, "check that the image holds an NTFS file system")
	f.BoolVar(&o.force, "force", false, "replace an existing image")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	o.keys.addFlags(cmd)
	return cmd
}

type exportResult struct {
	Evidence string            `json:"evidence"`
	Files    []string          `json:"files"`
	Size     int64             `json:"size"`
	Blocks   int64             `json:"blocks"`
	Hashes   map[string]string `json:"hashes"`
	FSCheck  string            `json:"fs_check,omitempty"`
}

func runExport(cmd *cobra.Command, dir string, o *exportOptions, split int64, algs []string) error {
	ev, err := store.Open(dir)
	if err != nil {
		return err
	}
	unseal, err := o.keys.unseal(ev, true)
	if err != nil {
		return err
	}
	size := ev.Meta.VolumeSizeGiB << 30
	w, err := raw.Create(o.out, size, raw.Options{Split: split, Hashes: algs, Force: o.force})
	if err != nil {
		return err
	}
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.json, 5*time.Second)
	start := time.Now()
	var blocks, bytes int64
	err = ev.Blocks(cmd.Context(), unseal, func(e manifest.Entry, data []byte) error {
		blocks++
		bytes += int64(len(data))
		if blocks%256 == 0 {
			status.Update(fmt.Sprintf("exported %d blocks, %s", blocks, ui.Rate(bytes, time.Since(start))))
		}
		return w.WriteBlock(e.Index, data)
	})
	status.Done("")
	if err != nil {
		w.Abort()
		return err
	}
	res, err := w.Close()
	if err != nil {
		return err
	}
	out := exportResult{Evidence: dir, Files: res.Files, Size: res.Size, Blocks: blocks, Hashes: res.Sums}
	if o.ext4 || o.ntfs {
		want := "ntfs"
		if o.ext4 {
			want = "ext"
		}
		where, err := checkFileSystem(res.Files, want)
		if err != nil {
			return err
		}
		out.FSCheck = where
	}
	return printExport(cmd.OutOrStdout(), out, o.json)
}

func printExport(w io.Writer, r exportResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "exported %s: %d blocks into %s (%s)\n", r.Evidence, r.Blocks, r.Files[0], ui.Bytes(r.Size))
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
