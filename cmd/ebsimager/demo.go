package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
)

// demoSnapshot is the id the demo serves the sample disk under.
const demoSnapshot = "snap-0de0000000000000d"

// stepArgs is the command line of the demo step running, if one is.
var stepArgs []string

// commandLine is the command line the chain-of-custody record names: the
// process's own, or, inside the demo, the step's (as if typed).
func commandLine() []string {
	if stepArgs != nil {
		return stepArgs
	}
	return os.Args
}

func newDemoCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole job on the built-in emulator and sample disk (no AWS needed)",
		Long: `Start the built-in EBS direct API emulator on a free loopback port, serving
a small real disk (GPT, an ext4 and an NTFS partition with a few files) as a
snapshot, then run ebsimager against it exactly as against AWS: budget,
acquire, verify, export to raw and E01, verify the E01 and inspect the
evidence; the evidence directory also gets its chain-of-custody report. Needs no AWS account, credentials or network.
Everything it writes goes under --dir (default: a new temporary directory).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd, dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the demo's output (default: a new temporary directory)")
	return cmd
}

// demoOutputs are where the demo's steps write.
type demoOutputs struct{ evidence, image, e01, triage string }

// demoStep is one command the demo runs, with what it shows.
type demoStep struct {
	title string
	args  []string
}

func runDemo(cmd *cobra.Command, dir string) error {
	out := cmd.OutOrStdout()
	dir, err := demoDir(dir)
	if err != nil {
		return err
	}
	demoHeading(out, "sample disk")
	disk, err := sampledisk.Extract(dir)
	if err != nil {
		return fmt.Errorf("extracting the sample disk: %w", err)
	}
	diskSum, err := fileSHA256(disk)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %d GiB, GPT with ext4 and NTFS partitions, sha256 %s\n", disk, sampledisk.VolumeGiB, diskSum)

	demoHeading(out, "emulator")
	srv := emulator.New(emulator.Options{})
	defer srv.Close()
	if err := srv.AddRawImage(demoSnapshot, disk, emulator.RawOptions{}); err != nil {
		return err
	}
	endpoint, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "EBS direct APIs emulated at %s, serving %s\n", endpoint, demoSnapshot)
	setDemoCredentials()
	o := demoOutputs{evidence: filepath.Join(dir, "evidence"), image: filepath.Join(dir, "image.raw"), e01: filepath.Join(dir, "image"),
		triage: filepath.Join(dir, "triage")}
	global := []string{"--region", "us-east-1", "--endpoint-url", endpoint}
	for _, s := range demoSteps(o) {
		if err := runDemoStep(cmd, s, global); err != nil {
			return err
		}
	}
	return demoResult(out, o, diskSum, srv.Counters())
}

// demoDir makes dir, or a new temporary directory when it is empty.
func demoDir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "ebsimager-demo-")
	}
	return dir, os.MkdirAll(dir, 0o700)
}

func demoHeading(out io.Writer, format string, args ...any) {
	fmt.Fprintf(out, "\n== "+format+"\n", args...)
}

// setDemoCredentials gives the demo fake static credentials and no
// instance-metadata probing: it needs no AWS account.
func setDemoCredentials() {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "emulator", "AWS_SECRET_ACCESS_KEY": "emulator", "AWS_SESSION_TOKEN": "",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "", "AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_EBS": "",
	} {
		os.Setenv(k, v)
	}
}

// demoSteps is the job the demo runs, in order.
func demoSteps(o demoOutputs) []demoStep {
	return []demoStep{
		{"ls: a directory, read straight out of the snapshot (no acquisition yet)", []string{"ls", demoSnapshot, "1:/etc", "-l"}},
		{"cat: one file's exact bytes, fetching only the blocks that hold it", []string{"cat", demoSnapshot, "1:/etc/hostname"}},
		{"triage: the artifacts of the built-in profiles, with their hashes and a record", []string{"triage", demoSnapshot, "--out", o.triage}},
		{"budget: what the acquisition will cost", []string{"budget", demoSnapshot}},
		{"acquire: every block, verified, into an evidence directory", []string{"acquire", demoSnapshot, "--out", o.evidence, "--quiet",
			"--case-number", "DEMO-1", "--examiner", "ebsimager demo", "--description", "built-in sample disk"}},
		{"verify: re-check the evidence against its manifest", []string{"verify", o.evidence, "--quiet"}},
		{"export: rebuild the volume as a sparse raw image", []string{"export", o.evidence, "--out", o.image, "--ext4", "--quiet"}},
		{"export: and as an E01 that EnCase, FTK, X-Ways and Autopsy open", []string{"export", o.evidence, "--format", "e01", "--out", o.e01, "--quiet"}},
		{"verify: recompute the E01's hashes, as ewfverify does, and compare every record of them", []string{"verify", o.e01 + ".E01", "--quiet"}},
		{"inspect: partitions and file systems, read straight from the evidence", []string{"inspect", o.evidence}},
	}
}

// runDemoStep runs one step as its own ebsimager command line.
func runDemoStep(cmd *cobra.Command, s demoStep, global []string) error {
	out := cmd.OutOrStdout()
	demoHeading(out, "%s", s.title)
	fmt.Fprintf(out, "$ ebsimager %s\n", shellJoin(s.args))
	root := newRootCommand()
	args := append(append([]string{}, global...), s.args...)
	root.SetArgs(args)
	stepArgs = append([]string{"ebsimager"}, args...) // the record names this step's command, not the demo's
	defer func() { stepArgs = nil }()
	root.SetOut(out)
	root.SetErr(cmd.ErrOrStderr())
	if err := root.ExecuteContext(cmd.Context()); err != nil {
		return fmt.Errorf("demo step %q: %w", s.args[0], err)
	}
	return nil
}

// demoResult checks the exported image against the sample disk and says
// where everything is.
func demoResult(out io.Writer, o demoOutputs, diskSum string, c emulator.Counters) error {
	demoHeading(out, "result")
	imageSum, err := fileSHA256(o.image)
	if err != nil {
		return err
	}
	if imageSum != diskSum {
		return mismatchError{fmt.Sprintf("exported image sha256 %s differs from the sample disk's %s", imageSum, diskSum)}
	}
	fmt.Fprintf(out, "the exported image is bit-identical to the sample disk (sha256 %s)\n", imageSum)
	fmt.Fprintf(out, "evidence directory: %s\n", o.evidence)
	fmt.Fprintf(out, "raw image:          %s (hashes beside it in .md5, .sha1, .sha256)\n", o.image)
	fmt.Fprintf(out, "E01 image:          %s.E01 (check it with: ewfverify %s.E01)\n", o.e01, o.e01)
	fmt.Fprintf(out, "chain of custody:   %s (and report.txt, report.json)\n", filepath.Join(o.evidence, "report.html"))
	fmt.Fprintf(out, "emulator served %d List and %d Get requests (%d bytes)\n",
		c.Total("ListSnapshotBlocks"), c.Total("GetSnapshotBlock"), c.BytesServed)
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$") {
			a = "'" + a + "'"
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}
