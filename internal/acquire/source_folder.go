package acquire

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/snap4n6ir"
	"github.com/ebsimager/ebsimager/internal/store"
)

// folderPage is how many blocks one page of a folder's listing holds, as
// many as a page of ListSnapshotBlocks.
const folderPage = 10000

// Folder is a block folder of the original tool (package snap4n6ir) as a
// Source: the blocks its file names list, in index order, each read,
// decrypted and uncompressed as its form says, and checked against the
// SHA-256 in its name. A block that does not read or does not match its
// name fails on its own, as a block that fails verification after every
// retry does: the run goes on, and names it with the others in its
// *IncompleteError, as a *store.Mismatch (altered evidence) or the local
// error it met.
type Folder struct {
	f   *snap4n6ir.Folder
	key *snap4n6ir.Key
	// proof is the position in f.Blocks of a block already read to prove
	// the key, and first its data, handed out without reading it again.
	proof int
	first []byte
}

var _ Source = (*Folder)(nil)

// maxKeyProbes bounds the tokens tried before a password and salt that
// open none of them are called wrong: a wrong key fails every token, so
// a few suffice, and a folder of millions is not read to say so.
const maxKeyProbes = 64

// NewFolder returns f as a Source, read with key (an Encrypted folder's;
// nil for the others), once a block has read and matched its name. That
// proves the password and salt before anything is written: for an
// encrypted folder a token that does not open (a Fernet signature
// mismatch) is passed over, up to maxKeyProbes of them; when a later one
// opens, the key is right and the first is altered, which the run
// reports as a mismatch; when none opens, the error is the first block's
// (codec.ErrWrongKey). Any other failure of the first block is returned:
// a *store.Mismatch when it does not match its name.
func NewFolder(f *snap4n6ir.Folder, key *snap4n6ir.Key) (*Folder, error) {
	var firstErr error
	for i, e := range f.Blocks[:min(len(f.Blocks), maxKeyProbes)] {
		data, err := f.Read(e, key)
		if err == nil {
			return &Folder{f: f, key: key, proof: i, first: data}, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if !errors.Is(err, snap4n6ir.ErrSignature) {
			break
		}
	}
	return nil, folderError(firstErr)
}

// Info is what the folder's file names say of the volume.
func (s *Folder) Info(context.Context) (ebs.Info, error) {
	return ebs.Info{SnapshotID: s.f.Snapshot, VolumeGiB: s.f.VolumeGiB, BlockSize: block.Size}, nil
}

// List lists the folder's blocks from index start.
func (s *Folder) List(ctx context.Context, start int64, fn func(ebs.Page) error) error {
	info, _ := s.Info(ctx)
	blocks := s.f.Blocks[s.position(start):]
	for {
		n := min(len(blocks), folderPage)
		page := ebs.Page{Info: info, Refs: make([]block.Ref, n), More: n < len(blocks)}
		for i, e := range blocks[:n] {
			page.Refs[i] = block.Ref{Index: e.Index}
		}
		if err := fn(page); err != nil {
			return err
		}
		if blocks = blocks[n:]; len(blocks) == 0 {
			return nil
		}
	}
}

// position returns the position in the folder's blocks of the first
// block at or after index.
func (s *Folder) position(index int64) int {
	return sort.Search(len(s.f.Blocks), func(i int) bool { return s.f.Blocks[i].Index >= index })
}

// Fetcher reads blocks from the folder. Reads of local files need no
// rate, concurrency or account limit beyond the run's workers: the
// options are not used.
func (s *Folder) Fetcher(ebs.FetchOptions) ebs.Fetcher { return folderFetcher{s} }

// Counts is empty: reading a folder makes no requests.
func (s *Folder) Counts() ebs.Counts { return ebs.Counts{} }

type folderFetcher struct{ s *Folder }

func (f folderFetcher) Fetch(ctx context.Context, ref block.Ref, _ []byte) (block.Block, error) {
	s := f.s
	if err := ctx.Err(); err != nil {
		return block.Block{}, err
	}
	i := s.position(ref.Index)
	if i == len(s.f.Blocks) || s.f.Blocks[i].Index != ref.Index {
		return block.Block{}, fmt.Errorf("block %d: not a block of %s", ref.Index, s.f.Dir)
	}
	e := s.f.Blocks[i]
	if i == s.proof {
		return block.Block{Index: e.Index, Data: s.first, Sum: e.Sum}, nil
	}
	data, err := s.f.Read(e, s.key)
	if err != nil {
		return block.Block{}, &failedBlock{err: tampered(folderError(err)), verify: &ebs.VerifyError{Index: e.Index, Reason: err.Error()}}
	}
	return block.Block{Index: e.Index, Data: data, Sum: e.Sum}, nil
}

// failedBlock is a block of a folder that did not read or did not match
// its name. It is err, and also an *ebs.VerifyError (ebs.KindCorrupt),
// so that the run names it with the other failures and goes on, as it
// does with a block AWS kept serving wrong; nothing retries it, since
// the folder's file does not change.
type failedBlock struct {
	err    error
	verify *ebs.VerifyError
}

func (e *failedBlock) Error() string   { return e.err.Error() }
func (e *failedBlock) Unwrap() []error { return []error{e.err, e.verify} }

// folderError turns a block of a folder that does not match its name into
// a verification failure, a *store.Mismatch; a wrong key stays one
// (codec.ErrWrongKey), and so does a local I/O error.
func folderError(err error) error {
	var (
		be *snap4n6ir.BlockError
		pe *fs.PathError
	)
	if errors.As(err, &be) && !errors.Is(err, codec.ErrWrongKey) && !errors.As(err, &pe) {
		return &store.Mismatch{Index: be.Index, Name: be.Name, What: be.Err.Error()}
	}
	return err
}

// tampered turns a token that does not open, once the key has opened
// another, into the verification failure it is: an altered token, not
// a wrong password.
func tampered(err error) error {
	var be *snap4n6ir.BlockError
	if errors.As(err, &be) && errors.Is(err, snap4n6ir.ErrSignature) {
		return &store.Mismatch{Index: be.Index, Name: be.Name,
			What: "fernet signature mismatch: the token was altered (the password and salt open other tokens of this folder)"}
	}
	return err
}
