package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// Unseal opens a sealed (compressed or encrypted) stored block as
// described by its manifest entry. It must bound its output: more than
// block.Size bytes is an error.
type Unseal func(src io.Reader, e manifest.Entry) (io.Reader, error)

// ErrNeedKey is returned when an encrypted block must be read but no
// Unseal able to decrypt was given.
var ErrNeedKey = errors.New("block is encrypted: a key is needed to read it")

// Evidence is an evidence directory open for reading.
type Evidence struct {
	Dir  string
	Meta Meta
	// Bucket, when set, holds the evidence instead of a directory
	// (evidence in S3, see OpenBucket); Dir is then its URL, for
	// messages. Manifest, ReadStored and the manifest's checksum read
	// from it.
	Bucket bucket.Bucket
}

// OpenBucket opens evidence in a bucket for reading, as Open opens a
// directory.
func OpenBucket(ctx context.Context, b bucket.Bucket) (*Evidence, error) {
	m, err := OpenRemote(ctx, b)
	if err != nil {
		return nil, err
	}
	return &Evidence{Dir: b.String(), Meta: m, Bucket: b}, nil
}

// ErrIncomplete means the directory has no manifest: its acquisition has
// not completed (run acquire again to resume it).
var ErrIncomplete = errors.New("no manifest: the acquisition has not completed; run acquire again to resume it")

// Provenances of evidence: see manifest.ProvenanceAWS.
const (
	ProvenanceAWS      = manifest.ProvenanceAWS
	ProvenanceImported = manifest.ProvenanceImported
)

// Imported reports whether the blocks were imported from a folder of the
// original tool, so that their SHA-256 came from its file names, not
// from AWS.
func (m Meta) Imported() bool { return m.Provenance == ProvenanceImported }

// checkMeta bounds what evidence.json says before anything is sized by
// it (a bitmap of the volume's slots, an image of the volume): evidence
// whose record is damaged gives one clear error (a *Mismatch, exit 4)
// from every command that opens it.
func checkMeta(m Meta) error {
	if err := block.CheckSnapshotID(m.SnapshotID); err != nil {
		return metaDamage(err.Error())
	}
	if err := block.CheckVolumeGiB(m.VolumeSizeGiB); err != nil {
		return metaDamage(err.Error())
	}
	if m.BlockSize != block.Size {
		return metaDamage(fmt.Sprintf("block size %d, want %d", m.BlockSize, block.Size))
	}
	if m.Provenance != "" && m.Provenance != ProvenanceAWS && m.Provenance != ProvenanceImported {
		return metaDamage(fmt.Sprintf("provenance %q, want %q or %q", m.Provenance, ProvenanceAWS, ProvenanceImported))
	}
	return nil
}

func metaDamage(what string) error {
	return &Mismatch{Index: -1, Name: MetaName, What: MetaName + ": " + what}
}

// Open opens an evidence directory for reading.
func Open(dir string) (*Evidence, error) {
	m, err := readMeta(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not an evidence directory: no %s", dir, MetaName)
	}
	if err != nil {
		return nil, err
	}
	return &Evidence{Dir: dir, Meta: m}, nil
}

