// Package store owns the evidence directory: one write-once file per
// verified block under the original tool's name, spread over leaf
// directories of at most 10,000 blocks; a journal per leaf that records
// each stored block as it lands, so an interrupted acquisition resumes
// where it stopped; and, once the acquisition is complete, the streamed
// manifest (see package manifest) and its SHA-256.
//
// Layout:
//
//	DIR/evidence.json            what the directory holds (snapshot, Region, sizes)
//	DIR/blocks/NN/NNNN/<name>    block files; NN/NNNN = index/1e8, index/1e4 mod 1e4
//	DIR/blocks/NN/NNNN/.journal  JSON lines, one manifest entry per stored block
//	DIR/manifest.jsonl           the manifest, written when the acquisition completes
//	DIR/manifest.jsonl.sha256    its SHA-256, in sha256sum format
//	DIR/.unverified/...          files a rerun could not verify, set aside (never deleted)
//	DIR/.ebsimager.lock          the directory lock, while a process writes (package dirlock)
//	DIR/transform.json           a conversion's marker, while one is under way (conversion.go)
//	DIR/transform.jsonl          its new entries; DIR/transform-manifest.jsonl, its new manifest
//
// Block files are stored in one form (codec.Form: plain, compressed,
// encrypted or both), which evidence.json and every manifest entry record
// as two fields and each file name carries as a suffix (form.go). The
// store writes them through the form's layers (codec.Seal) and reads them
// back through an Unseal chosen by each entry's fields (UnsealWith).
//
// Every file is written to a temporary name in its final directory, made
// durable, and renamed; nothing half-written ever carries a final name.
// Block files are committed in groups (commit.go): a batch's bytes are
// made durable together (syncfs where it reports write errors, else
// fsync per file), then journaled, then renamed; a journal line never
// names bytes that are not durable.
//
// A rerun never deletes evidence that verifies: the journals only speed
// up resuming, every kept block file is checked against its SHA-256
// before it counts, and complete evidence is never rewritten.
//
// Converting the blocks of complete evidence to another form in place is
// package convert's job. The store owns what that leaves on disk: the
// marker it reads to refuse an acquisition into a directory under
// conversion and to let Verify accept both forms of a block meanwhile,
// and the few operations on its own files a conversion needs
// (WriteBlockFile, LeafJournal, RecordForm, WriteManifestSum).
package store
