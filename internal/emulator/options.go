package emulator

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
)

// Options configures a Server. The zero value serves every request at once,
// with no quotas and no faults.
type Options struct {
	// Seed makes every random choice (fault decisions, jitter, snapshot ids
	// minted by StartSnapshot) repeatable.
	Seed int64

	// Latency is added to every request before it is answered, plus a
	// uniform random extra in [0, Jitter]. The wait is a timer: it uses no
	// CPU and holds no lock.
	Latency, Jitter time.Duration

	// GetRatePerSnapshot and GetRatePerAccount cap GetSnapshotBlock in
	// blocks per second (0 = unlimited). AWS defaults are 1,000 for both.
	GetRatePerSnapshot float64
	GetRatePerAccount  float64
	// ListRate caps ListSnapshotBlocks and ListChangedBlocks, each in
	// requests per second per account (0 = unlimited). AWS default: 50.
	ListRate float64
	// GetBurst and ListBurst are the depths of the token buckets (see
	// Burst): GetBurst of the per-snapshot and per-account buckets, each
	// at its own rate, ListBurst of each List operation's. A bucket of
	// depth D holds at most D tokens, starts full and refills at its rate,
	// continuously; a request is admitted when a whole token is there and
	// takes it, and a rejected request takes none. The zero value is one
	// second's worth of the rate.
	GetBurst, ListBurst Burst
	// ThrottleAs picks the error a throttled request gets:
	// "RequestThrottledException" (default; HTTP 400 with a reason) or
	// "ThrottlingException" (HTTP 429).
	ThrottleAs string

	// Faults are injected into responses; see Faults.
	Faults Faults

	// BlockTokenTTL is how long a block token stays valid (default 7 days,
	// as AWS documents). PageTokenTTL is the same for a NextToken (default
	// 60 minutes).
	BlockTokenTTL time.Duration
	PageTokenTTL  time.Duration
	// InvalidateOnRelist makes a new listing of a snapshot invalidate the
	// block tokens handed out by every older listing of it, which AWS says
	// may happen.
	InvalidateOnRelist bool

	// TrackBlocks keeps a GetSnapshotBlock count per (snapshot, index),
	// read with Server.BlockGets. Like an active fault fraction (which
	// needs attempt numbers), it costs memory for every block fetched.
	TrackBlocks bool

	// SnapshotMeta maps a snapshot id to what EC2 DescribeSnapshots says
	// of it; snapshots missing from it get defaults (see SnapshotMeta).
	SnapshotMeta map[string]SnapshotMeta
	// Identity is what STS GetCallerIdentity reports (see DefaultIdentity).
	Identity Identity
	// DenyDescribeSnapshots and DenyGetCallerIdentity refuse those calls
	// (UnauthorizedOperation, AccessDenied), for the missing-permissions
	// path of the chain-of-custody record.
	DenyDescribeSnapshots, DenyGetCallerIdentity bool
	// Region is where the instances and volumes live, for ARNs and zones
	// (default DefaultRegion). A request's region is the one of its SigV4
	// scope; CopySnapshot records it on the copy.
	Region string
	// SnapshotDelay is how long a snapshot made through EC2 stays pending
	// (0: it is completed from the next request on).
	SnapshotDelay time.Duration
	// ArchiveFraction, PublicFraction and KMSDenyFraction are the shares
	// of snapshots made through EC2 that are archived, public (only
	// unencrypted ones can be), or whose KMS key the caller may not use
	// (the EBS direct APIs then answer AccessDeniedException
	// DEPENDENCY_ACCESS_DENIED; an unencrypted one is encrypted under
	// DeniedKeyARN). Each is drawn from Seed and the snapshot id.
	ArchiveFraction, PublicFraction, KMSDenyFraction float64
	// TempDir holds the copies of raw volume images taken when snapshots
	// are made (default os.TempDir()); they are removed when made.
	TempDir string
	// DenyEC2 lists EC2 actions ("CreateSnapshots", "LockSnapshot", …)
	// answered with UnauthorizedOperation.
	DenyEC2 []string

	// Now is the clock for token expiry and the rate limiters (default
	// time.Now). Latency always uses real time.
	Now func() time.Time
	// Logf, when set, receives one line per request, from many goroutines
	// at once.
	Logf func(format string, args ...any)
}

