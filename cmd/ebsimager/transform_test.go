package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

const (
	snapT = "snap-0c0000000000000c5"
	specT = snapT + "=1GiB,0.02,5" // about 40 blocks: 20 MiB
)

// fileHashes returns every file under dir with the SHA-256 of its bytes,
// but for the chain-of-custody record, which logs refused attempts too.
func fileHashes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), "report.") {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = sha256File(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// blockFilesOf returns the block files of an evidence directory, sorted.
func blockFilesOf(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dir, "blocks"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != ".journal" {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatalf("%s holds no block file", dir)
	}
	return out
}

// checkStoredSuffix asserts that every block file ends in suffix and nothing
// more.
func checkStoredSuffix(t *testing.T, dir, suffix string) {
	t.Helper()
	for _, p := range blockFilesOf(t, dir) {
		if _, ext, err := block.ParseFileName(filepath.Base(p)); err != nil || ext != suffix {
			t.Fatalf("%s: suffix %q (%v), want %q", p, ext, err, suffix)
		}
	}
}

func metaOf(t *testing.T, dir string) store.Meta {
	t.Helper()
	var m store.Meta
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, store.MetaName))), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// exportSHA256 exports dir to a new image and returns its SHA-256.
func exportSHA256(t *testing.T, c *cli, dir string, args ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img.raw")
	c.ok(append([]string{"export", dir, "--out", img, "--quiet", "--hash", "sha256"}, args...)...)
	return strings.Fields(readFile(t, img+".sha256"))[0]
}

