package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/mount"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/volume"
)

func newMountCommand(aws *awsOptions) *cobra.Command {
	var (
		keys      openOptions
		lo        liveOptions
		pathStyle bool
	)
	cmd := &cobra.Command{
		Use:   "mount SOURCE MOUNTPOINT",
		Short: "Mount a snapshot, evidence or an image read-only (FUSE) as disk.raw and pN.raw",
		Long: `Mount SOURCE read-only on MOUNTPOINT, an empty directory, with FUSE. SOURCE
is a snapshot (snap-…, read live through the EBS direct APIs), an evidence
directory or evidence in S3 (s3://bucket/prefix/), a raw image (FILE, or split FILE.001, FILE.002, …) or an E01
set. The mount holds disk.raw, the whole volume at its exact size, and
pN.raw for each partition inspect lists (p1, p2, … as Linux numbers them;
MBR logical partitions from p5), so the Sleuth Kit, mount -o ro,loop,
bulk_extractor, grep and every other tool read the volume in place (loop
mount an ext3/4 partition with -o ro,loop,noload, so its journal is not
replayed in memory).

Only what a tool reads is read: a snapshot fetches just those blocks,
each checked against the SHA-256 AWS serves it with; evidence blocks and
E01 chunks are checked as they are read. A block that fails its check is
an I/O error (EIO) to the tool, never wrong bytes, and is named on stderr.
Nothing can be written: the files are 0444, the directory 0555, and every
change is refused with EROFS. Every time stamp is the time of the mount.

The command stays in the foreground and prints one line on stderr when
the mount is ready:

  ebsimager: mounted SOURCE at MOUNTPOINT: disk.raw, p1.raw, …; Ctrl-C or fusermount3 -u MOUNTPOINT to end

It ends, exit 0, on Ctrl-C, SIGTERM or fusermount3 -u MOUNTPOINT: it
unmounts (lazily when a file in the mount is still open) and closes the
source. For a snapshot it then prints the List and Get calls made, the
blocks and bytes fetched and their cost. With --cache DIR every block
fetched is also stored, verified, in evidence directory DIR, and the read
is recorded there: a later acquire SNAPSHOT --out DIR fetches only the
rest.

A MOUNTPOINT that does not exist, is not a directory or is not empty is
exit 2; FUSE missing (no /dev/fuse, no fusermount3) is exit 1.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			source, dir := args[0], args[1]
			if size, err := parseSize(lo.cache); err != nil || size < 1<<20 {
				return usagef("--memory %q: want a size of at least 1MiB", lo.cache)
			}
			if lo.saveBlocks != "" && !isSnapshotName(source) {
				return usagef("--cache: %s is not a snapshot; only blocks read live from a snapshot (snap-…) are kept", source)
			}
			if err := mountable(dir); err != nil {
				return err
			}
			if pathStyle && !s3store.IsURL(source) {
				return usagef("--s3-path-style applies to s3://bucket/prefix/")
			}
			o := volumeOptionsS3(&keys, pathStyle)
			var err error
			if o.Snapshot, err = lo.opener(aws, source); err != nil {
				return err
			}
			err = mountSource(cmd, source, dir, o)
			var other *store.OtherSnapshotError
			switch {
			case errors.As(err, &other):
				err = withHint(err, "choose another --cache directory")
			case errors.Is(err, mount.ErrUnavailable):
				err = withHint(err, fuseHint)
			}
			return lo.finish(cmd.ErrOrStderr(), err)
		},
	}
	keys.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&lo.saveBlocks, "cache", "", "also store every block read from a snapshot in evidence directory `DIR`, as acquire --out DIR would; a later acquire --out DIR fetches only the rest")
	f.StringVar(&lo.cache, "memory", "256MiB", "memory for the blocks of a snapshot read live (snap-…)")
	f.BoolVar(&pathStyle, "s3-path-style", false, s3PathStyleUsage)
	return cmd
}

// fuseHint is the hint of a mount FUSE could not make.
const fuseHint = "a mount needs /dev/fuse, fusermount3 (Debian and Ubuntu: apt install fuse3) and, in a container, the right to mount"

// isSnapshotName reports whether source names a snapshot, not a file.
func isSnapshotName(source string) bool {
	_, err := os.Stat(source)
	return err != nil && block.CheckSnapshotID(source) == nil
}

// mountable checks, before the source is opened, that dir can be
// mounted on and that FUSE is here.
func mountable(dir string) error {
	err := mount.CheckMountPoint(dir)
	var mp *mount.MountPointError
	switch {
	case errors.As(err, &mp):
		return withHint(usageError{err}, "give an empty directory: mkdir "+dir)
	case errors.Is(err, syscall.ENOTCONN):
		return withHint(err, "a mount that ended uncleanly is still there: fusermount3 -u "+dir)
	case err != nil:
		return err
	}
	if err := mount.Available(); err != nil {
		return withHint(err, fuseHint)
	}
	return nil
}

// mountSource opens source, reads its partition table and serves it on
// dir until the command is interrupted or the mount is ended.
func mountSource(cmd *cobra.Command, source, dir string, o volume.Options) (err error) {
	v, err := volume.Open(cmd.Context(), source, o)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := v.Close(); err == nil {
			err = cerr // a live read's blocks stored in --cache are made durable here
		}
	}()
	l, err := inspect.Inspect(v, v.Size())
	if err != nil {
		return err
	}
	files := mount.Files(v.Size(), l)
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	w := cmd.ErrOrStderr()
	warn := func(err error) { fmt.Fprintf(w, "ebsimager: %v\n", err) }
	return mount.Serve(cmd.Context(), dir, v, files, mount.Options{
		Ready: func() {
			fmt.Fprintf(w, "ebsimager: mounted %s at %s: %s; Ctrl-C or fusermount3 -u %s to end\n", source, dir, strings.Join(names, ", "), dir)
		},
		ReadError: warn,
		Detached:  warn,
	})
}
