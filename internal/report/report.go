package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ebsimager/ebsimager/internal/atomicfile"
	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/inspect"
	"github.com/ebsimager/ebsimager/internal/manifest"
)

// Format names this version of the report.json schema. A change that
// removes or redefines a field changes the number; adding a field does
// not.
const Format = "ebsimager-report/1"

// File names Save writes in the report's directory.
const (
	JSONName = "report.json"
	TextName = "report.txt"
	HTMLName = "report.html"
)

// Report is the chain-of-custody record. Its JSON form is report.json;
// SCHEMA.md documents every field.
type Report struct {
	Format      string          `json:"format"`
	Case        Case            `json:"case"`
	Evidence    Evidence        `json:"evidence"`
	Acquisition *Acquisition    `json:"acquisition,omitempty"`
	Layout      *inspect.Layout `json:"layout,omitempty"`
	// LayoutError says why there is no layout (for example, blocks that
	// need a key to read).
	LayoutError string    `json:"layout_error,omitempty"`
	BlockMap    *BlockMap `json:"block_map,omitempty"`
	// Notes are derived from the rest on every Save: caveats an examiner
	// must read, such as the one for encrypted snapshots.
	Notes []string `json:"notes"`
	// Steps are what happened to the evidence after the acquisition, in
	// order. They are only ever appended (see AppendStep and Save).
	Steps []Step `json:"steps"`
}

// Case holds the examiner's case fields.
type Case struct {
	CaseNumber     string `json:"case_number"`
	EvidenceNumber string `json:"evidence_number"`
	Examiner       string `json:"examiner"`
	Description    string `json:"description"`
	Notes          string `json:"notes"`
}

// CaseFromFields reads the case fields as the evidence directory's
// evidence.json names them (case_number, evidence_number, examiner,
// description, notes).
func CaseFromFields(m map[string]string) Case {
	return Case{
		CaseNumber: m["case_number"], EvidenceNumber: m["evidence_number"], Examiner: m["examiner"],
		Description: m["description"], Notes: m["notes"],
	}
}

// Evidence says what the record is about.
type Evidence struct {
	SnapshotID      string `json:"snapshot_id"`
	VolumeSizeGiB   int64  `json:"volume_size_gib"`
	VolumeSizeBytes int64  `json:"volume_size_bytes"` // derived: VolumeSizeGiB × 2^30
	BlockSize       int    `json:"block_size"`
	BlockSlots      int64  `json:"block_slots"` // derived: VolumeSizeBytes / BlockSize
	// Kind is "evidence-directory" or "raw-image"; Location is the path
	// as the examiner gave it.
	Kind     string `json:"kind"`
	Location string `json:"location"`
	// ObjectLock is the S3 Object Lock every object of evidence in a
	// bucket was written with (Location is then s3://bucket/prefix/).
	ObjectLock *manifest.ObjectLock `json:"object_lock,omitempty"`
}

// Kinds of Evidence.
const (
	KindEvidenceDirectory = "evidence-directory"
	KindRawImage          = "raw-image"
)

