package ebs

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"
)

// pagesAPI serves a listing of full pages, built once, at memory speed:
// what is left to measure is List's own work per page and per block.
type pagesAPI struct {
	API
	pages []*ebsapi.ListSnapshotBlocksOutput
}

func newPagesAPI(n int) *pagesAPI {
	a := &pagesAPI{}
	for p := range n {
		out := &ebsapi.ListSnapshotBlocksOutput{BlockSize: aws.Int32(524288), VolumeSize: aws.Int64(16384)}
		for i := range MaxPage {
			out.Blocks = append(out.Blocks, types.Block{BlockIndex: aws.Int32(int32(p*MaxPage + i)), BlockToken: aws.String("t")})
		}
		if p+1 < n {
			out.NextToken = aws.String(fmt.Sprint(p + 1))
		}
		a.pages = append(a.pages, out)
	}
	return a
}

func (a *pagesAPI) ListSnapshotBlocks(_ context.Context, in *ebsapi.ListSnapshotBlocksInput, _ ...func(*ebsapi.Options)) (*ebsapi.ListSnapshotBlocksOutput, error) {
	p := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &p)
	}
	return a.pages[p], nil
}

// BenchmarkListPages lists 100 full pages (a million blocks) through
// Snapshot.List, to show what the retry decorator costs on the List path.
func BenchmarkListPages(b *testing.B) {
	api := newPagesAPI(100)
	b.ReportAllocs()
	for b.Loop() {
		s := &Snapshot{API: api, ID: "snap-0a", Stats: &Stats{}}
		n := 0
		if err := s.List(context.Background(), 0, func(p Page) error { n += len(p.Refs); return nil }); err != nil || n != 100*MaxPage {
			b.Fatalf("%v after %d blocks", err, n)
		}
	}
}
