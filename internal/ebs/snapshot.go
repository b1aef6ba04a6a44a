package ebs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebsapi "github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/ebsimager/ebsimager/internal/block"
)

// MaxPage is the largest page ListSnapshotBlocks serves; asking for it
// makes the fewest (billed) List calls.
const MaxPage = 10000 // API maximum for MaxResults

// Info describes a snapshot as its listing reports it.
type Info struct {
	SnapshotID string
	VolumeGiB  int64 // VolumeSize, in GiB
	BlockSize  int   // always block.Size in practice
}

// Slots returns how many block slots the volume has.
func (i Info) Slots() int64 { return block.Slots(i.VolumeGiB) }

// VolumeBytes returns the volume size in bytes.
func (i Info) VolumeBytes() int64 { return i.VolumeGiB << 30 }

// Page is one page of a listing.
type Page struct {
	Info
	Refs   []block.Ref
	Expiry time.Time // when the page's block tokens expire
	// More says the listing goes on after this page (it had a
	// NextToken): a caller that stopped here can go on from the index
	// after its last block.
	More bool
}

// Block is block.Block, the one block noun. The alias lets the fetch
// decorators spell it as before; new code says block.Block.
type Block = block.Block

// Fetcher fetches one verified block into buf, which must hold at least
// block.Size bytes.
type Fetcher interface {
	Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error)
}

// Snapshot reads one snapshot through API. Its List and Fetch make single
// attempts at each request except that List retries under Policy; wrap
// Fetch with Retry, Limit and RateLimit for production use.
type Snapshot struct {
	API    API
	ID     string
	Policy Policy
	Stats  *Stats
	// PageSize is MaxResults for List calls; default MaxPage.
	PageSize int32
	// AttemptTimeout bounds each GetSnapshotBlock, body included;
	// default 60s (a 512 KiB body at under 10 KiB/s is a dead connection).
	AttemptTimeout time.Duration
}

func (s *Snapshot) pageSize() int32 {
	if s.PageSize > 0 {
		return s.PageSize
	}
	return MaxPage
}

func (s *Snapshot) attemptTimeout() time.Duration {
	if s.AttemptTimeout > 0 {
		return s.AttemptTimeout
	}
	return 60 * time.Second
}

