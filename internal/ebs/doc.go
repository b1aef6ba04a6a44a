// Package ebs is the only package that talks to the EBS direct APIs. It
// builds the SDK client from the standard credential chain, lists a
// snapshot's blocks page by page, and fetches blocks that are verified
// (algorithm, length, SHA-256) before any caller sees a byte of them.
//
// Cross-cutting concerns are decorators of one small interface, Fetcher:
// the retry policy (exponential backoff with full jitter, our own rather
// than the SDK's shared retry quota), a client-side rate cap, an account's
// quota shared fairly between the snapshots acquired at once (Account),
// and an adaptive concurrency limit (AIMD) that backs off on
// throttling. The pipeline that starts the workers lives in acquire.
package ebs
