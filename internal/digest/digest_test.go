package digest

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestKnownVectors(t *testing.T) {
	// FIPS 180-2 and RFC 1321 test vectors for "abc".
	want := map[string]string{
		MD5:    "900150983cd24fb0d6963f7d28e17f72",
		SHA1:   "a9993e364706816aba3e25717850c26c9cd0d89d",
		SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	}
	for _, algs := range [][]string{{"md5"}, {"sha1"}, {"sha256"}, {"md5,sha1,sha256"}} {
		s, err := New(algs...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
		got := s.Sums()
		if len(got) != len(s.Names()) {
			t.Fatalf("%v: %d sums for %d names", algs, len(got), len(s.Names()))
		}
		for name, sum := range got {
			if sum != want[name] {
				t.Errorf("%v: %s = %s, want %s", algs, name, sum, want[name])
			}
		}
	}
}

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{[]string{"md5,sha1,sha256"}, []string{"md5", "sha1", "sha256"}},
		{[]string{"sha256,md5"}, []string{"md5", "sha256"}},
		{[]string{" SHA256 , sha256", "md5"}, []string{"md5", "sha256"}},
		{[]string{"sha1"}, []string{"sha1"}},
	} {
		got, err := ParseList(tc.in...)
		if err != nil {
			t.Fatalf("ParseList(%q): %v", tc.in, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, in := range [][]string{nil, {""}, {"md5,"}, {"crc32"}, {"md5,sha512"}, {"sha-256"}} {
		if got, err := ParseList(in...); err == nil {
			t.Errorf("ParseList(%q) = %q, want an error", in, got)
		}
	}
	if _, err := New("md5", "whirlpool"); err == nil {
		t.Error("New accepted whirlpool")
	}
}

// reference computes the three digests directly with the standard library.
func reference(data []byte) map[string]string {
	m := md5.Sum(data)
	s1 := sha1.Sum(data)
	s2 := sha256.Sum256(data)
	return map[string]string{
		MD5:    hex.EncodeToString(m[:]),
		SHA1:   hex.EncodeToString(s1[:]),
		SHA256: hex.EncodeToString(s2[:]),
	}
}

// TestStreamMatchesReference feeds random data and zero runs in uneven
// pieces, crossing the pipeline's buffer boundaries, and compares every
// digest with one computed over the whole stream at once.
func TestStreamMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var whole []byte
	type op struct {
		data  []byte
		zeros int64
	}
	var ops []op
	for _, n := range []int{1, bufSize - 1, 2, bufSize, 3*bufSize + 7, 0, 4096, 511} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		ops = append(ops, op{data: p})
		whole = append(whole, p...)
		z := int64(rng.IntN(3 * bufSize))
		ops = append(ops, op{zeros: z})
		whole = append(whole, make([]byte, z)...)
	}
	want := reference(whole)
	for _, algs := range []string{"md5", "sha256", "md5,sha1", "md5,sha1,sha256"} {
		s, err := New(algs)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range ops {
			if o.data != nil {
				n, err := s.Write(o.data)
				if err != nil || n != len(o.data) {
					t.Fatalf("Write = %d, %v", n, err)
				}
				// The Set must not retain p: scribbling on it afterwards
				// must not change the result.
				for i := range o.data {
					o.data[i] ^= 0xff
				}
				for i := range o.data {
					o.data[i] ^= 0xff
				}
			} else if err := s.WriteZeros(o.zeros); err != nil {
				t.Fatal(err)
			}
		}
		if s.Size() != int64(len(whole)) {
			t.Errorf("%s: Size = %d, want %d", algs, s.Size(), len(whole))
		}
		for name, sum := range s.Sums() {
			if sum != want[name] {
				t.Errorf("%s: %s = %s, want %s", algs, name, sum, want[name])
			}
		}
	}
}

// TestNoRetention checks that the pipeline copies what Write is given:
// the caller reuses one buffer for every write, as an image reader does.
func TestNoRetention(t *testing.T) {
	s, err := New("md5,sha1,sha256")
	if err != nil {
		t.Fatal(err)
	}
	var whole []byte
	buf := make([]byte, 512<<10)
	for i := range 40 {
		for j := range buf {
			buf[j] = byte(i + j)
		}
		whole = append(whole, buf...)
		if _, err := s.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	want := reference(whole)
	if got := s.Sums(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Sums = %v\nwant %v", got, want)
	}
}

func TestZerosOnly(t *testing.T) {
	// head -c 256M /dev/zero | md5sum
	const want = "1f5039e50bd66b290c56684d8550c6c2"
	s, err := New("md5,sha1")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{1, 64<<20 - 1, 192 << 20} {
		if err := s.WriteZeros(n); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Sums()[MD5]; got != want {
		t.Fatalf("md5 of 256 MiB of zeros = %s, want %s", got, want)
	}
}

func TestClosed(t *testing.T) {
	s, err := New("md5,sha1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Write([]byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	if err := s.WriteZeros(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteZeros after Close: %v, want ErrClosed", err)
	}
	if err := s.WriteZeros(-1); err == nil {
		t.Fatal("WriteZeros(-1) succeeded")
	}
	if got, want := s.Sums()[MD5], "9dd4e461268c8034f5c8564e155c67a6"; got != want {
		t.Fatalf("md5(x) = %s, want %s", got, want)
	}
}

func BenchmarkSet(b *testing.B) {
	data := make([]byte, 64<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, algs := range []string{"md5", "sha1", "sha256", "md5,sha1,sha256"} {
		b.Run(algs, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				s, err := New(algs)
				if err != nil {
					b.Fatal(err)
				}
				for p := data; len(p) > 0; p = p[512<<10:] {
					s.Write(p[:512<<10])
				}
				s.Close()
			}
		})
	}
}