// Run says who ran ebsimager, where, how and when.
type Run struct {
	ToolVersion string `json:"tool_version"`
	// CommandLine is the argument vector, program name first, with
	// secret values replaced by RedactArgs.
	CommandLine []string  `json:"command_line"`
	Host        Host      `json:"host"`
	StartedAt   time.Time `json:"started_at"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
}

// NewRun records a run of toolVersion started now with the command line
// args (os.Args), redacted, on this host.
func NewRun(toolVersion string, args []string, started time.Time) Run {
	return Run{ToolVersion: toolVersion, CommandLine: RedactArgs(args), Host: CollectHost(), StartedAt: started.UTC()}
}

// Acquisition is the acquisition that made the evidence. A resumed
// acquisition is recorded by its last, completing run; ResumedBlocks
// says how many blocks earlier runs had stored.
type Acquisition struct {
	Run
	AWS AWS `json:"aws"`
	// Blocks and Bytes are what the snapshot lists and the evidence holds
	// (the manifest's totals).
	Blocks int64 `json:"blocks"`
	Bytes  int64 `json:"bytes"`
	// FetchedBlocks and FetchedBytes were fetched by this run;
	// ResumedBlocks were kept from earlier runs.
	FetchedBlocks int64 `json:"fetched_blocks"`
	FetchedBytes  int64 `json:"fetched_bytes"`
	ResumedBlocks int64 `json:"resumed_blocks"`
	// Seconds, BytesPerSecond and BlocksPerSecond are derived from the
	// run's times and the fetched figures on every Save.
	Seconds         float64  `json:"seconds"`
	BytesPerSecond  float64  `json:"bytes_per_second"`
	BlocksPerSecond float64  `json:"blocks_per_second"`
	Requests        Requests `json:"requests"`
	// ManifestSHA256 is the SHA-256 of manifest.jsonl (evidence
	// directories); ImageHashes the whole-image hashes by algorithm and
	// ImageFiles the segments (raw images written directly).
	ManifestSHA256 string            `json:"manifest_sha256,omitempty"`
	ImageHashes    map[string]string `json:"image_hashes,omitempty"`
	ImageFiles     []string          `json:"image_files,omitempty"`
	// Base is set for an incremental acquisition (acquire --base): the
	// evidence of an earlier snapshot whose unchanged blocks were reused.
	Base *Base `json:"base,omitempty"`
	// FailedBlocks is set in the record of an incomplete acquisition:
	// every block that failed after every retry, in index order.
	// FailedBlocksUnlisted counts the failures past them when the run
	// stopped because too many blocks failed.
	FailedBlocks         []FailedBlock `json:"failed_blocks,omitempty"`
	FailedBlocksUnlisted int64         `json:"failed_blocks_unlisted,omitempty"`
	// AdoptedBlocks were block files of earlier runs that no journal
	// accounted for but that matched their SHA-256, and were kept.
	// RejectedBlocks were block files of earlier runs (or of the base)
	// that did not match their SHA-256: they were fetched again, and the
	// files set aside are named in Unverified.
	AdoptedBlocks  int64        `json:"adopted_blocks,omitempty"`
	RejectedBlocks int64        `json:"rejected_blocks,omitempty"`
	Unverified     []Unverified `json:"unverified,omitempty"`
	// Replaced is the evidence of another snapshot that this acquisition
	// replaced in the same directory (acquire --force).
	Replaced *Replaced `json:"replaced,omitempty"`
	// Runs are the per-run record objects (runs/…json, see RunRecord)
	// that earlier runs left beside evidence in a bucket, each named
	// with its SHA-256, in order: the record of complete evidence names
	// every run that preceded it.
	Runs []RunObject `json:"runs,omitempty"`
	// Import is set when the evidence was not fetched from AWS but
	// imported (import-4n6ir) from a folder of the original tool; AWS is
	// then empty but for the Region given and the folder as endpoint.
	Import *Import `json:"import,omitempty"`
}

// FailedBlock is a block that could not be fetched, and why.
type FailedBlock struct {
	Index int64  `json:"index"`
	Error string `json:"error"`
}

// Unverified is a file found in the evidence directory that could not be
// verified: it was moved aside, never deleted.
type Unverified struct {
	Name    string `json:"name"`
	MovedTo string `json:"moved_to"`
	Reason  string `json:"reason"`
}

// Replaced names evidence that acquire --force replaced.
type Replaced struct {
	SnapshotID     string `json:"snapshot_id"`
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
}

// Rerun is a later run of acquire over complete evidence: it checked the
// stored blocks against their SHA-256 and kept the manifest (Complete),
// or fetched blocks that were missing or did not verify.
type Rerun struct {
	Complete       bool         `json:"complete"`
	ManifestSHA256 string       `json:"manifest_sha256"`
	Blocks         int64        `json:"blocks"`
	CheckedBlocks  int64        `json:"checked_blocks"`
	AdoptedBlocks  int64        `json:"adopted_blocks"`
	RejectedBlocks int64        `json:"rejected_blocks"`
	FetchedBlocks  int64        `json:"fetched_blocks"`
	Unverified     []Unverified `json:"unverified,omitempty"`
	Requests       Requests     `json:"requests"`
}

// Import is the folder of Snapshot 4n6ir Imager that evidence was
// imported from. Its blocks' SHA-256 came from the original tool's file
// names (that tool computed them locally); no AWS checksum was kept, so
// nothing proves the blocks are what AWS served.
type Import struct {
	Provenance string `json:"provenance"` // "snapshot-4n6ir-folder"
	Source     string `json:"source"`     // the folder, absolute
	Form       string `json:"form"`       // "plain", "compressed" or "encrypted"
	// HashSource says where each block's SHA-256 came from: "file-names".
	HashSource string `json:"hash_source"`
	// Blocks are the folder's block files; ImportedBlocks were imported
	// by this run (the rest by an earlier, interrupted one).
	Blocks         int64 `json:"blocks"`
	ImportedBlocks int64 `json:"imported_blocks"`
	// Ignored lists the first few other entries of the folder (not block
	// files, such as .DS_Store); IgnoredCount counts them all.
	Ignored      []string `json:"ignored,omitempty"`
	IgnoredCount int      `json:"ignored_count,omitempty"`
}

// ContentSource names what verified block contents were compared with:
// the SHA-256 AWS served, or, for imported evidence, the one in the
// original tool's file names.
func (r *Report) ContentSource() string {
	if r.Acquisition != nil && r.Acquisition.Import != nil {
		return "the SHA-256 in the original tool's file names (no AWS checksum: imported)"
	}
	return "the AWS SHA-256"
}

// HashSourceFileNames is Import.HashSource for the original tool's
// folders.
const HashSourceFileNames = "file-names"

// Base is the evidence an incremental acquisition took unchanged blocks
// from. ChangedBlocks is what ListChangedBlocks listed between the two
// snapshots (added, changed and removed); ReusedBlocks, the base's blocks
// kept, were hard-linked (LinkedBlocks) or copied (CopiedBlocks), or were
// already in place from an interrupted run of the same command.
type Base struct {
	Directory      string `json:"directory"`
	SnapshotID     string `json:"snapshot_id"`
	ManifestSHA256 string `json:"manifest_sha256"`
	ChangedBlocks  int64  `json:"changed_blocks"`
	ReusedBlocks   int64  `json:"reused_blocks"`
	LinkedBlocks   int64  `json:"linked_blocks"`
	CopiedBlocks   int64  `json:"copied_blocks"`
	// RejectedBlocks are base blocks that did not match the base's
	// manifest: they were not reused but fetched from the snapshot.
	RejectedBlocks int64 `json:"rejected_blocks,omitempty"`
}

// Requests counts the EBS direct API calls of the acquisition.
type Requests struct {
	ListCalls int64 `json:"list_calls"`
	GetCalls  int64 `json:"get_calls"`
	// RetriesByKind counts retried failures by kind (throttle,
	// server-error, …); ErrorsByKind the failures that were not retried
	// away, by kind.
	RetriesByKind map[string]int64 `json:"retries_by_kind"`
	ErrorsByKind  map[string]int64 `json:"errors_by_kind"`
}

// AWS is what AWS said about the caller and the snapshot. Package awsctx
// fills it in.
type AWS struct {
	Region   string `json:"region"`
	Endpoint string `json:"endpoint"`
	// CallerIdentity is nil when GetCallerIdentity did not answer, and
	// Snapshot when DescribeSnapshots did not: Calls says why.
	CallerIdentity *CallerIdentity `json:"caller_identity,omitempty"`
	Snapshot       *SnapshotInfo   `json:"snapshot,omitempty"`
	Calls          []Call          `json:"calls"`
}

// CallerIdentity is STS GetCallerIdentity's answer.
type CallerIdentity struct {
	Account string `json:"account"`
	ARN     string `json:"arn"`
	UserID  string `json:"user_id"`
}

// SnapshotInfo is EC2 DescribeSnapshots' answer for the snapshot.
type SnapshotInfo struct {
	SnapshotID    string    `json:"snapshot_id"`
	VolumeID      string    `json:"volume_id"`
	State         string    `json:"state"`
	Progress      string    `json:"progress"`
	StartTime     time.Time `json:"start_time,omitzero"`
	OwnerID       string    `json:"owner_id"`
	VolumeSizeGiB int64     `json:"volume_size_gib"`
	Description   string    `json:"description"`
	Encrypted     bool      `json:"encrypted"`
	KMSKeyID      string    `json:"kms_key_id,omitempty"`
	StorageTier   string    `json:"storage_tier,omitempty"`
	Tags          []Tag     `json:"tags"`
}

// Tag is one snapshot tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Call is the outcome of one context call to AWS.
type Call struct {
	API string `json:"api"` // "sts:GetCallerIdentity", "ec2:DescribeSnapshots", or a pre-flight call
	// Outcome is "ok", "denied" (the caller lacks the permission) or
	// "failed" (any other error, after retries).
	Outcome  string `json:"outcome"`
	Code     string `json:"code,omitempty"` // the AWS error code
	Error    string `json:"error,omitempty"`
	Attempts int    `json:"attempts"`
}

// Call outcomes.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
)

// APIs of the context calls.
const (
	APIGetCallerIdentity = "sts:GetCallerIdentity"
	APIDescribeSnapshots = "ec2:DescribeSnapshots"
	// The pre-flight's other calls (internal/preflight).
	APIDescribeSnapshotAttribute = "ec2:DescribeSnapshotAttribute"
	APIListSnapshotBlocks        = "ebs:ListSnapshotBlocks"
)

// Step is one thing done to the evidence after its acquisition. Exactly
// the payload that Kind names is set.
type Step struct {
	Kind string `json:"kind"` // "export", "verify", "transform", "acquire" or "read-live"
	Run
	// Outcome is "ok" or "failed"; Error says why a step failed.
	Outcome   string     `json:"outcome"`
	Error     string     `json:"error,omitempty"`
	Export    *Export    `json:"export,omitempty"`
	Verify    *Verify    `json:"verify,omitempty"`
	Transform *Transform `json:"transform,omitempty"`
	Acquire   *Rerun     `json:"acquire,omitempty"`
	ReadLive  *ReadLive  `json:"read_live,omitempty"`
}

// Step kinds.
const (
	StepExport    = "export"
	StepVerify    = "verify"
	StepTransform = "transform"
	// StepAcquire is a rerun of acquire over evidence already recorded.
	StepAcquire = "acquire"
)

// Export is an image made from the evidence.
type Export struct {
	Format   string            `json:"format"`   // "raw" or "e01"
	Segments []string          `json:"segments"` // the image's files, in order
	Size     int64             `json:"size"`     // bytes of the image
	Blocks   int64             `json:"blocks"`   // blocks written
	Hashes   map[string]string `json:"hashes"`   // whole-image hashes by algorithm
	// FileSystemCheck is what --ext4/--ntfs found, when asked.
	FileSystemCheck string `json:"file_system_check,omitempty"`
	// Objects are the image's objects and its checksum files, in that
	// order, when it was written to an object store (export --out
	// s3://…); Segments then holds their s3:// URLs.
	Objects []ExportObject `json:"objects,omitempty"`
	// ObjectLock is the lock every object was written with, if any.
	ObjectLock *manifest.ObjectLock `json:"object_lock,omitempty"`
}

// ExportObject is one object an export wrote to an object store.
type ExportObject struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	VersionID string `json:"version_id,omitempty"`
	Size      int64  `json:"size"`
	// SHA256 is the whole object's SHA-256 (hex), computed as it was
	// sent: S3 keeps only Checksum for an object uploaded in parts.
	SHA256 string `json:"sha256"`
	// Checksum is S3's x-amz-checksum-sha256 of the object (base64): of
	// the part checksums ("…-N") for an image segment, of the bytes for a
	// checksum file.
	Checksum string `json:"s3_checksum_sha256,omitempty"`
	Parts    int    `json:"parts,omitempty"`
}

// Verify is the result of re-checking the evidence or an image.
type Verify struct {
	Target         string `json:"target"`
	OK             bool   `json:"ok"`
	Blocks         int64  `json:"blocks"`
	StoredChecked  int64  `json:"stored_checked"`
	ContentChecked int64  `json:"content_checked"`
	Encrypted      int64  `json:"encrypted"`
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
	// Hashes are recomputed whole-image hashes, when an image was
	// verified.
	Hashes map[string]string `json:"hashes,omitempty"`
	// Problems lists at most MaxProblems differences; MoreProblems
	// counts the rest.
	Problems     []Problem `json:"problems"`
	MoreProblems int64     `json:"more_problems,omitempty"`
	// Compared lists the records, kept apart from the manifest, that it
	// was compared with, and what each comparison found.
	Compared []Comparison `json:"compared,omitempty"`
	// Snapshot is set by verify --against-snapshot: what the snapshot
	// itself said.
	Snapshot *SnapshotCheck `json:"snapshot,omitempty"`
}

// Comparison is the manifest checked against one independent record of
// it: "report.json" (the acquisition or the last conversion that wrote
// the manifest), "journals" (the leaf journals), or "snapshot".
type Comparison struct {
	Record string `json:"record"`
	// Outcome is "match", "differs" or "not-possible" (Detail says why).
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
}

// Comparison outcomes.
const (
	CompareMatch       = "match"
	CompareDiffers     = "differs"
	CompareNotPossible = "not-possible"
)

// SnapshotCheck is the evidence compared with the snapshot it came from,
// through the EBS direct APIs: the listing's block indexes and, with
// Full, every block fetched again and its AWS checksum compared with the
// manifest's.
type SnapshotCheck struct {
	SnapshotID string `json:"snapshot_id"`
	Full       bool   `json:"full"`
	Listed     int64  `json:"listed"`  // blocks the snapshot lists
	Fetched    int64  `json:"fetched"` // blocks fetched and compared (Full)
	// Missing are indexes the manifest holds and the snapshot does not
	// list; Extra, listed indexes the manifest does not hold; Differ,
	// indexes whose AWS checksum is not the manifest's; Failed, blocks
	// that could not be fetched. Each list holds at most MaxProblems
	// indexes; the counts are complete.
	Missing      []int64  `json:"missing"`
	Extra        []int64  `json:"extra"`
	Differ       []int64  `json:"differ"`
	Failed       []int64  `json:"failed"`
	MissingCount int64    `json:"missing_count"`
	ExtraCount   int64    `json:"extra_count"`
	DifferCount  int64    `json:"differ_count"`
	FailedCount  int64    `json:"failed_count"`
	Requests     Requests `json:"requests"`
	// EstimatedCostUSD is what the calls were priced at beforehand.
	EstimatedCostUSD float64 `json:"estimated_cost_usd"`
}

// MaxProblems bounds the problems a Verify step lists, so that a
// wholesale corruption keeps the report readable.
const MaxProblems = 100

// Problem is one difference verification found.
type Problem struct {
	Index  int64  `json:"index"` // -1 when not about one block
	Name   string `json:"name,omitempty"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Transform is a conversion of the evidence into new evidence: for
// example compressed or encrypted block files.
type Transform struct {
	Operation      string `json:"operation"` // e.g. "compress", "encrypt", "decrypt"
	Source         string `json:"source"`
	Destination    string `json:"destination"`
	Codec          string `json:"codec"`      // of the destination: none, zstd, gzip
	Encryption     string `json:"encryption"` // of the destination: none, age
	Blocks         int64  `json:"blocks"`
	Bytes          int64  `json:"bytes"`
	ManifestSHA256 string `json:"manifest_sha256,omitempty"` // of the destination
	// SourceManifestSHA256 is the manifest the conversion started from:
	// the one the record held before it.
	SourceManifestSHA256 string `json:"source_manifest_sha256,omitempty"`
	// SourceEvidence is set when the conversion wrote new evidence
	// (compress SRC --out s3://…) instead of converting in place: the
	// evidence its blocks were read from, a directory (absolute) or an
	// s3:// URL, whose manifest is SourceManifestSHA256. The record's
	// Evidence.Location is then the new evidence.
	SourceEvidence string `json:"source_evidence,omitempty"`
}

// ManifestClaim is what the record says the manifest of an evidence
// directory is: the SHA-256 and totals recorded by the last step that
// wrote it (the acquisition, or a later conversion).
type ManifestClaim struct {
	// Source names the step, e.g. "the acquisition record" or
	// "conversion step 3 (compress)".
	Source string
	SHA256 string
	Blocks int64
	Bytes  int64
}

// ManifestClaim returns the record's claim about the manifest, or nil
// when the record holds none (no acquisition of an evidence directory).
// Every successful conversion must start from the manifest the claim
// before it names; a chain that breaks is an error naming the step.
func (r *Report) ManifestClaim() (*ManifestClaim, error) {
	a := r.Acquisition
	if a == nil || a.ManifestSHA256 == "" {
		return nil, nil
	}
	c := &ManifestClaim{Source: "the acquisition record", SHA256: a.ManifestSHA256, Blocks: a.Blocks, Bytes: a.Bytes}
	for i, s := range r.Steps {
		t := s.Transform
		if s.Kind != StepTransform || s.Outcome != OutcomeOK || t == nil || t.ManifestSHA256 == "" {
			continue
		}
		name := fmt.Sprintf("conversion step %d (%s)", i+1, t.Operation)
		if t.SourceManifestSHA256 != "" && t.SourceManifestSHA256 != c.SHA256 {
			return c, fmt.Errorf("%s converted manifest %s, but %s names %s", name, t.SourceManifestSHA256, c.Source, c.SHA256)
		}
		c = &ManifestClaim{Source: name, SHA256: t.ManifestSHA256, Blocks: t.Blocks, Bytes: t.Bytes}
	}
	return c, nil
}

// New returns an empty record of the evidence of snapshotID.
func New(snapshotID string, volumeSizeGiB int64, blockSize int, kind, location string) *Report {
	r := &Report{
		Format: Format,
		Evidence: Evidence{SnapshotID: snapshotID, VolumeSizeGiB: volumeSizeGiB, BlockSize: blockSize,
			Kind: kind, Location: location},
		Notes: []string{},
		Steps: []Step{},
	}
	r.derive()
	return r
}

// AppendStep adds s after the steps already recorded.
func (r *Report) AppendStep(s Step) error {
	if err := s.check(); err != nil {
		return fmt.Errorf("step %d: %w", len(r.Steps)+1, err)
	}
	s.StartedAt, s.FinishedAt = s.StartedAt.UTC(), s.FinishedAt.UTC()
	if s.Verify != nil && len(s.Verify.Problems) > MaxProblems {
		v := *s.Verify
		v.MoreProblems += int64(len(v.Problems) - MaxProblems)
		v.Problems = v.Problems[:MaxProblems:MaxProblems]
		s.Verify = &v
	}
	r.Steps = append(r.Steps, s)
	return nil
}

func (s Step) check() error {
	payloads := map[string]bool{StepExport: s.Export != nil, StepVerify: s.Verify != nil, StepTransform: s.Transform != nil,
		StepAcquire: s.Acquire != nil, StepReadLive: s.ReadLive != nil}
	if _, ok := payloads[s.Kind]; !ok {
		return fmt.Errorf("unknown kind %q (want export, verify, transform, acquire or read-live)", s.Kind)
	}
	for kind, set := range payloads {
		if set && kind != s.Kind {
			return fmt.Errorf("a %s step carries a %s payload", s.Kind, kind)
		}
	}
	if !payloads[s.Kind] && s.Outcome == OutcomeOK {
		return fmt.Errorf("a successful %s step has no %s payload", s.Kind, s.Kind)
	}
	if s.Outcome != OutcomeOK && s.Outcome != OutcomeFailed {
		return fmt.Errorf("outcome %q: want ok or failed", s.Outcome)
	}
	if s.StartedAt.IsZero() {
		return errors.New("no start time")
	}
	return nil
}

// derive recomputes the derived fields.
func (r *Report) derive() {
	r.Format = Format
	e := &r.Evidence
	e.VolumeSizeBytes = e.VolumeSizeGiB << 30 // VolumeSize is in GiB
	e.BlockSlots = 0
	if e.BlockSize > 0 {
		e.BlockSlots = e.VolumeSizeBytes / int64(e.BlockSize)
	}
	if a := r.Acquisition; a != nil {
		a.StartedAt, a.FinishedAt = a.StartedAt.UTC(), a.FinishedAt.UTC()
		a.Seconds, a.BytesPerSecond, a.BlocksPerSecond = 0, 0, 0
		if d := a.FinishedAt.Sub(a.StartedAt); !a.FinishedAt.IsZero() && d > 0 {
			a.Seconds = d.Seconds()
			a.BytesPerSecond = float64(a.FetchedBytes) / a.Seconds
			a.BlocksPerSecond = float64(a.FetchedBlocks) / a.Seconds
		}
		if a.CommandLine == nil {
			a.CommandLine = []string{}
		}
		if a.AWS.Calls == nil {
			a.AWS.Calls = []Call{}
		}
		if s := a.AWS.Snapshot; s != nil && s.Tags == nil {
			s.Tags = []Tag{}
		}
		if a.Requests.RetriesByKind == nil {
			a.Requests.RetriesByKind = map[string]int64{}
		}
		if a.Requests.ErrorsByKind == nil {
			a.Requests.ErrorsByKind = map[string]int64{}
		}
	}
	if r.Steps == nil {
		r.Steps = []Step{}
	}
	r.Notes = r.notes()
}

// notes derives the caveats an examiner must read.
func (r *Report) notes() []string {
	notes := []string{}
	var aws *AWS
	if r.Acquisition != nil {
		aws = &r.Acquisition.AWS
	}
	if r.Acquisition != nil && r.Acquisition.Import != nil {
		// Nothing was asked of AWS: no DescribeSnapshots or
		// GetCallerIdentity to miss.
		notes = append(notes, "This evidence was imported from a folder of Snapshot 4n6ir Imager ("+r.Acquisition.Import.Source+
			"), not fetched from AWS: the block hashes come from the original tool's file names (that tool computed them locally), "+
			"and there is no AWS checksum. Verification proves the blocks match those names, not that they are what AWS served.")
		aws = nil
	}
	switch {
	case aws != nil && aws.Snapshot != nil && aws.Snapshot.Encrypted:
		notes = append(notes, "The snapshot is encrypted. Blocks it does not list are zeros in images made from this evidence, "+
			"while a volume restored from the snapshot would read decrypt(zeros) there, which is not zeros: such images do not "+
			"hash-match a dd of a restored volume. This is expected; the listed blocks are exactly as AWS served them.")
	case aws != nil && aws.Snapshot == nil:
		notes = append(notes, "EC2 DescribeSnapshots gave no answer (see the context calls), so the snapshot's volume, owner, "+
			"start time, encryption and tags are not recorded. If the snapshot is encrypted, blocks it does not list are zeros "+
			"in images made from this evidence, while a restored volume would read decrypt(zeros) there.")
	}
	if aws != nil && aws.CallerIdentity == nil {
		notes = append(notes, "STS GetCallerIdentity gave no answer (see the context calls), so the AWS identity that made "+
			"the acquisition is not recorded.")
	}
	if aws != nil {
		for _, c := range aws.Calls {
			if c.Outcome == OutcomeDenied {
				notes = append(notes, fmt.Sprintf("%s was denied to the caller (%s); the acquisition ran without it.", c.API, c.Code))
			}
		}
	}
	if r.Layout == nil && r.LayoutError != "" {
		notes = append(notes, "The partitions and file systems were not inspected: "+r.LayoutError+".")
	}
	if r.Layout != nil && r.Layout.Table == inspect.TableNone && r.Layout.FileSystem != nil && r.Layout.FileSystem.Type == inspect.TypeUnknown {
		notes = append(notes, "No partition table and no known file system was found at the start of the volume.")
	}
	return notes
}

// check reports a record that is not self-consistent.
func (r *Report) check() error {
	if r.Format != Format {
		return fmt.Errorf("format %q, this tool reads %q", r.Format, Format)
	}
	if !block.ValidSnapshotID(r.Evidence.SnapshotID) {
		return fmt.Errorf("evidence: invalid snapshot id %q", r.Evidence.SnapshotID)
	}
	if err := block.CheckVolumeGiB(r.Evidence.VolumeSizeGiB); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	if r.Evidence.BlockSize != block.Size {
		return fmt.Errorf("evidence: block size %d, want %d", r.Evidence.BlockSize, block.Size)
	}
	if m := r.BlockMap; m != nil {
		if err := m.check(); err != nil {
			return fmt.Errorf("block map: %w", err)
		}
		if r.Evidence.BlockSlots != 0 && m.Slots != r.Evidence.BlockSlots {
			return fmt.Errorf("block map covers %d slots, the volume has %d", m.Slots, r.Evidence.BlockSlots)
		}
	}
	for i, s := range r.Steps {
		if err := s.check(); err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
	}
	return nil
}

// ErrNoReport is wrapped by Load's error when the directory holds no
// report.json; it matches fs.ErrNotExist too.
var ErrNoReport = fmt.Errorf("no %s: %w", JSONName, fs.ErrNotExist)

// Load reads dir/report.json.
func Load(dir string) (*Report, error) {
	data, err := os.ReadFile(filepath.Join(dir, JSONName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoReport)
	}
	if err != nil {
		return nil, fmt.Errorf("reading report: %w", err)
	}
	return parse(data)
}

func parse(data []byte) (*Report, error) {
	var r Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("reading %s: %w", JSONName, err)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", JSONName, err)
	}
	return &r, nil
}