// makeIdentity writes a fresh age identity file and returns it with its
// recipient.
func makeIdentity(t *testing.T) (string, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(path, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, id.Recipient().String()
}

// toolStdout runs an external program and returns its stdout.
func toolStdout(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// openBlockWithTools opens one stored block with the standard tools (age -d,
// then zstd -d or gunzip) and checks that it gives the exact bytes its
// name's SHA-256 says.
func openBlockWithTools(t *testing.T, path, identity string) {
	t.Helper()
	fi, ext, err := block.ParseFileName(filepath.Base(path))
	if err != nil {
		t.Fatal(err)
	}
	data := path
	if rest, ok := strings.CutSuffix(ext, ".age"); ok {
		data = filepath.Join(t.TempDir(), "block"+rest)
		toolStdout(t, "age", "-d", "-i", identity, "-o", data, path)
		ext = rest
	}
	var plain []byte
	switch ext {
	case ".zst":
		plain = toolStdout(t, "zstd", "-d", "-q", "-c", data)
	case ".gz":
		plain = toolStdout(t, "gunzip", "-c", data)
	case "":
		plain = []byte(readFile(t, data))
	default:
		t.Fatalf("%s: unexpected suffix %q", path, ext)
	}
	if got := sha256.Sum256(plain); len(plain) != block.Size || hex.EncodeToString(got[:]) != fi.Sum.Hex() {
		t.Fatalf("%s: the standard tools gave %d bytes, sha256 %x; want %d bytes, %s", path, len(plain), got, block.Size, fi.Sum.Hex())
	}
}

func TestTransformCommands(t *testing.T) {
	t.Parallel()
	testenv.RequireTool(t, "age", "zstd", "gunzip")
	_, endpoint := startEmulator(t, emulator.Options{}, specT)
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("acquire", snapT, "--out", ev, "--quiet")
	acquired := fileHashes(t, ev)
	ref := exportSHA256(t, c, ev)
	nblocks := len(blockFilesOf(t, ev))

	// Compress, then recompress with the other codec.
	r := c.ok("compress", ev)
	want := fmt.Sprintf("compressed %s: %d blocks, none → zstd", ev, nblocks)
	if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, fmt.Sprintf("%d decoded back to the AWS SHA-256", nblocks)) {
		t.Fatalf("compress printed:\n%s\nwant %q", r.stdout, want)
	}
	checkStoredSuffix(t, ev, ".zst")
	if m := metaOf(t, ev); m.Codec != "zstd" || m.Encryption != "none" {
		t.Fatalf("evidence.json after compress: %+v", m)
	}
	c.ok("verify", ev, "--quiet")
	c.ok("compress", ev, "--codec", "gzip", "--quiet")
	checkStoredSuffix(t, ev, ".gz")
	openBlockWithTools(t, blockFilesOf(t, ev)[0], "")
	r = c.ok("compress", ev, "--codec", "gzip")
	if !strings.Contains(r.stdout, "already stores its blocks as gzip: nothing to do") {
		t.Fatalf("compressing again: %s", r.stdout)
	}

	// Encrypt to a recipient: this machine holds no key that decrypts.
	identity, recipient := makeIdentity(t)
	r = c.ok("encrypt", ev, "--recipient", recipient)
	if !strings.Contains(r.stdout, "gzip → gzip+age") || !strings.Contains(r.stdout, "recipients "+recipient) ||
		!strings.Contains(r.stdout, fmt.Sprintf("%d are encrypted to keys this machine does not hold", nblocks)) {
		t.Fatalf("encrypt printed:\n%s", r.stdout)
	}
	checkStoredSuffix(t, ev, ".gz.age")
	if m := metaOf(t, ev); m.Codec != "gzip" || m.Encryption != "age" || fmt.Sprint(m.Recipients) != "["+recipient+"]" || m.KeyFile != "" {
		t.Fatalf("evidence.json after encrypt: %+v", m)
	}
	r = c.ok("verify", ev)
	if !strings.Contains(r.stdout, fmt.Sprintf("%d stored files matched, 0 block contents matched", nblocks)) ||
		!strings.Contains(r.stdout, fmt.Sprintf("%d blocks are encrypted: their stored bytes were checked", nblocks)) {
		t.Fatalf("verify without a key:\n%s", r.stdout)
	}
	r = c.ok("verify", ev, "--identity", identity)
	if !strings.Contains(r.stdout, fmt.Sprintf("%d stored files matched, %d block contents matched", nblocks, nblocks)) {
		t.Fatalf("verify with the identity:\n%s", r.stdout)
	}
	if got := exportSHA256(t, c, ev, "--identity", identity); got != ref {
		t.Fatalf("export of the encrypted evidence: sha256 %s, the plain export's %s", got, ref)
	}
	files := blockFilesOf(t, ev)
	openBlockWithTools(t, files[len(files)/2], identity)

	// A wrong identity names the block and writes nothing.
	wrong, _ := makeIdentity(t)
	before := fileHashes(t, ev)
	first, _, _ := block.ParseFileName(filepath.Base(files[0]))
	r = c.fails(exitWrongKey, fmt.Sprintf("block %d", first.Index), "decrypt", ev, "--identity", wrong)
	if !strings.Contains(r.stderr, "wrong key") {
		t.Fatalf("decrypt with a wrong identity: %s", r.stderr)
	}
	img := filepath.Join(t.TempDir(), "wrong.raw")
	c.fails(exitWrongKey, fmt.Sprintf("block %d", first.Index), "export", ev, "--out", img, "--identity", wrong)
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Fatalf("export with a wrong identity left %s: %v", img, err)
	}
	c.fails(exitWrongKey, "", "decrypt", ev) // no key at all
	if after := fileHashes(t, ev); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("refused decryptions changed the evidence:\n%v\nwant\n%v", after, before)
	}
	c.fails(exitError, "already encrypted", "encrypt", ev, "--recipient", recipient)

	// Recompressing encrypted evidence keeps it encrypted to the same key.
	c.ok("compress", ev, "--identity", identity, "--quiet")
	checkStoredSuffix(t, ev, ".zst.age")
	openBlockWithTools(t, blockFilesOf(t, ev)[0], identity)
	c.ok("uncompress", ev, "--identity", identity, "--quiet")
	checkStoredSuffix(t, ev, ".age")
	openBlockWithTools(t, blockFilesOf(t, ev)[1], identity)

	// Tampered ciphertext: verify without a key catches it, decrypt
	// refuses it and undoes itself.
	files = blockFilesOf(t, ev)
	victim := files[len(files)-1]
	fi, _, _ := block.ParseFileName(filepath.Base(victim))
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(orig)
	tampered[len(tampered)-100] ^= 0x01
	if err := os.WriteFile(victim, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	before = fileHashes(t, ev)
	r = c.fails(exitMismatch, "verification FAILED: 1 problem in ", "verify", ev)
	if !strings.Contains(r.stdout, fmt.Sprintf("mismatch block %d", fi.Index)) || !strings.Contains(r.stdout, "stored sha256") {
		t.Fatalf("verify of tampered ciphertext:\n%s", r.stdout)
	}
	c.fails(exitMismatch, fmt.Sprintf("block %d", fi.Index), "decrypt", ev, "--identity", identity)
	if after := fileHashes(t, ev); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a refused decryption changed the evidence:\n%v\nwant\n%v", after, before)
	}
	if err := os.WriteFile(victim, orig, 0o600); err != nil {
		t.Fatal(err)
	}

	// Back to where it started: the same block files, the same manifest.
	c.ok("decrypt", ev, "--identity", identity, "--quiet")
	checkStoredSuffix(t, ev, "")
	if m := metaOf(t, ev); m.Codec != "none" || m.Encryption != "none" || m.Recipients != nil {
		t.Fatalf("evidence.json after decrypt: %+v", m)
	}
	got := fileHashes(t, ev)
	for name, sum := range acquired {
		if strings.HasSuffix(name, ".journal") || name == store.MetaName {
			continue
		}
		if got[name] != sum {
			t.Fatalf("%s differs from the acquisition's after the round trip", name)
		}
	}
	if len(got) != len(acquired) {
		t.Fatalf("%d files after the round trip, %d acquired", len(got), len(acquired))
	}
	c.ok("verify", ev, "--quiet")
	// The journals were rewritten: a resumed acquisition fetches nothing.
	r = c.ok("acquire", snapT, "--out", ev, "--json")
	var sum acquireSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Fetched != 0 || sum.Resumed != int64(nblocks) {
		t.Fatalf("acquire after the round trip: %+v %v", sum, err)
	}
}

