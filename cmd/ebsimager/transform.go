package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/convert"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// newTransformCommands returns the commands that convert an evidence
// directory in place: compress, uncompress, encrypt and decrypt.
func newTransformCommands() []*cobra.Command {
	return []*cobra.Command{newCompressCommand(), newUncompressCommand(), newEncryptCommand(), newDecryptCommand()}
}

const transformSafety = `The new form of every block is written beside the old one and checked (its
stored SHA-256, and decoded back to the SHA-256 AWS served the block with
when the key is at hand); only then does the manifest change and the old
files go. A crash or Ctrl-C at any point leaves a directory that verify
accepts; run the same command again to complete the job. A block that
cannot be read (tampered with, or a wrong key) stops the conversion and
undoes it, leaving the directory as it was.`

// conversion is what one of the four commands asks for.
type conversion struct {
	verb string // past tense, for the summary
	// target returns the form to convert to from the form the blocks
	// are in, or an error when the command does not apply to it.
	target func(from codec.Form) (codec.Form, error)
	// options builds the conversion: how to seal the new files, what to
	// record, how to read the blocks.
	options func(ev *store.Evidence, st convert.State, to codec.Form) (convert.Options, error)
	// cleanup, if set, runs after a conversion that failed and left no
	// conversion under way.
	cleanup func()
}

// transformOutput are the flags every conversion shares.
type transformOutput struct {
	workers int
	quiet   bool
	json    bool
	// out, when set, is new evidence (in S3, or a directory) to write
	// the converted blocks to, the source left as it is (convertto.go).
	out string
	s3  s3Options
}

func (o *transformOutput) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "write the converted evidence to s3://bucket/prefix/ or a new directory, leaving the source as it is (needed for evidence in S3)")
	o.s3.addFlags(cmd)
	f.IntVar(&o.workers, "workers", 0, "blocks converted at once (default: one per CPU)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print no progress")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
}

func newCompressCommand() *cobra.Command {
	var (
		codecName string
		keys      openOptions
		out       transformOutput
	)
	cmd := &cobra.Command{
		Use:   "compress DIR|s3://… [--codec zstd|gzip] [--out s3://bucket/prefix/|DIR2]",
		Short: "Compress every block of evidence, in place or into S3 (--out)",
		Long: `Compress every stored block of evidence directory DIR with zstd (the
default, fast) or gzip, as acquire --compress would have. An encrypted
directory stays encrypted to the same recipients; reading it needs
--identity or the passphrase. A compressed directory is recompressed with
the other codec.

` + transformSafety + `

` + transformToHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := codec.ParseCodec(codecName)
			if err != nil {
				return usageError{fmt.Errorf("--codec: %w", err)}
			}
			if c == codec.None {
				return usagef("--codec none: use uncompress")
			}
			return runTransform(cmd, args[0], &out, recode("compressed", c, &keys))
		},
	}
	cmd.Flags().StringVar(&codecName, "codec", "zstd", "zstd or gzip")
	keys.addFlags(cmd)
	out.addFlags(cmd)
	return cmd
}

func newUncompressCommand() *cobra.Command {
	var (
		keys openOptions
		out  transformOutput
	)
	cmd := &cobra.Command{
		Use:   "uncompress DIR|s3://… [--out s3://bucket/prefix/|DIR2]",
		Short: "Store every block of evidence uncompressed again, in place or into S3 (--out)",
		Long: `Uncompress every stored block of evidence directory DIR. An encrypted
directory stays encrypted to the same recipients; reading it needs
--identity or the passphrase.

` + transformSafety + `

` + transformToHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTransform(cmd, args[0], &out, recode("uncompressed", codec.None, &keys))
		},
	}
	keys.addFlags(cmd)
	out.addFlags(cmd)
	return cmd
}

// recode is compress and uncompress: the codec changes, the encryption
// stays.
func recode(verb string, c codec.Codec, keys *openOptions) conversion {
	return conversion{
		verb: verb,
		target: func(from codec.Form) (codec.Form, error) {
			return codec.Form{Codec: c, Encrypted: from.Encrypted}, nil
		},
		options: func(ev *store.Evidence, st convert.State, to codec.Form) (convert.Options, error) {
			var (
				ids    []age.Identity
				recips []age.Recipient
				err    error
			)
			if to.Encrypted {
				if len(ev.Meta.Recipients) == 0 {
					return convert.Options{}, fmt.Errorf("%s lists no recipients to encrypt the new files to", store.MetaName)
				}
				for _, r := range ev.Meta.Recipients {
					rc, err := codec.ParseRecipient(r)
					if err != nil {
						return convert.Options{}, fmt.Errorf("%s: %w", store.MetaName, err)
					}
					recips = append(recips, rc)
				}
				if !st.Switching {
					if ids, err = keys.identitiesFor(ev, true); err != nil {
						return convert.Options{}, err
					}
				}
			}
			return convert.Options{To: to, SealTo: recips, Recipients: ev.Meta.Recipients, KeyFile: ev.Meta.KeyFile,
				Unseal: store.UnsealWith(ids)}, nil
		},
	}
}

