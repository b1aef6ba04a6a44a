// Package acquire is the pipeline list → fetch → verify → store, and the
// only package that starts workers. One goroutine lists the snapshot page
// by page into a bounded channel, so the block list is never held in
// memory; workers fetch each block through the ebs decorators (retry,
// rate cap, adaptive concurrency), which verify it before the sink sees a
// byte; blocks the sink already holds are skipped, which is how an
// interrupted acquisition resumes. Blocks that still fail after every
// retry are collected by index and reported together; permanent errors
// (access denied, not found, invalid input, a sink that cannot write)
// stop the run at once.
package acquire
