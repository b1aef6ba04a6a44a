// Package s3store is ebsimager's one S3 client: the only package that
// imports the S3 SDK (depcheck), and imported only by cmd/. It parses
// "s3://bucket/prefix/" URLs, checks a bucket's Object Lock, writes
// objects once (If-None-Match: *) with the SHA-256 S3 verifies on
// arrival (x-amz-checksum-sha256) and the retention asked for, reads
// them back (HEAD with the stored checksum, ranged GETs, bounded
// listings), and uploads large objects in parts, each with its own
// SHA-256.
//
// Every request is retried by the same policy as the EBS requests
// (ebs.Policy, through ebs.Wrap), with the SDK's own retryer off:
// SlowDown, 503 and 429 are throttles; other 5xx, timeouts and broken
// connections are transient; a denial names the bucket and the action.
//
// DESIGN-S3.md in this directory describes the evidence layout built on
// this client.
package s3store
