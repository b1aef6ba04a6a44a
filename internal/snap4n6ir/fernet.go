package snap4n6ir

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ebsimager/ebsimager/internal/codec"
)

// The original tool's key derivation (its createkey function):
// PBKDF2HMAC(SHA256, length=32, iterations=100000) over the UTF-8 password
// and salt, base64url-encoded into a Fernet key.
const (
	kdfIterations = 100000
	keySize       = 32 // a Fernet key: 16-byte HMAC key, then 16-byte AES-128 key
)

// Fernet token layout (github.com/fernet/spec, Spec.md): version byte
// 0x80, 8-byte big-endian timestamp, 16-byte IV, AES-128-CBC ciphertext
// with PKCS#7 padding, 32-byte HMAC-SHA256 over everything before it; the
// whole token base64url-encoded with padding.
const (
	fernetVersion = 0x80
	fernetTime    = 1                        // offset of the timestamp
	fernetIV      = fernetTime + 8           // offset of the IV
	fernetHeader  = fernetIV + aes.BlockSize // version, timestamp, IV
	fernetMAC     = sha256.Size
)

// ErrSignature is returned when a token's HMAC does not verify: the
// password or salt is wrong, or the token was altered. The two cannot be
// told apart; a wrong password fails every block, tampering only some.
// It wraps codec.ErrWrongKey.
var ErrSignature = fmt.Errorf("fernet signature mismatch (wrong password or salt, or an altered token): %w", codec.ErrWrongKey)

// ErrMalformedToken is returned for bytes that are not a Fernet token.
var ErrMalformedToken = errors.New("malformed fernet token")

// Key is a Fernet key. It has no String method, so that it is never
// printed by accident.
type Key struct {
	signing    [keySize / 2]byte
	encryption [keySize / 2]byte
}

// DeriveKey derives the key the original tool used for password and salt
// (each taken as UTF-8 text, as its --password and --salt were).
func DeriveKey(password, salt string) (*Key, error) {
	raw, err := pbkdf2.Key(sha256.New, password, []byte(salt), kdfIterations, keySize)
	if err != nil {
		return nil, fmt.Errorf("deriving key: %w", err)
	}
	return keyFrom(raw), nil
}

// ParseKey reads a Fernet key in its usual form: 32 bytes, base64url with
// padding, as Fernet.generate_key() prints it.
func ParseKey(s string) (*Key, error) {
	raw, err := base64.URLEncoding.DecodeString(s)
	if err != nil || len(raw) != keySize {
		// The text is a secret: do not echo it.
		return nil, errors.New("parsing fernet key: want 32 bytes in base64url")
	}
	return keyFrom(raw), nil
}

func keyFrom(raw []byte) *Key {
	var k Key
	n := copy(k.signing[:], raw)
	copy(k.encryption[:], raw[n:])
	return &k
}

// DecryptToken verifies a Fernet token with k and returns its plaintext
// and the time the token says it was made. The HMAC is checked, in
// constant time, before anything is decrypted. Surrounding ASCII white
// space is ignored, as Python's decoder ignores it. Tokens are not
// expired: the original tool set no time to live.
func DecryptToken(k *Key, token []byte) ([]byte, time.Time, error) {
	token = bytes.TrimSpace(token)
	raw := make([]byte, base64.URLEncoding.DecodedLen(len(token)))
	n, err := base64.URLEncoding.Decode(raw, token)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: base64: %v", ErrMalformedToken, err)
	}
	raw = raw[:n]
	if len(raw) < fernetHeader+aes.BlockSize+fernetMAC {
		return nil, time.Time{}, fmt.Errorf("%w: %d bytes", ErrMalformedToken, len(raw))
	}
	if raw[0] != fernetVersion {
		return nil, time.Time{}, fmt.Errorf("%w: version 0x%02x, want 0x%02x", ErrMalformedToken, raw[0], fernetVersion)
	}
	signed, mac := raw[:len(raw)-fernetMAC], raw[len(raw)-fernetMAC:]
	h := hmac.New(sha256.New, k.signing[:])
	h.Write(signed)
	if !hmac.Equal(h.Sum(nil), mac) {
		return nil, time.Time{}, ErrSignature
	}
	created := time.Unix(int64(binary.BigEndian.Uint64(raw[fernetTime:fernetIV])), 0).UTC()
	iv, ciphertext := raw[fernetIV:fernetHeader], signed[fernetHeader:]
	if len(ciphertext)%aes.BlockSize != 0 {
		return nil, time.Time{}, fmt.Errorf("%w: ciphertext of %d bytes is not whole AES blocks", ErrMalformedToken, len(ciphertext))
	}
	c, err := aes.NewCipher(k.encryption[:])
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("decrypting token: %w", err)
	}
	plain := ciphertext // decrypt in place: raw is ours
	cipher.NewCBCDecrypter(c, iv).CryptBlocks(plain, ciphertext)
	// PKCS#7: the last byte says how many padding bytes, each equal to it.
	pad := int(plain[len(plain)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, time.Time{}, fmt.Errorf("%w: bad padding", ErrMalformedToken)
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return nil, time.Time{}, fmt.Errorf("%w: bad padding", ErrMalformedToken)
		}
	}
	return plain[:len(plain)-pad], created, nil
}
