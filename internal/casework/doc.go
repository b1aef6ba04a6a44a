// Package casework acquires a case: many snapshots at once, each into its
// own evidence directory DIR/<snapshot-id>/, with one record of the whole
// case beside them (case.json, case.txt). It owns the targets a case
// names (parsed from the command line or a --targets file, every number
// from outside bounded), the concurrency across volumes, each volume's
// result and failure on its own, and what a rerun of the same case
// resumes. How one snapshot is acquired is not its business: the caller
// hands Run a function that acquires one snapshot into one directory.
package casework
