package ebs

import (
	"context"

	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
)

// API is the part of the EBS client ebsimager calls, in the SDK's own
// signatures, so *ebsapi.Client satisfies it.
type API interface {
	ListSnapshotBlocks(context.Context, *ebsapi.ListSnapshotBlocksInput, ...func(*ebsapi.Options)) (*ebsapi.ListSnapshotBlocksOutput, error)
	ListChangedBlocks(context.Context, *ebsapi.ListChangedBlocksInput, ...func(*ebsapi.Options)) (*ebsapi.ListChangedBlocksOutput, error)
	GetSnapshotBlock(context.Context, *ebsapi.GetSnapshotBlockInput, ...func(*ebsapi.Options)) (*ebsapi.GetSnapshotBlockOutput, error)
}

var _ API = (*ebsapi.Client)(nil)
