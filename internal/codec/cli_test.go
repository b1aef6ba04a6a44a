package codec_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// run runs a tool with stdin and returns its stdout, failing the test
// with its stderr when it fails.
func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// onTerminal runs a shell command line under script(1), which gives it a
// pseudo-terminal fed from stdin: age reads passphrases only from a
// terminal.
func onTerminal(t *testing.T, stdin, cmdline string) {
	t.Helper()
	run(t, []byte(stdin), "script", "-qec", cmdline, "/dev/null")
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cliKey makes a key with age-keygen and returns its file, identities
// and recipient as our parsers read them.
func cliKey(t *testing.T, dir string) (string, []age.Identity, age.Recipient) {
	t.Helper()
	keyFile := filepath.Join(dir, "key.txt")
	run(t, nil, "age-keygen", "-o", keyFile)
	ids, err := codec.ParseIdentities(bytes.NewReader(readFile(t, keyFile)), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := codec.ParseRecipient(string(run(t, nil, "age-keygen", "-y", keyFile)))
	if err != nil {
		t.Fatal(err)
	}
	return keyFile, ids, rec
}

// uncompressCLI opens a compressed file with the standard tool.
func uncompressCLI(t *testing.T, c codec.Codec, path string) []byte {
	t.Helper()
	switch c {
	case codec.Zstd:
		return run(t, nil, "zstd", "-d", "-q", "-c", path)
	case codec.Gzip:
		return run(t, nil, "gzip", "-d", "-c", path)
	}
	return readFile(t, path)
}

func TestCLIOpensOurFiles(t *testing.T) {
	testenv.RequireTool(t, "age", "age-keygen", "zstd", "gzip")
	dir := t.TempDir()
	keyFile, _, rec := cliKey(t, dir)
	data := textBlock(30)
	for _, f := range allForms {
		var recipients []age.Recipient
		if f.Encrypted {
			recipients = []age.Recipient{rec}
		}
		name := filepath.Join(dir, "0000000001"+f.Suffix())
		writeFile(t, name, seal(t, f, data, recipients...))
		compressed := name
		if f.Encrypted {
			compressed = strings.TrimSuffix(name, ".age")
			run(t, nil, "age", "-d", "-i", keyFile, "-o", compressed, name)
		}
		if got := uncompressCLI(t, f.Codec, compressed); !bytes.Equal(got, data) {
			t.Errorf("%v: the standard tools gave %d bytes sha256 %s, want sha256 %s", f, len(got), sumHex(got), sumHex(data))
		}
	}
}

func TestCLISSHKeyOpensOurFile(t *testing.T) {
	testenv.RequireTool(t, "age", "zstd")
	dir := t.TempDir()
	pub, priv := sshKey(t, "")
	keyFile := writeFile(t, filepath.Join(dir, "id_ed25519"), priv)
	rec, err := codec.ParseRecipient(pub)
	if err != nil {
		t.Fatal(err)
	}
	f := codec.Form{Codec: codec.Zstd, Encrypted: true}
	data := textBlock(31)
	sealed := writeFile(t, filepath.Join(dir, "b.zst.age"), seal(t, f, data, rec))
	run(t, nil, "age", "-d", "-i", keyFile, "-o", filepath.Join(dir, "b.zst"), sealed)
	if got := uncompressCLI(t, codec.Zstd, filepath.Join(dir, "b.zst")); !bytes.Equal(got, data) {
		t.Errorf("ssh-sealed block opened by age and zstd: sha256 %s, want %s", sumHex(got), sumHex(data))
	}
}

func TestWeOpenCLIFiles(t *testing.T) {
	testenv.RequireTool(t, "age", "age-keygen", "zstd", "gzip")
	dir := t.TempDir()
	keyFile, ids, _ := cliKey(t, dir)
	pub, priv := sshKey(t, "")
	sshIDs, err := codec.ParseIdentities(bytes.NewReader(priv), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A recipients file with comments and blank lines, read by age -R.
	recipients := writeFile(t, filepath.Join(dir, "recipients.txt"),
		[]byte("# examiners\n\n"+string(run(t, nil, "age-keygen", "-y", keyFile))+"\n"+pub+" lab\n"))
	data := append(textBlock(32)[:block512k/2], randomBlock(33)[:block512k/2]...)
	plain := writeFile(t, filepath.Join(dir, "block"), data)
	for _, tc := range []struct {
		c    codec.Codec
		args []string
	}{
		{codec.Zstd, []string{"-q", "-c", "-1"}},
		{codec.Zstd, []string{"-q", "-c", "-19"}},
		{codec.Gzip, []string{"-c", "-6"}},
		{codec.Gzip, []string{"-c", "-9", "-n"}},
		{codec.None, nil},
	} {
		compressed := readFile(t, plain)
		if tc.c == codec.Zstd {
			compressed = run(t, nil, "zstd", append(tc.args, plain)...)
		} else if tc.c == codec.Gzip {
			compressed = run(t, nil, "gzip", append(tc.args, plain)...)
		}
		name := strings.Join(append([]string{string(tc.c)}, tc.args...), " ")
		if got, err := open(codec.Form{Codec: tc.c}, compressed); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
		in := writeFile(t, filepath.Join(dir, "in"), compressed)
		sealed := run(t, nil, "age", "-R", recipients, in)
		f := codec.Form{Codec: tc.c, Encrypted: true}
		for i, id := range []age.Identity{ids[0], sshIDs[0]} {
			if got, err := open(f, sealed, id); err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s then age -R, identity %d: %d bytes, %v", name, i, len(got), err)
			}
		}
	}
}

// block512k is block.Size, spelled out for the CLI tests.
const block512k = 512 << 10

func TestCLIPassphrase(t *testing.T) {
	testenv.RequireTool(t, "age", "zstd", "script")
	defer codec.SetKeyFileWorkFactor(10)()
	dir := t.TempDir()
	const pass = "a passphrase typed on a terminal"
	data := textBlock(34)
	f := codec.Form{Codec: codec.Zstd, Encrypted: true}

	// Our key file opens with age -d -i, which asks for its passphrase.
	var key bytes.Buffer
	rec, err := codec.GenerateKeyFile(&key, pass)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, filepath.Join(dir, "key.age"), key.Bytes())
	sealed := writeFile(t, filepath.Join(dir, "b.zst.age"), seal(t, f, data, rec))
	out := filepath.Join(dir, "b.zst")
	onTerminal(t, pass+"\n", "age -d -i "+keyFile+" -o "+out+" "+sealed)
	if got := uncompressCLI(t, codec.Zstd, out); !bytes.Equal(got, data) {
		t.Errorf("age -d -i key file: sha256 %s, want %s", sumHex(got), sumHex(data))
	}

	// A file we seal with the passphrase itself opens with age -d.
	scrypt, err := age.NewScryptRecipient(pass)
	if err != nil {
		t.Fatal(err)
	}
	scrypt.SetWorkFactor(10)
	direct := writeFile(t, filepath.Join(dir, "c.zst.age"), seal(t, f, data, scrypt))
	out = filepath.Join(dir, "c.zst")
	onTerminal(t, pass+"\n", "age -d -o "+out+" "+direct)
	if got := uncompressCLI(t, codec.Zstd, out); !bytes.Equal(got, data) {
		t.Errorf("age -d of a passphrase file: sha256 %s, want %s", sumHex(got), sumHex(data))
	}

	// A file age -p made (at age's own work factor, about a second to
	// make and another to open) opens with ours.
	if testing.Short() {
		return
	}
	compressed := writeFile(t, filepath.Join(dir, "d.zst"), run(t, data, "zstd", "-q", "-c"))
	byCLI := filepath.Join(dir, "d.zst.age")
	onTerminal(t, pass+"\n"+pass+"\n", "age -p -o "+byCLI+" "+compressed)
	id, err := age.NewScryptIdentity(pass)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(f, readFile(t, byCLI), id); err != nil || !bytes.Equal(got, data) {
		t.Errorf("age -p file: %d bytes, %v", len(got), err)
	}
}
