package report

import (
	"bufio"
	"bytes"
	"fmt"
	"html/template"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
)

// TriageFormat names this version of a triage record's schema (the
// report.json that `ebsimager triage` writes in its output directory).
const TriageFormat = "ebsimager-triage/1"

// Triage is the chain-of-custody record of a triage: which source was
// read, with which profiles, what was collected, listed, withheld and
// not found, what the reads cost, and every block read with the
// checksum AWS served it with.
type Triage struct {
	Format string       `json:"format"`
	Run    Run          `json:"run"`
	Source TriageSource `json:"source"`
	// Profiles are the profiles given, or chosen per partition.
	Profiles   []TriageProfile   `json:"profiles"`
	Partitions []TriagePartition `json:"partitions"`
	// Collected are the files written under files/, as files.csv lists
	// them (with hashes, times and blocks there).
	Collected []TriageFile `json:"collected"`
	// Listed counts the entries of listing.csv (list-only rules, and
	// symbolic links and special files the rules matched).
	Listed int `json:"listed"`
	// NotFound are the rules that matched nothing on a partition.
	NotFound []TriageRule `json:"not_found"`
	// Withheld are files a rule matched but that were not collected:
	// private keys without --private-keys, files over a size limit.
	Withheld []TriageWithheld `json:"withheld"`
	// Errors are what could not be read: a directory, a file.
	Errors  []TriageError `json:"errors"`
	Figures TriageFigures `json:"figures"`
	// Outputs are the SHA-256 (hex) of the files written beside the
	// record, by name relative to the output directory.
	Outputs map[string]string `json:"outputs"`
	Blocks  TriageBlocks      `json:"blocks"`
	Notes   []string          `json:"notes"`
}

// TriageSource is what was read.
type TriageSource struct {
	// Kind is "snapshot" (read live), "evidence-directory", "raw-image"
	// or "e01-image"; Location is as the examiner gave it.
	Kind       string `json:"kind"`
	Location   string `json:"location"`
	SnapshotID string `json:"snapshot_id,omitempty"`
	SizeBytes  int64  `json:"size_bytes"`
}

// Triage source kinds.
const (
	TriageSnapshot = "snapshot"
	TriageE01      = "e01-image"
)

// TriageProfile is a profile used.
type TriageProfile struct {
	Name   string `json:"name"`
	Origin string `json:"origin"` // "built-in" or the file read
	SHA256 string `json:"sha256"` // of the profile's text
	Rules  int    `json:"rules"`
}

// TriagePartition is a file system the profiles were applied to.
type TriagePartition struct {
	Name       string   `json:"name"` // "p1", …: the directory under files/
	Offset     int64    `json:"offset"`
	Size       int64    `json:"size"`
	FileSystem string   `json:"file_system,omitempty"`
	Profiles   []string `json:"profiles"`
	// Entries counts the directory entries read to resolve the rules.
	Entries int `json:"entries"`
	// Error says why the partition was not triaged (no file system
	// known, encrypted, corrupt).
	Error string `json:"error,omitempty"`
	// Bodyfile is the partition's bodyfile, relative to the output
	// directory.
	Bodyfile string `json:"bodyfile,omitempty"`
}

// TriageFile is a collected file.
type TriageFile struct {
	Partition string `json:"partition"`
	Path      string `json:"path"` // as on disk, with :stream for a named stream
	File      string `json:"file"` // where it was written, relative to the output directory
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
}

// TriageRule is a rule of a profile.
type TriageRule struct {
	Partition string `json:"partition"`
	Profile   string `json:"profile"`
	Line      int    `json:"line"`
	Rule      string `json:"rule"`
}

// TriageWithheld is a matched file that was not collected.
type TriageWithheld struct {
	Partition string `json:"partition"`
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	Reason    string `json:"reason"`
}

// TriageError is something that could not be read.
type TriageError struct {
	Partition string `json:"partition"`
	Path      string `json:"path"`
	Error     string `json:"error"`
}

