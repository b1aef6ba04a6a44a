package store

import (
	"io"

	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// The options of a store of plain blocks, and of one of sealed blocks
// whose toy seal inverts every byte (recorded as zstd, so that the names
// and entries are those of a real sealed form).
var (
	plainForm = Options{}
	invForm   = Options{Form: codec.Form{Codec: codec.Zstd}, seal: toySeal}
)

// withFS returns o writing through fs, synced as syncAll says.
func withFS(o Options, fs fileSystem, syncAll bool) Options {
	o.fs, o.syncAll = fs, syncAll
	return o
}

// toySeal inverts every byte: enough to make stored bytes differ from the
// block without pulling in the codec package.
func toySeal(dst io.Writer) (io.WriteCloser, error) { return &inverter{w: dst}, nil }

type inverter struct{ w io.Writer }

func (v *inverter) Write(p []byte) (int, error) {
	q := make([]byte, len(p))
	for i, b := range p {
		q[i] = ^b
	}
	return v.w.Write(q)
}

func (v *inverter) Close() error { return nil }

func toyUnseal(src io.Reader, _ manifest.Entry) (io.Reader, error) {
	return readerFunc(func(p []byte) (int, error) {
		n, err := src.Read(p)
		for i := range p[:n] {
			p[i] = ^p[i]
		}
		return n, err
	}), nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
