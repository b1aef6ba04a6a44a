package codec

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"filippo.io/age/armor"
	"golang.org/x/crypto/ssh"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
)

// ErrWrongKey is wrapped by every error that means the identities or the
// passphrase given do not open a file: no identity matches its
// recipients, a passphrase is wrong, or (for the original tool's Fernet
// tokens) the signature does not verify under the derived key. Callers
// map it to an exit code. Messages never contain the secret.
var ErrWrongKey = errors.New("wrong key or passphrase")

// keyFileSizeLimit bounds identity and recipient files; age's own parsers
// use the same 16 MiB limit.
const keyFileSizeLimit = 16 << 20

// keyFileWorkFactor is the scrypt work factor (log2 N) protecting a key
// file: 18 is age's own default for passphrases (about a second).
var keyFileWorkFactor = 18

// ageHeader starts every binary age file (age-encryption.org/v1 spec).
const ageHeader = "age-encryption.org/v1\n"

// ParseRecipient reads one recipient as age(1) accepts it after -r: a
// native age1… X25519 key, an age1pq1… hybrid key, or an SSH public key
// ("ssh-ed25519 …" or "ssh-rsa …"). The value is never echoed in errors,
// in case a secret key was pasted by mistake.
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	var (
		r   age.Recipient
		err error
	)
	switch {
	case strings.HasPrefix(s, "age1pq1"):
		r, err = age.ParseHybridRecipient(s)
	case strings.HasPrefix(s, "age1"):
		r, err = age.ParseX25519Recipient(s)
	case strings.HasPrefix(s, "ssh-ed25519 "), strings.HasPrefix(s, "ssh-rsa "):
		r, err = agessh.ParseRecipient(s)
	case strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-"):
		return nil, errors.New("parsing recipient: this is a secret key, give its public key (age-keygen -y)")
	default:
		return nil, errors.New("parsing recipient: unknown type: want age1…, ssh-ed25519 … or ssh-rsa …")
	}
	if err != nil {
		return nil, fmt.Errorf("parsing recipient: %w", err)
	}
	return r, nil
}

// ParseRecipients reads a recipients file as age -R does: one recipient
// per line (see ParseRecipient), ignoring blank lines and lines starting
// with "#".
func ParseRecipients(r io.Reader) ([]age.Recipient, error) {
	lr := &io.LimitedReader{R: r, N: keyFileSizeLimit + 1}
	sc := bufio.NewScanner(lr)
	var recs []age.Recipient
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rec, err := ParseRecipient(line)
		if err != nil {
			return nil, fmt.Errorf("recipients line %d: %w", n, err)
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading recipients: %w", err)
	}
	if lr.N == 0 {
		return nil, fmt.Errorf("reading recipients: longer than %d bytes", keyFileSizeLimit)
	}
	if len(recs) == 0 {
		return nil, errors.New("reading recipients: none found")
	}
	return recs, nil
}

// ParseIdentities reads an identity file as age -i does: age secret keys
// one per line (AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…, with blank
// and "#" lines ignored), an SSH private key (ed25519 or RSA), or either
// of those encrypted with a passphrase (a passphrase-protected age file,
// binary or armored, such as GenerateKeyFile writes, or an encrypted
// OpenSSH key). passphrase is called only for a protected file and may be
// nil when no passphrase source exists; a wrong one is ErrWrongKey.
func ParseIdentities(r io.Reader, passphrase func() (string, error)) ([]age.Identity, error) {
	data, err := io.ReadAll(io.LimitReader(r, keyFileSizeLimit+1))
	if err != nil {
		return nil, fmt.Errorf("reading identities: %w", err)
	}
	if len(data) > keyFileSizeLimit {
		return nil, fmt.Errorf("reading identities: longer than %d bytes", keyFileSizeLimit)
	}
	return parseIdentities(data, passphrase, true)
}

func parseIdentities(data []byte, passphrase func() (string, error), outer bool) ([]age.Identity, error) {
	trimmed := bytes.TrimSpace(data)
	switch {
	case outer && (bytes.HasPrefix(data, []byte(ageHeader)) || bytes.HasPrefix(trimmed, []byte(armor.Header))):
		inner, err := decryptKeyFile(data, passphrase)
		if err != nil {
			return nil, err
		}
		return parseIdentities(inner, nil, false)
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		return parseSSHIdentity(trimmed, passphrase)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// age's messages name the line, never its content.
		return nil, fmt.Errorf("parsing identities: %w", err)
	}
	return ids, nil
}

