package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/fsys/disk"
	"github.com/ebsimager/ebsimager/internal/listing"
)

func newTimelineCommand(aws *awsOptions) *cobra.Command {
	var (
		out   string
		force bool
		keys  openOptions
		lo    liveOptions
	)
	cmd := &cobra.Command{
		Use:   "timeline SOURCE [N] [--out FILE]",
		Short: "Write a Sleuth Kit bodyfile of the file systems in evidence, an image or a snapshot",
		Long: `Write a bodyfile in Sleuth Kit's fls -m format,
MD5|name|inode|mode|UID|GID|size|atime|mtime|ctime|crtime, of the file
system of part N (a partition's number, VG/LV, or nothing when the volume
holds a bare file system: see ls), or with no N of every part holding a
file system, each name prefixed with the part: "1:/etc/passwd". mactime
reads it as it reads fls's.

It is built from metadata only (inode tables, the MFT, directories),
never file contents: MD5 is 0. As fls does, a symbolic link's name is
followed by " -> target"; control characters in names become "^", and so
does "|", which would break the format. Deleted entries are not listed.
Parts that hold no readable file system (encrypted, swap, unknown) are
named on stderr.

With --out the bodyfile goes to FILE, written whole or not at all (0600).
SOURCE is what inspect reads (see ls).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			part, all := "", len(args) == 1
			if !all {
				var err error
				if part, err = disk.ParsePart(args[1]); err != nil {
					return usagef("N %w", err)
				}
			}
			if out != "" {
				if err := checkOutputs(args[0], &keys, force, out); err != nil {
					return err
				}
			}
			o := volumeOptions(&keys)
			var err error
			if o.Snapshot, err = lo.opener(aws, args[0]); err != nil {
				return err
			}
			var notes []string
			err = readDisk(cmd.Context(), args[0], o, func(d *disk.Disk) error {
				write := func(w io.Writer) (err error) {
					notes, err = listing.Timeline(d, part, all, w)
					return err
				}
				if out == "" {
					return write(cmd.OutOrStdout())
				}
				return atomicfile.Write(out, write)
			})
			for _, n := range notes {
				fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: note: %s\n", n)
			}
			return lo.finish(cmd.ErrOrStderr(), err)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the bodyfile to `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing FILE")
	keys.addFlags(cmd)
	lo.addFlags(cmd)
	return cmd
}
