package block

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Size is the length of every EBS block.
const Size = 512 << 10 // EBS direct APIs serve fixed 512 KiB blocks

// PerGiB is how many block slots one GiB of VolumeSize holds.
const PerGiB = (1 << 30) / Size // VolumeSize is reported in GiB

// MaxVolumeGiB is the largest VolumeSize a snapshot can have: EBS
// volumes are at most 64 TiB (io2 Block Express; the EBS user guide's
// "Amazon EBS volume limits"), and a snapshot is of one volume.
const MaxVolumeGiB = 64 << 10

// MaxSlots is the block slots of the largest volume: 134,217,728, which
// fits an int32 (the API's BlockIndex and StartingBlockIndex).
const MaxSlots = MaxVolumeGiB * PerGiB

// Slots returns how many block slots a volume of volumeGiB GiB has.
func Slots(volumeGiB int64) int64 { return volumeGiB * PerGiB }

// CheckVolumeGiB refuses a volume size that no EBS volume has: zero or
// less, or more than MaxVolumeGiB. Every size taken from outside (a
// listing, a file name, evidence.json, a manifest) passes here before
// anything is allocated for it.
func CheckVolumeGiB(gib int64) error {
	if gib <= 0 || gib > MaxVolumeGiB {
		return fmt.Errorf("volume size %d GiB: EBS volumes are at most 64 TiB (%d GiB)", gib, MaxVolumeGiB)
	}
	return nil
}

// BeyondVolumeError reports a block index outside a volume of Slots
// block slots.
type BeyondVolumeError struct {
	Index int64
	Slots int64
}

func (e *BeyondVolumeError) Error() string {
	return fmt.Sprintf("block %d is beyond the volume of %d blocks", e.Index, e.Slots)
}

// CheckIndex returns a *BeyondVolumeError unless 0 <= index < slots.
func CheckIndex(index, slots int64) error {
	if index < 0 || index >= slots {
		return &BeyondVolumeError{Index: index, Slots: slots}
	}
	return nil
}

// Sum is a SHA-256 digest.
type Sum [sha256.Size]byte

// SumOf returns the SHA-256 of p.
func SumOf(p []byte) Sum { return sha256.Sum256(p) }

// Hex returns s in lowercase hex, as block file names carry it.
func (s Sum) Hex() string { return hex.EncodeToString(s[:]) }

// Base64 returns s in standard base64, as x-amz-Checksum carries it.
func (s Sum) Base64() string { return base64.StdEncoding.EncodeToString(s[:]) }

// String returns the hex form.
func (s Sum) String() string { return s.Hex() }

// ParseHex reads a 64-character hex digest.
func ParseHex(h string) (Sum, error) {
	var s Sum
	if len(h) != 2*len(s) {
		return s, fmt.Errorf("sha256 %q: want %d hex digits", h, 2*len(s))
	}
	if _, err := hex.Decode(s[:], []byte(h)); err != nil {
		return s, fmt.Errorf("sha256 %q: %w", h, err)
	}
	return s, nil
}

// ParseBase64 reads a base64 digest as sent in x-amz-Checksum.
func ParseBase64(b string) (Sum, error) {
	var s Sum
	raw, err := base64.StdEncoding.DecodeString(b)
	if err != nil {
		return s, fmt.Errorf("checksum %q: %w", b, err)
	}
	if len(raw) != len(s) {
		return s, fmt.Errorf("checksum %q: %d bytes, want %d", b, len(raw), len(s))
	}
	copy(s[:], raw)
	return s, nil
}

// ZeroSum is the SHA-256 of a block of zeros; EBS-API.md gives its base64
// form as B4VNL+8pega6gWheZgwzLeNtXRjVRpJ9MNqtbX/aFUE=.
var ZeroSum = SumOf(make([]byte, Size))

