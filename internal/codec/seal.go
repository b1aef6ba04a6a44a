package codec

import (
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
)

// Seal returns a WriteCloser that stores what is written to it in form f:
// compressed with f.Codec, then, when f.Encrypted, encrypted with age to
// the recipients. The result is what `zstd -d`/`gunzip` and `age -d` open.
// Close must be called to flush both layers; it does not close dst.
//
// Recipients are given only for an encrypted form. Any age.Recipient
// works: ParseRecipient's keys, the recipient GenerateKeyFile returns, or
// age.NewScryptRecipient for a single file sealed with a passphrase.
func Seal(dst io.Writer, f Form, recipients ...age.Recipient) (io.WriteCloser, error) {
	if err := f.Codec.check(); err != nil {
		return nil, err
	}
	if !f.Encrypted {
		if len(recipients) > 0 {
			return nil, errors.New("sealing: recipients given for an unencrypted form")
		}
		return Compress(dst, f.Codec)
	}
	if len(recipients) == 0 {
		return nil, errors.New("sealing: encrypted form without recipients")
	}
	ew, err := age.Encrypt(dst, recipients...)
	if err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	cw, err := Compress(ew, f.Codec)
	if err != nil {
		return nil, err
	}
	return &sealer{compress: cw, encrypt: ew}, nil
}

// sealer closes its layers from the inside out.
type sealer struct {
	compress, encrypt io.WriteCloser
}

func (s *sealer) Write(p []byte) (int, error) { return s.compress.Write(p) }

func (s *sealer) Close() error {
	cerr := s.compress.Close()
	eerr := s.encrypt.Close()
	if cerr != nil {
		return cerr
	}
	if eerr != nil {
		return fmt.Errorf("closing age stream: %w", eerr)
	}
	return nil
}

// Open returns a Reader of the block that src stores in form f: decrypted
// with the identities when f.Encrypted, then decompressed. It yields at
// most block.Size bytes (more is ErrTooLarge). Identities that do not
// match are ErrWrongKey. Truncation and tampering are errors that show by
// the time the Reader returns io.EOF, so read it to the end (ReadBlock
// does) before trusting what it gave.
func Open(src io.Reader, f Form, identities ...age.Identity) (io.Reader, error) {
	if err := f.Codec.check(); err != nil {
		return nil, err
	}
	if f.Encrypted {
		if len(identities) == 0 {
			return nil, errors.New("opening: encrypted form without identities")
		}
		r, err := age.Decrypt(src, identities...)
		if err != nil {
			return nil, fmt.Errorf("opening age file: %w", ageError(err))
		}
		src = &ageReader{r: r}
	} else if len(identities) > 0 {
		return nil, errors.New("opening: identities given for an unencrypted form")
	}
	return Decompress(src, f.Codec)
}

// ageReader puts a trail on age's payload errors (a failed chunk
// authentication or a truncated stream).
type ageReader struct{ r io.Reader }

func (a *ageReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("decrypting age payload: %w", err)
	}
	return n, err
}
