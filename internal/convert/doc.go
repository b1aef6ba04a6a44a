// Package convert converts an evidence directory in place from one stored
// form to another (compress, uncompress, encrypt, decrypt), crash-safe.
//
// A conversion writes DIR/transform.json, the marker, before anything
// else. Phase one ("writing") converts every block of the manifest: it
// reads and checks the stored file, decodes it to the block AWS served
// (checked against its SHA-256), writes the new file beside the old one
// (temporary name, fsync, rename), reads that back against the SHA-256
// computed while writing it and, when the key is at hand, decodes it to
// the AWS SHA-256 again; only then is its manifest entry appended to
// DIR/transform.jsonl, in index order. A rerun trusts the longest prefix
// of that file whose files still check, and continues after it. The
// complete new manifest is written as DIR/transform-manifest.jsonl and
// its SHA-256 recorded in the marker, whose state becomes "switching".
// Phase two renames it over manifest.jsonl, rewrites manifest.jsonl.sha256
// and evidence.json, rewrites every leaf journal, and only then deletes
// the old files (journals first, so that an acquisition resumed at any
// point never mistakes a new file for a stray one), then the marker.
//
// Phase one runs on the acquire pipeline, as every job that moves blocks
// does: the evidence directory is the Source (acquire.Evidence), the new
// files the sink, with the pipeline's workers, limits and progress. The
// sink records entries in index order, and the first block that cannot
// be read in index order is the one that stops and undoes a conversion.
//
// While the marker exists, store.Verify expects both files of a block
// and accepts the new manifest before its checksum file is rewritten, so
// the directory verifies at every point; a rerun completes the job. The
// marker's format and the directory's own files belong to package store;
// this package owns the procedure.
package convert