// Defaults from the EBS documentation.
const (
	DefaultBlockTokenTTL = 7 * 24 * time.Hour // block tokens are valid for 7 days
	DefaultPageTokenTTL  = 60 * time.Minute   // NextTokens are valid for 60 minutes
)

// Error kinds for throttling, as ThrottleAs and BlockFault.Error name them.
const (
	RequestThrottled = "RequestThrottledException"
	Throttling       = "ThrottlingException"
)

// Faults describes the faults a Server injects. Every fraction is the
// probability, in [0, 1], that one request gets that fault; together they
// should not exceed 1. The choice is a hash of (Options.Seed, snapshot,
// block index, attempt number for that block), so a run does not depend on
// goroutine interleaving.
type Faults struct {
	// For GetSnapshotBlock:
	ServerError float64 // 5xx: three in four InternalServerException 500, one in four ServiceUnavailableException 503
	Throttle    float64 // a throttling error as Options.ThrottleAs picks, reason ACCOUNT_THROTTLED
	Drop        float64 // the connection closes after half of the body
	Truncate    float64 // half of the body, with Content-Length saying so, but x-amz-Data-Length and x-amz-Checksum of the whole block
	BadChecksum float64 // x-amz-Checksum does not match the body
	BadLength   float64 // x-amz-Data-Length differs from the body length
	Corrupt     float64 // one body byte flipped, x-amz-Checksum of the original

	// For ListSnapshotBlocks and ListChangedBlocks:
	ListServerError float64
	ListThrottle    float64

	// FailBlocks makes GetSnapshotBlock of these blocks fail every time.
	FailBlocks []BlockFault
	// Deny maps a snapshot id to an AccessDeniedException reason
	// (UNAUTHORIZED_ACCOUNT, or DEPENDENCY_ACCESS_DENIED as when the KMS
	// key is denied) returned by every operation on it.
	Deny map[string]string
}

// BlockFault makes one block always fail.
type BlockFault struct {
	Snapshot string
	Index    int64
	// Error is one of the FaultKinds: an error type
	// ("InternalServerException", "ServiceUnavailableException",
	// "RequestThrottledException", "ThrottlingException",
	// "AccessDeniedException", "ResourceNotFoundException",
	// "ValidationException" for INVALID_BLOCK_TOKEN,
	// "ServiceQuotaExceededException") or a broken response
	// ("Drop", "Truncate", "BadChecksum", "BadLength", "Corrupt").
	Error string
}

// Fault kinds that are not error types.
const (
	FaultDrop        = "Drop"
	FaultTruncate    = "Truncate"
	FaultBadChecksum = "BadChecksum"
	FaultBadLength   = "BadLength"
	FaultCorrupt     = "Corrupt"
)

// FaultKinds lists every value BlockFault.Error accepts.
var FaultKinds = []string{
	errInternal, errUnavailable, RequestThrottled, Throttling,
	errAccessDenied, errNotFound, errValidation, errQuota,
	FaultDrop, FaultTruncate, FaultBadChecksum, FaultBadLength, FaultCorrupt,
}

// Deny reasons, as the EBS model names them.
const (
	DenyUnauthorizedAccount    = "UNAUTHORIZED_ACCOUNT"
	DenyDependencyAccessDenied = "DEPENDENCY_ACCESS_DENIED"
)

