// Package report owns the chain-of-custody record of one piece of
// evidence: the case fields, who acquired it where and how (tool, redacted
// command line, host, OS user, AWS caller, Region and endpoint), what AWS
// said of the snapshot, the acquisition's figures and manifest hash, the
// partitions and file systems found on it, a bucketed map of where the
// volume holds data, and an append-only list of the later steps (export,
// verify, transforms). It saves the record as report.json (the stable
// schema of SCHEMA.md), report.txt (a log in the spirit of FTK Imager's)
// and report.html (one self-contained printable page with the block map
// drawn as inline SVG), each written atomically. It makes no AWS calls:
// package awsctx gathers the AWS context it records.
package report
