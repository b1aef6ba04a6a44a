// Package sink is the contract of every place verified blocks go: an
// evidence directory, a sparse raw image, a split raw image, an E01. A
// Sink takes blocks by Put, says by Has which it already holds (resume),
// and ends with Close, which puts the result under its final names and
// says what was written, or with Abort, which leaves nothing under a
// final name. What a sink needs of whoever feeds it (blocks announced in
// order before they are fetched, a cancel for Puts that wait, a stop at
// the first failed block) it declares once, in Caps; nothing else is
// passed beside it. Sinks know nothing of where blocks come from.
package sink
