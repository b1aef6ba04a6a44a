package acquire

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/image/window"
	"github.com/ebsimager/ebsimager/internal/sink"
)

// referenceSHA256 lists and fetches id with the bare SDK client and
// hashes the volume it holds, holes as zeros: the expected image.
func (e *env) referenceSHA256(t *testing.T, id string, size int64) string {
	t.Helper()
	c := emulatortest.Client(t, e.endpoint)
	h := sha256.New()
	zeros := make([]byte, block.Size)
	pos := int64(0)
	fill := func(to int64) {
		for ; pos < to; pos += block.Size {
			h.Write(zeros)
		}
	}
	var token *string
	for {
		out, err := c.ListSnapshotBlocks(context.Background(), &ebsapi.ListSnapshotBlocksInput{SnapshotId: aws.String(id), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range out.Blocks {
			got, err := c.GetSnapshotBlock(context.Background(), &ebsapi.GetSnapshotBlockInput{SnapshotId: aws.String(id), BlockIndex: b.BlockIndex, BlockToken: b.BlockToken})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			buf.ReadFrom(got.BlockData)
			got.BlockData.Close()
			fill(int64(*b.BlockIndex) * block.Size)
			h.Write(buf.Bytes())
			pos += block.Size
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	fill(size)
	return hex.EncodeToString(h.Sum(nil))
}

// Run honours every image sink's Caps: the listed raw image (announced
// blocks), the ordered raw image and the E01 (both behind the reordering
// window, which also asks for a cancel) all come out as the snapshot's
// exact image, from the two phases a caller goes through.
func TestAcquireIntoImageSinks(t *testing.T) {
	e := newEnv(t, emulator.Options{}, snapID+"=1GiB,0.3,21")
	const size = 1 << 30
	want := e.referenceSHA256(t, snapID, size)
	sha := []string{"sha256"}
	for _, c := range []struct {
		name string
		open func(dir string) (sink.Sink, error)
	}{
		{"listed", func(dir string) (sink.Sink, error) {
			return raw.CreateListedSink(filepath.Join(dir, "x.raw"), size, raw.Options{Hashes: sha}, 8)
		}},
		{"ordered", func(dir string) (sink.Sink, error) {
			return raw.CreateSink(filepath.Join(dir, "x.raw"), size, raw.Options{Hashes: sha})
		}},
		{"e01", func(dir string) (sink.Sink, error) {
			return ewf.CreateSink(filepath.Join(dir, "x"), size, ewf.Options{Level: ewf.LevelFast})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := NewSnapshot(e.snapshot(t, snapID))
			info, err := src.Info(context.Background())
			if err != nil || info.VolumeBytes() != size {
				t.Fatalf("Info: %+v, %v", info, err)
			}
			s, err := c.open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			res, err := New(src, Options{Workers: 16}).Run(context.Background(), s)
			if err != nil {
				s.Abort()
				t.Fatal(err)
			}
			out, err := s.Close()
			if err != nil {
				t.Fatal(err)
			}
			if out.Hashes["sha256"] != want || out.Blocks != res.Stored || res.Stored != res.Listed {
				t.Fatalf("image sha256 %s and %d blocks (%d listed, %d stored), want %s", out.Hashes["sha256"], out.Blocks, res.Listed, res.Stored, want)
			}
		})
	}
}

// discard is an in-order writer that keeps nothing.
type discard struct{}

func (discard) WriteBlock(int64, []byte) error { return nil }
func (discard) Close() (sink.Result, error)    { return sink.Result{}, nil }
func (discard) Abort() error                   { return nil }

// A sink that waits (the reordering window) behind a block that fails
// is cancelled when the run stops: Run returns the failure instead of
// waiting forever, and the sink can be aborted.
func TestAcquireCancelsWaitingSink(t *testing.T) {
	const bad = 3
	e := newEnv(t, emulator.Options{}, snapID+"=1GiB,1,2")
	e.srv.SetFaults(emulator.Faults{FailBlocks: []emulator.BlockFault{{Snapshot: snapID, Index: bad, Error: emulator.FaultBadChecksum}}})
	snap := e.snapshot(t, snapID)
	// Block 3's retries take long enough for the window to fill behind it.
	snap.Policy = ebs.Policy{Base: 100 * time.Millisecond, Max: 200 * time.Millisecond, MaxAttempts: 5}
	src := NewSnapshot(snap)
	if _, err := src.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := window.New(discard{}, 4) // 16 workers: most must wait
	_, err := New(src, Options{Workers: 16}).Run(context.Background(), w)
	var inc *IncompleteError
	if !errors.As(err, &inc) || !inc.Stopped || inc.Failed[0].Index != bad || !strings.Contains(err.Error(), "block 3") {
		t.Fatalf("err = %v, want an IncompleteError that stopped at block %d", err, bad)
	}
	if w.Peak() != 4 {
		t.Fatalf("the window held at most %d blocks: it never filled, so no Put waited", w.Peak())
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
}