// IsZero reports whether every byte of p is zero.
func IsZero(p []byte) bool {
	for len(p) >= 8 {
		if p[0]|p[1]|p[2]|p[3]|p[4]|p[5]|p[6]|p[7] != 0 {
			return false
		}
		p = p[8:]
	}
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// Block is a verified block: Data (often a slice of the caller's buffer)
// hashes to Sum, the digest its source served or stored it with.
type Block struct {
	Index int64
	Data  []byte
	Sum   Sum
}

// Ref names one listed block and the token needed to fetch it.
type Ref struct {
	Index int64
	Token string
}

var snapshotID = regexp.MustCompile(`^snap-[0-9a-f]+$`)

// ValidSnapshotID reports whether id matches the EBS snapshot id pattern
// ^snap-[0-9a-f]+$ within 64 characters.
func ValidSnapshotID(id string) bool {
	return len(id) <= 64 && snapshotID.MatchString(id)
}

// CheckSnapshotID returns an error naming id when it is not a valid
// snapshot id.
func CheckSnapshotID(id string) error {
	if !ValidSnapshotID(id) {
		return &InvalidSnapshotIDError{ID: id}
	}
	return nil
}

// InvalidSnapshotIDError is returned for a malformed snapshot id.
type InvalidSnapshotIDError struct{ ID string }

func (e *InvalidSnapshotIDError) Error() string {
	return fmt.Sprintf("invalid snapshot id %q: want snap- followed by lowercase hex digits", e.ID)
}

// FileInfo is what the original tool's block file name records.
type FileInfo struct {
	Index     int64
	Snapshot  string
	Sum       Sum
	VolumeGiB int64
	BlockSize int
}

// FileName returns the name Snapshot 4n6ir Imager gave a block file:
// {index:010d}_{snapshot}_{sha256hex}_{VolumeSizeGiB}_{BlockSize}.
func FileName(f FileInfo) string {
	return fmt.Sprintf("%010d_%s_%s_%d_%d", f.Index, f.Snapshot, f.Sum.Hex(), f.VolumeGiB, f.BlockSize)
}

// ParseFileName reads a name written by FileName. Any suffix after the
// block size that starts with a dot (".gz", ".zst.age") is ignored and
// returned separately.
func ParseFileName(name string) (FileInfo, string, error) {
	var f FileInfo
	base, ext := name, ""
	if i := strings.IndexByte(name, '.'); i >= 0 {
		base, ext = name[:i], name[i:]
	}
	parts := strings.Split(base, "_")
	if len(parts) != 5 {
		return f, "", fmt.Errorf("block file name %q: want 5 fields separated by _", name)
	}
	idx, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || idx < 0 || len(parts[0]) < 10 {
		return f, "", fmt.Errorf("block file name %q: bad index %q", name, parts[0])
	}
	if !ValidSnapshotID(parts[1]) {
		return f, "", fmt.Errorf("block file name %q: bad snapshot id %q", name, parts[1])
	}
	sum, err := ParseHex(parts[2])
	if err != nil {
		return f, "", fmt.Errorf("block file name %q: %w", name, err)
	}
	vol, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return f, "", fmt.Errorf("block file name %q: bad volume size %q", name, parts[3])
	}
	if err := CheckVolumeGiB(vol); err != nil {
		return f, "", fmt.Errorf("block file name %q: %w", name, err)
	}
	bs, err := strconv.Atoi(parts[4])
	if err != nil || bs <= 0 {
		return f, "", fmt.Errorf("block file name %q: bad block size %q", name, parts[4])
	}
	return FileInfo{Index: idx, Snapshot: parts[1], Sum: sum, VolumeGiB: vol, BlockSize: bs}, ext, nil
}

// ChecksumError reports a block whose bytes do not match the digest they
// were served or stored with.
type ChecksumError struct {
	Index int64
	Want  Sum
	Got   Sum
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("block %d: sha256 %s, want %s", e.Index, e.Got.Hex(), e.Want.Hex())
}
