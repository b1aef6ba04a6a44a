package diff

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// memVolume is a volume in memory.
type memVolume struct{ *bytes.Reader }

func (m memVolume) Size() int64 { return m.Reader.Size() }
func (m memVolume) Ranges() ([]volume.Range, error) {
	return []volume.Range{{Off: 0, Len: m.Size()}}, nil
}
func (m memVolume) Close() error { return nil }

// The reads MapFiles makes mark a volume's failures, a failed fetch of
// an Overlay among them, as SourceErrors, which stop it.
func TestSourceErrors(t *testing.T) {
	base := make([]byte, 8*block.Size)
	b := NewBuilder("snap-0a", "snap-0b")
	b.SetVolume(1)
	for _, c := range []Change{{Index: 1, InBase: true, InNew: true}, {Index: 2, InBase: true}, {Index: 9, InNew: true}} {
		if err := b.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	d := b.Diff()
	if p := d.Patches(); len(p) != 3 || p[0] != (volume.Patch{Start: 1, Blocks: 1}) || p[1] != (volume.Patch{Start: 2, Blocks: 1, Removed: true}) ||
		p[2] != (volume.Patch{Start: 9, Blocks: 1}) || d.Size() != 1<<30 {
		t.Fatalf("patches %+v, size %d", p, d.Size())
	}
	failing := volume.NewOverlay(context.Background(), memVolume{bytes.NewReader(base)}, d.Snapshot, d.Size(), d.Patches(),
		func(context.Context, int64, []byte) ([]byte, error) { return nil, errors.New("denied") })
	got := make([]byte, 10)
	_, err := source{failing}.ReadAt(got, block.Size)
	var se *SourceError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "fetching block 1 of snap-0b: denied") {
		t.Fatalf("failed fetch: %v", err)
	}
	if n, err := (source{failing}).ReadAt(got, 0); n != 10 || err != nil {
		t.Fatalf("an unchanged block: %d, %v", n, err)
	}
}