// TriageFigures are what the triage took.
type TriageFigures struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Seconds is the whole run; FirstFileSeconds until the first file
	// was written.
	Seconds          float64 `json:"seconds"`
	FirstFileSeconds float64 `json:"first_file_seconds"`
	// BlocksRead are the distinct 512 KiB blocks of the volume read
	// (holes not counted); AllocatedBlocks are the blocks the volume
	// holds (a snapshot's listed blocks).
	BlocksRead      int64 `json:"blocks_read"`
	AllocatedBlocks int64 `json:"allocated_blocks"`
	// Requests, FetchedBlocks, FetchedBytes, CostUSD and PriceAssumed
	// are set for a snapshot read live: the EBS direct API calls made
	// and their price at list prices. GetsPerAllocated is the Gets over
	// the allocated blocks.
	Requests         *Requests `json:"requests,omitempty"`
	FetchedBlocks    int64     `json:"fetched_blocks"`
	FetchedBytes     int64     `json:"fetched_bytes"`
	CostUSD          float64   `json:"cost_usd"`
	PriceAssumed     bool      `json:"price_assumed,omitempty"`
	GetsPerAllocated float64   `json:"gets_per_allocated,omitempty"`
}

// TriageBlocks are the blocks read.
type TriageBlocks struct {
	// ChecksumSource says where each block's checksum comes from: "aws"
	// (served with the block, and verified before use), "manifest" (the
	// AWS checksum an evidence directory's manifest records, verified as
	// the block was read), or "none" (an image holds no AWS checksum).
	ChecksumSource string        `json:"checksum_source"`
	Blocks         []TriageBlock `json:"blocks"`
}

// TriageBlock is one block read.
type TriageBlock struct {
	Index int64 `json:"index"`
	// AWSSHA256 is the SHA-256 (hex) AWS served the block with; empty
	// when the source holds none.
	AWSSHA256 string `json:"aws_sha256,omitempty"`
}

// Checksum sources of TriageBlocks.
const (
	ChecksumAWS      = "aws"
	ChecksumManifest = "manifest"
	ChecksumNone     = "none"
)

// NewTriage starts the record of a triage run by t from started.
func NewTriage(t Tool, started time.Time) *Triage {
	return &Triage{Format: TriageFormat, Run: NewRun(t.Version, t.CommandLine, started)}
}

func (r *Triage) derive() {
	r.Format = TriageFormat
	for _, p := range []*[]string{&r.Run.CommandLine, &r.Notes} {
		if *p == nil {
			*p = []string{}
		}
	}
	if r.Profiles == nil {
		r.Profiles = []TriageProfile{}
	}
	if r.Partitions == nil {
		r.Partitions = []TriagePartition{}
	}
	if r.Collected == nil {
		r.Collected = []TriageFile{}
	}
	if r.NotFound == nil {
		r.NotFound = []TriageRule{}
	}
	if r.Withheld == nil {
		r.Withheld = []TriageWithheld{}
	}
	if r.Errors == nil {
		r.Errors = []TriageError{}
	}
	if r.Outputs == nil {
		r.Outputs = map[string]string{}
	}
	if r.Blocks.Blocks == nil {
		r.Blocks.Blocks = []TriageBlock{}
	}
	r.Run.StartedAt, r.Run.FinishedAt = r.Run.StartedAt.UTC(), r.Run.FinishedAt.UTC()
}

// JSON returns the record's report.json.
func (r *Triage) JSON() ([]byte, error) {
	r.derive()
	return indented(r, "triage record")
}

// Save writes report.json, report.txt and report.html into dir, each
// atomically, report.json last.
func (r *Triage) Save(dir string) error {
	js, err := r.JSON()
	if err != nil {
		return err
	}
	var txt, page bytes.Buffer
	if err := r.Text(&txt); err != nil {
		return err
	}
	if err := r.HTML(&page); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{TextName, txt.Bytes()}, {HTMLName, page.Bytes()}, {JSONName, js}} {
		if err := atomicfile.WriteBytes(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("saving triage record: %w", err)
		}
	}
	return nil
}