func decryptKeyFile(data []byte, passphrase func() (string, error)) ([]byte, error) {
	if passphrase == nil {
		return nil, errors.New("identity file is passphrase-protected and no passphrase was given")
	}
	pass, err := passphrase()
	if err != nil {
		return nil, fmt.Errorf("reading passphrase for identity file: %w", err)
	}
	id, err := age.NewScryptIdentity(pass)
	if err != nil {
		return nil, fmt.Errorf("passphrase for identity file: %w", err)
	}
	var src io.Reader = bytes.NewReader(data)
	if !bytes.HasPrefix(data, []byte(ageHeader)) {
		src = armor.NewReader(src)
	}
	r, err := age.Decrypt(src, id)
	if err != nil {
		return nil, fmt.Errorf("decrypting identity file: %w", ageError(err))
	}
	inner, err := io.ReadAll(io.LimitReader(r, keyFileSizeLimit+1))
	if err != nil {
		return nil, fmt.Errorf("decrypting identity file: %w", err)
	}
	if len(inner) > keyFileSizeLimit {
		return nil, fmt.Errorf("decrypting identity file: longer than %d bytes", keyFileSizeLimit)
	}
	return inner, nil
}

func parseSSHIdentity(pemBytes []byte, passphrase func() (string, error)) ([]age.Identity, error) {
	id, err := agessh.ParseIdentity(pemBytes)
	if err == nil {
		return []age.Identity{id}, nil
	}
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		return nil, fmt.Errorf("parsing ssh identity: %w", err)
	}
	if passphrase == nil {
		return nil, errors.New("ssh identity is passphrase-protected and no passphrase was given")
	}
	// Decrypt now rather than when a file is opened (as agessh's lazy
	// identity would), so that a wrong passphrase is ErrWrongKey.
	pass, err := passphrase()
	if err != nil {
		return nil, fmt.Errorf("reading passphrase for ssh identity: %w", err)
	}
	key, err := ssh.ParseRawPrivateKeyWithPassphrase(pemBytes, []byte(pass))
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, fmt.Errorf("decrypting ssh identity: %w", ErrWrongKey)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypting ssh identity: %w", err)
	}
	switch k := key.(type) {
	case *ed25519.PrivateKey:
		id, err = agessh.NewEd25519Identity(*k)
	case ed25519.PrivateKey:
		id, err = agessh.NewEd25519Identity(k)
	case *rsa.PrivateKey:
		id, err = agessh.NewRSAIdentity(k)
	default:
		return nil, fmt.Errorf("parsing ssh identity: unsupported key type %T", key)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing ssh identity: %w", err)
	}
	return []age.Identity{id}, nil
}

// GenerateKeyFile makes a fresh X25519 identity, writes it to dst as an
// age identity file encrypted with passphrase (age's scrypt recipient at
// its default work factor), and returns the matching recipient.
//
// This is how a passphrase protects many blocks: sealing each block with
// the scrypt recipient itself would cost one scrypt run (about a second
// and 256 MiB) per block, on writing and on reading. Instead blocks are
// sealed to the returned recipient, and the key file is opened once with
// the passphrase. `age -d -i KEYFILE block.zst.age` asks for the
// passphrase and opens a block with the standard tool; so does
// ParseIdentities. Keep the key file with the evidence: without it the
// passphrase opens nothing.
func GenerateKeyFile(dst io.Writer, passphrase string) (age.Recipient, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("generating identity: %w", err)
	}
	rec, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("protecting identity: %w", err)
	}
	rec.SetWorkFactor(keyFileWorkFactor)
	w, err := age.Encrypt(dst, rec)
	if err != nil {
		return nil, fmt.Errorf("protecting identity: %w", err)
	}
	// The layout of an age-keygen output file.
	if _, err := fmt.Fprintf(w, "# public key: %s\n%s\n", id.Recipient(), id); err != nil {
		return nil, fmt.Errorf("writing identity file: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("writing identity file: %w", err)
	}
	return id.Recipient(), nil
}

// ageError turns age's "nothing matched" errors into ErrWrongKey.
func ageError(err error) error {
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return fmt.Errorf("file is sealed to %s: %w", strings.Join(noMatch.StanzaTypes, ", "), ErrWrongKey)
	}
	return err
}

