package snap4n6ir

import (
	"bytes"
	"crypto/aes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/codec"
)

// Form is which of the original tool's three folders a Folder is.
type Form int

const (
	// Plain is SNAP/: raw block files.
	Plain Form = iota
	// Compressed is SNAP_compressed/: each block file gzipped, NAME.gz.
	Compressed
	// Encrypted is SNAP_encrypted/: each gzipped file as a Fernet token,
	// NAME.gz.encrypted.
	Encrypted
)

// Suffix returns what the form adds to a block file name.
func (f Form) Suffix() string {
	switch f {
	case Compressed:
		return ".gz"
	case Encrypted:
		return ".gz.encrypted"
	}
	return ""
}

// String names the form as the original's folder suffix does.
func (f Form) String() string {
	switch f {
	case Compressed:
		return "compressed"
	case Encrypted:
		return "encrypted"
	}
	return "plain"
}

// SaltEnv is the environment variable the Fernet salt may come from; the
// password comes from codec.PassphraseEnv.
const SaltEnv = "EBSIMAGER_SALT"

// ReadSalt reads the salt from file (--salt-file) when given, else from
// EBSIMAGER_SALT through getenv, else through prompt, like
// codec.ReadPassphrase reads the password.
func ReadSalt(file string, getenv func(string) string, prompt func() (string, error)) (string, error) {
	return codec.SecretSource{File: file, Env: SaltEnv, Getenv: getenv, Prompt: prompt}.Read("salt")
}

// Entry is one block file of a Folder: its index and the SHA-256 its name
// records.
type Entry struct {
	Index int64
	Sum   block.Sum
}

// Folder is a scanned block folder. Blocks are in ascending index order;
// an entry takes 40 bytes, so a folder of millions of blocks still fits.
type Folder struct {
	Dir       string
	Form      Form
	Snapshot  string
	VolumeGiB int64
	Blocks    []Entry
	// Other lists, sorted, the names in Dir that are not block files of
	// this folder (subdirectories, stray files such as .DS_Store). The
	// caller decides whether they matter.
	Other []string
}

// readDirBatch is how many directory entries Scan holds at once: enough
// to make few system calls, few enough that a folder of millions of files
// is never held as DirEntry values.
var readDirBatch = 4096

// Scan lists the block files in dir. The form comes from the files'
// suffixes, which must all agree, as must their snapshot, volume size and
// block size (which must be block.Size). An index beyond the volume or
// given twice is an error; so is a folder with no block file, and an
// entry whose name looks like a block file's but is not one (upper-case
// hex, eleven digits, a directory, a size beyond any EBS volume). All
// these are a *FolderError.
func Scan(dir string) (*Folder, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("scanning %s: %w", dir, err)
	}
	defer d.Close()
	f := &Folder{Dir: dir}
	first := ""
	for {
		ents, err := d.ReadDir(readDirBatch)
		for _, ent := range ents {
			name := ent.Name()
			info, form, perr := parseName(name)
			if perr == nil && ent.IsDir() {
				perr = errors.New("a directory")
			}
			if perr != nil {
				if blockLike(name) {
					return nil, &FolderError{Dir: dir, Entry: name, Reason: "looks like a block file but is not one the original tool wrote: " + perr.Error()}
				}
				f.Other = append(f.Other, name)
				continue
			}
			if first == "" {
				first = name
				f.Form, f.Snapshot, f.VolumeGiB = form, info.Snapshot, info.VolumeGiB
			}
			var reason string
			switch {
			case form != f.Form:
				reason = fmt.Sprintf("is %v but %s is %v", form, first, f.Form)
			case info.Snapshot != f.Snapshot:
				reason = fmt.Sprintf("is from %s but %s is from %s", info.Snapshot, first, f.Snapshot)
			case info.VolumeGiB != f.VolumeGiB:
				reason = fmt.Sprintf("gives a %d GiB volume but %s gives %d GiB", info.VolumeGiB, first, f.VolumeGiB)
			case info.BlockSize != block.Size:
				reason = fmt.Sprintf("has block size %d, want %d", info.BlockSize, block.Size)
			case info.Index >= block.Slots(info.VolumeGiB):
				reason = (&block.BeyondVolumeError{Index: info.Index, Slots: block.Slots(info.VolumeGiB)}).Error()
			}
			if reason != "" {
				return nil, &FolderError{Dir: dir, Entry: name, Reason: reason}
			}
			f.Blocks = append(f.Blocks, Entry{Index: info.Index, Sum: info.Sum})
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("scanning %s: %w", dir, err)
		}
	}
	if len(f.Blocks) == 0 {
		return nil, &FolderError{Dir: dir, Reason: "no block files"}
	}
	slices.SortFunc(f.Blocks, func(a, b Entry) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
	for i := 1; i < len(f.Blocks); i++ {
		if f.Blocks[i].Index == f.Blocks[i-1].Index {
			return nil, &FolderError{Dir: dir, Entry: f.Name(f.Blocks[i]),
				Reason: fmt.Sprintf("block %d has another file, %s", f.Blocks[i].Index, f.Name(f.Blocks[i-1]))}
		}
	}
	sort.Strings(f.Other)
	return f, nil
}

