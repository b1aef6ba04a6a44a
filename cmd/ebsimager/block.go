package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/outfile"
)

// errNotAllocated: the snapshot does not list the requested block.
var errNotAllocated = errors.New("block is not allocated")

func newBlockCommand(aws *awsOptions) *cobra.Command {
	var (
		out   string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "block SNAPSHOT INDEX --out FILE",
		Short: "Fetch one block, verified (the original tool's --single)",
		Long: `Fetch block INDEX of SNAPSHOT, check it against the SHA-256 AWS served it
with, and write it to FILE. An index the snapshot does not list is an error
that says so; it is never replaced by the next allocated block.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			index, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || index < 0 {
				return usagef("INDEX %q: want a block index, 0 or more", args[1])
			}
			if out == "" {
				return usagef("--out FILE is required")
			}
			if err := checkOutput(&outfile.Inputs{}, out, force); err != nil {
				return err
			}
			ctx := cmd.Context()
			snap, _, err := aws.snapshot(ctx, args[0])
			if err != nil {
				return err
			}
			ref, next, ok, err := snap.Ref(ctx, index)
			if err != nil {
				return err
			}
			if !ok {
				msg := fmt.Errorf("block %d of %s: %w (unlisted blocks read as zeros)", index, snap.ID, errNotAllocated)
				if next >= 0 {
					return withHint(msg, fmt.Sprintf("the next allocated block is %d", next))
				}
				return withHint(msg, "no block at or after that index is allocated")
			}
			buf := make([]byte, block.Size)
			b, err := ebs.NewFetcher(snap, ebs.FetchOptions{}).Fetch(ctx, ref, buf)
			if err != nil {
				return err
			}
			err = atomicfile.Write(out, func(w io.Writer) error {
				_, err := w.Write(b.Data)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "block %d of %s: %d bytes, sha256 %s (verified), written to %s\n",
				index, snap.ID, len(b.Data), b.Sum.Hex(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the block to")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing file")
	return cmd
}