// List walks the snapshot's listed blocks from index start upwards, a page
// at a time, calling fn for each page in ascending order. Throttling and
// server errors are retried; an expired page token restarts the listing
// after the last block seen. fn's error stops the walk and is returned.
func (s *Snapshot) List(ctx context.Context, start int64, fn func(Page) error) error {
	var (
		token *string
		last  = start - 1
	)
	for {
		in := &ebsapi.ListSnapshotBlocksInput{
			SnapshotId: aws.String(s.ID),
			MaxResults: aws.Int32(s.pageSize()),
		}
		if token != nil {
			in.NextToken = token
		} else if last >= 0 {
			i, err := index32(last + 1)
			if err != nil {
				return fmt.Errorf("listing blocks of %s: %w", s.ID, err)
			}
			in.StartingBlockIndex = aws.Int32(i)
		}
		var out *ebsapi.ListSnapshotBlocksOutput
		err := s.Policy.Do(ctx, s.Stats, func(ctx context.Context) error {
			var err error
			s.Stats.addList()
			out, err = s.API.ListSnapshotBlocks(ctx, in)
			return err
		})
		if KindOf(err) == KindPageToken && token != nil {
			token = nil // restart after the last block seen, without the token
			continue
		}
		if err != nil {
			return fmt.Errorf("listing blocks of %s: %w", s.ID, err)
		}
		page, err := s.page(out.BlockSize, out.VolumeSize, out.ExpiryTime)
		if err != nil {
			return err
		}
		page.Refs = make([]block.Ref, 0, len(out.Blocks))
		for _, b := range out.Blocks {
			ref, err := blockRef(b.BlockIndex, b.BlockToken)
			if err != nil {
				return fmt.Errorf("listing blocks of %s: %w", s.ID, err)
			}
			if ref.Index <= last {
				return fmt.Errorf("listing blocks of %s: index %d after %d: listing is not ascending", s.ID, ref.Index, last)
			}
			if ref.Index >= page.Slots() {
				return fmt.Errorf("listing blocks of %s: index %d beyond the %d GiB volume", s.ID, ref.Index, page.VolumeGiB)
			}
			last = ref.Index
			page.Refs = append(page.Refs, ref)
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

// Info lists one small page to learn the volume and block size.
func (s *Snapshot) Info(ctx context.Context) (Info, error) {
	var info Info
	small := *s
	small.PageSize = 100 // the API minimum; the cheapest page
	errStop := errors.New("stop")
	err := small.List(ctx, 0, func(p Page) error {
		info = p.Info
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return Info{}, err
	}
	return info, nil
}

// Ref returns a fresh reference for block index, or ok=false when the
// snapshot does not list that index; next is the first listed index
// after it, or -1. An index outside the volume is a
// *block.BeyondVolumeError, found from a first page listed from index 0,
// so that no request ever carries it.
func (s *Snapshot) Ref(ctx context.Context, index int64) (ref block.Ref, next int64, ok bool, err error) {
	small := *s
	small.PageSize = 100 // the API minimum; the cheapest page
	errStop := errors.New("stop")
	next = -1
	// The first page says how big the volume is, and answers at once for
	// an index at or before its last block.
	answered := false
	err = small.List(ctx, 0, func(p Page) error {
		if err := block.CheckIndex(index, p.Slots()); err != nil {
			return err
		}
		for _, r := range p.Refs {
			if r.Index >= index {
				ref, ok, next, answered = r, r.Index == index, r.Index, true
				break
			}
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return block.Ref{}, -1, false, err
	}
	if answered {
		if !ok {
			ref = block.Ref{}
		}
		return ref, next, ok, nil
	}
	err = small.List(ctx, index, func(p Page) error {
		if len(p.Refs) == 0 {
			return nil // an empty page may still carry a NextToken
		}
		if p.Refs[0].Index == index {
			ref, ok = p.Refs[0], true
		}
		next = p.Refs[0].Index
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return block.Ref{}, -1, false, err
	}
	return ref, next, ok, nil
}

// index32 converts an index for the API, whose BlockIndex and
// StartingBlockIndex are 32-bit: an index that does not fit is refused,
// never truncated. No EBS volume has more slots than fit (block.MaxSlots).
func index32(index int64) (int32, error) {
	if index < 0 || index > math.MaxInt32 {
		return 0, &block.BeyondVolumeError{Index: index, Slots: block.MaxSlots}
	}
	return int32(index), nil
}

func (s *Snapshot) page(blockSize *int32, volumeSize *int64, expiry *time.Time) (Page, error) {
	if blockSize == nil || volumeSize == nil {
		return Page{}, fmt.Errorf("listing blocks of %s: response lacks BlockSize or VolumeSize", s.ID)
	}
	if *blockSize != block.Size {
		return Page{}, fmt.Errorf("listing blocks of %s: block size %d, this tool handles %d", s.ID, *blockSize, block.Size)
	}
	if err := block.CheckVolumeGiB(*volumeSize); err != nil {
		return Page{}, fmt.Errorf("listing blocks of %s: %w", s.ID, err)
	}
	p := Page{Info: Info{SnapshotID: s.ID, VolumeGiB: *volumeSize, BlockSize: int(*blockSize)}}
	if expiry != nil {
		p.Expiry = *expiry
	}
	return p, nil
}

func blockRef(index *int32, token *string) (block.Ref, error) {
	if index == nil || token == nil || *index < 0 {
		return block.Ref{}, errors.New("listed block without index or token")
	}
	return block.Ref{Index: int64(*index), Token: *token}, nil
}

// Fetch makes one GetSnapshotBlock attempt and verifies the response in
// the order EBS-API.md gives: the algorithm, the data length against the
// header and the body, then the SHA-256 against x-amz-Checksum.
func (s *Snapshot) Fetch(ctx context.Context, ref block.Ref, buf []byte) (block.Block, error) {
	if len(buf) < block.Size {
		return block.Block{}, fmt.Errorf("fetching block %d: buffer of %d bytes", ref.Index, len(buf))
	}
	index, err := index32(ref.Index)
	if err != nil {
		return block.Block{}, fmt.Errorf("fetching block %d: %w", ref.Index, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.attemptTimeout())
	defer cancel()
	s.Stats.addGet()
	out, err := s.API.GetSnapshotBlock(ctx, &ebsapi.GetSnapshotBlockInput{
		SnapshotId: aws.String(s.ID),
		BlockIndex: aws.Int32(index),
		BlockToken: aws.String(ref.Token),
	})
	if err != nil {
		return block.Block{}, fmt.Errorf("getting block %d: %w", ref.Index, err)
	}
	defer out.BlockData.Close()
	if out.ChecksumAlgorithm != types.ChecksumAlgorithmChecksumAlgorithmSha256 {
		return block.Block{}, &VerifyError{Index: ref.Index, Reason: fmt.Sprintf("checksum algorithm %q, want SHA256", out.ChecksumAlgorithm)}
	}
	if out.DataLength == nil || *out.DataLength <= 0 || *out.DataLength > block.Size {
		return block.Block{}, &VerifyError{Index: ref.Index, Reason: fmt.Sprintf("data length %v out of range (0, %d]", deref(out.DataLength), block.Size)}
	}
	if out.Checksum == nil {
		return block.Block{}, &VerifyError{Index: ref.Index, Reason: "no checksum header"}
	}
	want, err := block.ParseBase64(*out.Checksum)
	if err != nil {
		return block.Block{}, &VerifyError{Index: ref.Index, Reason: err.Error()}
	}
	n := int(*out.DataLength)
	data := buf[:n]
	if got, err := io.ReadFull(out.BlockData, data); err != nil {
		if ctx.Err() != nil {
			return block.Block{}, fmt.Errorf("reading block %d: %w", ref.Index, ctx.Err())
		}
		return block.Block{}, fmt.Errorf("reading block %d after %d of %d bytes: %w", ref.Index, got, n, io.ErrUnexpectedEOF)
	}
	var extra [1]byte
	if m, _ := out.BlockData.Read(extra[:]); m > 0 {
		return block.Block{}, &VerifyError{Index: ref.Index, Reason: fmt.Sprintf("body longer than its data length %d", n)}
	}
	got := block.Sum(sha256.Sum256(data))
	if got != want {
		return block.Block{}, &VerifyError{Index: ref.Index, Sum: &block.ChecksumError{Index: ref.Index, Want: want, Got: got}}
	}
	return block.Block{Index: ref.Index, Data: data, Sum: got}, nil
}

func deref(p *int32) any {
	if p == nil {
		return "absent"
	}
	return *p
}
