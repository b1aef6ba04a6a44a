package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/acquire"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/snap4n6ir"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// importRegion is recorded when --region does not say where the snapshot
// was: the original tool's folders do not.
const importRegion = "unknown"

// maxIgnoredNames bounds the stray names of the source folder reported.
const maxIgnoredNames = 10

// maxImportFailures bounds the failed blocks named in full; the rest are
// counted.
const maxImportFailures = 20

type importOptions struct {
	out      string
	saltFile string
	force    bool
	quiet    bool
	json     bool
	caseMeta
	seal sealOptions
	s3   s3Options
}

func newImport4n6irCommand() *cobra.Command {
	o := &importOptions{}
	cmd := &cobra.Command{
		Use:   "import-4n6ir SRC --out DIR|s3://bucket/prefix/",
		Short: "Turn a folder written by Snapshot 4n6ir Imager into evidence (a directory or S3)",
		Long: `Read a block folder that Snapshot 4n6ir Imager, the tool ebsimager
succeeds, wrote, in any of its three forms: SRC/ with plain block files,
SRC_compressed/ with .gz files, or SRC_encrypted/ with Fernet tokens. Each
block is checked against the SHA-256 in its file name (the original tool
computed it locally; AWS's own checksum was not kept), then stored in
evidence directory DIR as acquire would store it, with --compress and
--encrypt as there. evidence.json, the manifest and the chain-of-custody
record (report.json, .txt, .html) state the provenance: imported from
this folder, hashes from the file names, no AWS checksum; verify says so
too.

An entry whose name looks like a block file's but is not one the
original tool wrote (upper-case hex, eleven digits, a directory, a
volume beyond 64 TiB) is an error naming it (exit 7); other entries
(.DS_Store, notes) are listed as ignored.

For an encrypted folder the password comes from --passphrase-file,
` + codec.PassphraseEnv + ` or a prompt, and the salt from --salt-file,
` + snap4n6ir.SaltEnv + ` or a prompt; neither is ever a flag value. With
--encrypt and no recipient, the same passphrase also protects the new
key file. A password and salt that open no token name the first block
and write nothing (exit 10); a token that does not open while others do
was altered, and is named as a verification failure (exit 4).

The Region is recorded as "` + importRegion + `" unless --region gives it;
the evidence's endpoint records the source folder.

With --out s3://bucket/prefix/, the evidence is written to S3 as acquire
--out s3://… writes it (each object once, with the SHA-256 S3 checks;
--object-lock, --retain-until, --retain-days, --legal-hold and
--s3-path-style as there; --encrypt to --recipient keys only), and a
rerun imports only the blocks the prefix does not hold yet.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.out == "" {
				return usagef("--out DIR is required")
			}
			if err := o.s3.check(cmd, o.out, time.Now()); err != nil {
				return err
			}
			if o.s3.on() && o.force {
				return usagef("--force cannot replace evidence in a bucket: its objects are never deleted; import under another prefix")
			}
			if o.s3.on() && o.seal.encrypting() && len(o.seal.recipients)+len(o.seal.recipientsFiles) == 0 {
				return usagef("--out s3://… encrypts to --recipient/--recipients-file keys only: a passphrase's key file is not written to a bucket")
			}
			return runImport(cmd.Context(), cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "evidence directory to create (or resume), or s3://bucket/prefix/")
	f.StringVar(&o.saltFile, "salt-file", "", "read the salt of an encrypted folder from this file (else "+snap4n6ir.SaltEnv+", else a prompt)")
	f.BoolVar(&o.force, "force", false, "replace evidence of another snapshot in DIR")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress (the summary is still printed)")
	f.BoolVar(&o.json, "json", false, "print a JSON summary at the end")
	o.caseMeta.addFlags(cmd)
	o.seal.addFlags(cmd)
	o.s3.addFlags(cmd)
	return cmd
}

// importSummary is what --json prints.
type importSummary struct {
	Source         string   `json:"source"`
	SourceForm     string   `json:"source_form"`
	SnapshotID     string   `json:"snapshot_id"`
	Region         string   `json:"region"`
	Output         string   `json:"output"`
	VolumeSizeGiB  int64    `json:"volume_size_gib"`
	Blocks         int64    `json:"blocks"`
	Imported       int64    `json:"imported"`
	Resumed        int64    `json:"resumed"`
	Stored         string   `json:"stored_as"`
	Ignored        []string `json:"ignored,omitempty"` // the first few other names in the folder
	IgnoredCount   int      `json:"ignored_count,omitempty"`
	ManifestSHA256 string   `json:"manifest_sha256"`
	Seconds        float64  `json:"seconds"`
}

func runImport(ctx context.Context, cmd *cobra.Command, src string, o *importOptions) error {
	folder, err := snap4n6ir.Scan(src)
	if err != nil {
		return err
	}
	var key *snap4n6ir.Key
	if folder.Form == snap4n6ir.Encrypted {
		if key, err = fernetKey(o); err != nil {
			return err
		}
	}
	// A block that opens and matches its name proves the password and
	// salt before anything is written.
	blocks, err := acquire.NewFolder(folder, key)
	if err != nil {
		return keyHint(err)
	}
	region := importRegion
	if f := cmd.Flag("region"); f != nil && f.Value.String() != "" {
		region = f.Value.String()
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	if o.s3.on() {
		// Nothing is removed from a bucket: a failed import's objects
		// stay for a rerun, with no manifest.
		return keyHint(importInto(ctx, cmd, folder, blocks, region, abs, o))
	}
	_, statErr := os.Stat(o.out)
	created := errors.Is(statErr, fs.ErrNotExist)
	unlock, err := lockEvidenceDir(o.out, "import-4n6ir")
	if err != nil {
		return err
	}
	defer unlock()
	err = importInto(ctx, cmd, folder, blocks, region, abs, o)
	var unrecorded unrecordedError
	if err != nil && created && !errors.Is(err, context.Canceled) && !errors.As(err, &unrecorded) {
		// Nothing of a failed import stays behind; an interrupted one
		// resumes.
		if rerr := os.RemoveAll(o.out); rerr != nil {
			return errors.Join(err, fmt.Errorf("removing %s: %w", o.out, rerr))
		}
	}
	return keyHint(err)
}

// keyHint adds what to check to a wrong password or salt.
func keyHint(err error) error {
	if errors.Is(err, codec.ErrWrongKey) {
		return withHint(err, "check the password and the salt ("+snap4n6ir.SaltEnv+" or --salt-file)")
	}
	return err
}

// fernetKey derives the original tool's key from the password and salt.
func fernetKey(o *importOptions) (*snap4n6ir.Key, error) {
	pass, err := codec.ReadPassphrase(o.seal.passphraseFile, os.Getenv, ui.TerminalPrompt("password of the encrypted folder", false))
	if err != nil {
		return nil, withHint(err, "give --passphrase-file FILE, set "+codec.PassphraseEnv+", or run on a terminal")
	}
	salt, err := snap4n6ir.ReadSalt(o.saltFile, os.Getenv, ui.TerminalPrompt("salt", false))
	if err != nil {
		return nil, withHint(err, "give --salt-file FILE, set "+snap4n6ir.SaltEnv+", or run on a terminal")
	}
	return snap4n6ir.DeriveKey(pass, salt)
}

// importInto imports the folder, read through src, into the evidence
// directory o.out, on the acquire pipeline, and records and prints it.
func importInto(ctx context.Context, cmd *cobra.Command, folder *snap4n6ir.Folder, src *acquire.Folder,
	region, source string, o *importOptions) error {
	form, recipients, keyFile, err := o.seal.form(o.out)
	if err != nil {
		return err
	}
	meta := store.Meta{
		SnapshotID: folder.Snapshot, Region: region, Endpoint: (&url.URL{Scheme: "file", Path: source}).String(),
		Provenance: store.ProvenanceImported, Source: source,
		VolumeSizeGiB: folder.VolumeGiB, BlockSize: block.Size, ToolVersion: toolVersion(),
		Case: o.caseMeta.fields(), Recipients: recipients, KeyFile: keyFile,
	}
	so := store.Options{Force: o.force, Form: form.Form, SealTo: form.SealTo}
	var (
		out     importSink
		resumed func() int64
		remote  *store.Remote
		b       *s3store.Bucket
	)
	if o.s3.on() {
		if remote, b, err = openS3Out(ctx, &o.s3, meta, so); err != nil {
			return err
		}
		out, resumed = remote, remote.Resumed
	} else {
		st, err := store.Create(o.out, meta, so)
		if err != nil {
			return err
		}
		out, resumed = st.Sink(), st.Resumed
	}
	status := ui.NewStatus(cmd.ErrOrStderr(), o.quiet || o.json, 5*time.Second)
	res, err := acquire.New(src, acquire.Options{Workers: runtime.GOMAXPROCS(0), Progress: drawProgress(status)}).Run(ctx, out)
	status.Done("")
	if err != nil {
		out.Abort()
		err = importFailures(folder, err)
		if remote != nil {
			return recordFailedRun(ctx, b, "import-4n6ir", newStep(report.StepAcquire, remote.Started, err), err)
		}
		return err
	}
	if remote != nil {
		remote.Started, remote.Finished = res.Started, res.Finished
	}
	if _, err := out.Close(); err != nil {
		if remote != nil {
			return recordFailedRun(ctx, b, "import-4n6ir", newStep(report.StepAcquire, remote.Started, err), err)
		}
		return err
	}
	sum := out.Summary()
	if sum.Blocks != int64(len(folder.Blocks)) {
		return fmt.Errorf("evidence holds %d blocks but %s has %d", sum.Blocks, folder.Dir, len(folder.Blocks))
	}
	if remote != nil {
		err = recordImportS3(ctx, b, remote, folder, region, source, sum, res.Stored, res.Started, o)
	} else {
		err = recordImport(o.out, folder, region, source, sum, res.Stored, resumed(), res.Started, o)
	}
	if err != nil {
		// The evidence is complete and verified; only its record is not.
		return unrecordedError{fmt.Errorf("recording the import: %w", err)}
	}
	s := importSummary{
		Source: folder.Dir, SourceForm: folder.Form.String(), SnapshotID: folder.Snapshot, Region: region, Output: o.out,
		VolumeSizeGiB: folder.VolumeGiB, Blocks: sum.Blocks, Imported: res.Stored, Resumed: resumed(),
		Stored:  form.Form.String(),
		Ignored: folder.Other[:min(len(folder.Other), maxIgnoredNames)], IgnoredCount: len(folder.Other),
		ManifestSHA256: sum.ManifestSHA256.Hex(), Seconds: time.Since(res.Started).Seconds(),
	}
	if o.json {
		return printJSON(cmd.OutOrStdout(), s)
	}
	printImport(cmd.OutOrStdout(), s)
	return nil
}

// importFailures says which blocks of the folder could not be imported
// (each a *store.Mismatch, or the local error met), the first
// maxImportFailures of them by name; other errors pass as they are.
func importFailures(folder *snap4n6ir.Folder, err error) error {
	var inc *acquire.IncompleteError
	if !errors.As(err, &inc) {
		return err
	}
	n := int64(len(inc.Failed)) + inc.More
	var named []error
	for _, f := range inc.Failed[:min(len(inc.Failed), maxImportFailures)] {
		named = append(named, f.Err)
	}
	if more := n - int64(len(named)); more > 0 {
		named = append(named, fmt.Errorf("and %d more", more))
	}
	return fmt.Errorf("%d of %d blocks of %s could not be imported:\n%w", n, len(folder.Blocks), folder.Dir, errors.Join(named...))
}

// recordImport writes the chain-of-custody record of an import: the
// acquisition of the evidence, marked as imported from the original
// tool's folder, with hashes from its file names and no AWS checksum.
func recordImport(dir string, folder *snap4n6ir.Folder, region, source string, sum store.Summary, imported, resumed int64,
	started time.Time, o *importOptions) error {
	caseFields := o.caseMeta.fields()
	if m, err := store.Open(dir); err == nil {
		caseFields = m.Meta.Case // a resumed import keeps the case of its first run
	}
	rec := importRecord(dir, caseFields, folder, region, source, imported, resumed, started)
	return recordEvidence(dir, rec, sum, nil)
}

// importRecord is the record of an import into the evidence at location.
func importRecord(location string, caseFields map[string]string, folder *snap4n6ir.Folder, region, source string,
	imported, resumed int64, started time.Time) *report.Report {
	rec := report.New(folder.Snapshot, folder.VolumeGiB, block.Size, report.KindEvidenceDirectory, location)
	rec.Case = report.CaseFromFields(caseFields)
	run := report.NewRun(toolVersion(), os.Args, started)
	run.FinishedAt = time.Now()
	rec.Acquisition = &report.Acquisition{
		Run: run, AWS: report.AWS{Region: region, Endpoint: (&url.URL{Scheme: "file", Path: source}).String()},
		ResumedBlocks: resumed,
		Import: &report.Import{
			Provenance: store.ProvenanceImported, Source: source, Form: folder.Form.String(),
			HashSource: report.HashSourceFileNames, Blocks: int64(len(folder.Blocks)), ImportedBlocks: imported,
			Ignored: folder.Other[:min(len(folder.Other), maxIgnoredNames)], IgnoredCount: len(folder.Other),
		},
	}
	return rec
}

// contentSource names what verify compared block contents with: the
// SHA-256 AWS served, or for imported evidence the original tool's file
// names.
func contentSource(m store.Meta) string {
	if m.Imported() {
		return "the SHA-256 in the original tool's file names (no AWS checksum: imported)"
	}
	return "the AWS SHA-256"
}

func printImport(w io.Writer, s importSummary) {
	fmt.Fprintf(w, "imported %s (%s folder of %s, %d GiB volume) into %s\n", s.Source, s.SourceForm, s.SnapshotID, s.VolumeSizeGiB, s.Output)
	fmt.Fprintf(w, "  blocks     %d, each checked against the SHA-256 in its file name (%d imported now, %d kept from an earlier run)\n",
		s.Blocks, s.Imported, s.Resumed)
	fmt.Fprintf(w, "  stored as  %s\n", s.Stored)
	fmt.Fprintf(w, "  region     %s\n", s.Region)
	if s.IgnoredCount > 0 {
		more := ""
		if s.IgnoredCount > len(s.Ignored) {
			more = ", …"
		}
		fmt.Fprintf(w, "  ignored    %d other entries in the folder: %s%s\n", s.IgnoredCount, strings.Join(s.Ignored, ", "), more)
	}
	fmt.Fprintf(w, "  manifest   sha256 %s\n", s.ManifestSHA256)
}
