package codec

import (
	"fmt"
	"strings"
)

// Codec names a compression format for stored blocks.
type Codec string

const (
	// None stores blocks as they are. It is the zero Codec.
	None Codec = ""
	// Zstd is Zstandard (RFC 8878), opened by `zstd -d`.
	Zstd Codec = "zstd"
	// Gzip is gzip (RFC 1952), opened by `gunzip`; the original tool used it.
	Gzip Codec = "gzip"
)

// Suffixes of stored block files.
const (
	zstdSuffix = ".zst" // zstd(1) default
	gzipSuffix = ".gz"  // gzip(1) default
	ageSuffix  = ".age" // age(1) convention
)

// ParseCodec reads a codec name as given on a command line: "none" (or
// ""), "zstd" or "gzip".
func ParseCodec(s string) (Codec, error) {
	switch Codec(s) {
	case None, "none":
		return None, nil
	case Zstd, Gzip:
		return Codec(s), nil
	}
	return None, fmt.Errorf("unknown compression %q: want none, zstd or gzip", s)
}

// String returns the codec's name, "none" for None.
func (c Codec) String() string {
	if c == None {
		return "none"
	}
	return string(c)
}

// MarshalText encodes c as its name, so that None appears as "none".
func (c Codec) MarshalText() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads a name written by MarshalText.
func (c *Codec) UnmarshalText(b []byte) error {
	v, err := ParseCodec(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Suffix returns the file name suffix of c: "", ".zst" or ".gz".
func (c Codec) Suffix() string {
	switch c {
	case Zstd:
		return zstdSuffix
	case Gzip:
		return gzipSuffix
	}
	return ""
}

func (c Codec) check() error {
	switch c {
	case None, Zstd, Gzip:
		return nil
	}
	return fmt.Errorf("unknown compression %q", string(c))
}

// Form is how a block is stored: compressed with Codec, then, when
// Encrypted, encrypted with age. The zero Form is a plain block. It is
// the one stored form: evidence.json, each manifest entry and a
// conversion's marker record it as two fields (see Fields and FormOf),
// and a block file's name carries it as a suffix (see Suffix and
// ParseSuffix).
type Form struct {
	Codec     Codec
	Encrypted bool
}

// Plain is the form of a block stored as it was served.
var Plain = Form{}

// Encryption names, as evidence.json and the manifest record them.
const (
	EncryptionNone = "none"
	EncryptionAge  = "age"
)

// FormOf maps the two fields a manifest entry (or evidence.json) records,
// "codec" and "encryption", to the layers a block passes through. Empty
// fields are "none". Anything else is an error: a form this tool cannot
// write is never guessed at.
func FormOf(codecName, encryption string) (Form, error) {
	c, err := ParseCodec(codecName)
	if err != nil {
		return Form{}, err
	}
	switch encryption {
	case "", EncryptionNone:
		return Form{Codec: c}, nil
	case EncryptionAge:
		return Form{Codec: c, Encrypted: true}, nil
	}
	return Form{}, fmt.Errorf("unknown encryption %q: want none or age", encryption)
}

// Fields returns what a manifest entry and evidence.json record of f:
// the codec's name and the encryption's, "none" for either layer absent.
// FormOf reads them back.
func (f Form) Fields() (codecName, encryption string) {
	return f.Codec.String(), f.Encryption()
}

// Encryption returns the name of f's encryption layer: "age" or "none".
func (f Form) Encryption() string {
	if f.Encrypted {
		return EncryptionAge
	}
	return EncryptionNone
}

// Suffix returns the file name suffix of f: the codec's suffix followed
// by ".age" when encrypted, as in "0000000042_snap-…_2_524288.zst.age".
func (f Form) Suffix() string {
	s := f.Codec.Suffix()
	if f.Encrypted {
		s += ageSuffix
	}
	return s
}

// String describes f for logs, such as "zstd+age" or "none".
func (f Form) String() string {
	if f.Encrypted {
		return f.Codec.String() + "+age"
	}
	return f.Codec.String()
}

// ParseSuffix splits name into the Form its suffix announces and the name
// without that suffix. A name without a known suffix is a plain block.
// Only the order Seal writes is recognised: compression, then ".age".
func ParseSuffix(name string) (Form, string) {
	var f Form
	if rest, ok := strings.CutSuffix(name, ageSuffix); ok {
		f.Encrypted, name = true, rest
	}
	switch {
	case strings.HasSuffix(name, zstdSuffix):
		f.Codec, name = Zstd, strings.TrimSuffix(name, zstdSuffix)
	case strings.HasSuffix(name, gzipSuffix):
		f.Codec, name = Gzip, strings.TrimSuffix(name, gzipSuffix)
	}
	return f, name
}
