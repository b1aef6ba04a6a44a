package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
)

// fernetVectors is the part of internal/snap4n6ir/testdata/vectors.json
// these tests use.
type fernetVectors struct {
	Snapshot  string            `json:"snapshot"`
	VolumeGiB int64             `json:"volume_gib"`
	Password  string            `json:"password"`
	Salt      string            `json:"salt"`
	Folders   map[string]string `json:"folders"`
	Blocks    []struct {
		Index  int64  `json:"index"`
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
		Plain  bool   `json:"plain"`
	} `json:"blocks"`
}

const vectorDir = "../../internal/snap4n6ir/testdata"

func loadFernetVectors(t *testing.T) fernetVectors {
	t.Helper()
	var v fernetVectors
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(vectorDir, "vectors.json"))), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// vectorBlocks returns the blocks of the vectors by index, read from the
// compressed folder with the standard library and checked against
// vectors.json.
func vectorBlocks(t *testing.T, v fernetVectors) map[int64][]byte {
	t.Helper()
	out := map[int64][]byte{}
	for _, b := range v.Blocks {
		f, err := os.Open(filepath.Join(vectorDir, v.Folders["compressed"], b.Name+".gz"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		f.Close()
		if s := sha256.Sum256(data); err != nil || len(data) != block.Size || hex.EncodeToString(s[:]) != b.SHA256 {
			t.Fatalf("vector block %d: %v", b.Index, err)
		}
		out[b.Index] = data
	}
	return out
}

// imageSHA256 is the SHA-256 of a volume of volumeGiB holding blocks and
// zeros elsewhere.
func imageSHA256(volumeGiB int64, blocks map[int64][]byte) string {
	h := sha256.New()
	zero := make([]byte, block.Size)
	for i := range block.Slots(volumeGiB) {
		if b, ok := blocks[i]; ok {
			h.Write(b)
		} else {
			h.Write(zero)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestImport4n6ir(t *testing.T) {
	t.Parallel()
	v := loadFernetVectors(t)
	blocks := vectorBlocks(t, v)
	plainBlocks := map[int64][]byte{}
	for _, b := range v.Blocks {
		if b.Plain {
			plainBlocks[b.Index] = blocks[b.Index]
		}
	}
	wantAll, wantPlain := imageSHA256(v.VolumeGiB, blocks), imageSHA256(v.VolumeGiB, plainBlocks)
	c := newCLI(t, "")
	c.env = []string{"EBSIMAGER_PASSPHRASE=" + v.Password, "EBSIMAGER_SALT=" + v.Salt}
	dir := t.TempDir()
	for _, form := range []string{"plain", "compressed", "encrypted"} {
		src := filepath.Join(vectorDir, v.Folders[form])
		out := filepath.Join(dir, form)
		n, want := len(v.Blocks), wantAll
		if form == "plain" {
			n, want = len(plainBlocks), wantPlain
		}
		r := c.ok("import-4n6ir", src, "--out", out, "--case-number", "C-42")
		if !strings.Contains(r.stdout, fmt.Sprintf("(%s folder of %s, 1 GiB volume)", form, v.Snapshot)) ||
			!strings.Contains(r.stdout, fmt.Sprintf("blocks     %d, each checked against the SHA-256 in its file name", n)) ||
			!strings.Contains(r.stdout, "region     unknown") {
			t.Fatalf("import of %s printed:\n%s", form, r.stdout)
		}
		m := metaOf(t, out)
		if m.SnapshotID != v.Snapshot || m.Region != "unknown" || m.VolumeSizeGiB != 1 || m.BlockSize != block.Size ||
			m.Codec != "none" || m.Encryption != "none" || m.Case["case_number"] != "C-42" || !strings.HasPrefix(m.Endpoint, "file:///") {
			t.Fatalf("evidence.json of the %s import: %+v", form, m)
		}
		// The original tool's file names, holding the blocks as they were.
		files := blockFilesOf(t, out)
		if len(files) != n {
			t.Fatalf("%s import stored %d files, want %d", form, len(files), n)
		}
		for _, f := range files {
			fi, ext, err := block.ParseFileName(filepath.Base(f))
			if err != nil || ext != "" || !bytes.Equal([]byte(readFile(t, f)), blocks[fi.Index]) {
				t.Fatalf("%s: not the vector block (%v)", f, err)
			}
		}
		r = c.ok("verify", out)
		if !strings.Contains(r.stdout, fmt.Sprintf("%d stored files matched, %d block contents matched the SHA-256 in the original tool's file names (no AWS checksum: imported)", n, n)) {
			t.Fatalf("verify of the %s import:\n%s", form, r.stdout)
		}
		if got := exportSHA256(t, c, out); got != want {
			t.Fatalf("export of the %s import: sha256 %s, want %s", form, got, want)
		}
	}

	// The encrypted folder straight into compressed, age-encrypted
	// evidence, with the region given.
	identity, recipient := makeIdentity(t)
	sealed := filepath.Join(dir, "sealed")
	c.ok("import-4n6ir", filepath.Join(vectorDir, v.Folders["encrypted"]), "--out", sealed, "--quiet",
		"--compress", "zstd", "--recipient", recipient, "--region", "eu-west-1")
	checkStoredSuffix(t, sealed, ".zst.age")
	if m := metaOf(t, sealed); m.Region != "eu-west-1" || m.Codec != "zstd" || m.Encryption != "age" {
		t.Fatalf("evidence.json of the sealed import: %+v", m)
	}
	r := c.ok("verify", sealed, "--identity", identity)
	if !strings.Contains(r.stdout, fmt.Sprintf("%d block contents matched", len(v.Blocks))) {
		t.Fatalf("verify of the sealed import:\n%s", r.stdout)
	}
}

func TestImport4n6irBadInput(t *testing.T) {
	t.Parallel()
	v := loadFernetVectors(t)
	c := newCLI(t, "")
	dir := t.TempDir()
	enc := filepath.Join(vectorDir, v.Folders["encrypted"])
	first := v.Blocks[0]

	// A wrong password, or a wrong salt, names the first block and
	// writes nothing.
	for _, env := range [][]string{
		{"EBSIMAGER_PASSPHRASE=not the password", "EBSIMAGER_SALT=" + v.Salt},
		{"EBSIMAGER_PASSPHRASE=" + v.Password, "EBSIMAGER_SALT=not the salt"},
	} {
		c.env = env
		out := filepath.Join(dir, "wrong")
		r := c.fails(exitWrongKey, fmt.Sprintf("block %d (%s.gz.encrypted)", first.Index, first.Name), "import-4n6ir", enc, "--out", out)
		if !strings.Contains(r.stderr, "hint: check the password and the salt") || strings.Contains(r.stderr, "not the") {
			t.Fatalf("wrong key:\n%s", r.stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("a wrong key left %s: %v", out, err)
		}
	}
	// No salt at all, and no terminal to ask on.
	c.env = []string{"EBSIMAGER_PASSPHRASE=" + v.Password, "EBSIMAGER_SALT="}
	c.fails(exitWrongKey, "hint: give --salt-file FILE", "import-4n6ir", enc, "--out", filepath.Join(dir, "nosalt"))

	// A token altered after the first block: named, and the output
	// directory this run created is removed, in passphrase mode too.
	c.env = []string{"EBSIMAGER_PASSPHRASE=" + v.Password, "EBSIMAGER_SALT=" + v.Salt}
	altered := filepath.Join(dir, "altered", v.Folders["encrypted"])
	copyDir(t, enc, altered)
	last := v.Blocks[len(v.Blocks)-1]
	token := filepath.Join(altered, last.Name+".gz.encrypted")
	data := []byte(readFile(t, token))
	if data[100] == 'A' { // one base64 letter for another
		data[100] = 'B'
	} else {
		data[100] = 'A'
	}
	os.WriteFile(token, data, 0o600)
	out := filepath.Join(dir, "altered-out")
	c.fails(exitMismatch, fmt.Sprintf("block %d", last.Index), "import-4n6ir", altered, "--out", out, "--encrypt")
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a failed import left %s: %v", out, err)
	}

	// A plain block whose bytes do not match its name is a verification
	// failure (exit 4), named.
	plain := filepath.Join(dir, "plain", v.Folders["plain"])
	copyDir(t, filepath.Join(vectorDir, v.Folders["plain"]), plain)
	entries, _ := os.ReadDir(plain)
	victim := filepath.Join(plain, entries[0].Name())
	data = []byte(readFile(t, victim))
	data[0] ^= 1
	os.WriteFile(victim, data, 0o600)
	out = filepath.Join(dir, "plain-out")
	c.fails(exitMismatch, "block 5 ("+entries[0].Name()+"): block 5: sha256", "import-4n6ir", plain, "--out", out)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a failed import left %s: %v", out, err)
	}
	// An existing output directory is kept: it was not this run's.
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	c.fails(exitMismatch, "block 5", "import-4n6ir", plain, "--out", out)
	if entries, err := os.ReadDir(out); err != nil || len(entries) != 0 {
		t.Fatalf("the existing output directory: %v %v", entries, err)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.WriteFile(filepath.Join(dst, e.Name()), []byte(readFile(t, filepath.Join(src, e.Name()))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
