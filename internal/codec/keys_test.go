package codec_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/ebsimager/ebsimager/internal/codec"
	"golang.org/x/crypto/ssh"
)

// sshKey returns a fresh ed25519 key as an authorized_keys line and an
// OpenSSH private key file, encrypted when passphrase is not empty.
func sshKey(t *testing.T, passphrase string) (pub string, priv []byte) {
	t.Helper()
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(sk, "test key")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(sk, "test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))), pem.EncodeToMemory(block)
}

func fixed(s string) func() (string, error) {
	return func() (string, error) { return s, nil }
}

func TestSSHRecipient(t *testing.T) {
	pub, priv := sshKey(t, "")
	rec, err := codec.ParseRecipient(pub + " analyst@lab")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := codec.ParseIdentities(bytes.NewReader(priv), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := codec.Form{Codec: codec.Zstd, Encrypted: true}
	data := textBlock(20)
	stored := seal(t, f, data, rec)
	if !bytes.Contains(stored, []byte("\n-> ssh-ed25519 ")) {
		t.Error("no ssh-ed25519 stanza in the header")
	}
	got, err := open(f, stored, ids...)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ssh round trip: %d bytes, %v", len(got), err)
	}
	// Another SSH key is the wrong key.
	_, other := sshKey(t, "")
	otherIDs, err := codec.ParseIdentities(bytes.NewReader(other), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(f, stored, otherIDs...); !errors.Is(err, codec.ErrWrongKey) {
		t.Errorf("other ssh key: %v, want ErrWrongKey", err)
	}
}

func TestEncryptedSSHIdentity(t *testing.T) {
	const pass = "ssh key passphrase"
	pub, priv := sshKey(t, pass)
	rec, err := codec.ParseRecipient(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.ParseIdentities(bytes.NewReader(priv), nil); err == nil {
		t.Fatal("encrypted ssh key parsed without a passphrase")
	}
	_, err = codec.ParseIdentities(bytes.NewReader(priv), fixed("not it"))
	if !errors.Is(err, codec.ErrWrongKey) {
		t.Fatalf("wrong ssh key passphrase: %v, want ErrWrongKey", err)
	}
	if strings.Contains(err.Error(), "not it") {
		t.Errorf("error shows the passphrase: %v", err)
	}
	ids, err := codec.ParseIdentities(bytes.NewReader(priv), fixed(pass))
	if err != nil {
		t.Fatal(err)
	}
	f := codec.Form{Codec: codec.Gzip, Encrypted: true}
	data := textBlock(21)
	if got, err := open(f, seal(t, f, data, rec), ids...); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("encrypted ssh key round trip: %d bytes, %v", len(got), err)
	}
}

func TestParseRecipients(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	pub, priv := sshKey(t, "")
	file := "# case 2024-117\r\n\r\n" + a.Recipient().String() + "\r\n   \n# examiner\n  " + b.Recipient().String() + "  \n" + pub + " someone\n"
	recs, err := codec.ParseRecipients(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d recipients, want 3", len(recs))
	}
	// Each identity opens a file sealed to the whole list.
	f := codec.Form{Codec: codec.Zstd, Encrypted: true}
	data := textBlock(22)
	stored := seal(t, f, data, recs...)
	sshIDs, err := codec.ParseIdentities(bytes.NewReader(priv), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []age.Identity{a, b, sshIDs[0]} {
		if got, err := open(f, stored, id); err != nil || !bytes.Equal(got, data) {
			t.Errorf("identity %d: %d bytes, %v", i, len(got), err)
		}
	}

	secret := a.String()
	for _, tc := range []struct{ file, want string }{
		{"# nothing\n\n", "none found"},
		{a.Recipient().String() + "\n" + secret + "\n", "line 2"},
		{"age1notarealkey\n", "line 1"},
		{"ecdsa-sha2-nistp256 AAAA\n", "unknown type"},
	} {
		_, err := codec.ParseRecipients(strings.NewReader(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRecipients(%q): %v, want an error containing %q", tc.file, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret[16:]) {
			t.Errorf("error shows the secret key: %v", err)
		}
	}
}

func TestParseIdentitiesFile(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	file := "# created: 2024-01-01T00:00:00Z\n# public key: " + a.Recipient().String() + "\n" + a.String() + "\n\n" + b.String() + "\n"
	ids, err := codec.ParseIdentities(strings.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 {
		t.Fatalf("%d identities, want 2", len(ids))
	}
	f := codec.Form{Codec: codec.Zstd, Encrypted: true}
	data := textBlock(23)
	if got, err := open(f, seal(t, f, data, b.Recipient()), ids...); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("second identity of a file: %d bytes, %v", len(got), err)
	}
	broken := a.String()[:40] + "\n"
	_, err = codec.ParseIdentities(strings.NewReader(broken), nil)
	if err == nil {
		t.Fatal("a cut secret key parsed")
	}
	if strings.Contains(err.Error(), broken[16:39]) {
		t.Errorf("error shows key material: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	defer codec.SetKeyFileWorkFactor(10)()
	const pass = "evidence key passphrase"
	var keyFile bytes.Buffer
	rec, err := codec.GenerateKeyFile(&keyFile, pass)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(keyFile.Bytes(), []byte("age-encryption.org/v1\n-> scrypt ")) {
		t.Fatalf("key file is not a passphrase-protected age file: %q", keyFile.Bytes()[:40])
	}
	if bytes.Contains(keyFile.Bytes(), []byte("AGE-SECRET-KEY")) {
		t.Fatal("key file holds the secret key in clear")
	}
	f := codec.Form{Codec: codec.Zstd, Encrypted: true}
	blocks := [][]byte{textBlock(24), randomBlock(25)}
	var stored [][]byte
	for _, b := range blocks {
		stored = append(stored, seal(t, f, b, rec))
	}
	ids, err := codec.ParseIdentities(bytes.NewReader(keyFile.Bytes()), fixed(pass))
	if err != nil {
		t.Fatal(err)
	}
	for i := range blocks {
		if got, err := open(f, stored[i], ids...); err != nil || !bytes.Equal(got, blocks[i]) {
			t.Fatalf("block %d through the key file: %d bytes, %v", i, len(got), err)
		}
	}
	_, err = codec.ParseIdentities(bytes.NewReader(keyFile.Bytes()), fixed("evidence key passphrasf"))
	if !errors.Is(err, codec.ErrWrongKey) {
		t.Fatalf("wrong key file passphrase: %v, want ErrWrongKey", err)
	}
	if strings.Contains(err.Error(), "passphras") && strings.Contains(err.Error(), "evidence key") {
		t.Errorf("error shows the passphrase: %v", err)
	}
	if _, err := codec.ParseIdentities(bytes.NewReader(keyFile.Bytes()), nil); err == nil {
		t.Fatal("key file parsed without a passphrase")
	}
	// The armored form of the same file, as `age -a` would write it.
	var armored bytes.Buffer
	rec2, err := codec.GenerateKeyFile(&armored, pass)
	if err != nil {
		t.Fatal(err)
	}
	armoredFile := armorFile(t, armored.Bytes())
	ids, err = codec.ParseIdentities(strings.NewReader(armoredFile), fixed(pass))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(f, seal(t, f, blocks[0], rec2), ids...); err != nil || !bytes.Equal(got, blocks[0]) {
		t.Fatalf("armored key file: %d bytes, %v", len(got), err)
	}
}

// armorFile wraps an age file in the PEM-like armor of age -a.
func armorFile(t *testing.T, file []byte) string {
	t.Helper()
	var buf bytes.Buffer
	w := armor.NewWriter(&buf)
	if _, err := w.Write(file); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestRecipientsNamesEachLine(t *testing.T) {
	a, b := age.GenerateX25519Identity, age.GenerateX25519Identity
	id1, _ := a()
	id2, _ := b()
	var rs codec.Recipients
	if err := rs.Add("  " + id1.Recipient().String() + " "); err != nil {
		t.Fatal(err)
	}
	if err := rs.AddFile([]byte("# team\n\n" + id2.Recipient().String() + "\r\n")); err != nil {
		t.Fatal(err)
	}
	want := []string{id1.Recipient().String(), id2.Recipient().String()}
	if len(rs.List) != 2 || strings.Join(rs.Names, ",") != strings.Join(want, ",") {
		t.Fatalf("recipients %d, names %q, want %q", len(rs.List), rs.Names, want)
	}
	if err := rs.Add(id1.String()); err == nil || strings.Contains(err.Error(), id1.String()) {
		t.Fatalf("a secret key as recipient: %v", err)
	}
	if err := rs.AddFile([]byte("# nothing\n")); err == nil || len(rs.List) != 2 {
		t.Fatalf("an empty recipients file: %v, %d recipients", err, len(rs.List))
	}
}

// Passphrase mode's key file: made once (directory 0700, file 0600, the
// passphrase asked with confirmation), then opened with the passphrase;
// a wrong one is a *KeyError that is ErrWrongKey and names the file.
func TestKeyFileLifecycle(t *testing.T) {
	defer codec.SetKeyFileWorkFactor(10)()
	dir := filepath.Join(t.TempDir(), "evidence")
	path := filepath.Join(dir, "key.age")
	var asked []bool
	pass := func(p string) func(bool) (string, error) {
		return func(confirm bool) (string, error) { asked = append(asked, confirm); return p, nil }
	}
	k := codec.KeyFile{Path: path, Passphrase: pass("correct horse")}
	rc, err := k.Recipient()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi.Mode(), err)
	}
	// Again: the same key, the passphrase asked once.
	rc2, ids, err := k.Open()
	if err != nil || fmt.Sprint(rc2) != fmt.Sprint(rc) || len(ids) != 1 {
		t.Fatalf("reopened: %v, %v vs %v, %d identities", err, rc2, rc, len(ids))
	}
	ids2, err := k.Identities()
	if err != nil || len(ids2) != 1 {
		t.Fatalf("Identities: %v", err)
	}
	if fmt.Sprint(asked) != "[true false false]" {
		t.Fatalf("confirmation asked %v, want only for the new file", asked)
	}
	// What is sealed to the recipient opens with the identities.
	var sealed bytes.Buffer
	w, _ := codec.Seal(&sealed, codec.Form{Encrypted: true}, rc)
	w.Write([]byte("block"))
	w.Close()
	r, err := codec.Open(&sealed, codec.Form{Encrypted: true}, ids2...)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); string(got) != "block" {
		t.Fatalf("opened %q", got)
	}

	wrong := codec.KeyFile{Path: path, Name: "key.age", Passphrase: pass("hunter2")}
	for name, open := range map[string]func() error{
		"Recipient":  func() error { _, err := wrong.Recipient(); return err },
		"Open":       func() error { _, _, err := wrong.Open(); return err },
		"Identities": func() error { _, err := wrong.Identities(); return err },
	} {
		err := open()
		var ke *codec.KeyError
		if !errors.As(err, &ke) || !errors.Is(err, codec.ErrWrongKey) || !strings.HasPrefix(err.Error(), "key.age: ") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s with a wrong passphrase: %v", name, err)
		}
	}

	// A new key file read back: Open parses what it wrote.
	rc3, ids3, err := codec.KeyFile{Path: filepath.Join(dir, "other.age"), Passphrase: pass("x")}.Open()
	if err != nil || len(ids3) != 1 || fmt.Sprint(ids3[0].(*age.X25519Identity).Recipient()) != fmt.Sprint(rc3) {
		t.Fatalf("new key, read back: %v", err)
	}

	// The passphrase's own error comes back as it is, and nothing is written.
	errNo := errors.New("no terminal")
	fresh := filepath.Join(dir, "none.age")
	_, err = codec.KeyFile{Path: fresh, Passphrase: func(bool) (string, error) { return "", errNo }}.Recipient()
	if err != errNo {
		t.Fatalf("passphrase error: %v", err)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("a key file without a passphrase: %v", err)
	}
	// A key file holding no X25519 identity is refused, not used.
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	var protected bytes.Buffer
	sr, _ := age.NewScryptRecipient("x")
	sr.SetWorkFactor(10)
	aw, _ := age.Encrypt(&protected, sr)
	fmt.Fprintln(aw, pq)
	aw.Close()
	pqPath := filepath.Join(dir, "pq.age")
	os.WriteFile(pqPath, protected.Bytes(), 0o600)
	if _, err := (codec.KeyFile{Path: pqPath, Passphrase: pass("x")}).Recipient(); err == nil || !strings.Contains(err.Error(), "holds no X25519 identity") {
		t.Fatalf("a key file without an X25519 identity: %v", err)
	}
}

func TestIdentityFileErrors(t *testing.T) {
	_, err := codec.IdentityFile("mine.txt", []byte("not a key\n"), nil)
	var ke *codec.KeyError
	if !errors.As(err, &ke) || ke.Name != "mine.txt" || !errors.Is(err, codec.ErrWrongKey) || !strings.HasPrefix(err.Error(), "mine.txt: parsing identities") {
		t.Fatalf("a malformed identity file: %v", err)
	}
	id, _ := age.GenerateX25519Identity()
	ids, err := codec.IdentityFile("mine.txt", []byte(id.String()+"\n"), nil)
	if err != nil || len(ids) != 1 {
		t.Fatalf("an identity file: %v", err)
	}
}
