package store

import (
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// The checks a reader of the evidence makes, exported so that every
// reader (Blocks here, package volume's random access) makes the same
// ones.

// CheckHeader checks that the manifest's header describes the snapshot
// evidence.json does.
func (ev *Evidence) CheckHeader(h manifest.Header) error { return ev.checkHeader(h) }

// CheckEntry checks that an entry lies within the volume and names the
// file its fields imply, inside its leaf directory.
func (ev *Evidence) CheckEntry(e manifest.Entry) error { return ev.checkEntry(e) }

// CheckManifestSum compares the SHA-256 of the whole manifest with
// manifest.jsonl.sha256.
func (ev *Evidence) CheckManifestSum(got block.Sum) error { return ev.checkManifestSum(got) }
