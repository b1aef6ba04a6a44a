package diff

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/inspect"
)

const bs = block.Size

// sample is a diff with every kind, runs broken by kind and by gaps.
func sample(t *testing.T) *Diff {
	t.Helper()
	b := NewBuilder("snap-0a", "snap-0b")
	b.SetVolume(1)
	for _, c := range []Change{
		{Index: 0, InNew: true}, {Index: 1, InNew: true},
		{Index: 2, InBase: true, InNew: true}, {Index: 3, InBase: true, InNew: true},
		{Index: 5, InBase: true}, {Index: 6, InBase: true},
		{Index: 7, InNew: true},
		{Index: 2047, InBase: true, InNew: true},
	} {
		if err := b.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	d := b.Diff()
	d.ListCalls = 1
	return d
}

func TestBuilderMergesRuns(t *testing.T) {
	d := sample(t)
	want := []Run{
		{StartBlock: 0, Blocks: 2, Offset: 0, Length: 2 * bs, Kind: Added},
		{StartBlock: 2, Blocks: 2, Offset: 2 * bs, Length: 2 * bs, Kind: Changed},
		{StartBlock: 5, Blocks: 2, Offset: 5 * bs, Length: 2 * bs, Kind: Removed},
		{StartBlock: 7, Blocks: 1, Offset: 7 * bs, Length: bs, Kind: Added},
		{StartBlock: 2047, Blocks: 1, Offset: 2047 * bs, Length: bs, Kind: Changed},
	}
	if !reflect.DeepEqual(d.Runs, want) {
		t.Fatalf("runs\n%+v\nwant\n%+v", d.Runs, want)
	}
	if want := (Totals{Runs: 5, Blocks: 8, Bytes: 8 * bs, Added: 3, Changed: 3, Removed: 2}); d.Totals != want {
		t.Fatalf("totals %+v, want %+v", d.Totals, want)
	}
	for idx, k := range map[int64]Kind{0: Added, 3: Changed, 4: "", 6: Removed, 7: Added, 8: "", 2047: Changed, 2048: ""} {
		if got := d.KindAt(idx); got != k {
			t.Errorf("KindAt(%d) = %q, want %q", idx, got, k)
		}
	}
	if d.changedIn(4*bs, bs) || !d.changedIn(4*bs, bs+1) || !d.changedIn(bs-1, 1) || d.changedIn(8*bs, 0) {
		t.Error("changedIn is wrong at a run's edge")
	}

	b := NewBuilder("a", "b")
	if err := b.Add(Change{Index: 3, InNew: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(Change{Index: 3, InNew: true}); err == nil {
		t.Error("a repeated index was accepted")
	}
	if err := b.Add(Change{Index: 4}); err == nil {
		t.Error("a change in neither snapshot was accepted")
	}
}

func TestWriteChangelog(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteChangelog(&buf, sample(t)); err != nil {
		t.Fatal(err)
	}
	want := `blockindex|offset|length
0|0|524288
1|524288|524288
2|1048576|524288
3|1572864|524288
5|2621440|524288
6|3145728|524288
7|3670016|524288
2047|1073217536|524288
`
	if buf.String() != want {
		t.Fatalf("changelog:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestWriteJSON(t *testing.T) {
	d := sample(t)
	d.Runs = d.Runs[:2]
	var buf bytes.Buffer
	if err := WriteJSON(&buf, d); err != nil {
		t.Fatal(err)
	}
	want := `{
  "base_snapshot": "snap-0a",
  "snapshot": "snap-0b",
  "volume_size_gib": 1,
  "block_size": 524288,
  "list_calls": 1,
  "get_calls": 0,
  "totals": {
    "runs": 5,
    "blocks": 8,
    "bytes": 4194304,
    "added": 3,
    "changed": 3,
    "removed": 2
  },
  "runs": [
    {
      "start_block": 0,
      "blocks": 2,
      "offset": 0,
      "length": 1048576,
      "kind": "added"
    },
    {
      "start_block": 2,
      "blocks": 2,
      "offset": 1048576,
      "length": 1048576,
      "kind": "changed"
    }
  ]
}
`
	if buf.String() != want {
		t.Fatalf("JSON:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// layout is a GPT disk: partition 1 from 1 MiB, ending a quarter block
// into block 130; partition 2 from 66 MiB (block 132) to 130 MiB.
func layout() *inspect.Layout {
	return &inspect.Layout{Size: 1 << 30, Table: inspect.TableGPT, Partitions: []inspect.Partition{
		{Number: 1, Name: "root", TypeName: "Linux filesystem", Offset: 1 << 20, Length: 64<<20 + bs/4,
			FileSystem: &inspect.FileSystem{Type: "ext4"}},
		{Number: 2, TypeName: "Microsoft basic data", Offset: 66 << 20, Length: 64 << 20,
			FileSystem: &inspect.FileSystem{Type: "ntfs"}},
	}}
}

func TestMapPartitions(t *testing.T) {
	b := NewBuilder("snap-0a", "snap-0b")
	b.SetVolume(1)
	for _, i := range []int64{0, 1, 2, 3, 130, 131, 132, 500} {
		if err := b.Add(Change{Index: i, InBase: true, InNew: true}); err != nil {
			t.Fatal(err)
		}
	}
	d := b.Diff()
	d.MapPartitions(layout())
	// Blocks 0-3 merge into one run; 2 and 3 are in partition 1. Block
	// 130 ends partition 1, 131 lies in the gap, 132 starts partition 2.
	wantParts := [][]int{{1}, {1, 2}, nil}
	if len(d.Runs) != 3 {
		t.Fatalf("runs %+v", d.Runs)
	}
	for i, r := range d.Runs {
		if !reflect.DeepEqual(r.Partitions, wantParts[i]) {
			t.Errorf("run %d (%d+%d): partitions %v, want %v", i, r.StartBlock, r.Blocks, r.Partitions, wantParts[i])
		}
	}
	p1, p2 := d.Partitions[0], d.Partitions[1]
	if p1.Number != 1 || p1.Blocks != 3 || p1.Bytes != 2*bs+bs/4 || p1.FileSystem != "ext4" || p1.Name != "root" {
		t.Errorf("partition 1: %+v", p1)
	}
	if p2.Number != 2 || p2.Blocks != 1 || p2.Bytes != bs {
		t.Errorf("partition 2: %+v", p2)
	}
	// Outside: blocks 0 and 1 (the table), three quarters of 130, all of
	// 131 (the gap) and 500 (past the last partition).
	if d.Outside == nil || *d.Outside != (Extent{Blocks: 5, Bytes: 4*bs + 3*bs/4}) {
		t.Errorf("outside: %+v", d.Outside)
	}

	var buf bytes.Buffer
	if err := WriteText(&buf, d); err != nil {
		t.Fatal(err)
	}
	want := `changes from snap-0a to snap-0b (1 GiB volume, 524288-byte blocks)
 start_block   blocks           offset         length  kind     partitions
           0        4                0        2097152  changed  1
         130        3         68157440        1572864  changed  1,2
         500        1        262144000         524288  changed  -
total: 8 blocks (4194304 bytes) in 3 runs: 0 added, 8 changed, 0 removed; 0 List calls
partitions:
  partition 1 "root" (ext4) at 1048576, 67239936 bytes: 3 changed blocks, 1179648 bytes
  partition 2 (ntfs) at 69206016, 67108864 bytes: 1 changed blocks, 524288 bytes
  outside every partition: 5 changed blocks, 2490368 bytes
`
	if buf.String() != want {
		t.Fatalf("text:\n%s\nwant:\n%s", buf.String(), want)
	}
}
