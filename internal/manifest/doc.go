// Package manifest owns the evidence record's per-block manifest: a JSON
// Lines file whose first line is a header (snapshot, Region, volume and
// block size, tool version, times), whose middle lines are one entry per
// stored block in ascending index order, and whose last line is a trailer
// with the totals. It is written and read as a stream, so a manifest of
// millions of blocks never has to fit in memory, and its own SHA-256 is
// computed as it is written.
package manifest
