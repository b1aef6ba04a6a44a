// Package emulator owns the local EBS direct API server: an http.Handler
// that speaks ListSnapshotBlocks, GetSnapshotBlock, ListChangedBlocks,
// StartSnapshot, PutSnapshotBlock and CompleteSnapshot on the wire as AWS
// does (REST-JSON, x-amzn-ErrorType plus {"Message","Reason"} errors,
// x-amz-Checksum headers), so the unmodified AWS SDK client works against
// it. Tests, benchmarks, `ebsimager emulate` and the demo use it.
//
// Sources. A snapshot is a source of listed block indexes and their
// bytes. A raw image is read in place with ReadAt; its non-zero blocks
// (all blocks with ListZeroBlocks) are found once when it is added, and
// the tail past EOF reads as zeros. A synthetic snapshot
// ("snap-ID=SIZE[,FRACTION[,SEED]]") stores nothing: block i is listed when
// a SplitMix64 hash of (seed, i) falls below FRACTION, and its bytes are a
// SplitMix64 stream seeded from (seed, i), several times faster to make
// than to hash, so any size up to 64 TiB costs nothing to hold and little
// to list. Snapshots made with the write API live in memory.
//
// Lineage. Every snapshot has a root: itself, or its parent's root.
// ListChangedBlocks accepts only snapshots with the same root
// (UNRELATED_SNAPSHOTS otherwise). A synthetic child
// ("snap-C=child-of:snap-P,FRACTION[,SEED]") differs from its parent in
// FRACTION of the slots: a differing slot the parent lists is changed or
// removed (half each), one it does not list is added. A write-API child
// (StartSnapshot with ParentSnapshotId) overlays the blocks put into it on
// its parent's, which it inherits without copying; a raw image may name a
// parent too. Each listed block carries a version (who wrote it); equal
// versions are the same bytes, so changes are found without reading,
// except that blocks of raw images are compared by content fingerprint.
// A rewritten write-API block counts as changed even with the same bytes,
// as EBS tracks writes.
//
// Tokens. Block tokens and NextTokens are base64 records sealed with
// HMAC-SHA256 under a per-server random key and bound to their snapshot,
// index or listing. Block tokens expire after BlockTokenTTL (7 days),
// NextTokens after PageTokenTTL (60 minutes); with InvalidateOnRelist a
// new listing of a snapshot voids the block tokens of older listings.
// Bad tokens get ValidationException INVALID_BLOCK_TOKEN or
// INVALID_PAGE_TOKEN. Pages ascend, hold at most MaxResults clamped to
// [100, 10000] (default 10,000) and look at no more than 2^20 slots, so a
// page of a sparse volume may be short or empty yet carry a NextToken.
//
// Quotas and faults, all off by default: token buckets for GetSnapshotBlock
// per snapshot and per account and for each List operation, answered with
// RequestThrottledException (RESOURCE_LEVEL_THROTTLE or ACCOUNT_THROTTLED)
// or ThrottlingException (429). A bucket of depth D holds at most D tokens,
// starts full and refills at the quota's rate, continuously; a request is
// admitted iff a whole token is there, and takes it, while a rejected one
// takes none. The depth (Burst) is a count of requests or a time at the
// rate (100ms: a tenth of a second's worth), one second's worth by default,
// never below 1 (1: no burst). Also: added latency with jitter that sleeps
// without holding anything; and injected faults (5xx, throttles, dropped
// connections, truncated bodies, wrong checksum or length headers, a
// flipped body byte), drawn from a hash of (seed, snapshot, index, attempt
// number) so a run does not depend on goroutine order, plus blocks that
// always fail and snapshots that are denied. All can be changed while
// serving. Counters record requests by operation and outcome, bytes served
// and, optionally, Gets per block.
//
// Context calls. For the chain-of-custody record, the same listener also
// answers two AWS Query protocol calls, POSTed as forms to "/" and routed
// by the SigV4 credential scope's service or else by the Action: EC2
// DescribeSnapshots (SnapshotId.N, Owner.N, RestorableBy.N, Filter.N,
// MaxResults, NextToken, DryRun; snapshotSet items as EC2 version
// 2016-11-15 names them; errors in EC2's <Response><Errors> envelope, such
// as InvalidSnapshot.NotFound) and STS GetCallerIdentity (errors in the
// <ErrorResponse> envelope). Options.SnapshotMeta sets a snapshot's volume
// id, owner, start time, encryption, KMS key, description and tags, with
// deterministic defaults; Options.Identity sets the caller; and
// Options.DenyDescribeSnapshots and DenyGetCallerIdentity answer
// UnauthorizedOperation and AccessDenied.
//
// The EC2 side (ec2_*.go). The server also holds running instances
// (AddInstance: volumes at devices, the first the root) and unattached
// volumes (AddVolume), each a raw image or generated content, and answers
// DescribeInstances, DescribeVolumes, CreateSnapshots, CreateSnapshot,
// CopySnapshot, ModifySnapshotAttribute, DescribeSnapshotAttribute,
// LockSnapshot, DescribeLockedSnapshots, CreateTags and DeleteSnapshot
// with EC2's XML and errors. A snapshot made through EC2 is pending for
// Options.SnapshotDelay, then completed; its blocks are the volume's at
// creation (a raw image's non-zero blocks are copied into an unlinked
// temporary file), and it is the child of the volume's previous snapshot,
// so ListChangedBlocks between them lists exactly what changed. The EBS
// direct APIs refuse, with ValidationException INVALID_SNAPSHOT_ID, a
// snapshot that is not completed, archived, public or on an Outpost, as
// SnapshotMeta or the fractions of Options make them; a snapshot whose
// KMS key is denied answers AccessDeniedException DEPENDENCY_ACCESS_DENIED.
// Options.DenyEC2 answers chosen actions with UnauthorizedOperation.
//
// Not modelled: SigV4 signatures are required but not verified (there are
// no secrets), encryption (unlisted blocks of an encrypted snapshot read
// as zeros here), StartSnapshot's Timeout, and asynchronous completion:
// CompleteSnapshot completes at once.
package emulator
