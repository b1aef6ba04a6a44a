package emulator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// Tokens are base64 (the EBS pattern ^[A-Za-z0-9+/=]+$, at most 256
// characters) of a small binary record sealed with HMAC-SHA256 under a key
// drawn when the server starts, so they are opaque, cannot be forged, and
// die with the server.
//
//	block token: kind(1) expiry(8) generation(4) mac(16)           = 29 bytes, 40 characters
//	page token:  kind(1) op(1) position(8) expiry(8) gen(4) gen(4) mac(16) = 42 bytes, 56 characters
//
// The MAC also covers what the record does not carry: the snapshot ids and
// the block index, so a token is good only for the block or the listing
// it was made for.
const (
	macLen         = 16 // 128-bit truncated HMAC tag
	blockTokenLen  = 1 + 8 + 4 + macLen
	pageTokenLen   = 1 + 1 + 8 + 8 + 4 + 4 + macLen
	kindBlockToken = 'b'
	kindPageToken  = 'p'
)

// b64 is standard base64 that refuses non-zero padding bits, so each
// record has exactly one spelling.
var b64 = base64.StdEncoding.Strict()

type sealer struct {
	key  [32]byte
	macs sync.Pool // of hash.Hash (HMAC-SHA256 under key)
}

func newSealer() *sealer {
	s := &sealer{}
	if _, err := rand.Read(s.key[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	s.macs.New = func() any { return hmac.New(sha256.New, s.key[:]) }
	return s
}

// mac returns the truncated HMAC of msg.
func (s *sealer) mac(msg []byte) [macLen]byte {
	h := s.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(msg)
	var full [sha256.Size]byte
	h.Sum(full[:0])
	s.macs.Put(h)
	var out [macLen]byte
	copy(out[:], full[:])
	return out
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// blockToken seals (snapshot, index, expiry, generation).
func (s *sealer) blockToken(snap string, index int64, expiry int64, gen uint32) string {
	var rec [blockTokenLen]byte
	rec[0] = kindBlockToken
	binary.BigEndian.PutUint64(rec[1:], uint64(expiry))
	binary.BigEndian.PutUint32(rec[9:], gen)
	var msg [96]byte
	m := append(msg[:0], rec[:13]...)
	m = appendString(m, snap)
	m = binary.BigEndian.AppendUint64(m, uint64(index))
	tag := s.mac(m)
	copy(rec[13:], tag[:])
	return b64.EncodeToString(rec[:])
}

// openBlockToken checks tok for (snap, index) and returns its expiry and
// generation; ok is false for anything not made by blockToken for them.
func (s *sealer) openBlockToken(tok, snap string, index int64) (expiry int64, gen uint32, ok bool) {
	if len(tok) != b64.EncodedLen(blockTokenLen) {
		return 0, 0, false
	}
	var rec [blockTokenLen + 2]byte
	n, err := b64.Decode(rec[:], []byte(tok))
	if err != nil || n != blockTokenLen || rec[0] != kindBlockToken {
		return 0, 0, false
	}
	var msg [96]byte
	m := append(msg[:0], rec[:13]...)
	m = appendString(m, snap)
	m = binary.BigEndian.AppendUint64(m, uint64(index))
	tag := s.mac(m)
	if !hmac.Equal(tag[:], rec[13:blockTokenLen]) {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(rec[1:])), binary.BigEndian.Uint32(rec[9:]), true
}

// pageState is where a listing resumes.
type pageState struct {
	op         byte  // opListBlocks or opListChanged
	pos        int64 // next slot to look at
	expiry     int64 // unix seconds
	gen1, gen2 uint32
}

const (
	opListBlocks  = 'L'
	opListChanged = 'C'
)

func (s *sealer) pageMAC(rec []byte, first, second string) [macLen]byte {
	var msg [160]byte
	m := append(msg[:0], rec...)
	m = appendString(m, first)
	m = appendString(m, second)
	return s.mac(m)
}

// pageToken seals st for a listing of second (and first, for
// ListChangedBlocks; "" otherwise).
func (s *sealer) pageToken(st pageState, first, second string) string {
	var rec [pageTokenLen]byte
	rec[0] = kindPageToken
	rec[1] = st.op
	binary.BigEndian.PutUint64(rec[2:], uint64(st.pos))
	binary.BigEndian.PutUint64(rec[10:], uint64(st.expiry))
	binary.BigEndian.PutUint32(rec[18:], st.gen1)
	binary.BigEndian.PutUint32(rec[22:], st.gen2)
	tag := s.pageMAC(rec[:26], first, second)
	copy(rec[26:], tag[:])
	return b64.EncodeToString(rec[:])
}

// openPageToken checks tok for a listing op of (first, second) and that it
// has not expired at now.
func (s *sealer) openPageToken(tok string, op byte, first, second string, now time.Time) (pageState, bool) {
	if len(tok) != b64.EncodedLen(pageTokenLen) {
		return pageState{}, false
	}
	var rec [pageTokenLen + 2]byte
	n, err := b64.Decode(rec[:], []byte(tok))
	if err != nil || n != pageTokenLen || rec[0] != kindPageToken || rec[1] != op {
		return pageState{}, false
	}
	tag := s.pageMAC(rec[:26], first, second)
	if !hmac.Equal(tag[:], rec[26:pageTokenLen]) {
		return pageState{}, false
	}
	st := pageState{
		op:     op,
		pos:    int64(binary.BigEndian.Uint64(rec[2:])),
		expiry: int64(binary.BigEndian.Uint64(rec[10:])),
		gen1:   binary.BigEndian.Uint32(rec[18:]),
		gen2:   binary.BigEndian.Uint32(rec[22:]),
	}
	if now.Unix() >= st.expiry || st.pos < 0 {
		return pageState{}, false
	}
	return st, true
}
