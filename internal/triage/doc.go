// Package triage collects the artifacts a profile names from the file
// systems of a volume, without imaging it: it walks the metadata for the
// files the rules select, works out every block the collection needs
// from the files' runs, fetches those blocks in parallel (a live
// snapshot's Prefetch, in batches that fit its cache), and then writes
// each file under DIR/files/pN/ with its MD5, SHA-1 and SHA-256, a
// files.csv, a listing.csv, a SHA256SUMS in coreutils format, a bodyfile
// per file system, and the chain-of-custody record (report.json, .txt,
// .html) naming every block read with its AWS checksum.
//
// Profiles are plain text (see Profile) or KAPE target files (see
// ParseTkape); the built-in ones, linux and windows, are embedded.
package triage
