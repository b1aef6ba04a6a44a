package sampledisk

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/ebsimager/ebsimager/internal/block"
)

// VolumeGiB is the sample disk's size in GiB, as EBS reports VolumeSize.
const VolumeGiB = 1

// Size is the sample disk's size in bytes.
const Size = VolumeGiB << 30 // VolumeSize is in GiB

// FileName is the name Extract gives the raw disk inside its directory.
const FileName = "sample.raw"

//go:embed sample.raw.zst
var compressed []byte

//go:embed files.json
var filesJSON []byte

//go:embed make-sample-disk.sh
var script []byte

// File is one file the sample disk holds, as files.json lists it.
type File struct {
	Partition int    `json:"partition"` // 1-based GPT partition number
	FS        string `json:"fs"`        // "ext4" or "ntfs"
	Path      string `json:"path"`      // absolute path inside the file system
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"` // lowercase hex
}

var parsedFiles = sync.OnceValues(func() ([]File, error) {
	var files []File
	if err := json.Unmarshal(filesJSON, &files); err != nil {
		return nil, fmt.Errorf("parsing embedded files.json: %w", err)
	}
	return files, nil
})

// Files returns the files the sample disk holds. The list is embedded at
// build time; a malformed list is a build defect and panics.
func Files() []File {
	files, err := parsedFiles()
	if err != nil {
		panic(err)
	}
	return append([]File(nil), files...)
}

// FilesJSON returns the embedded files.json exactly as committed.
func FilesJSON() []byte { return bytes.Clone(filesJSON) }

// Script returns make-sample-disk.sh, the script that built the disk.
func Script() []byte { return bytes.Clone(script) }

// zeroRun is the granularity at which Extract looks for runs of zeros to
// leave as holes: 64 KiB is a multiple of every common file-system block
// and of the 4 KiB page, so holes line up with what the kernel can punch.
const zeroRun = 64 << 10

// Extract decompresses the sample disk to DIR/sample.raw, leaving runs of
// zeros as holes so it takes about 5 MiB on disk. The file is created 0600
// under a temporary name, synced and then renamed.
func Extract(dir string) (path string, err error) {
	path = filepath.Join(dir, FileName)
	tmp, err := os.CreateTemp(dir, "."+FileName+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("extracting sample disk: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return "", fmt.Errorf("extracting sample disk: %w", err)
	}
	dec, err := zstd.NewReader(bytes.NewReader(compressed), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return "", fmt.Errorf("opening embedded sample disk: %w", err)
	}
	defer dec.Close()
	n, err := writeSparse(tmp, dec)
	if err != nil {
		return "", fmt.Errorf("extracting sample disk to %s: %w", tmp.Name(), err)
	}
	if n != Size {
		return "", fmt.Errorf("extracting sample disk: decompressed %d bytes, want %d", n, int64(Size))
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("extracting sample disk: %w", err)
	}
	return path, nil
}

// writeSparse copies r to f, seeking over zero runs, and sets f's length to
// the number of bytes read.
func writeSparse(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, zeroRun)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if !block.IsZero(buf[:n]) {
				if _, werr := f.WriteAt(buf[:n], off); werr != nil {
					return off, werr
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	if err := f.Truncate(off); err != nil {
		return off, err
	}
	return off, nil
}
