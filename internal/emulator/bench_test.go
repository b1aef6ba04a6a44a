package emulator_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/emulator/emulatortest"
)

// BenchmarkServeGetSnapshotBlock fetches blocks of a synthetic snapshot
// with the real SDK client over loopback, from N concurrent workers, with
// latency off. "verify" also hashes each body on the client, as a real
// acquisition does.
func BenchmarkServeGetSnapshotBlock(b *testing.B) {
	for _, bc := range []struct {
		workers int
		verify  bool
	}{{1, false}, {8, false}, {32, false}, {8, true}} {
		b.Run(fmt.Sprintf("workers=%d/verify=%v", bc.workers, bc.verify), func(b *testing.B) {
			s, ep := emulatortest.Start(b, emulator.Options{})
			if err := s.AddSynthetic("snap-0a=8GiB"); err != nil {
				b.Fatal(err)
			}
			c := emulatortest.Client(b, ep)
			ctx := context.Background()
			var blocks []struct {
				index int32
				token string
			}
			in := &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0a")}
			for {
				out, err := c.ListSnapshotBlocks(ctx, in)
				if err != nil {
					b.Fatal(err)
				}
				for _, bl := range out.Blocks {
					blocks = append(blocks, struct {
						index int32
						token string
					}{*bl.BlockIndex, *bl.BlockToken})
				}
				if out.NextToken == nil {
					break
				}
				in.NextToken = out.NextToken
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, bc.workers)
			b.SetBytes(block.Size)
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < bc.workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, block.Size)
					for {
						n := next.Add(1) - 1
						if n >= int64(b.N) {
							return
						}
						bl := blocks[n%int64(len(blocks))]
						out, err := c.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{
							SnapshotId: aws.String("snap-0a"), BlockIndex: aws.Int32(bl.index), BlockToken: aws.String(bl.token)})
						if err != nil {
							errs <- err
							return
						}
						_, err = io.ReadFull(out.BlockData, buf)
						out.BlockData.Close()
						if err != nil {
							errs <- err
							return
						}
						if bc.verify {
							sum := sha256.Sum256(buf)
							if b64(sum[:]) != aws.ToString(out.Checksum) {
								errs <- fmt.Errorf("block %d: checksum mismatch", bl.index)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			secs := elapsed.Seconds()
			b.ReportMetric(float64(b.N)/secs, "blocks/s")
			b.ReportMetric(float64(b.N)*block.Size/(1<<20)/secs, "MiB/s")
		})
	}
}