// Validate reports the first fraction out of [0, 1], fractions that add up
// to more than 1, an unknown fault kind or deny reason, or a bad snapshot id.
func (f Faults) Validate() error {
	named := []struct {
		name string
		v    float64
	}{
		{"server error", f.ServerError}, {"throttle", f.Throttle}, {"drop", f.Drop},
		{"truncate", f.Truncate}, {"bad checksum", f.BadChecksum}, {"bad length", f.BadLength},
		{"corrupt", f.Corrupt}, {"list server error", f.ListServerError}, {"list throttle", f.ListThrottle},
	}
	for _, n := range named {
		if !(n.v >= 0 && n.v <= 1) {
			return fmt.Errorf("%s fraction %v: want a value in [0, 1]", n.name, n.v)
		}
	}
	if sum := f.getSum(); sum > 1 {
		return fmt.Errorf("GetSnapshotBlock fault fractions add up to %v: want at most 1", sum)
	}
	if sum := f.ListServerError + f.ListThrottle; sum > 1 {
		return fmt.Errorf("list fault fractions add up to %v: want at most 1", sum)
	}
	for _, b := range f.FailBlocks {
		if err := block.CheckSnapshotID(b.Snapshot); err != nil {
			return fmt.Errorf("fail block: %w", err)
		}
		if b.Index < 0 {
			return fmt.Errorf("fail block %s:%d: negative index", b.Snapshot, b.Index)
		}
		if !knownFault(b.Error) {
			return fmt.Errorf("fail block %s:%d: unknown error kind %q (want one of %s)",
				b.Snapshot, b.Index, b.Error, strings.Join(FaultKinds, ", "))
		}
	}
	for id, reason := range f.Deny {
		if err := block.CheckSnapshotID(id); err != nil {
			return fmt.Errorf("deny: %w", err)
		}
		if reason != DenyUnauthorizedAccount && reason != DenyDependencyAccessDenied {
			return fmt.Errorf("deny %s: unknown reason %q (want %s or %s)",
				id, reason, DenyUnauthorizedAccount, DenyDependencyAccessDenied)
		}
	}
	return nil
}

func (f Faults) getSum() float64 {
	return f.ServerError + f.Throttle + f.Drop + f.Truncate + f.BadChecksum + f.BadLength + f.Corrupt
}

func knownFault(kind string) bool {
	for _, k := range FaultKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// ParseBlockFault reads "snap-ID:INDEX=KIND", for example
// "snap-0123:42=BadChecksum".
func ParseBlockFault(s string) (BlockFault, error) {
	target, kind, ok := strings.Cut(s, "=")
	if !ok {
		return BlockFault{}, fmt.Errorf("fail block %q: want snap-ID:INDEX=KIND", s)
	}
	id, idx, ok := strings.Cut(target, ":")
	if !ok {
		return BlockFault{}, fmt.Errorf("fail block %q: want snap-ID:INDEX=KIND", s)
	}
	if err := block.CheckSnapshotID(id); err != nil {
		return BlockFault{}, fmt.Errorf("fail block %q: %w", s, err)
	}
	n, err := strconv.ParseInt(idx, 10, 64)
	if err != nil || n < 0 {
		return BlockFault{}, fmt.Errorf("fail block %q: bad block index %q", s, idx)
	}
	if !knownFault(kind) {
		return BlockFault{}, fmt.Errorf("fail block %q: unknown error kind %q (want one of %s)",
			s, kind, strings.Join(FaultKinds, ", "))
	}
	return BlockFault{Snapshot: id, Index: n, Error: kind}, nil
}

// ParseDeny reads "snap-ID" or "snap-ID=REASON"; the reason defaults to
// UNAUTHORIZED_ACCOUNT.
func ParseDeny(s string) (id, reason string, err error) {
	id, reason, ok := strings.Cut(s, "=")
	if !ok {
		reason = DenyUnauthorizedAccount
	}
	if err := block.CheckSnapshotID(id); err != nil {
		return "", "", fmt.Errorf("deny %q: %w", s, err)
	}
	if reason != DenyUnauthorizedAccount && reason != DenyDependencyAccessDenied {
		return "", "", fmt.Errorf("deny %q: unknown reason %q (want %s or %s)",
			s, reason, DenyUnauthorizedAccount, DenyDependencyAccessDenied)
	}
	return id, reason, nil
}

// RawOptions configures a raw image snapshot.
type RawOptions struct {
	// VolumeGiB is the VolumeSize to report; 0 means the file size rounded
	// up to whole GiB (at least 1).
	VolumeGiB int64
	// ListZeroBlocks lists every block the file covers, zeros included.
	// Otherwise only blocks holding a non-zero byte are listed.
	ListZeroBlocks bool
	// Parent names an already added snapshot this one descends from. The
	// two are then related for ListChangedBlocks, which compares the
	// contents of blocks both list.
	Parent string
}
