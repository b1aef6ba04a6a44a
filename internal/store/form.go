package store

// How block files are stored: the form (one type, codec.Form), the
// layers that write it and those that read it back, by manifest entry.

import (
	"crypto/sha256"
	"io"

	"filippo.io/age"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// A Sealer wraps a block file being written in the layers of its form
// (compression, then encryption); nil stores the bytes as served.
type Sealer func(dst io.Writer) (io.WriteCloser, error)

// SealerFor returns the Sealer that writes form f, encrypted to
// recipients when f is encrypted: codec.Seal. The plain form's is nil.
func SealerFor(f codec.Form, recipients []age.Recipient) Sealer {
	if f == codec.Plain {
		return nil
	}
	return func(dst io.Writer) (io.WriteCloser, error) { return codec.Seal(dst, f, recipients...) }
}

// Form returns the form evidence.json says the block files are stored in.
func (m Meta) Form() (codec.Form, error) {
	f, err := codec.FormOf(m.Codec, m.Encryption)
	if err != nil {
		return codec.Plain, metaDamage(err.Error())
	}
	return f, nil
}

// sameForm reports whether entry e records the store's form.
func (s *Store) sameForm(e manifest.Entry) bool {
	c, enc := s.form.Fields()
	return e.Codec == c && e.Encryption == enc
}

// plain reports whether the store writes blocks as served.
func (s *Store) plain() bool { return s.seal == nil }

// sealTo writes data to w through seal and returns the stored size and,
// when seal is not nil, the stored bytes' SHA-256.
func sealTo(w io.Writer, data []byte, seal Sealer) (int64, block.Sum, error) {
	if seal == nil {
		_, err := w.Write(data)
		return int64(len(data)), block.Sum{}, err
	}
	var sum block.Sum
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	wc, err := seal(cw)
	if err != nil {
		return 0, sum, err
	}
	if _, err := wc.Write(data); err != nil {
		return 0, sum, err
	}
	if err := wc.Close(); err != nil {
		return 0, sum, err
	}
	copy(sum[:], h.Sum(nil))
	return cw.n, sum, nil
}

// UnsealWith returns the Unseal that opens a stored block in the form its
// manifest entry records (codec.FormOf): decompressed, and decrypted with
// ids. Without ids an encrypted block is ErrNeedKey.
func UnsealWith(ids []age.Identity) Unseal {
	return func(src io.Reader, e manifest.Entry) (io.Reader, error) {
		f, err := codec.FormOf(e.Codec, e.Encryption)
		if err != nil {
			return nil, err
		}
		if !f.Encrypted {
			return codec.Open(src, f)
		}
		if len(ids) == 0 {
			return nil, ErrNeedKey
		}
		return codec.Open(src, f, ids...)
	}
}
