// Package acquire is the pipeline list → fetch → verify → store, and the
// only package that starts workers. It runs a Source (an EBS snapshot
// first) into a sink.Sink in two phases that the caller sees: it learns
// the volume from Source.Info, opens the sink for it, then calls Run. One
// goroutine lists the source page by page into a bounded channel, so the
// block list is never held in memory; workers fetch each block through
// the source's verified fetch (for a snapshot, the ebs decorators: retry,
// rate cap, the account's fair share when runs of several snapshots hold
// one ebs.Account, adaptive concurrency), which verifies it before the sink sees
// a byte; blocks the sink already holds are skipped, which is how an
// interrupted acquisition resumes. What the sink needs (blocks announced
// in order, a cancel for Puts that wait, a stop at the first failure) it
// declares in its Caps. Blocks that still fail after every retry are
// collected by index and reported together; permanent errors (access
// denied, not found, invalid input, a sink that cannot write) stop the run
// at once. Run never closes the sink: whoever opened it ends it.
package acquire
