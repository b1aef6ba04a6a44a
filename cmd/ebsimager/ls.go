package main

import (
	"bytes"
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/fsys/disk"
	"github.com/ebsimager/ebsimager/internal/listing"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// pathsHelp is how ls and cat take a path; the README and DESIGN.md say
// the same.
const pathsHelp = `PATH is N:/path, N the partition's number as inspect shows it (1, or p1
as Linux names it; MBR logical partitions from 5); VG/LV:/path for an
LVM2 linear logical volume (rootvg/root:/etc); or /path when the volume
holds exactly one file system (a bare file system with no partition
table, or one partition or LV holding ext, XFS, NTFS, FAT or exFAT).
An NTFS named data stream is N:/path:stream ($Extend/$UsnJrnl:$J).
Symbolic links are shown, never followed. File systems are read as they
are on disk: no journal is replayed. Encrypted partitions (LUKS,
BitLocker) are reported, never read.`

func newLsCommand(aws *awsOptions) *cobra.Command {
	var (
		long, recursive, asJSON bool
		keys                    openOptions
		lo                      liveOptions
	)
	cmd := &cobra.Command{
		Use:   "ls SOURCE PATH",
		Short: "List a directory of a file system in evidence, an image or a snapshot",
		Long: `List the directory PATH (or the one file it names) of a file system on
SOURCE, reading only its metadata: names, or with -l the type and mode,
owner, size, the four times (UTC) and the inode or MFT address Sleuth
Kit prints; -r lists everything below it; --json prints one JSON
document with every field.

SOURCE is what inspect reads: an evidence directory, a raw or split raw
image, an E01 set, or a snapshot (snap-…) read live, only the blocks
needed fetched and verified (the calls made are printed on stderr).

` + pathsHelp,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := parseFSPath(args[1])
			if err != nil {
				return err
			}
			o := volumeOptions(&keys)
			if o.Snapshot, err = lo.opener(aws, args[0]); err != nil {
				return err
			}
			var l *listing.Listing
			err = readDisk(cmd.Context(), args[0], o, func(d *disk.Disk) (err error) {
				l, err = listing.List(d, p, recursive)
				return err
			})
			if err := lo.finish(cmd.ErrOrStderr(), err); err != nil {
				return err
			}
			var b bytes.Buffer
			if asJSON {
				err = l.JSON(&b)
			} else {
				err = l.Text(&b, long)
			}
			if err == nil {
				_, err = cmd.OutOrStdout().Write(b.Bytes())
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show type, mode, owner, size, times and address")
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "list everything below the directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	keys.addFlags(cmd)
	lo.addFlags(cmd)
	return cmd
}

// parseFSPath parses a PATH argument; a malformed one is a usage error.
func parseFSPath(s string) (disk.Path, error) {
	p, err := disk.ParsePath(s)
	if err != nil {
		return p, usagef("PATH %w", err)
	}
	return p, nil
}

// readDisk opens source, lists its parts and runs fn on them, then
// closes the volume. A path without a part on a volume that holds more
// than one file system is a usage error.
func readDisk(ctx context.Context, source string, o volume.Options, fn func(*disk.Disk) error) (err error) {
	v, err := volume.Open(ctx, source, o)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := v.Close(); err == nil {
			err = cerr // a live read's blocks stored in --save-blocks are made durable here
		}
	}()
	d, err := disk.Open(v)
	if err != nil {
		return err
	}
	err = fn(d)
	if errors.Is(err, disk.ErrAmbiguous) {
		return usageError{err}
	}
	return err
}
