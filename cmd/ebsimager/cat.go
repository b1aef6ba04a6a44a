package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/fsys/disk"
	"github.com/ebsimager/ebsimager/internal/listing"
)

func newCatCommand(aws *awsOptions) *cobra.Command {
	var (
		out   string
		force bool
		keys  openOptions
		lo    liveOptions
	)
	cmd := &cobra.Command{
		Use:   "cat SOURCE PATH [--out FILE]",
		Short: "Write the bytes of a file in evidence, an image or a snapshot",
		Long: `Write the exact bytes of the file (or NTFS named stream) PATH of a file
system on SOURCE to stdout, or with --out to FILE and its SHA-256 to
FILE.sha256 beside it (coreutils format: sha256sum -c FILE.sha256 checks
it). Both are written whole or not at all (0600): never a half-written
file under the final name. Holes read as zeros.

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
			if out != "" {
				if err := checkOutputs(args[0], &keys, force, out, out+".sha256"); err != nil {
					return err
				}
			}
			o := volumeOptions(&keys)
			if o.Snapshot, err = lo.opener(aws, args[0]); err != nil {
				return err
			}
			var sum string
			err = readDisk(cmd.Context(), args[0], o, func(d *disk.Disk) error {
				if out == "" {
					_, err := listing.Cat(d, p, cmd.OutOrStdout())
					return err
				}
				sum, err = catToFile(d, p, out)
				return err
			})
			if err := lo.finish(cmd.ErrOrStderr(), err); err != nil {
				return err
			}
			if out != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "ebsimager: %s written to %s, sha256 %s in %s.sha256\n", args[1], out, sum, out)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the bytes to `FILE`, and their SHA-256 to FILE.sha256")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing FILE")
	keys.addFlags(cmd)
	lo.addFlags(cmd)
	return cmd
}

// checkOutputs refuses outputs that exist (without force) or that are
// what the command reads.
func checkOutputs(source string, keys *openOptions, force bool, outs ...string) error {
	var read []string
	if _, err := os.Stat(source); err == nil {
		read = []string{source}
	}
	in, err := readInputs(read, keys)
	if err != nil {
		return err
	}
	for _, o := range outs {
		if err := checkOutput(in, o, force); err != nil {
			return err
		}
	}
	return nil
}

// catToFile writes the file p to out and its SHA-256 to out.sha256,
// each atomically, and returns the hash.
func catToFile(d *disk.Disk, p disk.Path, out string) (string, error) {
	h := sha256.New()
	err := atomicfile.Write(out, func(w io.Writer) error {
		_, err := listing.Cat(d, p, io.MultiWriter(w, h))
		return err
	})
	if err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	line := fmt.Sprintf("%s  %s\n", sum, filepath.Base(out))
	if err := atomicfile.WriteBytes(out+".sha256", []byte(line)); err != nil {
		return "", fmt.Errorf("writing %s.sha256: %w", out, err)
	}
	return sum, nil
}
