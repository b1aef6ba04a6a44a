package ebs

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
)

// Change is one block that differs between two snapshots of a lineage, as
// ListChangedBlocks reports it. FirstToken is set when the first (base)
// snapshot lists the block, SecondToken when the second does: a block only
// the second lists was added, one only the first lists was removed, and
// one both list was changed (written again, not necessarily with other
// bytes).
type Change struct {
	Index                   int64
	FirstToken, SecondToken string
}

// ChangePage is one page of a ListChangedBlocks walk. Info describes the
// second snapshot.
type ChangePage struct {
	Info
	Changes []Change
	Expiry  time.Time // when the page's block tokens expire
	More    bool      // the walk goes on after this page (see Page.More)
}

// Changes walks the blocks that differ between snapshot base and s from
// index start upwards, a page at a time, calling fn for each page in
// ascending order. An empty base lists every block of s, each as if added.
// Like List, it retries throttling and server errors under s.Policy and
// restarts after the last block seen when a page token expires. Snapshots
// of different lineages fail with a ValidationException whose reason is
// UNRELATED_SNAPSHOTS (KindInvalid). fn's error stops the walk and is
// returned.
func (s *Snapshot) Changes(ctx context.Context, base string, start int64, fn func(ChangePage) error) error {
	var (
		token *string
		last  = start - 1
	)
	what := fmt.Sprintf("listing changes from %s to %s", base, s.ID)
	if base == "" {
		what = fmt.Sprintf("listing changes of %s", s.ID)
	}
	for {
		in := &ebsapi.ListChangedBlocksInput{
			SecondSnapshotId: aws.String(s.ID),
			MaxResults:       aws.Int32(s.pageSize()),
		}
		if base != "" {
			in.FirstSnapshotId = aws.String(base)
		}
		if token != nil {
			in.NextToken = token
		} else if last >= 0 {
			i, err := index32(last + 1)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			in.StartingBlockIndex = aws.Int32(i)
		}
		var out *ebsapi.ListChangedBlocksOutput
		err := s.Policy.Do(ctx, s.Stats, func(ctx context.Context) error {
			var err error
			s.Stats.addList()
			out, err = s.API.ListChangedBlocks(ctx, in)
			return err
		})
		if KindOf(err) == KindPageToken && token != nil {
			token = nil // restart after the last block seen, without the token
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		p, err := s.page(out.BlockSize, out.VolumeSize, out.ExpiryTime)
		if err != nil {
			return err
		}
		page := ChangePage{Info: p.Info, Expiry: p.Expiry, Changes: make([]Change, 0, len(out.ChangedBlocks))}
		for _, b := range out.ChangedBlocks {
			if b.BlockIndex == nil || *b.BlockIndex < 0 {
				return fmt.Errorf("%s: changed block without index", what)
			}
			c := Change{Index: int64(*b.BlockIndex), FirstToken: aws.ToString(b.FirstBlockToken), SecondToken: aws.ToString(b.SecondBlockToken)}
			if c.FirstToken == "" && c.SecondToken == "" {
				return fmt.Errorf("%s: changed block %d has neither a first nor a second token", what, c.Index)
			}
			if base == "" && c.FirstToken != "" {
				return fmt.Errorf("%s: changed block %d has a first token but no first snapshot was named", what, c.Index)
			}
			if c.Index <= last {
				return fmt.Errorf("%s: index %d after %d: listing is not ascending", what, c.Index, last)
			}
			if c.Index >= page.Slots() {
				return fmt.Errorf("%s: index %d beyond the %d GiB volume", what, c.Index, page.VolumeGiB)
			}
			last = c.Index
			page.Changes = append(page.Changes, c)
		}
		page.More = out.NextToken != nil && *out.NextToken != ""
		if err := fn(page); err != nil {
			return err
		}
		if out.NextToken == nil || *out.NextToken == "" {
			return nil
		}
		token = out.NextToken
	}
}
