package store

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"filippo.io/age"

	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// What SealerFor writes, UnsealWith opens by the entry's fields, and an
// encrypted block needs the key.
func TestSealerAndUnseal(t *testing.T) {
	if SealerFor(codec.Plain, nil) != nil {
		t.Fatal("the plain form has a sealer")
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	data := blockData(7)
	for _, f := range []codec.Form{{Codec: codec.Zstd}, {Codec: codec.Gzip}, {Encrypted: true}, {Codec: codec.Zstd, Encrypted: true}} {
		var (
			stored bytes.Buffer
			to     []age.Recipient
		)
		if f.Encrypted {
			to = []age.Recipient{id.Recipient()}
		}
		wc, err := SealerFor(f, to)(&stored)
		if err == nil {
			_, err = wc.Write(data)
		}
		if err == nil {
			err = wc.Close()
		}
		if err != nil {
			t.Fatalf("%v: sealing: %v", f, err)
		}
		var e manifest.Entry
		e.Codec, e.Encryption = f.Fields()
		r, err := UnsealWith([]age.Identity{id})(bytes.NewReader(stored.Bytes()), e)
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%v: read back %d bytes, %v", f, len(got), err)
		}
		_, err = UnsealWith(nil)(bytes.NewReader(stored.Bytes()), e)
		if f.Encrypted != errors.Is(err, ErrNeedKey) || (!f.Encrypted && err != nil) {
			t.Fatalf("%v without a key: %v", f, err)
		}
	}
	if _, err := UnsealWith(nil)(bytes.NewReader(nil), manifest.Entry{Codec: "lz4", Encryption: "none"}); err == nil {
		t.Fatal("an unknown codec opened")
	}
}
