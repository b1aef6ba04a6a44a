package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// errNotAllocated: the volume does not hold the requested block.
var errNotAllocated = errors.New("block is not allocated")

func newBlockCommand(aws *awsOptions) *cobra.Command {
	var (
		out   string
		force bool
		keys  openOptions
		lo    liveOptions
	)
	cmd := &cobra.Command{
		Use:   "block SOURCE INDEX --out FILE",
		Short: "Fetch one block, verified (the original tool's --single)",
		Long: `Read block INDEX (512 KiB) of SOURCE, verified, and write it to FILE.

SOURCE is what inspect reads: a snapshot (snap-…, when no file of that
name exists) read live through the EBS direct APIs, its block checked
against the SHA-256 AWS served it with; an evidence directory, its block
checked against the manifest's stored and AWS SHA-256; a raw or split raw
image; or an E01 set, its chunks checked against their checksums.

An index the snapshot or the evidence does not list is an error that says
so and names the next allocated block; it is never replaced by that
block. An image keeps no such list: every index inside it reads, a hole
as zeros, and the last block of an image whose size is not a multiple of
512 KiB is short.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			index, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || index < 0 {
				return usagef("INDEX %q: want a block index, 0 or more", args[1])
			}
			if out == "" {
				return usagef("--out FILE is required")
			}
			var read []string
			if _, err := os.Stat(args[0]); err == nil {
				read = []string{args[0]}
			}
			in, err := readInputs(read, &keys)
			if err != nil {
				return err
			}
			if err := checkOutput(in, out, force); err != nil {
				return err
			}
			o := volumeOptions(&keys)
			if o.Snapshot, err = lo.opener(aws, args[0]); err != nil {
				return err
			}
			data, err := readOneBlock(cmd.Context(), args[0], index, o)
			if err := lo.finish(cmd.ErrOrStderr(), err); err != nil {
				return err
			}
			err = atomicfile.Write(out, func(w io.Writer) error {
				_, err := w.Write(data)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "block %d of %s: %d bytes, sha256 %s (verified), written to %s\n",
				index, args[0], len(data), block.SumOf(data).Hex(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the block to")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing file")
	keys.addFlags(cmd)
	lo.addFlags(cmd)
	return cmd
}

// readOneBlock reads block index of source, verified. An index the
// volume knows is not allocated is errNotAllocated, naming the next
// allocated block; one beyond the volume, *block.BeyondVolumeError.
func readOneBlock(ctx context.Context, source string, index int64, o volume.Options) (_ []byte, err error) {
	v, err := volume.Open(ctx, source, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := v.Close(); err == nil {
			err = cerr
		}
	}()
	ok, next, err := volume.Allocated(ctx, v, index)
	if err != nil {
		return nil, err
	}
	if !ok {
		msg := fmt.Errorf("block %d of %s: %w (unlisted blocks read as zeros)", index, source, errNotAllocated)
		if next >= 0 {
			return nil, withHint(msg, fmt.Sprintf("the next allocated block is %d", next))
		}
		return nil, withHint(msg, "no block at or after that index is allocated")
	}
	data, err := volume.ReadBlock(v, index)
	if err != nil && source != volume.SnapshotID(v) { // a live read's error names the block already
		err = fmt.Errorf("reading block %d of %s: %w", index, source, err)
	}
	return data, err
}
