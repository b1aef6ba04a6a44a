package codec_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/klauspost/compress/zstd"
)

func TestTruncatedCompressed(t *testing.T) {
	for _, c := range []codec.Codec{codec.Zstd, codec.Gzip} {
		// A random block is stored in several compressed blocks, so the
		// cuts land in headers, in the middle of data and at the trailer.
		for _, data := range [][]byte{textBlock(5), randomBlock(6)} {
			stored := seal(t, codec.Form{Codec: c}, data)
			cuts := []int{0, 1, 3, 4, 10, 17, len(stored) / 2, len(stored) - 8, len(stored) - 4, len(stored) - 1}
			for i := 1; i < 40; i++ {
				cuts = append(cuts, len(stored)*i/40)
			}
			for _, cut := range cuts {
				r, err := codec.Decompress(bytes.NewReader(stored[:cut]), c)
				if err == nil {
					_, err = codec.ReadBlock(r, nil)
				}
				if err == nil {
					t.Fatalf("%v: stream cut to %d of %d bytes read without error", c, cut, len(stored))
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("%v: cut to %d of %d: %v, want io.ErrUnexpectedEOF", c, cut, len(stored), err)
				}
			}
		}
	}
}

func TestCorruptCompressed(t *testing.T) {
	// Both formats carry a checksum of the content (zstd's XXH64 content
	// checksum, gzip's CRC-32): a flipped bit is caught, whichever byte.
	for _, c := range []codec.Codec{codec.Zstd, codec.Gzip} {
		data := textBlock(7)
		stored := seal(t, codec.Form{Codec: c}, data)
		for _, at := range []int{len(stored) / 3, len(stored) / 2, len(stored) - 2} {
			bad := bytes.Clone(stored)
			bad[at] ^= 0x10
			r, err := codec.Decompress(bytes.NewReader(bad), c)
			var got []byte
			if err == nil {
				got, err = codec.ReadBlock(r, nil)
			}
			if err == nil {
				t.Errorf("%v: flipped bit at %d of %d read as %d bytes without error (equal: %v)", c, at, len(stored), len(got), bytes.Equal(got, data))
			}
		}
	}
}

