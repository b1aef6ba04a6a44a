package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/store"
)

func newInspectCommand() *cobra.Command {
	var (
		asJSON bool
		keys   openOptions
	)
	cmd := &cobra.Command{
		Use:   "inspect DIR|IMAGE",
		Short: "Show the partitions and file systems of an evidence directory or a raw image",
		Long: `Read the partition table (GPT or MBR) of the volume held in evidence
directory DIR, or of a raw image (FILE, or split FILE.001, FILE.002, …), and
identify the file system of each partition: type, label, UUID or serial,
sizes and the facts of its superblock.

An evidence directory is read in place: only the blocks the partition
table and the file system headers live in are read, each found in the
manifest, checked against its stored SHA-256 and its AWS SHA-256; blocks
the snapshot does not list read as zeros. Nothing is rebuilt.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := inspectPath(args[0], &keys)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(l)
			}
			var b bytes.Buffer
			l.Text(&b)
			_, err = w.Write(b.Bytes())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the layout as JSON (the report's schema)")
	keys.addFlags(cmd)
	return cmd
}

// ewfSignature starts every E01 segment (EWF specification, "EVF" file
// header).
var ewfSignature = []byte("EVF\x09\x0d\x0a\xff\x00")

// inspectPath reads the layout of an evidence directory or a raw image.
func inspectPath(path string, keys *openOptions) (*inspect.Layout, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		ev, err := store.Open(path)
		if err != nil {
			return nil, err
		}
		unseal, err := keys.unseal(ev, true)
		if err != nil {
			return nil, err
		}
		r, err := openEvidenceVolume(ev, unseal)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return inspect.Inspect(r, r.Size())
	}
	img, err := raw.Open(path)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	head := make([]byte, len(ewfSignature))
	if n, _ := img.ReadAt(head, 0); n == len(head) && bytes.Equal(head, ewfSignature) {
		return nil, fmt.Errorf("%s is an E01 image: inspect reads evidence directories and raw images", path)
	}
	return inspect.Inspect(img, img.Size())
}

// evidenceVolume is the volume held in an evidence directory as an
// io.ReaderAt that reads only the blocks a read touches. Each is found in
// the manifest by a binary search over the file (its entries ascend by
// index), its stored file is checked against the entry and its content
// against the AWS SHA-256; a block the manifest does not list reads as
// zeros, as on a restored volume. The manifest's own SHA-256 is not
// checked here (that needs the whole file; verify does it).
type evidenceVolume struct {
	ev     *store.Evidence
	unseal store.Unseal
	f      *os.File // manifest.jsonl
	first  int64    // offset of the first line after the header
	end    int64    // the manifest's size
	size   int64    // the volume's size in bytes

	mu     sync.Mutex
	stored bytes.Buffer
	buf    []byte
	cached int64 // the block in buf, or -1
	data   []byte
}

// manifestLineMax bounds one manifest line, as the manifest reader does.
// The binary search stops at a window of a few entries (about 400 bytes
// each) and scans it.
const (
	manifestLineMax = 64 << 10
	searchWindow    = 8 << 10
)

// openEvidenceVolume opens the manifest of ev for random access.
func openEvidenceVolume(ev *store.Evidence, unseal store.Unseal) (*evidenceVolume, error) {
	f, err := os.Open(filepath.Join(ev.Dir, store.ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", ev.Dir, store.ErrIncomplete)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	v := &evidenceVolume{ev: ev, unseal: unseal, f: f, end: fi.Size(), size: ev.Meta.VolumeSizeGiB << 30, // VolumeSize is in GiB
		buf: make([]byte, block.Size), cached: -1}
	line, next, err := v.lineAt(0)
	if err != nil {
		f.Close()
		return nil, err
	}
	mr, err := manifest.NewReader(bytes.NewReader(line))
	if err != nil {
		f.Close()
		return nil, err
	}
	if h := mr.Header(); h.SnapshotID != ev.Meta.SnapshotID || h.VolumeSizeGiB != ev.Meta.VolumeSizeGiB || h.BlockSize != ev.Meta.BlockSize {
		f.Close()
		return nil, &store.Mismatch{Index: -1, Name: store.ManifestName, What: fmt.Sprintf(
			"manifest header (%s, %d GiB, %d) disagrees with %s (%s, %d GiB, %d)", h.SnapshotID, h.VolumeSizeGiB, h.BlockSize,
			store.MetaName, ev.Meta.SnapshotID, ev.Meta.VolumeSizeGiB, ev.Meta.BlockSize)}
	}
	v.first = next
	return v, nil
}

// Size is the volume's size in bytes.
func (v *evidenceVolume) Size() int64 { return v.size }

// Close closes the manifest.
func (v *evidenceVolume) Close() error { return v.f.Close() }

// ReadAt reads the volume at off, block by block.
func (v *evidenceVolume) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading evidence at offset %d: negative offset", off)
	}
	if off >= v.size {
		return 0, io.EOF
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	want := min(int64(len(p)), v.size-off)
	for int64(n) < want {
		pos := off + int64(n)
		data, err := v.block(pos / block.Size)
		if err != nil {
			return n, err
		}
		in := int(pos % block.Size)
		seg := p[n : n+int(min(int64(block.Size-in), want-int64(n)))]
		k := 0
		if in < len(data) {
			k = copy(seg, data[in:])
		}
		clear(seg[k:]) // an unlisted block, or past a short one, reads as zeros
		n += len(seg)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// block returns block i's bytes, verified; nil for an unlisted block.
func (v *evidenceVolume) block(i int64) ([]byte, error) {
	if i == v.cached {
		return v.data, nil
	}
	v.cached, v.data = -1, nil
	e, ok, err := v.entry(i)
	if err != nil {
		return nil, err
	}
	var data []byte
	if ok {
		if err := v.checkName(e); err != nil {
			return nil, err
		}
		if err := v.ev.ReadStored(e, &v.stored); err != nil {
			return nil, err
		}
		if data, err = store.Decode(e, v.stored.Bytes(), v.unseal, v.buf); err != nil {
			return nil, err
		}
		data = v.buf[:copy(v.buf, data)] // a plain block's bytes are the stored buffer's
	}
	v.cached, v.data = i, data
	return data, nil
}

// checkName checks that the entry names the file its fields imply.
func (v *evidenceVolume) checkName(e manifest.Entry) error {
	dir, base := filepath.Split(filepath.FromSlash(e.Name))
	fi, _, err := block.ParseFileName(base)
	m := v.ev.Meta
	if err != nil || filepath.Clean(dir) != store.LeafDir(e.Index) || fi.Index != e.Index || fi.Snapshot != m.SnapshotID ||
		fi.Sum.Hex() != e.SHA256 || fi.VolumeGiB != m.VolumeSizeGiB || fi.BlockSize != m.BlockSize {
		return &store.Mismatch{Index: e.Index, Name: e.Name, What: "file name disagrees with the manifest entry"}
	}
	return nil
}

// entry finds block i in the manifest: a binary search over byte offsets
// down to a window of a few lines, then a scan. Every step shrinks
// [lo, hi), whatever the lines' lengths.
func (v *evidenceVolume) entry(i int64) (manifest.Entry, bool, error) {
	lo, hi := v.first, v.end // a line starting in [lo, hi) may hold i; none at or after hi does
	for hi-lo > searchWindow {
		mid := lo + (hi-lo)/2
		start, err := v.nextLineStart(mid)
		if err != nil {
			return manifest.Entry{}, false, err
		}
		if start >= hi {
			hi = mid
			continue
		}
		line, _, err := v.lineAt(start)
		if err != nil {
			return manifest.Entry{}, false, err
		}
		e, isEntry, err := parseManifestLine(line, start)
		switch {
		case err != nil:
			return manifest.Entry{}, false, err
		case isEntry && e.Index == i:
			return e, true, nil
		case isEntry && e.Index < i:
			lo = start
		default:
			hi = start
		}
	}
	for off := lo; off < v.end; {
		line, next, err := v.lineAt(off)
		if err != nil {
			return manifest.Entry{}, false, err
		}
		e, isEntry, err := parseManifestLine(line, off)
		if err != nil || !isEntry || e.Index > i {
			return manifest.Entry{}, false, err
		}
		if e.Index == i {
			return e, true, nil
		}
		off = next
	}
	return manifest.Entry{}, false, fmt.Errorf("%w: it ends without a trailer", manifest.ErrCorrupt)
}

// nextLineStart returns the offset of the first line that starts at or
// after pos (pos > 0), or the end of the file.
func (v *evidenceVolume) nextLineStart(pos int64) (int64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(v.f, pos-1, v.end-pos+1), 4096)
	skipped := int64(0)
	for {
		b, err := br.ReadSlice('\n')
		skipped += int64(len(b))
		if err == nil {
			return pos - 1 + skipped, nil
		}
		if errors.Is(err, io.EOF) {
			return v.end, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return 0, fmt.Errorf("reading %s: %w", store.ManifestName, err)
		}
		if skipped > manifestLineMax {
			return 0, fmt.Errorf("%w: a line at offset %d is longer than %d bytes", manifest.ErrCorrupt, pos, manifestLineMax)
		}
	}
}

// lineAt returns the line starting at off, without its newline, and the
// offset of the next line.
func (v *evidenceVolume) lineAt(off int64) ([]byte, int64, error) {
	buf := make([]byte, 0, 1024)
	chunk := make([]byte, 1024)
	for {
		n, err := v.f.ReadAt(chunk, off+int64(len(buf)))
		if i := bytes.IndexByte(chunk[:n], '\n'); i >= 0 {
			buf = append(buf, chunk[:i]...)
			return buf, off + int64(len(buf)) + 1, nil
		}
		buf = append(buf, chunk[:n]...)
		if len(buf) > manifestLineMax {
			return nil, 0, fmt.Errorf("%w: the line at offset %d is longer than %d bytes", manifest.ErrCorrupt, off, manifestLineMax)
		}
		if errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("%w: the line at offset %d has no end", manifest.ErrCorrupt, off)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reading %s: %w", store.ManifestName, err)
		}
	}
}

// parseManifestLine reads a block entry; the trailer is not an entry.
func parseManifestLine(line []byte, off int64) (manifest.Entry, bool, error) {
	var e manifest.Entry
	if err := json.Unmarshal(line, &e); err != nil {
		return e, false, fmt.Errorf("%w: at offset %d: %v", manifest.ErrCorrupt, off, err)
	}
	switch e.Type {
	case "block":
		return e, true, nil
	case "end":
		return e, false, nil
	}
	return e, false, fmt.Errorf("%w: at offset %d: a %q line", manifest.ErrCorrupt, off, e.Type)
}
