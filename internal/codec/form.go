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
// Encrypted, encrypted with age. The zero Form is a plain block.
type Form struct {
	Codec     Codec
	Encrypted bool
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
