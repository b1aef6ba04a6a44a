package snap4n6ir

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/klauspost/compress/gzip"
)

// vectors is testdata/vectors.json, written by make_vectors.py with
// Python's gzip and cryptography's Fernet, as the original tool used them.
type vectors struct {
	Snapshot  string `json:"snapshot"`
	VolumeGiB int64  `json:"volume_gib"`
	BlockSize int    `json:"block_size"`
	Password  string `json:"password"`
	Salt      string `json:"salt"`
	FernetKey string `json:"fernet_key"`
	Folders   struct {
		Plain, Compressed, Encrypted string
	} `json:"folders"`
	Blocks []struct {
		Index  int64  `json:"index"`
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
		Plain  bool   `json:"plain"`
	} `json:"blocks"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The key derivation costs 100,000 PBKDF2 rounds; derive it once.
var derived struct {
	key *Key
	err error
}

func vectorKey(t *testing.T, v vectors) *Key {
	t.Helper()
	if derived.key == nil && derived.err == nil {
		derived.key, derived.err = DeriveKey(v.Password, v.Salt)
	}
	if derived.err != nil {
		t.Fatal(derived.err)
	}
	return derived.key
}

func TestDeriveKeyMatchesPython(t *testing.T) {
	v := loadVectors(t)
	want, err := ParseKey(v.FernetKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := vectorKey(t, v); *got != *want {
		t.Fatal("DeriveKey differs from the key Python derived from the same password and salt")
	}
	other, err := DeriveKey(v.Password, v.Salt+"x")
	if err != nil {
		t.Fatal(err)
	}
	if *other == *want {
		t.Fatal("a different salt derived the same key")
	}
	for _, bad := range []string{"", "short", v.FernetKey[:40], strings.ReplaceAll(v.FernetKey, "-", "+")} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
		}
	}
}

func TestReadAllForms(t *testing.T) {
	v := loadVectors(t)
	key := vectorKey(t, v)
	byForm := map[Form][][]byte{}
	for _, tc := range []struct {
		dir  string
		form Form
		key  *Key
	}{
		{v.Folders.Plain, Plain, nil},
		{v.Folders.Compressed, Compressed, nil},
		{v.Folders.Encrypted, Encrypted, key},
	} {
		f, err := Scan(filepath.Join("testdata", tc.dir))
		if err != nil {
			t.Fatal(err)
		}
		if f.Form != tc.form || f.Snapshot != v.Snapshot || f.VolumeGiB != v.VolumeGiB || len(f.Other) != 0 {
			t.Errorf("%s: form %v, snapshot %s, %d GiB, other %q", tc.dir, f.Form, f.Snapshot, f.VolumeGiB, f.Other)
		}
		var want []int64
		for _, b := range v.Blocks {
			if b.Plain || tc.form != Plain {
				want = append(want, b.Index)
			}
		}
		if len(f.Blocks) != len(want) {
			t.Fatalf("%s: %d blocks, want %d", tc.dir, len(f.Blocks), len(want))
		}
		for i, e := range f.Blocks {
			if e.Index != want[i] {
				t.Errorf("%s: block %d has index %d, want %d", tc.dir, i, e.Index, want[i])
			}
			vb := v.Blocks[0]
			for _, b := range v.Blocks {
				if b.Index == e.Index {
					vb = b
				}
			}
			if name := f.Name(e); name != vb.Name+tc.form.Suffix() {
				t.Errorf("Name = %s, want %s", name, vb.Name+tc.form.Suffix())
			}
			data, err := f.Read(e, tc.key)
			if err != nil {
				t.Fatalf("%s: %v", tc.dir, err)
			}
			sum := sha256.Sum256(data)
			if len(data) != block.Size || hex.EncodeToString(sum[:]) != vb.SHA256 {
				t.Errorf("%s: block %d: %d bytes sha256 %x, want %d bytes %s", tc.dir, e.Index, len(data), sum, block.Size, vb.SHA256)
			}
			if e.Index == 5 {
				byForm[tc.form] = append(byForm[tc.form], data)
			}
		}
	}
	// The block kept in all three forms reads back to the same bytes.
	if len(byForm[Plain]) != 1 || !bytes.Equal(byForm[Plain][0], byForm[Compressed][0]) || !bytes.Equal(byForm[Plain][0], byForm[Encrypted][0]) {
		t.Error("block 5 differs between the three forms")
	}
}

func TestTokenTimestamp(t *testing.T) {
	v := loadVectors(t)
	dir := filepath.Join("testdata", v.Folders.Encrypted)
	token, err := os.ReadFile(filepath.Join(dir, v.Blocks[0].Name+".gz.encrypted"))
	if err != nil {
		t.Fatal(err)
	}
	payload, created, err := DecryptToken(vectorKey(t, v), token)
	if err != nil {
		t.Fatal(err)
	}
	// make_vectors.py ran after 2024; Python's gzip.open wrote the header.
	if created.Before(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) || created.After(time.Now()) {
		t.Errorf("token made at %v", created)
	}
	if !bytes.HasPrefix(payload, []byte{0x1f, 0x8b, 8}) {
		t.Errorf("payload starts % x, want a gzip header", payload[:3])
	}
}

func TestWrongPassword(t *testing.T) {
	v := loadVectors(t)
	f, err := Scan(filepath.Join("testdata", v.Folders.Encrypted))
	if err != nil {
		t.Fatal(err)
	}
	key, err := DeriveKey("not the password", v.Salt)
	if err != nil {
		t.Fatal(err)
	}
	e := f.Blocks[2]
	data, err := f.Read(e, key)
	if data != nil {
		t.Errorf("wrong password returned %d bytes", len(data))
	}
	var be *BlockError
	if !errors.As(err, &be) || be.Index != e.Index || be.Name != f.Name(e) {
		t.Fatalf("wrong password: %v, want a BlockError for block %d", err, e.Index)
	}
	if !errors.Is(err, ErrSignature) || !errors.Is(err, codec.ErrWrongKey) {
		t.Errorf("wrong password: %v, want ErrSignature and codec.ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), f.Name(e)) || strings.Contains(err.Error(), "not the password") {
		t.Errorf("message %q should name the file and not the password", err)
	}
	if _, err := f.Read(e, nil); err == nil {
		t.Error("encrypted folder read without a key")
	}
}

// copyFolder copies a testdata folder into a temporary directory.
func copyFolder(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("testdata", name)
	dst := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestTamperedToken(t *testing.T) {
	v := loadVectors(t)
	key := vectorKey(t, v)
	dir := copyFolder(t, v.Folders.Encrypted)
	path := filepath.Join(dir, v.Blocks[3].Name+".gz.encrypted")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(token []byte) error {
		t.Helper()
		if err := os.WriteFile(path, token, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := Scan(dir)
		if err != nil {
			t.Fatal(err)
		}
		data, err := f.Read(f.Blocks[3], key)
		if (err == nil) != (data != nil) {
			t.Errorf("Read returned %d bytes and %v", len(data), err)
		}
		return err
	}
	// One character changed in the IV, the ciphertext and the HMAC: each
	// fails the signature.
	for _, at := range []int{20, len(orig) / 2, len(orig) - 10} {
		bad := bytes.Clone(orig)
		if bad[at] == 'A' {
			bad[at] = 'B'
		} else {
			bad[at] = 'A'
		}
		if err := tamper(bad); !errors.Is(err, ErrSignature) {
			t.Errorf("character %d changed: %v, want ErrSignature", at, err)
		}
	}
	// A cut token is malformed base64 or fails the signature.
	if err := tamper(orig[:len(orig)-4]); err == nil {
		t.Error("cut token read without error")
	}
	if err := tamper([]byte("gAAAAAB not base64 !")); !errors.Is(err, ErrMalformedToken) {
		t.Errorf("garbage token: %v, want ErrMalformedToken", err)
	}
	// A trailing newline, as an editor might add, is accepted like Python does.
	if err := tamper(append(bytes.Clone(orig), '\n')); err != nil {
		t.Errorf("token with a trailing newline: %v", err)
	}
}

// encryptToken makes a Fernet token the way cryptography's Fernet does,
// for blocks the Python vectors do not cover.
func encryptToken(t *testing.T, k *Key, plain []byte) []byte {
	t.Helper()
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	padded := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(pad)}, pad)...)
	raw := make([]byte, fernetHeader, fernetHeader+len(padded)+fernetMAC)
	raw[0] = fernetVersion
	binary.BigEndian.PutUint64(raw[fernetTime:], uint64(time.Date(2020, 3, 8, 12, 0, 0, 0, time.UTC).Unix()))
	copy(raw[fernetIV:], "0123456789abcdef") // fixed IV: a test, not a secret
	c, err := aes.NewCipher(k.encryption[:])
	if err != nil {
		t.Fatal(err)
	}
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(c, raw[fernetIV:fernetHeader]).CryptBlocks(ct, padded)
	raw = append(raw, ct...)
	h := hmac.New(sha256.New, k.signing[:])
	h.Write(raw)
	raw = h.Sum(raw)
	return []byte(base64.URLEncoding.EncodeToString(raw))
}

func gzipBytes(t *testing.T, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(p)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// nameFor returns the block file name for index and sum in the vectors'
// snapshot.
func nameFor(v vectors, index int64, sum block.Sum) string {
	return block.FileName(block.FileInfo{Index: index, Snapshot: v.Snapshot, Sum: sum, VolumeGiB: v.VolumeGiB, BlockSize: block.Size})
}

func TestContentDoesNotMatchName(t *testing.T) {
	v := loadVectors(t)
	key := vectorKey(t, v)
	real := make([]byte, block.Size)
	copy(real, "the bytes on disk")
	claimed := block.SumOf(make([]byte, block.Size)) // the name says zeros
	for _, tc := range []struct {
		form Form
		file []byte
		key  *Key
	}{
		{Plain, real, nil},
		{Compressed, gzipBytes(t, real), nil},
		{Encrypted, encryptToken(t, key, gzipBytes(t, real)), key},
	} {
		dir := t.TempDir()
		name := nameFor(v, 9, claimed) + tc.form.Suffix()
		if err := os.WriteFile(filepath.Join(dir, name), tc.file, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := Scan(dir)
		if err != nil {
			t.Fatal(err)
		}
		data, err := f.Read(f.Blocks[0], tc.key)
		var ce *block.ChecksumError
		if !errors.As(err, &ce) || ce.Index != 9 || ce.Want != claimed || ce.Got != block.SumOf(real) || data != nil {
			t.Errorf("%v: %v (%d bytes), want a ChecksumError for block 9", tc.form, err, len(data))
		}
		var be *BlockError
		if !errors.As(err, &be) || be.Name != name {
			t.Errorf("%v: %v, want a BlockError naming %s", tc.form, err, name)
		}
	}
}

func TestWrongLength(t *testing.T) {
	v := loadVectors(t)
	for _, n := range []int{100, block.Size + 1} {
		short := bytes.Repeat([]byte{7}, n)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, nameFor(v, 3, block.SumOf(short))+".gz"), gzipBytes(t, short), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := Scan(dir)
		if err != nil {
			t.Fatal(err)
		}
		data, err := f.Read(f.Blocks[0], nil)
		if err == nil || data != nil {
			t.Errorf("%d-byte block: %d bytes, %v; want an error", n, len(data), err)
		}
		if n > block.Size && !errors.Is(err, codec.ErrTooLarge) {
			t.Errorf("%d-byte block: %v, want ErrTooLarge", n, err)
		}
	}
}

func TestScanFolders(t *testing.T) {
	v := loadVectors(t)
	sum := func(b byte) block.Sum { return block.SumOf([]byte{b}) }
	touch := func(t *testing.T, dir string, names ...string) {
		t.Helper()
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Order and strays.
	dir := t.TempDir()
	touch(t, dir, nameFor(v, 2047, sum(1)), nameFor(v, 0, sum(2)), nameFor(v, 10, sum(3)), ".DS_Store", "notes.txt")
	f, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Blocks) != 3 || f.Blocks[0].Index != 0 || f.Blocks[1].Index != 10 || f.Blocks[2].Index != 2047 || f.Blocks[1].Sum != sum(3) {
		t.Errorf("blocks %+v, want indexes 0, 10, 2047", f.Blocks)
	}
	if wantOther := []string{".DS_Store", "notes.txt"}; strings.Join(f.Other, "|") != strings.Join(wantOther, "|") {
		t.Errorf("Other = %q, want %q", f.Other, wantOther)
	}
	// A block-like name that is not a block file is an error naming it,
	// never skipped.
	for _, tc := range []struct {
		what, entry string
		dir         bool
	}{
		{"eleven digits", "00000000007_" + v.Snapshot + "_" + sum(4).Hex() + "_1_524288", false},
		{"upper-case hex", "0000000007_" + v.Snapshot + "_" + strings.ToUpper(sum(4).Hex()) + "_1_524288", false},
		{"another suffix", nameFor(v, 11, sum(5)) + ".zst", false},
		{"a directory", nameFor(v, 12, sum(6)), true},
		{"a huge volume", strings.Replace(nameFor(v, 13, sum(6)), "_1_524288", "_99999999999_524288", 1), false},
		{"a bad digest", "0000000007_" + v.Snapshot + "_xyz_1_524288", false},
	} {
		dir := t.TempDir()
		touch(t, dir, nameFor(v, 0, sum(2)), ".DS_Store")
		if tc.dir {
			if err := os.Mkdir(filepath.Join(dir, tc.entry), 0o700); err != nil {
				t.Fatal(err)
			}
		} else {
			touch(t, dir, tc.entry)
		}
		_, err := Scan(dir)
		var fe *FolderError
		if !errors.As(err, &fe) || fe.Entry != tc.entry || !strings.Contains(err.Error(), tc.entry) {
			t.Errorf("%s: %v, want a FolderError naming %s", tc.what, err, tc.entry)
		}
	}

	for _, tc := range []struct {
		name  string
		files []string
		want  string
	}{
		{"empty", nil, "no block files"},
		{"mixed forms", []string{nameFor(v, 0, sum(1)), nameFor(v, 1, sum(2)) + ".gz"}, "compressed"},
		{"two snapshots", []string{nameFor(v, 0, sum(1)), strings.Replace(nameFor(v, 1, sum(2)), v.Snapshot, "snap-0ff", 1)}, "snap-0ff"},
		{"two volume sizes", []string{nameFor(v, 0, sum(1)), strings.Replace(nameFor(v, 1, sum(2)), "_1_524288", "_2_524288", 1)}, "2 GiB"},
		{"block size", []string{strings.Replace(nameFor(v, 1, sum(2)), "_524288", "_4096", 1)}, "block size 4096"},
		{"beyond the volume", []string{nameFor(v, 2048, sum(1))}, "block 2048 is beyond the volume of 2048 blocks"},
		{"beyond any volume", []string{strings.Replace(nameFor(v, 1, sum(2)), "_1_524288", "_65537_524288", 1)}, "EBS volumes are at most 64 TiB"},
		{"index twice", []string{nameFor(v, 4, sum(1)), nameFor(v, 4, sum(2))}, "block 4 has another file"},
	} {
		dir := t.TempDir()
		touch(t, dir, tc.files...)
		_, err := Scan(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := Scan(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing folder: %v", err)
	}
}

func TestScanLargeFolder(t *testing.T) {
	// More entries than several ReadDir batches, written in reverse order.
	defer func(old int) { readDirBatch = old }(readDirBatch)
	readDirBatch = 7
	v := loadVectors(t)
	dir := t.TempDir()
	const n = 100
	for i := n - 1; i >= 0; i-- {
		name := nameFor(v, int64(i), block.SumOf([]byte{byte(i)})) + ".gz"
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Blocks) != n {
		t.Fatalf("%d blocks, want %d", len(f.Blocks), n)
	}
	for i, e := range f.Blocks {
		if e.Index != int64(i) || e.Sum != block.SumOf([]byte{byte(i)}) {
			t.Fatalf("entry %d: index %d", i, e.Index)
		}
	}
}

func TestKeyOnlyForEncrypted(t *testing.T) {
	v := loadVectors(t)
	f, err := Scan(filepath.Join("testdata", v.Folders.Compressed))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(f.Blocks[0], vectorKey(t, v)); err == nil {
		t.Error("compressed folder read with a key: want an error, the key is a mistake")
	}
}

func TestReadSalt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "salt")
	if err := os.WriteFile(p, []byte("pepper\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string { return map[string]string{SaltEnv: "from env"}[k] }
	if s, err := ReadSalt(p, getenv, nil); err != nil || s != "pepper" {
		t.Errorf("salt file: %q, %v", s, err)
	}
	if s, err := ReadSalt("", getenv, nil); err != nil || s != "from env" {
		t.Errorf("salt env: %q, %v", s, err)
	}
	if _, err := ReadSalt("", func(string) string { return "" }, nil); !errors.Is(err, codec.ErrNoSecret) || !strings.Contains(err.Error(), SaltEnv) {
		t.Errorf("no salt: %v", err)
	}
}

func FuzzDecryptToken(f *testing.F) {
	k := keyFrom(bytes.Repeat([]byte{0x42}, keySize))
	f.Add([]byte("gAAAAABeZM1c" + strings.Repeat("A", 100) + "=="))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, token []byte) {
		plain, _, err := DecryptToken(k, token)
		if err == nil && plain == nil {
			t.Fatal("no error and no plaintext")
		}
	})
}