func newEncryptCommand() *cobra.Command {
	var (
		seal sealOptions
		out  transformOutput
	)
	cmd := &cobra.Command{
		Use:   "encrypt DIR|s3://… (--recipient KEY... | --recipients-file FILE... | passphrase) [--out s3://bucket/prefix/|DIR2]",
		Short: "Encrypt every block of evidence with age, in place or into S3 (--out)",
		Long: `Encrypt every stored block of evidence directory DIR with age, as acquire
--encrypt would have: to --recipient keys (age1… or SSH public keys) and
--recipients-file files, so that this machine never holds a key that can
decrypt; or, with no recipient, with a passphrase from --passphrase-file,
` + codec.PassphraseEnv + ` or a prompt, which protects a new identity kept in
DIR/` + keyFileName + `. Compression, if any, is kept. verify checks an encrypted
directory without any key.

` + transformSafety + `

` + transformToHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out.out != "" && len(seal.recipients)+len(seal.recipientsFiles) == 0 {
				return usagef("--out: encrypts to --recipient/--recipients-file keys only: a passphrase's key file is not copied to new evidence")
			}
			var keyCreated bool
			path := filepath.Join(args[0], keyFileName)
			return runTransform(cmd, args[0], &out, conversion{
				verb: "encrypted",
				target: func(from codec.Form) (codec.Form, error) {
					if from.Encrypted {
						return from, fmt.Errorf("%s is already encrypted: decrypt it first to encrypt it to other keys", args[0])
					}
					return codec.Form{Codec: from.Codec, Encrypted: true}, nil
				},
				options: func(ev *store.Evidence, st convert.State, to codec.Form) (convert.Options, error) {
					if len(seal.recipients) > 0 || len(seal.recipientsFiles) > 0 {
						recips, names, _, err := seal.recipientsFor(ev.Dir)
						if err != nil {
							return convert.Options{}, err
						}
						return convert.Options{To: to, SealTo: recips, Recipients: names, Unseal: store.UnsealWith(nil)}, nil
					}
					_, err := os.Stat(path)
					keyCreated = errors.Is(err, fs.ErrNotExist)
					rc, ids, err := seal.passphraseKey(ev.Dir)
					if err != nil {
						return convert.Options{}, err
					}
					return convert.Options{To: to, SealTo: []age.Recipient{rc}, Recipients: []string{fmt.Sprint(rc)},
						KeyFile: keyFileName, Unseal: store.UnsealWith(ids)}, nil
				},
				cleanup: func() {
					if keyCreated {
						os.Remove(path) // this run's key file, now protecting nothing
					}
				},
			})
		},
	}
	seal.addEncryptFlags(cmd)
	cmd.Flags().MarkHidden("encrypt") // the command itself says it
	out.addFlags(cmd)
	return cmd
}

func newDecryptCommand() *cobra.Command {
	var (
		keys openOptions
		out  transformOutput
	)
	cmd := &cobra.Command{
		Use:   "decrypt DIR|s3://… (--identity FILE... | passphrase) [--out s3://bucket/prefix/|DIR2]",
		Short: "Decrypt every block of evidence, in place or into S3 (--out)",
		Long: `Decrypt every stored block of evidence directory DIR with --identity files
(age identities or SSH private keys) or, for a directory encrypted with a
passphrase, the passphrase from --passphrase-file, ` + codec.PassphraseEnv + ` or
a prompt. Compression, if any, is kept. Once no block is encrypted, the
passphrase-protected key file is deleted.

` + transformSafety + `

` + transformToHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTransform(cmd, args[0], &out, conversion{
				verb: "decrypted",
				target: func(from codec.Form) (codec.Form, error) {
					return codec.Form{Codec: from.Codec}, nil
				},
				options: func(ev *store.Evidence, st convert.State, to codec.Form) (convert.Options, error) {
					var ids []age.Identity
					if !st.Switching {
						var err error
						if ids, err = keys.identitiesFor(ev, true); err != nil {
							return convert.Options{}, err
						}
					}
					return convert.Options{To: to, Unseal: store.UnsealWith(ids)}, nil
				},
			})
		},
	}
	keys.addFlags(cmd)
	out.addFlags(cmd)
	return cmd
}

// transformSummary is what --json prints.
type transformSummary struct {
	Evidence       string   `json:"evidence"`
	SourceEvidence string   `json:"source_evidence,omitempty"` // with --out: the evidence converted
	From           string   `json:"from"`
	To             string   `json:"to"`
	Blocks         int64    `json:"blocks"`
	Bytes          int64    `json:"bytes"`
	Resumed        int64    `json:"resumed"`
	Decoded        int64    `json:"decoded"`
	StoredBefore   int64    `json:"stored_bytes_before,omitempty"`
	StoredAfter    int64    `json:"stored_bytes_after"`
	Recipients     []string `json:"recipients,omitempty"`
	KeyFile        string   `json:"key_file,omitempty"`
	RemovedKeyFile string   `json:"removed_key_file,omitempty"`
	ManifestSHA256 string   `json:"manifest_sha256"`
	// SourceManifestSHA256 is, with --out, the manifest of the source.
	SourceManifestSHA256 string  `json:"source_manifest_sha256,omitempty"`
	Seconds              float64 `json:"seconds"`
	NothingToDo          bool    `json:"nothing_to_do,omitempty"`
}