// bomb returns n zero bytes compressed with c: a few hundred bytes that
// expand to n.
func bomb(t *testing.T, c codec.Codec, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := codec.Compress(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, len(zeros))
		if _, err := w.Write(zeros[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBomb(t *testing.T) {
	for _, c := range []codec.Codec{codec.None, codec.Zstd, codec.Gzip} {
		for _, tc := range []struct {
			n       int
			tooMuch bool
		}{
			{block.Size, false},
			{block.Size + 1, true},
			{64 << 20, true},
		} {
			stored := bomb(t, c, tc.n)
			if c != codec.None && len(stored) > 128<<10 {
				t.Fatalf("%v: %d zero bytes compressed to %d bytes: not a bomb", c, tc.n, len(stored))
			}
			r, err := codec.Decompress(bytes.NewReader(stored), c)
			if err != nil {
				t.Fatal(err)
			}
			// Read through io.ReadAll too, to see that the Reader itself
			// stops, not only ReadBlock.
			got, err := io.ReadAll(r)
			if tc.tooMuch {
				if !errors.Is(err, codec.ErrTooLarge) {
					t.Errorf("%v: %d bytes: %v, want ErrTooLarge", c, tc.n, err)
				}
				if len(got) > block.Size {
					t.Errorf("%v: %d bytes: the Reader passed %d bytes", c, tc.n, len(got))
				}
				continue
			}
			if err != nil || len(got) != tc.n || !block.IsZero(got) {
				t.Errorf("%v: %d bytes read back as %d bytes, %v", c, tc.n, len(got), err)
			}
		}
	}
}

func TestZstdHugeWindowRefused(t *testing.T) {
	// A frame that asks for a 64 MiB window is refused before the decoder
	// allocates it (zstdMaxWindow is 8 MiB).
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithWindowSize(64<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(textBlock(8)); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := codec.Decompress(&buf, codec.Zstd)
	if err == nil {
		_, err = codec.ReadBlock(r, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "window") {
		t.Errorf("64 MiB window frame: %v, want a window error", err)
	}
}

func TestWrongIdentity(t *testing.T) {
	right, wrong := newIdentity(t), newIdentity(t)
	for _, f := range []codec.Form{{Codec: codec.Zstd, Encrypted: true}, {Codec: codec.None, Encrypted: true}} {
		stored := seal(t, f, textBlock(9), right.Recipient())
		got, err := open(f, stored, wrong)
		if !errors.Is(err, codec.ErrWrongKey) {
			t.Errorf("%v with the wrong identity: %v, want ErrWrongKey", f, err)
		}
		if got != nil {
			t.Errorf("%v with the wrong identity returned %d bytes", f, len(got))
		}
		if err != nil && strings.Contains(err.Error(), "AGE-SECRET-KEY") {
			t.Errorf("error shows a secret key: %v", err)
		}
		// Any matching identity among several opens the file.
		if _, err := open(f, stored, wrong, right); err != nil {
			t.Errorf("%v with both identities: %v", f, err)
		}
	}
}

func TestPassphraseFile(t *testing.T) {
	// One file sealed to age's scrypt recipient, as `age -p` does. A low
	// work factor keeps the test fast; the format is the same.
	const pass = "correct horse battery staple"
	rec, err := age.NewScryptRecipient(pass)
	if err != nil {
		t.Fatal(err)
	}
	rec.SetWorkFactor(10)
	f := codec.Form{Codec: codec.Gzip, Encrypted: true}
	data := textBlock(12)
	stored := seal(t, f, data, rec)
	right, _ := age.NewScryptIdentity(pass)
	got, err := open(f, stored, right)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("opening with the passphrase: %d bytes, %v", len(got), err)
	}
	wrong, _ := age.NewScryptIdentity("correct horse battery stapler")
	got, err = open(f, stored, wrong)
	if !errors.Is(err, codec.ErrWrongKey) || got != nil {
		t.Fatalf("opening with a wrong passphrase: %d bytes, %v; want ErrWrongKey", len(got), err)
	}
	if strings.Contains(err.Error(), "staple") {
		t.Errorf("error shows the passphrase: %v", err)
	}
	// An X25519 identity does not open a passphrase file, and says so
	// with the same sentinel.
	if _, err := open(f, stored, newIdentity(t)); !errors.Is(err, codec.ErrWrongKey) {
		t.Errorf("X25519 identity on a scrypt file: %v, want ErrWrongKey", err)
	}
}

// ageHeaderEnd returns the length of an age file's header (through the
// "---" MAC line).
func ageHeaderEnd(t *testing.T, file []byte) int {
	t.Helper()
	i := bytes.Index(file, []byte("\n--- "))
	if i < 0 {
		t.Fatal("no age header MAC line")
	}
	j := bytes.IndexByte(file[i+1:], '\n')
	return i + 1 + j + 1
}

func TestTamperedCiphertext(t *testing.T) {
	id := newIdentity(t)
	f := codec.Form{Codec: codec.Zstd, Encrypted: true}
	// A random block does not compress, so the payload spans nine 64 KiB
	// age chunks (age-encryption.org/v1 STREAM).
	data := randomBlock(13)
	stored := seal(t, f, data, id.Recipient())
	hdr := ageHeaderEnd(t, stored)
	const nonce, chunk = 16, 64<<10 + 16 // payload nonce; chunk plus its Poly1305 tag

	flips := []int{hdr - 3, hdr + 2, hdr + nonce + 5, hdr + nonce + chunk + 100, len(stored) - 1}
	for _, at := range flips {
		bad := bytes.Clone(stored)
		bad[at] ^= 0x01
		if got, err := open(f, bad, id); err == nil {
			t.Errorf("byte %d of %d flipped: opened %d bytes without error", at, len(stored), len(got))
		}
	}
	cuts := []int{
		hdr - 1,
		hdr + nonce,             // no payload at all
		hdr + nonce + chunk,     // exactly one whole chunk: the last-chunk flag is missing
		hdr + nonce + 2*chunk,   // two whole chunks
		hdr + nonce + 3*chunk/2, // mid-chunk
		len(stored) - 1,
	}
	for _, cut := range cuts {
		if got, err := open(f, stored[:cut], id); err == nil {
			t.Errorf("file cut to %d of %d bytes: opened %d bytes without error", cut, len(stored), len(got))
		}
	}
	// Bytes appended after the last chunk are refused too.
	if _, err := open(f, append(bytes.Clone(stored), 0), id); err == nil {
		t.Error("file with a trailing byte opened without error")
	}
	// The untouched file still opens: the failures above are the tampering.
	if got, err := open(f, stored, id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("untouched file: %d bytes, %v", len(got), err)
	}
}

func FuzzDecompress(f *testing.F) {
	for _, c := range []codec.Codec{codec.Zstd, codec.Gzip} {
		var buf bytes.Buffer
		w, _ := codec.Compress(&buf, c)
		w.Write([]byte("a seed block for the fuzzer, a seed block for the fuzzer"))
		w.Close()
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x88, 0x45, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []codec.Codec{codec.Zstd, codec.Gzip} {
			r, err := codec.Decompress(bytes.NewReader(data), c)
			if err != nil {
				continue
			}
			got, err := io.ReadAll(r)
			if len(got) > block.Size {
				t.Fatalf("%v: %d bytes passed the bound", c, len(got))
			}
			if err == nil && len(data) == 0 {
				t.Fatalf("%v: empty input read without error", c)
			}
		}
	})
}
