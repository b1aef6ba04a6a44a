package codec_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
)

// allForms lists every way a block can be stored.
var allForms = []codec.Form{
	{Codec: codec.None},
	{Codec: codec.Zstd},
	{Codec: codec.Gzip},
	{Codec: codec.None, Encrypted: true},
	{Codec: codec.Zstd, Encrypted: true},
	{Codec: codec.Gzip, Encrypted: true},
}

// textBlock returns a block of numbered text lines with some noise: it
// compresses well but not to nothing.
func textBlock(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for i := 0; b.Len() < block.Size; i++ {
		fmt.Fprintf(&b, "%08d block %d sector %x value %d\n", i, seed, rng.Uint32(), rng.IntN(1000))
	}
	return b.Bytes()[:block.Size]
}

// randomBlock returns a block that does not compress.
func randomBlock(seed uint64) []byte {
	rng := rand.NewChaCha8([32]byte{byte(seed), 1})
	p := make([]byte, block.Size)
	rng.Read(p)
	return p
}

func sumHex(p []byte) string {
	s := sha256.Sum256(p)
	return hex.EncodeToString(s[:])
}

func seal(t testing.TB, f codec.Form, data []byte, recipients ...age.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := codec.Seal(&buf, f, recipients...)
	if err != nil {
		t.Fatalf("Seal(%v): %v", f, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("writing %v: %v", f, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("closing %v: %v", f, err)
	}
	return buf.Bytes()
}

// open reads a stored block back through Open and ReadBlock.
func open(f codec.Form, stored []byte, identities ...age.Identity) ([]byte, error) {
	r, err := codec.Open(bytes.NewReader(stored), f, identities...)
	if err != nil {
		return nil, err
	}
	return codec.ReadBlock(r, nil)
}

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestFormSuffix(t *testing.T) {
	want := []string{"", ".zst", ".gz", ".age", ".zst.age", ".gz.age"}
	names := []string{"none", "zstd", "gzip", "none+age", "zstd+age", "gzip+age"}
	for i, f := range allForms {
		if got := f.Suffix(); got != want[i] {
			t.Errorf("%v.Suffix() = %q, want %q", f, got, want[i])
		}
		if got := f.String(); got != names[i] {
			t.Errorf("String() = %q, want %q", got, names[i])
		}
		base := "0000000042_snap-0123456789abcdef0_" + strings.Repeat("ab", 32) + "_8_524288"
		got, rest := codec.ParseSuffix(base + f.Suffix())
		if got != f || rest != base {
			t.Errorf("ParseSuffix(%q) = %v, %q; want %v, %q", base+f.Suffix(), got, rest, f, base)
		}
	}
	// Encryption then compression is not an order Seal writes.
	if f, rest := codec.ParseSuffix("x.age.zst"); f != (codec.Form{Codec: codec.Zstd}) || rest != "x.age" {
		t.Errorf("ParseSuffix(x.age.zst) = %v, %q", f, rest)
	}
}

func TestParseCodec(t *testing.T) {
	for in, want := range map[string]codec.Codec{"": codec.None, "none": codec.None, "zstd": codec.Zstd, "gzip": codec.Gzip} {
		got, err := codec.ParseCodec(in)
		if err != nil || got != want {
			t.Errorf("ParseCodec(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := codec.ParseCodec("lz4"); err == nil || !strings.Contains(err.Error(), `"lz4"`) {
		t.Errorf("ParseCodec(lz4) error = %v, want one naming lz4", err)
	}
	text, err := codec.None.MarshalText()
	if err != nil || string(text) != "none" {
		t.Errorf("None.MarshalText() = %q, %v", text, err)
	}
	var c codec.Codec
	if err := c.UnmarshalText([]byte("gzip")); err != nil || c != codec.Gzip {
		t.Errorf("UnmarshalText(gzip) = %q, %v", c, err)
	}
	if _, err := codec.Compress(io.Discard, "lz4"); err == nil {
		t.Error("Compress with an unknown codec succeeded")
	}
	if _, err := codec.Decompress(strings.NewReader(""), "lz4"); err == nil {
		t.Error("Decompress with an unknown codec succeeded")
	}
}

func TestRoundTrip(t *testing.T) {
	id := newIdentity(t)
	blocks := map[string][]byte{
		"text":   textBlock(1),
		"random": randomBlock(2),
		"zero":   make([]byte, block.Size),
		"short":  []byte("not a whole block"),
		"empty":  {},
	}
	magic := map[codec.Codec][]byte{
		codec.Zstd: {0x28, 0xb5, 0x2f, 0xfd}, // RFC 8878 section 3.1.1 frame magic
		codec.Gzip: {0x1f, 0x8b},             // RFC 1952 section 2.3.1 ID1 ID2
	}
	for _, f := range allForms {
		for name, data := range blocks {
			t.Run(f.String()+"/"+name, func(t *testing.T) {
				var recipients []age.Recipient
				var identities []age.Identity
				if f.Encrypted {
					recipients = []age.Recipient{id.Recipient()}
					identities = []age.Identity{id}
				}
				stored := seal(t, f, data, recipients...)
				switch {
				case f.Encrypted:
					if !bytes.HasPrefix(stored, []byte("age-encryption.org/v1\n")) {
						t.Errorf("stored file starts %q, want the age header", stored[:min(len(stored), 22)])
					}
				case f.Codec == codec.None:
					if !bytes.Equal(stored, data) {
						t.Errorf("plain form changed the bytes")
					}
				default:
					if !bytes.HasPrefix(stored, magic[f.Codec]) {
						t.Errorf("stored file starts % x, want % x", stored[:4], magic[f.Codec])
					}
				}
				got, err := open(f, stored, identities...)
				if err != nil {
					t.Fatalf("opening: %v", err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("round trip gave %d bytes sha256 %s, want %d bytes sha256 %s", len(got), sumHex(got), len(data), sumHex(data))
				}
			})
		}
	}
}

func TestCompressionShrinks(t *testing.T) {
	// Zeros must shrink to almost nothing and text to well under half,
	// or the codec is not compressing at all.
	for _, c := range []codec.Codec{codec.Zstd, codec.Gzip} {
		zero := seal(t, codec.Form{Codec: c}, make([]byte, block.Size))
		if len(zero) > 1024 {
			t.Errorf("%v: zero block stored in %d bytes, want at most 1024", c, len(zero))
		}
		text := seal(t, codec.Form{Codec: c}, textBlock(3))
		if len(text) > block.Size/2 {
			t.Errorf("%v: text block stored in %d bytes, want at most %d", c, len(text), block.Size/2)
		}
	}
}

func TestSealArguments(t *testing.T) {
	id := newIdentity(t)
	if _, err := codec.Seal(io.Discard, codec.Form{Codec: codec.Zstd, Encrypted: true}); err == nil {
		t.Error("Seal of an encrypted form without recipients succeeded")
	}
	if _, err := codec.Seal(io.Discard, codec.Form{Codec: codec.Zstd}, id.Recipient()); err == nil {
		t.Error("Seal of a plain form with recipients succeeded")
	}
	if _, err := codec.Open(strings.NewReader(""), codec.Form{Encrypted: true}); err == nil {
		t.Error("Open of an encrypted form without identities succeeded")
	}
	if _, err := codec.Open(strings.NewReader(""), codec.Form{}, id); err == nil {
		t.Error("Open of a plain form with identities succeeded")
	}
}

func TestWriteAfterClose(t *testing.T) {
	for _, c := range []codec.Codec{codec.Zstd, codec.Gzip} {
		w, err := codec.Compress(io.Discard, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Errorf("%v: write after Close succeeded", c)
		}
		if err := w.Close(); err == nil {
			t.Errorf("%v: second Close succeeded", c)
		}
	}
}

func TestPooledStreamsStayIndependent(t *testing.T) {
	// Encoders and decoders come from pools: a stream abandoned half way
	// must not leak into the next one.
	for _, c := range []codec.Codec{codec.Zstd, codec.Gzip} {
		a, b := textBlock(10), textBlock(11)
		sa, sb := seal(t, codec.Form{Codec: c}, a), seal(t, codec.Form{Codec: c}, b)
		r, err := codec.Decompress(bytes.NewReader(sa), c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			for _, tc := range []struct{ stored, want []byte }{{sa, a}, {sb, b}} {
				r, err := codec.Decompress(bytes.NewReader(tc.stored), c)
				if err != nil {
					t.Fatal(err)
				}
				got, err := codec.ReadBlock(r, nil)
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("%v: pooled round %d: %d bytes, %v", c, i, len(got), err)
				}
			}
		}
		// Sealing the same block twice gives the same bytes: no state
		// survives in a pooled encoder.
		if again := seal(t, codec.Form{Codec: c}, a); !bytes.Equal(again, sa) {
			t.Errorf("%v: sealing the same block twice gave different bytes", c)
		}
	}
}

func TestReadBlockReusesBuffer(t *testing.T) {
	data := textBlock(4)
	buf := make([]byte, 10, block.Size)
	got, err := codec.ReadBlock(bytes.NewReader(data), buf)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &buf[:1][0] || !bytes.Equal(got, data) {
		t.Error("ReadBlock did not fill the given buffer from its start")
	}
	if _, err := codec.ReadBlock(bytes.NewReader(append(data, 0)), buf); !errors.Is(err, codec.ErrTooLarge) {
		t.Errorf("ReadBlock of block.Size+1 bytes: %v, want ErrTooLarge", err)
	}
}

func TestConcurrentStreams(t *testing.T) {
	// Pooled encoders and decoders shared by goroutines, as acquisition
	// workers share them; run under -race to see the pools are safe.
	id := newIdentity(t)
	forms := []codec.Form{{Codec: codec.Zstd}, {Codec: codec.Gzip}, {Codec: codec.Zstd, Encrypted: true}}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 6; i++ {
				f := forms[(g+i)%len(forms)]
				data := textBlock(uint64(100*g + i))
				var recs []age.Recipient
				var ids []age.Identity
				if f.Encrypted {
					recs, ids = []age.Recipient{id.Recipient()}, []age.Identity{id}
				}
				var buf bytes.Buffer
				w, err := codec.Seal(&buf, f, recs...)
				if err == nil {
					_, err = w.Write(data)
				}
				if err == nil {
					err = w.Close()
				}
				var got []byte
				if err == nil {
					got, err = open(f, buf.Bytes(), ids...)
				}
				if err == nil && !bytes.Equal(got, data) {
					err = fmt.Errorf("goroutine %d, %v: bytes differ", g, f)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