func runTransform(cmd *cobra.Command, dir string, out *transformOutput, c conversion) error {
	if out.workers < 0 {
		return usagef("--workers must not be negative")
	}
	if err := out.s3.check(cmd, out.out, time.Now()); err != nil {
		return err
	}
	if out.out != "" {
		return runTransformTo(cmd, dir, out, c)
	}
	if s3store.IsURL(dir) {
		return s3InPlace(dir)
	}
	ev, err := store.Open(dir)
	if err != nil {
		return err
	}
	st, err := convert.StateOf(ev)
	if err != nil {
		return err
	}
	to, err := c.target(st.From)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if !st.Pending && to == st.From {
		if out.json {
			return printJSON(w, transformSummary{Evidence: dir, From: st.From.String(), To: to.String(), NothingToDo: true})
		}
		fmt.Fprintf(w, "%s already stores its blocks as %s: nothing to do\n", dir, to)
		return nil
	}
	opts, err := c.options(ev, st, to)
	if err != nil {
		return err
	}
	status := ui.NewStatus(cmd.ErrOrStderr(), out.quiet || out.json, 5*time.Second)
	start := time.Now()
	opts.Workers, opts.Progress = out.workers, drawProgress(status)
	res, err := convert.Run(cmd.Context(), ev, opts)
	status.Done("")
	if err != nil {
		if c.cleanup != nil {
			if _, serr := os.Stat(filepath.Join(dir, store.ConversionName)); errors.Is(serr, fs.ErrNotExist) {
				c.cleanup()
			}
		}
		var pending *convert.PendingError
		if errors.As(err, &pending) {
			return withHint(err, "a conversion to "+pending.Pending.String()+" was interrupted: run the command that started it again, with the same keys")
		}
		return err
	}
	step := newStep(report.StepTransform, start, nil)
	step.Transform = &report.Transform{Operation: cmd.Name(), Source: res.From.String(), Destination: res.To.String(),
		Codec: res.To.Codec.String(), Encryption: res.To.Encryption(), Blocks: res.Blocks, Bytes: res.Bytes, ManifestSHA256: res.ManifestSHA256.Hex(),
		SourceManifestSHA256: res.SourceManifestSHA256}
	if err := appendStep(dir, step); err != nil {
		return fmt.Errorf("recording the conversion: %w", err)
	}
	sum := transformSummary{
		Evidence: dir, From: res.From.String(), To: res.To.String(), Blocks: res.Blocks, Bytes: res.Bytes,
		Resumed: res.Resumed, Decoded: res.Decoded, StoredBefore: res.StoredBefore, StoredAfter: res.StoredAfter,
		Recipients: opts.Recipients, KeyFile: opts.KeyFile, RemovedKeyFile: res.RemovedKeyFile,
		ManifestSHA256: res.ManifestSHA256.Hex(), Seconds: time.Since(start).Seconds(),
	}
	if out.json {
		return printJSON(w, sum)
	}
	printTransform(w, c.verb, sum)
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printTransform(w io.Writer, verb string, s transformSummary) {
	fmt.Fprintf(w, "%s %s: %s, %s → %s\n", verb, s.Evidence, ui.Plural(s.Blocks, "block"), s.From, s.To)
	if s.StoredBefore > 0 {
		fmt.Fprintf(w, "  stored     %s → %s (%s of blocks)\n", ui.Bytes(s.StoredBefore), ui.Bytes(s.StoredAfter), ui.Bytes(s.Bytes))
	} else {
		fmt.Fprintf(w, "  stored     %s (%s of blocks)\n", ui.Bytes(s.StoredAfter), ui.Bytes(s.Bytes))
	}
	fmt.Fprintf(w, "  checked    every new file against the SHA-256 of its bytes; %d decoded back to the AWS SHA-256\n", s.Decoded)
	if fresh := s.Blocks - s.Resumed; s.Decoded < fresh {
		fmt.Fprintf(w, "             %d are encrypted to keys this machine does not hold: their content was checked just before encryption\n", fresh-s.Decoded)
	}
	if s.Resumed > 0 {
		fmt.Fprintf(w, "  resumed    %s converted by an interrupted run, checked again\n", ui.Plural(s.Resumed, "block"))
	}
	if len(s.Recipients) > 0 && s.KeyFile == "" {
		fmt.Fprintf(w, "  recipients %s\n", strings.Join(s.Recipients, "\n             "))
	}
	if s.KeyFile != "" {
		fmt.Fprintf(w, "  key file   %s (an age identity protected by the passphrase; keep it with the evidence)\n", s.KeyFile)
	}
	if s.RemovedKeyFile != "" {
		fmt.Fprintf(w, "  removed    %s: no block is encrypted any more\n", s.RemovedKeyFile)
	}
	fmt.Fprintf(w, "  manifest   sha256 %s\n", s.ManifestSHA256)
}
