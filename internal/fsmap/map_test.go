package fsmap

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestLookupClipsAndOrders(t *testing.T) {
	b := newBuilder("test", 1000, 10, nil)
	a, c, s := b.owner(Owner{Name: "/a"}), b.owner(Owner{Name: "/c"}), b.structure("table")
	fixed := func(i int) func() int { return func() int { return i } }
	b.add(0, 100, Metadata, fixed(s))
	b.add(100, 50, Data, fixed(a))
	b.add(150, 50, Data, fixed(a)) // continues the last extent: merged
	b.add(300, 400, Data, fixed(c))
	b.add(320, 10, Metadata, fixed(a)) // overlaps /c (a damaged volume may do that)
	b.add(990, 100, Data, fixed(c))    // clipped at the file system's end
	b.add(-5, 10, Data, fixed(a))      // outside: ignored
	if b.structure("table") != s {
		t.Fatal("a structure was added twice")
	}
	m, err := b.finish()
	if err != nil {
		t.Fatal(err)
	}
	if m.Extents() != 5 {
		t.Fatalf("%d extents, want 5", m.Extents())
	}
	for _, tc := range []struct {
		off, n int64
		want   []Extent
	}{
		{0, 10, []Extent{{0, 10, s, Metadata}}},
		{90, 20, []Extent{{90, 10, s, Metadata}, {100, 10, a, Data}}},
		{195, 200, []Extent{{195, 5, a, Data}, {300, 95, c, Data}, {320, 10, a, Metadata}}},
		{200, 100, nil},
		{650, 400, []Extent{{650, 50, c, Data}, {990, 10, c, Data}}},
		{5, 0, nil},
		{1 << 62, 1 << 62, nil},
	} {
		if got := m.Lookup(tc.off, tc.n); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Lookup(%d, %d) = %+v, want %+v", tc.off, tc.n, got, tc.want)
		}
	}
	if i, ok := m.Find("/c"); !ok || i != c {
		t.Fatalf("Find(/c) = %d, %v", i, ok)
	}
	if got := m.ExtentsOf(a); len(got) != 2 || got[0].Len != 100 {
		t.Fatalf("ExtentsOf(/a) = %+v", got)
	}
}

func TestBuildRefusesOtherVolumes(t *testing.T) {
	for name, data := range map[string][]byte{
		"zeros":   make([]byte, 64<<10),
		"short":   []byte("tiny"),
		"ext bad": extSuperblockOnly(),
	} {
		_, err := Build(bytes.NewReader(data), int64(len(data)), Options{})
		switch {
		case name == "zeros" && !errors.Is(err, ErrUnknown):
			t.Errorf("%s: %v, want ErrUnknown", name, err)
		case err == nil:
			t.Errorf("%s: no error", name)
		}
	}
}

// extSuperblockOnly is an ext magic number with nothing sensible around it.
func extSuperblockOnly() []byte {
	b := make([]byte, 8192)
	b[extSuperOff+sMagic], b[extSuperOff+sMagic+1] = 0x53, 0xEF
	return b
}
