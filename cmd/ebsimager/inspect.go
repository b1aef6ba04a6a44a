package main

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/volume"
)

func newInspectCommand(aws *awsOptions) *cobra.Command {
	var (
		asJSON bool
		keys   openOptions
		lo     liveOptions
	)
	cmd := &cobra.Command{
		Use:   "inspect DIR|IMAGE|SNAPSHOT",
		Short: "Show the partitions and file systems of evidence, an image or a snapshot",
		Long: `Read the partition table (GPT or MBR) of the volume held in evidence
directory DIR, or in an image: raw (FILE, or split FILE.001, FILE.002, …)
or E01 (BASE.E01, told apart from a raw image by its signature), or of
snapshot SNAPSHOT (snap-…, when no file of that name exists) read live
through the EBS direct APIs, and identify the file system of each
partition: type, label, UUID or serial, sizes and the facts of its
superblock.

The volume is read in place, and only where the partition table and the
file system headers live. An evidence directory's blocks are each found
in the manifest, checked against their stored SHA-256 and their AWS
SHA-256; blocks the snapshot does not list read as zeros. An E01's
chunks are checked against their checksums. A snapshot is not acquired:
only the regions read are listed and only the blocks they need fetched,
each checked against the SHA-256 AWS serves it with, and kept in memory
within --cache; the calls made are printed on stderr. Nothing is
rebuilt. With --save-blocks DIR, every block fetched is also stored in
evidence directory DIR, as acquire --out DIR would store it, and the read
is recorded there: a later acquire --out DIR fetches only the rest.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := volumeOptions(&keys)
			var err error
			if o.Snapshot, err = lo.opener(aws, args[0]); err != nil {
				return err
			}
			l, err := inspectSource(cmd.Context(), args[0], o)
			if err := lo.finish(cmd.ErrOrStderr(), err); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(l)
			}
			var b bytes.Buffer
			l.Text(&b)
			_, err = w.Write(b.Bytes())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the layout as JSON (the report's schema)")
	keys.addFlags(cmd)
	lo.addFlags(cmd)
	return cmd
}

// inspectPath reads the layout of the volume at source (an evidence
// directory, a raw or split raw image, an E01 set).
func inspectPath(source string, keys *openOptions) (*inspect.Layout, error) {
	return inspectSource(context.Background(), source, volumeOptions(keys))
}

// inspectSource reads the layout of the volume at source.
func inspectSource(ctx context.Context, source string, o volume.Options) (_ *inspect.Layout, err error) {
	v, err := volume.Open(ctx, source, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := v.Close(); err == nil {
			err = cerr // a live read's blocks stored in --save-blocks are made durable here
		}
	}()
	return inspect.Inspect(v, v.Size())
}
