package main

import (
	"fmt"
	"os"
	"path/filepath"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// keyFileName is where passphrase mode keeps the passphrase-protected age
// identity the blocks are encrypted to: with the evidence, because without
// it the passphrase opens nothing.
const keyFileName = store.KeyName

// sealOptions are the flags that choose how blocks are stored.
type sealOptions struct {
	compress        string
	encrypt         bool
	recipients      []string
	recipientsFiles []string
	passphraseFile  string
}

func (o *sealOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	// A required value: an optional one (--compress alone meaning zstd)
	// made "--compress gzip" read gzip as an argument.
	f.StringVar(&o.compress, "compress", "none", "compress each block: zstd (fast), gzip or none")
	o.addEncryptFlags(cmd)
}

func (o *sealOptions) addEncryptFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.encrypt, "encrypt", false, "encrypt each block with age (to --recipient keys, or with a passphrase)")
	f.StringArrayVar(&o.recipients, "recipient", nil, "age recipient (age1…) or SSH public key to encrypt to; implies --encrypt (repeatable)")
	f.StringArrayVar(&o.recipientsFiles, "recipients-file", nil, "file of recipients, one per line; implies --encrypt (repeatable)")
	f.StringVar(&o.passphraseFile, "passphrase-file", "", "read the passphrase from this file (else "+codec.PassphraseEnv+", else a prompt)")
}

func (o *sealOptions) encrypting() bool {
	return o.encrypt || len(o.recipients) > 0 || len(o.recipientsFiles) > 0
}

// form builds the stored form for evidence directory dir: the recipients
// from the flags, or, with none, passphrase mode: an identity generated
// into dir/key.age (or the one already there, on resume), protected by
// the passphrase. It returns the store options that write the form (Form
// and SealTo) and the fields to record.
func (o *sealOptions) form(dir string) (store.Options, []string, string, error) {
	c, err := codec.ParseCodec(o.compress)
	if err != nil {
		return store.Options{}, nil, "", usageError{fmt.Errorf("--compress: %w", err)}
	}
	so := store.Options{Form: codec.Form{Codec: c, Encrypted: o.encrypting()}}
	if !so.Form.Encrypted {
		return so, nil, "", nil
	}
	recips, names, keyFile, err := o.recipientsFor(dir)
	if err != nil {
		return store.Options{}, nil, "", err
	}
	so.SealTo = recips
	return so, names, keyFile, nil
}

func (o *sealOptions) recipientsFor(dir string) ([]age.Recipient, []string, string, error) {
	var rs codec.Recipients
	for _, r := range o.recipients {
		if err := rs.Add(r); err != nil {
			return nil, nil, "", usageError{fmt.Errorf("--recipient: %w", err)}
		}
	}
	for _, file := range o.recipientsFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, "", err
		}
		if err := rs.AddFile(data); err != nil {
			return nil, nil, "", fmt.Errorf("%s: %w", file, err)
		}
	}
	if len(rs.List) > 0 {
		return rs.List, rs.Names, "", nil
	}
	rc, err := o.keyFile(dir).Recipient()
	if err != nil {
		return nil, nil, "", err
	}
	return []age.Recipient{rc}, []string{fmt.Sprint(rc)}, keyFileName, nil
}

// keyFile is passphrase mode's key file of evidence directory dir.
func (o *sealOptions) keyFile(dir string) codec.KeyFile {
	return codec.KeyFile{Path: filepath.Join(dir, keyFileName), Passphrase: passphrase(o.passphraseFile)}
}

// passphrase reads the passphrase from --passphrase-file, the
// environment or the terminal.
func passphrase(file string) func(confirm bool) (string, error) {
	return func(confirm bool) (string, error) {
		pass, err := codec.ReadPassphrase(file, os.Getenv, ui.TerminalPrompt("passphrase", confirm))
		if err != nil {
			return "", withHint(err, "give --passphrase-file FILE, set "+codec.PassphraseEnv+", or run on a terminal")
		}
		return pass, nil
	}
}

// openOptions are the flags that give the key to read encrypted blocks.
type openOptions struct {
	identities     []string
	passphraseFile string
}

func (o *openOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&o.identities, "identity", nil, "age identity file (or SSH private key) to decrypt blocks with (repeatable)")
	f.StringVar(&o.passphraseFile, "passphrase-file", "", "read the passphrase from this file (else "+codec.PassphraseEnv+", else a prompt)")
}

// unseal returns how to read the blocks of ev. Without a key, compressed
// blocks still open and encrypted ones are left to the caller (verify
// checks their stored bytes only); with need, a missing key is an error,
// or a prompt on a terminal.
func (o *openOptions) unseal(ev *store.Evidence, need bool) (store.Unseal, error) {
	var ids []age.Identity
	if ev.Meta.Encryption != "none" {
		var err error
		ids, err = o.identitiesFor(ev, need)
		if err != nil {
			return nil, err
		}
	}
	return store.UnsealWith(ids), nil
}

func (o *openOptions) identitiesFor(ev *store.Evidence, need bool) ([]age.Identity, error) {
	var ids []age.Identity
	for _, file := range o.identities {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		got, err := codec.IdentityFile(file, data, ui.TerminalPrompt("passphrase for "+file, false))
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	if len(ids) > 0 {
		return ids, nil
	}
	keyFile := ev.Meta.KeyFile
	haveSecret := o.passphraseFile != "" || os.Getenv(codec.PassphraseEnv) != ""
	if keyFile == "" || (!haveSecret && !need) {
		if need {
			return nil, withHint(store.ErrNeedKey, "give --identity FILE (the blocks are encrypted to recipients)")
		}
		return nil, nil
	}
	return codec.KeyFile{Path: filepath.Join(ev.Dir, keyFile), Name: keyFile, Passphrase: passphrase(o.passphraseFile)}.Identities()
}

// passphraseKey opens, or first creates, the passphrase-protected identity
// dir/key.age for a conversion to passphrase mode. Unlike recipientsFor it
// also returns the identities, so that each converted block can be
// decrypted back and checked before the plaintext it replaces goes. The
// passphrase is read once (asked twice when the key file is new).
func (o *sealOptions) passphraseKey(dir string) (age.Recipient, []age.Identity, error) {
	return o.keyFile(dir).Open()
}