// KeyError is a key given that cannot be used: an identity file or key
// file that does not parse, or does not open with the passphrase given.
// It wraps ErrWrongKey as well as the cause, since either way the key
// does not open the evidence.
type KeyError struct {
	Name string // the file, as the user knows it
	Err  error
}

func (e *KeyError) Error() string   { return e.Name + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() []error { return []error{e.Err, ErrWrongKey} }

// Recipients are the recipients blocks are sealed to, gathered from a
// command line, with the text of each as the record names it.
type Recipients struct {
	List  []age.Recipient
	Names []string
}

// Add adds one recipient as age -r takes it (see ParseRecipient).
func (r *Recipients) Add(s string) error {
	rc, err := ParseRecipient(s)
	if err != nil {
		return err
	}
	r.List, r.Names = append(r.List, rc), append(r.Names, strings.TrimSpace(s))
	return nil
}

// AddFile adds the recipients of a recipients file's content (see
// ParseRecipients); each one is named by its line.
func (r *Recipients) AddFile(data []byte) error {
	rs, err := ParseRecipients(bytes.NewReader(data))
	if err != nil {
		return err
	}
	r.List = append(r.List, rs...)
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			r.Names = append(r.Names, line)
		}
	}
	return nil
}

// KeyFile is passphrase mode's key: a fresh X25519 identity, kept with
// the evidence in an age file protected by the passphrase (see
// GenerateKeyFile), that the blocks are sealed to.
type KeyFile struct {
	// Path is where the key file is, such as DIR/key.age.
	Path string
	// Name is how errors name it; default Path.
	Name string
	// Passphrase reads the passphrase; confirm is set when the key file
	// is about to be made, so that a new passphrase is asked twice. Its
	// error is returned as it is.
	Passphrase func(confirm bool) (string, error)
}

func (k KeyFile) name() string {
	if k.Name != "" {
		return k.Name
	}
	return k.Path
}

// Recipient returns the recipient to seal blocks to: the key file's
// X25519 identity's, the key file being generated first (its directory
// too) when there is none. A new key file is written whole or not at all.
func (k KeyFile) Recipient() (age.Recipient, error) {
	rc, _, err := k.open(false)
	return rc, err
}

// Open is Recipient that also returns the identities that open what is
// sealed to it, read back from the file even when it was just written:
// a conversion that replaces readable blocks by sealed ones knows the key
// opens them before the first plaintext goes.
func (k KeyFile) Open() (age.Recipient, []age.Identity, error) {
	return k.open(true)
}

func (k KeyFile) open(readBack bool) (age.Recipient, []age.Identity, error) {
	existing, err := os.ReadFile(k.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	pass, err := k.Passphrase(existing == nil)
	if err != nil {
		return nil, nil, err
	}
	if existing == nil {
		if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
			return nil, nil, err
		}
		var rc age.Recipient
		err := atomicfile.Write(k.Path, func(w io.Writer) error {
			var err error
			rc, err = GenerateKeyFile(w, pass)
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("writing %s: %w", k.Path, err)
		}
		if !readBack {
			return rc, nil, nil
		}
		if existing, err = os.ReadFile(k.Path); err != nil {
			return nil, nil, err
		}
	}
	ids, err := k.parse(existing, pass)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			return x.Recipient(), ids, nil
		}
	}
	return nil, nil, fmt.Errorf("%s holds no X25519 identity", k.Path)
}

// Identities opens an existing key file: the passphrase first, then the
// file.
func (k KeyFile) Identities() ([]age.Identity, error) {
	pass, err := k.Passphrase(false)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(k.Path)
	if err != nil {
		return nil, err
	}
	return k.parse(data, pass)
}

func (k KeyFile) parse(data []byte, pass string) ([]age.Identity, error) {
	ids, err := ParseIdentities(bytes.NewReader(data), func() (string, error) { return pass, nil })
	if err != nil {
		return nil, &KeyError{Name: k.name(), Err: err}
	}
	return ids, nil
}

// IdentityFile parses the identities of an --identity file's content
// (see ParseIdentities), asking passphrase only if the file is protected.
// A file that does not parse or open is a *KeyError naming it.
func IdentityFile(name string, data []byte, passphrase func() (string, error)) ([]age.Identity, error) {
	ids, err := ParseIdentities(bytes.NewReader(data), passphrase)
	if err != nil {
		return nil, &KeyError{Name: name, Err: err}
	}
	return ids, nil
}