// parseName reads a block file name with one of the three forms'
// suffixes, spelled exactly as the original tool spelled it.
func parseName(name string) (block.FileInfo, Form, error) {
	info, ext, err := block.ParseFileName(name)
	if err != nil {
		return info, Plain, err
	}
	for _, form := range []Form{Plain, Compressed, Encrypted} {
		if ext == form.Suffix() {
			// Only the original's own spelling: ParseFileName accepts any
			// zero padding of at least ten digits and upper-case hex,
			// FileName writes ten digits and lower case.
			if want := block.FileName(info) + ext; want != name {
				return info, Plain, fmt.Errorf("the original tool would have written %s", want)
			}
			return info, form, nil
		}
	}
	return info, Plain, fmt.Errorf("suffix %q is none of the original tool's (\"\", .gz, .gz.encrypted)", ext)
}

// blockLike reports whether name looks like an attempt at a block file
// name: it starts with digits and an underscore, or names a snapshot
// after one. Such a name that is not a block file is an error, never
// skipped in silence; other names (.DS_Store, notes) are only listed.
func blockLike(name string) bool {
	digits := 0
	for digits < len(name) && name[digits] >= '0' && name[digits] <= '9' {
		digits++
	}
	return (digits > 0 && digits < len(name) && name[digits] == '_') || strings.Contains(name, "_snap-")
}

// FolderError reports a folder the original tool cannot have written:
// an entry with a block-like name that is not a block file, block files
// that disagree, or no block file at all. Entry is empty when no one
// entry is at fault.
type FolderError struct {
	Dir    string
	Entry  string
	Reason string
}

func (e *FolderError) Error() string {
	if e.Entry == "" {
		return fmt.Sprintf("scanning %s: %s", e.Dir, e.Reason)
	}
	return fmt.Sprintf("scanning %s: %s %s", e.Dir, e.Entry, e.Reason)
}

// Name returns the file name of e in f.
func (f *Folder) Name(e Entry) string {
	return block.FileName(block.FileInfo{
		Index: e.Index, Snapshot: f.Snapshot, Sum: e.Sum, VolumeGiB: f.VolumeGiB, BlockSize: block.Size,
	}) + f.Form.Suffix()
}

// BlockError names the block file a read failed on. Err is, among
// others, a *block.ChecksumError when the bytes do not match the name's
// SHA-256, or ErrSignature (and so codec.ErrWrongKey) when the token does
// not verify.
type BlockError struct {
	Index int64
	Name  string
	Err   error
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("block %d (%s): %v", e.Index, e.Name, e.Err)
}

func (e *BlockError) Unwrap() error { return e.Err }

// maxPayload bounds the gzip file inside a token. Deflate adds 5 bytes
// per stored block of at most 64 KiB (RFC 1951 section 3.2.4) and the
// gzip header the file name (RFC 1952 section 2.3), so 1/16 of a block
// covers the worst case many times over.
const maxPayload = block.Size + block.Size/16

// maxToken bounds a token file: the Fernet framing around maxPayload plus
// a full block of PKCS#7 padding, in base64, plus a trailing "\r\n".
var maxToken = base64.URLEncoding.EncodedLen(fernetHeader+maxPayload+aes.BlockSize+fernetMAC) + 2

// Read returns the block e in f, decrypted with key (Encrypted only; nil
// otherwise) and uncompressed, once its length is block.Size and its
// SHA-256 is the one its name records. On any failure it returns nil and
// a *BlockError.
func (f *Folder) Read(e Entry, key *Key) ([]byte, error) {
	name := f.Name(e)
	data, err := f.read(name, key)
	if err == nil && len(data) != block.Size {
		err = fmt.Errorf("%d bytes, want %d", len(data), block.Size)
	}
	if err == nil {
		if got := block.SumOf(data); got != e.Sum {
			err = &block.ChecksumError{Index: e.Index, Want: e.Sum, Got: got}
		}
	}
	if err != nil {
		return nil, &BlockError{Index: e.Index, Name: name, Err: err}
	}
	return data, nil
}

func (f *Folder) read(name string, key *Key) ([]byte, error) {
	if (f.Form == Encrypted) != (key != nil) {
		if key == nil {
			return nil, errors.New("encrypted folder: a key is needed")
		}
		return nil, fmt.Errorf("%v folder: no key is needed", f.Form)
	}
	file, err := os.Open(filepath.Join(f.Dir, name))
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var src io.Reader = file
	c := codec.Gzip
	switch f.Form {
	case Plain:
		c = codec.None
	case Encrypted:
		token, err := io.ReadAll(io.LimitReader(file, int64(maxToken)+1))
		if err != nil {
			return nil, err
		}
		if len(token) > maxToken {
			return nil, fmt.Errorf("token longer than %d bytes", maxToken)
		}
		payload, _, err := DecryptToken(key, token)
		if err != nil {
			return nil, err
		}
		src = bytes.NewReader(payload)
	}
	r, err := codec.Decompress(src, c)
	if err != nil {
		return nil, err
	}
	return codec.ReadBlock(r, nil)
}