// TestTransformPassphrase: passphrase mode, where the key file is kept
// with the evidence.
func TestTransformPassphrase(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, specT)
	c := newCLI(t, endpoint)
	dir := t.TempDir()
	plain, sealed := filepath.Join(dir, "plain"), filepath.Join(dir, "sealed")
	c.ok("acquire", snapT, "--out", plain, "--quiet")
	ref := exportSHA256(t, c, plain)

	c.env = []string{"EBSIMAGER_PASSPHRASE=correct horse battery staple"}
	c.ok("acquire", snapT, "--out", sealed, "--quiet", "--compress", "zstd", "--encrypt")
	checkStoredSuffix(t, sealed, ".zst.age")
	if got := exportSHA256(t, c, sealed); got != ref {
		t.Fatalf("export of passphrase-encrypted evidence: sha256 %s, want %s", got, ref)
	}

	// A wrong passphrase does not open the key file; nothing changes.
	before := fileHashes(t, sealed)
	c.env = []string{"EBSIMAGER_PASSPHRASE=wrong"}
	c.fails(exitWrongKey, store.KeyName, "decrypt", sealed)
	if after := fileHashes(t, sealed); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("a refused decryption changed the evidence")
	}
	c.env = []string{"EBSIMAGER_PASSPHRASE=correct horse battery staple"}
	r := c.ok("decrypt", sealed)
	if !strings.Contains(r.stdout, "zstd+age → zstd") || !strings.Contains(r.stdout, "removed    "+store.KeyName) {
		t.Fatalf("decrypt printed:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(sealed, store.KeyName)); !os.IsNotExist(err) {
		t.Fatalf("the key file outlived the encryption: %v", err)
	}
	if m := metaOf(t, sealed); m.KeyFile != "" || m.Encryption != "none" {
		t.Fatalf("evidence.json after decrypt: %+v", m)
	}

	// Encrypting with a passphrase: every new file is decrypted back and
	// checked, since the key is at hand.
	c.env = []string{"EBSIMAGER_PASSPHRASE=another passphrase"}
	r = c.ok("encrypt", plain)
	if !strings.Contains(r.stdout, "none → none+age") || !strings.Contains(r.stdout, "key file   "+store.KeyName) ||
		strings.Contains(r.stdout, "does not hold") {
		t.Fatalf("encrypt printed:\n%s", r.stdout)
	}
	if m := metaOf(t, plain); m.KeyFile != store.KeyName || len(m.Recipients) != 1 || !strings.HasPrefix(m.Recipients[0], "age1") {
		t.Fatalf("evidence.json after encrypt: %+v", m)
	}
	if fi, err := os.Stat(filepath.Join(plain, store.KeyName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	checkStoredSuffix(t, plain, ".age")
	if got := exportSHA256(t, c, plain); got != ref {
		t.Fatalf("export after encrypt with a passphrase: sha256 %s, want %s", got, ref)
	}
	for _, out := range []string{r.stdout, readFile(t, filepath.Join(plain, store.MetaName))} {
		if strings.Contains(out, "another passphrase") {
			t.Fatal("the passphrase was recorded")
		}
	}
}

// TestKill9Compress kills compress mid-way: what it leaves verifies, and a
// rerun completes it.
func TestKill9Compress(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, specT)
	c := newCLI(t, endpoint)
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("acquire", snapT, "--out", ev, "--quiet")
	ref := exportSHA256(t, c, ev)
	files := blockFilesOf(t, ev)

	// Stand a FIFO in for a block in the middle, so that the conversion
	// stops there, deterministically, with the blocks before it done.
	k := len(files) / 2
	victim := files[k]
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(victim, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := c.command(t.Context(), "compress", ev, "--quiet", "--workers", "2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	entries := filepath.Join(ev, "transform.jsonl")
	deadline := time.Now().Add(time.Minute)
	for {
		data, _ := os.ReadFile(entries)
		if strings.Count(string(data), "\n") >= k {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("compress recorded %d of the %d blocks before the FIFO in a minute", strings.Count(string(data), "\n"), k)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ev, store.ConversionName)); err != nil {
		t.Fatalf("no conversion under way after the kill: %v", err)
	}
	// Both forms of the first blocks are there, and verify accepts them.
	if _, err := os.Stat(files[0] + ".zst"); err != nil {
		t.Fatalf("the first block was not converted before the kill: %v", err)
	}
	c.ok("verify", ev, "--quiet")
	if got := exportSHA256(t, c, ev); got != ref {
		t.Fatalf("export after the kill: %s, want %s", got, ref)
	}
	// Asking for another conversion meanwhile is refused.
	c.fails(exitError, "a conversion to zstd is under way", "compress", ev, "--codec", "gzip")

	r := c.ok("compress", ev, "--json")
	var s transformSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Resumed != int64(k) || s.Blocks != int64(len(files)) || s.Decoded != s.Blocks-s.Resumed || s.To != "zstd" {
		t.Fatalf("rerun: %+v; %d blocks were recorded before the kill", s, k)
	}
	checkStoredSuffix(t, ev, ".zst")
	for _, n := range []string{store.ConversionName, "transform.jsonl", "transform-manifest.jsonl"} {
		if _, err := os.Stat(filepath.Join(ev, n)); !os.IsNotExist(err) {
			t.Fatalf("%s left after the rerun: %v", n, err)
		}
	}
	c.ok("verify", ev, "--quiet")
	if got := exportSHA256(t, c, ev); got != ref {
		t.Fatalf("export after the rerun: %s, want %s", got, ref)
	}
}
