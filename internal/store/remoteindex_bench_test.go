package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// benchManifest puts the manifest of n tiny blocks, and its .sha256,
// into a bucket.
func benchManifest(b *testing.B, n int64) (*bucket.Memory, Meta) {
	meta := remoteMeta()
	meta.VolumeSizeGiB = (n + block.PerGiB - 1) / block.PerGiB
	meta.Format, meta.Codec, meta.Encryption = metaFormat, "none", "none"
	r := &Remote{meta: meta}
	var buf bytes.Buffer
	mw, err := manifest.NewWriter(&buf, manifest.Header{SnapshotID: meta.SnapshotID, Region: meta.Region, VolumeSizeGiB: meta.VolumeSizeGiB,
		VolumeSizeBytes: meta.VolumeSizeGiB << 30, BlockSize: meta.BlockSize, ToolVersion: "test", StartedAt: time.Unix(0, 0), FinishedAt: time.Unix(1, 0)})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		sum := block.Sum(sha256.Sum256(benchData(i)))
		if err := mw.Add(manifest.Entry{Index: i, SHA256: sum.Hex(), Length: 8, Name: r.Name(i, sum), Size: 8, StoredSHA256: sum.Hex(), Codec: "none", Encryption: "none"}); err != nil {
			b.Fatal(err)
		}
	}
	_, sum, err := mw.Close()
	if err != nil {
		b.Fatal(err)
	}
	bk := &bucket.Memory{}
	bk.Set(ManifestName, buf.Bytes())
	bk.Set(ManifestSumName, []byte(fmt.Sprintf("%s  %s\n", sum.Hex(), ManifestName)))
	return bk, meta
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkRemoteReaderHeap measures what a reader of S3 evidence keeps
// once it has read the manifest of n blocks: all its entries
// (ReadRemoteManifest, what volume.Open kept before) or the index of its
// leaves (OpenRemoteIndex, what volume.Open keeps now, with one leaf
// read back):
//
//	go test ./internal/store -run '^$' -bench RemoteReaderHeap -benchtime 1x
func BenchmarkRemoteReaderHeap(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int64{64 << 10, 512 << 10} {
		bk, meta := benchManifest(b, n)
		b.Run(fmt.Sprintf("entries/blocks=%dKi", n>>10), func(b *testing.B) {
			for range b.N {
				base := liveHeap()
				es, err := ReadRemoteManifest(ctx, bk, meta)
				if err != nil || int64(len(es)) != n {
					b.Fatal(len(es), err)
				}
				kept := liveHeap() - min(base, liveHeap())
				runtime.KeepAlive(es)
				b.ReportMetric(float64(kept)/(1<<20), "kept-MiB")
				b.ReportMetric(float64(kept)/float64(n), "kept-B/block")
			}
		})
		b.Run(fmt.Sprintf("index/blocks=%dKi", n>>10), func(b *testing.B) {
			for range b.N {
				base := liveHeap()
				ix, err := OpenRemoteIndex(ctx, bk, meta, nil)
				if err != nil || ix.Blocks != n {
					b.Fatal(err)
				}
				if _, ok, err := ix.Entry(ctx, n/2); !ok || err != nil {
					b.Fatal(ok, err)
				}
				kept := liveHeap() - min(base, liveHeap())
				runtime.KeepAlive(ix)
				b.ReportMetric(float64(kept)/(1<<20), "kept-MiB")
				b.ReportMetric(float64(kept)/float64(n), "kept-B/block")
			}
		})
	}
}