// Text writes report.txt.
func (r *Triage) Text(w io.Writer) error {
	r.derive()
	bw := bufio.NewWriter(w)
	t := &textWriter{w: bw}
	t.line("ebsimager triage record (%s)", r.Format)
	t.blank()
	t.section("Run")
	t.run(r.Run)
	t.rule()
	t.section("Source")
	t.field("Kind", r.Source.Kind)
	t.field("Location", r.Source.Location)
	t.field("Snapshot", r.Source.SnapshotID)
	t.field("Size", fmt.Sprintf("%d bytes", r.Source.SizeBytes))
	t.rule()
	t.section("Profiles")
	for _, p := range r.Profiles {
		t.line("%s (%s, %d rules), SHA-256 %s", p.Name, p.Origin, p.Rules, p.SHA256)
	}
	t.rule()
	t.section("Partitions")
	for _, p := range r.Partitions {
		s := fmt.Sprintf("%s at %d, %d bytes: %s", p.Name, p.Offset, p.Size, orNone(p.FileSystem))
		if len(p.Profiles) > 0 {
			s += ", profiles " + strings.Join(p.Profiles, ", ")
		}
		if p.Error != "" {
			s += ": " + p.Error
		}
		t.line("%s", s)
	}
	t.rule()
	f := r.Figures
	t.section("Figures")
	t.field("Files collected", fmt.Sprintf("%d (%d bytes)", f.Files, f.Bytes))
	t.field("Entries listed", fmt.Sprint(r.Listed))
	t.field("Seconds", fmt.Sprintf("%.3f (first file after %.3f)", f.Seconds, f.FirstFileSeconds))
	t.field("Blocks read", fmt.Sprintf("%d of %d allocated", f.BlocksRead, f.AllocatedBlocks))
	if q := f.Requests; q != nil {
		t.field("Requests", fmt.Sprintf("%d List, %d Get (%.4f of the allocated blocks)", q.ListCalls, q.GetCalls, f.GetsPerAllocated))
		t.field("Fetched", fmt.Sprintf("%d blocks, %d bytes", f.FetchedBlocks, f.FetchedBytes))
		cost := fmt.Sprintf("$%.6f", f.CostUSD)
		if f.PriceAssumed {
			cost += " (us-east-1 prices assumed)"
		}
		t.field("Cost", cost)
	}
	t.rule()
	t.section(fmt.Sprintf("Collected (%d)", len(r.Collected)))
	for _, c := range r.Collected {
		t.line("%s %s:%s -> %s (%d bytes)", c.SHA256, c.Partition, c.Path, c.File, c.Size)
	}
	t.rule()
	t.section(fmt.Sprintf("Not found (%d rules)", len(r.NotFound)))
	for _, n := range r.NotFound {
		t.line("%s: %s line %d: %s", n.Partition, n.Profile, n.Line, n.Rule)
	}
	t.rule()
	t.section(fmt.Sprintf("Withheld (%d)", len(r.Withheld)))
	for _, x := range r.Withheld {
		t.line("%s:%s (%d bytes): %s", x.Partition, x.Path, x.Size, x.Reason)
	}
	t.rule()
	t.section(fmt.Sprintf("Errors (%d)", len(r.Errors)))
	for _, e := range r.Errors {
		t.line("%s:%s: %s", e.Partition, e.Path, e.Error)
	}
	t.rule()
	t.section("Outputs")
	for _, k := range sortedKeys(r.Outputs) {
		t.line("%s  %s", r.Outputs[k], k)
	}
	t.rule()
	t.section(fmt.Sprintf("Blocks read (%d; checksums: %s)", len(r.Blocks.Blocks), r.Blocks.ChecksumSource))
	for _, b := range r.Blocks.Blocks {
		t.line("%d %s", b.Index, orNone(b.AWSSHA256))
	}
	if len(r.Notes) > 0 {
		t.rule()
		t.section("Notes")
		for _, n := range r.Notes {
			t.line("%s", n)
		}
	}
	return bw.Flush()
}

