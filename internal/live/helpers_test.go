package live

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/volume"
)

const (
	rawID   = "snap-00000000000000b01" // the raw image of rawLayout
	synthID = "snap-00000000000000b02" // synthetic snapshots
	gib     = 1 << 30
)

// fastPolicy keeps the real policy's shape with test-sized waits.
var fastPolicy = ebs.Policy{MaxAttempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond, ThrottleBase: time.Millisecond}

// rawLayout is the raw image's blocks with data, in a 1 GiB volume of
// 2,048 slots; every other slot is a hole. Tests that use 100-slot
// chunks see runs across chunk edges (99, 100), a short last chunk
// (2000-2047) and the last block of the volume (2047).
var rawLayout = []int64{0, 1, 2, 3, 5, 7, 8, 9, 10, 11, 12, 99, 100, 150, 400, 1000, 1001, 1002, 1003, 1004,
	1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, 1016, 1017, 1018, 1019, 2047}

// rawPartial is a listed block whose data fills only its first bytes.
const rawPartial = 400

// rawRanges is rawLayout as merged byte ranges.
func rawRanges() []volume.Range {
	var out []volume.Range
	for _, i := range rawLayout {
		if k := len(out) - 1; k >= 0 && out[k].End() == i*block.Size {
			out[k].Len += block.Size
			continue
		}
		out = append(out, volume.Range{Off: i * block.Size, Len: block.Size})
	}
	return out
}

type env struct {
	srv      *emulator.Server
	endpoint string
	ref      *os.File // the raw image: the reference content of rawID
}

// newEnv starts an emulator serving the raw image of rawLayout as rawID,
// and the synthetic snapshots specs.
func newEnv(t testing.TB, o emulator.Options, specs ...string) *env {
	t.Helper()
	o.TrackBlocks = true
	srv, endpoint := emulatortest.Start(t, o)
	for _, s := range specs {
		if err := srv.AddSynthetic(s); err != nil {
			t.Fatal(err)
		}
	}
	path := writeRaw(t)
	if err := srv.AddRawImage(rawID, path, emulator.RawOptions{VolumeGiB: 1}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &env{srv: srv, endpoint: endpoint, ref: f}
}

// writeRaw writes a sparse file with random data in rawLayout's blocks.
func writeRaw(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(12, 34))
	buf := make([]byte, block.Size)
	for _, i := range rawLayout {
		for k := 0; k < len(buf); k += 8 { // never a zero byte: every listed block is non-zero
			binary.LittleEndian.PutUint64(buf[k:], rng.Uint64()|0x0101010101010101)
		}
		data := buf
		if i == rawPartial {
			data = buf[:100]
		}
		if _, err := f.WriteAt(data, i*block.Size); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(gib - 4096); err != nil { // the tail past the file reads as zeros
		t.Fatal(err)
	}
	return path
}

// want returns the reference bytes of rawID at off, zeros past the file.
func (e *env) want(t testing.TB, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := e.ref.ReadAt(p, off); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return p
}

func (e *env) snapshot(t testing.TB, id string) *ebs.Snapshot {
	return &ebs.Snapshot{API: emulatortest.Client(t, e.endpoint), ID: id, Policy: fastPolicy, Stats: &ebs.Stats{}, AttemptTimeout: 10 * time.Second}
}

// stack is the fetch stack acquire builds: retry over a rate cap over
// the adaptive limit, with tokens refreshed by listing again.
func stack(snap *ebs.Snapshot) ebs.Fetcher {
	return ebs.NewFetcher(snap, ebs.FetchOptions{Limiter: ebs.NewLimiter(16)})
}

// open opens id through the production fetch stack; it is closed when
// the test ends.
func (e *env) open(t testing.TB, id string, o Options) *Volume {
	t.Helper()
	snap := e.snapshot(t, id)
	v, err := Open(context.Background(), snap, stack(snap), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// gets returns the GetSnapshotBlock requests the emulator served.
func (e *env) gets() int64 { return e.srv.Counters().Total(emulator.OpGetSnapshotBlock) }

// lists returns the ListSnapshotBlocks requests the emulator served.
func (e *env) lists() int64 { return e.srv.Counters().Total(emulator.OpListSnapshotBlocks) }

// settle waits for readahead to finish.
func (v *Volume) settle() { v.wg.Wait() }

func readBlock(t testing.TB, v *Volume, i int64) []byte {
	t.Helper()
	p := make([]byte, block.Size)
	if n, err := v.ReadAt(p, i*block.Size); err != nil || n != len(p) {
		t.Fatalf("reading block %d: %d bytes, %v", i, n, err)
	}
	return p
}

// write makes a snapshot through the emulator's write API that lists
// exactly the allocated blocks of disk (an all-zero one included), and
// returns its id.
func (e *env) write(t testing.TB, disk []byte, allocated []int64) string {
	t.Helper()
	ctx := context.Background()
	c := emulatortest.Client(t, e.endpoint)
	st, err := c.StartSnapshot(ctx, &ebsapi.StartSnapshotInput{VolumeSize: aws.Int64((int64(len(disk)) + gib - 1) / gib)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(st.SnapshotId)
	for _, i := range allocated {
		data := disk[i*block.Size : (i+1)*block.Size]
		_, err := c.PutSnapshotBlock(ctx, &ebsapi.PutSnapshotBlockInput{
			SnapshotId: aws.String(id), BlockIndex: aws.Int32(int32(i)), BlockData: bytes.NewReader(data),
			DataLength: aws.Int32(block.Size), Checksum: aws.String(block.SumOf(data).Base64()),
			ChecksumAlgorithm: types.ChecksumAlgorithmChecksumAlgorithmSha256,
		})
		if err != nil {
			t.Fatalf("putting block %d: %v", i, err)
		}
	}
	if _, err := c.CompleteSnapshot(ctx, &ebsapi.CompleteSnapshotInput{SnapshotId: aws.String(id), ChangedBlocksCount: aws.Int32(int32(len(allocated)))}); err != nil {
		t.Fatal(err)
	}
	return id
}