// Manifest opens the manifest for streaming.
func (ev *Evidence) Manifest() (*manifest.Reader, io.Closer, error) {
	if ev.Bucket != nil {
		// Streamed in ranged GETs: never all in memory.
		rd, err := bucket.NewReader(context.Background(), ev.Bucket, ManifestName, remoteManifestMax(ev.Meta))
		if errors.Is(err, bucket.ErrNotFound) {
			return nil, nil, fmt.Errorf("%s: %w", ev.Dir, ErrIncomplete)
		}
		if err != nil {
			return nil, nil, err
		}
		r, err := manifest.NewReader(rd)
		return r, io.NopCloser(nil), err
	}
	f, err := os.Open(filepath.Join(ev.Dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w", ev.Dir, ErrIncomplete)
	}
	if err != nil {
		return nil, nil, err
	}
	r, err := manifest.NewReader(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return r, f, nil
}

// ReadStored reads a stored file and checks its size and SHA-256 against
// the entry, so that nothing tampered with is ever decoded.
func (ev *Evidence) ReadStored(e manifest.Entry, buf *bytes.Buffer) error {
	buf.Reset()
	if ev.Bucket != nil {
		data, err := GetRemoteStored(context.Background(), ev.Bucket, e)
		buf.Write(data)
		return err
	}
	f, err := os.Open(filepath.Join(ev.Dir, filepath.FromSlash(e.Name)))
	if errors.Is(err, fs.ErrNotExist) {
		// The manifest lists it: evidence that does not match its record,
		// as verify reports it, not a local I/O error.
		return &Mismatch{Index: e.Index, Name: e.Name, What: "block file is missing"}
	}
	if err != nil {
		return fmt.Errorf("block %d: %w", e.Index, err)
	}
	defer f.Close()
	h := sha256.New()
	// Read at most one byte beyond the recorded size, so a grown file is
	// caught without reading all of it.
	n, err := io.Copy(io.MultiWriter(buf, h), io.LimitReader(f, e.Size+1))
	if err != nil {
		return fmt.Errorf("reading block %d: %w", e.Index, err)
	}
	if n != e.Size {
		return &Mismatch{Index: e.Index, Name: e.Name, What: fmt.Sprintf("stored size %d, manifest says %d", n, e.Size)}
	}
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != e.StoredSHA256 {
		return &Mismatch{Index: e.Index, Name: e.Name, What: fmt.Sprintf("stored sha256 %s, manifest says %s", got, e.StoredSHA256)}
	}
	return nil
}

// Decode turns stored bytes, as ReadStored returned them (so already
// checked against e.StoredSHA256), into the block as AWS served it, into
// out (which must hold block.Size bytes), and checks its SHA-256 and
// length against the entry. A plain block whose entry records the same
// digest for both was proved by ReadStored and is not hashed again.
func Decode(e manifest.Entry, stored []byte, unseal Unseal, out []byte) ([]byte, error) {
	var data []byte
	plain := e.Codec == "none" && e.Encryption == "none"
	if plain {
		data = stored
	} else {
		if unseal == nil {
			if e.Encryption != "none" {
				return nil, fmt.Errorf("block %d: %w", e.Index, ErrNeedKey)
			}
			return nil, fmt.Errorf("block %d: stored as %s, and no decoder was given", e.Index, e.Codec)
		}
		r, err := unseal(bytes.NewReader(stored), e)
		if err != nil {
			return nil, fmt.Errorf("opening block %d: %w", e.Index, err)
		}
		n, err := io.ReadFull(r, out[:block.Size])
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("decoding block %d: %w", e.Index, err)
		}
		if n == block.Size {
			var one [1]byte
			if m, _ := r.Read(one[:]); m > 0 {
				return nil, fmt.Errorf("decoding block %d: expands beyond %d bytes", e.Index, block.Size)
			}
		}
		data = out[:n]
	}
	if len(data) != e.Length {
		return nil, &Mismatch{Index: e.Index, Name: e.Name, What: fmt.Sprintf("block length %d, manifest says %d", len(data), e.Length)}
	}
	want, err := e.Sum()
	if err != nil {
		return nil, &Mismatch{Index: e.Index, Name: e.Name, What: err.Error()}
	}
	if plain && e.StoredSHA256 == e.SHA256 {
		return data, nil
	}
	if got := block.SumOf(data); got != want {
		return nil, &Mismatch{Index: e.Index, Name: e.Name, What: (&block.ChecksumError{Index: e.Index, Want: want, Got: got}).Error()}
	}
	return data, nil
}

// Mismatch reports evidence that does not match its record.
type Mismatch struct {
	Index int64 // -1 when not about one block
	Name  string
	What  string
}

func (m *Mismatch) Error() string {
	if m.Index < 0 {
		return m.What
	}
	return fmt.Sprintf("block %d (%s): %s", m.Index, m.Name, m.What)
}

// Blocks streams every block of the manifest in index order, verified
// (stored bytes, then decoded bytes), to fn. The data slice is reused
// after fn returns.
func (ev *Evidence) Blocks(ctx context.Context, unseal Unseal, fn func(e manifest.Entry, data []byte) error) error {
	mr, c, err := ev.Manifest()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := ev.checkHeader(mr.Header()); err != nil {
		return err
	}
	var (
		stored bytes.Buffer
		out    = make([]byte, block.Size)
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := ev.checkEntry(e); err != nil {
			return err
		}
		if err := ev.ReadStored(e, &stored); err != nil {
			return err
		}
		data, err := Decode(e, stored.Bytes(), unseal, out)
		if err != nil {
			return err
		}
		if err := fn(e, data); err != nil {
			return err
		}
	}
	return ev.checkManifestSum(mr.Sum())
}

func (ev *Evidence) checkHeader(h manifest.Header) error {
	if h.SnapshotID != ev.Meta.SnapshotID || h.VolumeSizeGiB != ev.Meta.VolumeSizeGiB || h.BlockSize != ev.Meta.BlockSize {
		return &Mismatch{Index: -1, What: fmt.Sprintf("manifest header (%s, %d GiB, %d) disagrees with %s (%s, %d GiB, %d)",
			h.SnapshotID, h.VolumeSizeGiB, h.BlockSize, MetaName, ev.Meta.SnapshotID, ev.Meta.VolumeSizeGiB, ev.Meta.BlockSize)}
	}
	if provenance(h.Provenance) != provenance(ev.Meta.Provenance) || h.Source != ev.Meta.Source {
		return &Mismatch{Index: -1, What: fmt.Sprintf("manifest header (provenance %s, source %q) disagrees with %s (provenance %s, source %q)",
			provenance(h.Provenance), h.Source, MetaName, provenance(ev.Meta.Provenance), ev.Meta.Source)}
	}
	return nil
}

// provenance spells out the default: no provenance is the EBS direct
// APIs.
func provenance(p string) string {
	if p == "" {
		return ProvenanceAWS
	}
	return p
}

// checkEntry checks that an entry's name is the one its fields imply.
func (ev *Evidence) checkEntry(e manifest.Entry) error {
	if e.Index < 0 || e.Index >= block.Slots(ev.Meta.VolumeSizeGiB) {
		return &Mismatch{Index: e.Index, Name: e.Name, What: "index beyond the volume"}
	}
	dir, base := filepath.Split(filepath.FromSlash(e.Name))
	if filepath.Clean(dir) != LeafDir(e.Index) {
		return &Mismatch{Index: e.Index, Name: e.Name, What: "stored outside its leaf directory " + LeafDir(e.Index)}
	}
	fi, _, err := block.ParseFileName(base)
	if err != nil {
		return &Mismatch{Index: e.Index, Name: e.Name, What: err.Error()}
	}
	if fi.Index != e.Index || fi.Snapshot != ev.Meta.SnapshotID || fi.Sum.Hex() != e.SHA256 ||
		fi.VolumeGiB != ev.Meta.VolumeSizeGiB || fi.BlockSize != ev.Meta.BlockSize {
		return &Mismatch{Index: e.Index, Name: e.Name, What: "file name disagrees with the manifest entry"}
	}
	return nil
}

func (ev *Evidence) checkManifestSum(got block.Sum) error {
	if ev.Bucket != nil {
		return checkRemoteSum(context.Background(), ev.Bucket, got.Hex())
	}
	data, err := os.ReadFile(filepath.Join(ev.Dir, ManifestSumName))
	if err != nil {
		return &Mismatch{Index: -1, Name: ManifestSumName, What: fmt.Sprintf("manifest checksum file unreadable: %v", err)}
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 || fields[1] != ManifestName {
		return &Mismatch{Index: -1, Name: ManifestSumName, What: "malformed manifest checksum file"}
	}
	if fields[0] != got.Hex() {
		return &Mismatch{Index: -1, Name: ManifestName, What: fmt.Sprintf("manifest sha256 %s, %s says %s", got.Hex(), ManifestSumName, fields[0])}
	}
	return nil
}