// JSON returns report.json's content, derived fields recomputed.
func (r *Report) JSON() ([]byte, error) {
	r.derive()
	if err := r.check(); err != nil {
		return nil, err
	}
	return indented(r, "report")
}

// indented encodes a record v as indented JSON, HTML characters left as
// they are: the JSON is read as JSON, never pasted into HTML.
func indented(v any, what string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding %s: %w", what, err)
	}
	return b.Bytes(), nil
}

// Save writes report.json, report.txt and report.html into dir, each to
// a temporary file that is synced and then renamed, report.json last.
// When dir already holds a report.json, it must be of the same snapshot
// and its steps must be the first steps of r: a record only ever grows.
func (r *Report) Save(dir string) error {
	js, err := r.JSON()
	if err != nil {
		return fmt.Errorf("saving report: %w", err)
	}
	old, err := Load(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("saving report: existing %w", err)
	case old.Evidence.SnapshotID != r.Evidence.SnapshotID:
		return fmt.Errorf("saving report: %s holds the record of %s, not %s", dir, old.Evidence.SnapshotID, r.Evidence.SnapshotID)
	default:
		if err := appendOnly(old.Steps, r.Steps); err != nil {
			return fmt.Errorf("saving report: %w", err)
		}
	}
	var txt, page bytes.Buffer
	if err := r.Text(&txt); err != nil {
		return fmt.Errorf("saving report: %w", err)
	}
	if err := r.HTML(&page); err != nil {
		return fmt.Errorf("saving report: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{TextName, txt.Bytes()}, {HTMLName, page.Bytes()}, {JSONName, js}} {
		if err := atomicfile.WriteBytes(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("saving report: %w", err)
		}
	}
	return nil
}

// appendOnly checks that every old step is still there, unchanged, in
// its place.
func appendOnly(old, cur []Step) error {
	if len(cur) < len(old) {
		return fmt.Errorf("%s records %d steps, this record %d: steps are only ever appended", JSONName, len(old), len(cur))
	}
	for i := range old {
		a, err := json.Marshal(old[i])
		if err != nil {
			return err
		}
		b, err := json.Marshal(cur[i])
		if err != nil {
			return err
		}
		if !bytes.Equal(a, b) {
			return fmt.Errorf("step %d (%s) differs from the one %s records: steps are only ever appended", i+1, cur[i].Kind, JSONName)
		}
	}
	return nil
}

// writeAtomic writes data to dir/name through a synced temporary file
// (mode 0600) in the same directory.

// syncDir makes the renames durable.

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