var triagePage = template.Must(template.New("triage").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ebsimager triage record</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;text-align:left;font-size:90%}code{font-size:90%}</style>
</head><body>
<h1>ebsimager triage record</h1>
<p>{{.Format}} &middot; {{.Run.ToolVersion}} &middot; started {{.Run.StartedAt}} &middot; finished {{.Run.FinishedAt}}</p>
<p>Command line: <code>{{range .Run.CommandLine}}{{.}} {{end}}</code> on {{.Run.Host.Hostname}} as {{.Run.Host.User}}</p>
<h2>Source</h2>
<table><tr><th>Kind</th><td>{{.Source.Kind}}</td></tr><tr><th>Location</th><td>{{.Source.Location}}</td></tr>
<tr><th>Snapshot</th><td>{{.Source.SnapshotID}}</td></tr><tr><th>Size</th><td>{{.Source.SizeBytes}} bytes</td></tr></table>
<h2>Profiles</h2>
<table><tr><th>Name</th><th>Origin</th><th>Rules</th><th>SHA-256</th></tr>
{{range .Profiles}}<tr><td>{{.Name}}</td><td>{{.Origin}}</td><td>{{.Rules}}</td><td><code>{{.SHA256}}</code></td></tr>{{end}}</table>
<h2>Partitions</h2>
<table><tr><th>Name</th><th>Offset</th><th>Size</th><th>File system</th><th>Profiles</th><th>Error</th></tr>
{{range .Partitions}}<tr><td>{{.Name}}</td><td>{{.Offset}}</td><td>{{.Size}}</td><td>{{.FileSystem}}</td><td>{{range .Profiles}}{{.}} {{end}}</td><td>{{.Error}}</td></tr>{{end}}</table>
<h2>Figures</h2>
<table><tr><th>Files collected</th><td>{{.Figures.Files}} ({{.Figures.Bytes}} bytes)</td></tr>
<tr><th>Entries listed</th><td>{{.Listed}}</td></tr>
<tr><th>Seconds</th><td>{{printf "%.3f" .Figures.Seconds}} (first file after {{printf "%.3f" .Figures.FirstFileSeconds}})</td></tr>
<tr><th>Blocks read</th><td>{{.Figures.BlocksRead}} of {{.Figures.AllocatedBlocks}} allocated</td></tr>
{{with .Figures.Requests}}<tr><th>Requests</th><td>{{.ListCalls}} List, {{.GetCalls}} Get</td></tr>{{end}}
<tr><th>Cost</th><td>${{printf "%.6f" .Figures.CostUSD}}</td></tr></table>
<h2>Collected ({{len .Collected}})</h2>
<table><tr><th>Partition</th><th>Path</th><th>File</th><th>Size</th><th>SHA-256</th></tr>
{{range .Collected}}<tr><td>{{.Partition}}</td><td>{{.Path}}</td><td>{{.File}}</td><td>{{.Size}}</td><td><code>{{.SHA256}}</code></td></tr>{{end}}</table>
<h2>Not found ({{len .NotFound}} rules)</h2>
<table><tr><th>Partition</th><th>Profile</th><th>Line</th><th>Rule</th></tr>
{{range .NotFound}}<tr><td>{{.Partition}}</td><td>{{.Profile}}</td><td>{{.Line}}</td><td>{{.Rule}}</td></tr>{{end}}</table>
<h2>Withheld ({{len .Withheld}})</h2>
<table><tr><th>Partition</th><th>Path</th><th>Size</th><th>Reason</th></tr>
{{range .Withheld}}<tr><td>{{.Partition}}</td><td>{{.Path}}</td><td>{{.Size}}</td><td>{{.Reason}}</td></tr>{{end}}</table>
<h2>Errors ({{len .Errors}})</h2>
<table><tr><th>Partition</th><th>Path</th><th>Error</th></tr>
{{range .Errors}}<tr><td>{{.Partition}}</td><td>{{.Path}}</td><td>{{.Error}}</td></tr>{{end}}</table>
<h2>Outputs</h2>
<table>{{range $k, $v := .Outputs}}<tr><td>{{$k}}</td><td><code>{{$v}}</code></td></tr>{{end}}</table>
<h2>Blocks read ({{len .Blocks.Blocks}}; checksums: {{.Blocks.ChecksumSource}})</h2>
<table><tr><th>Index</th><th>AWS SHA-256</th></tr>
{{range .Blocks.Blocks}}<tr><td>{{.Index}}</td><td><code>{{.AWSSHA256}}</code></td></tr>{{end}}</table>
{{if .Notes}}<h2>Notes</h2><ul>{{range .Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
</body></html>
`))

// HTML writes report.html.
func (r *Triage) HTML(w io.Writer) error {
	r.derive()
	if err := triagePage.Execute(w, r); err != nil {
		return fmt.Errorf("rendering triage %s: %w", HTMLName, err)
	}
	return nil
}
