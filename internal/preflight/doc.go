// Package preflight says, before any block is fetched, why a snapshot
// cannot be read through the EBS direct APIs: it is still pending (or
// ended in error), it sits in the archive storage tier, it is public, it
// is a local snapshot on AWS Outposts, or it is encrypted under a KMS key
// the caller may not use. Check asks EC2 DescribeSnapshots for every
// snapshot at once, DescribeSnapshotAttribute for the public ones, and
// the first ListSnapshotBlocks page of an encrypted one for the KMS
// denial; each call is retried and recorded as awsctx records the
// context calls, and a call that is denied or fails blocks nothing (the
// snapshot is "not checked"). Explain gives a refusal of the direct APIs
// that arrives later, during the listing, the same *Error.
package preflight
