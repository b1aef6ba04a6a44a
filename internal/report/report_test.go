package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/inspect"
)

var update = flag.Bool("update", false, "rewrite golden files")

// t0 is the fixed clock of every fixture.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// testHost is a fixed host, so golden files do not depend on the machine.
var testHost = Host{Hostname: "forensic-ws-1", User: "examiner", UserName: "Jo Examiner", UID: "1000",
	OS: "linux", Arch: "amd64", Kernel: "6.1.0-18-amd64"}

const testSnap = "snap-0123456789abcdef0"

// sampleLayout is inspect's layout of the sample disk (a copy of
// internal/inspect/testdata/sample.json).
func sampleLayout(t testing.TB) *inspect.Layout {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "layout.json"))
	if err != nil {
		t.Fatal(err)
	}
	var l inspect.Layout
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	return &l
}

// sampleMap is a 1 GiB volume's map: the GPT at the start and end, the
// ext4 partition's first 8 MiB (blocks 2-17), every other block of the
// NTFS partition's first 16 MiB (130, 132, … 160), and a full run from
// 512 MiB to 640 MiB (blocks 1024-1279).
func sampleMap(t testing.TB) *BlockMap {
	t.Helper()
	m := NewBlockMap(2048)
	var idx []int64
	idx = append(idx, 0)
	for i := int64(2); i < 18; i++ {
		idx = append(idx, i)
	}
	for i := int64(130); i <= 160; i += 2 {
		idx = append(idx, i)
	}
	for i := int64(1024); i < 1280; i++ {
		idx = append(idx, i)
	}
	idx = append(idx, 2047)
	for _, i := range idx {
		if err := m.Add(i); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// fixture is a complete record: an encrypted snapshot, an export and two
// verifications, one failed.
func fixture(t testing.TB) *Report {
	t.Helper()
	r := New(testSnap, 1, 524288, KindEvidenceDirectory, "/cases/2024-017/ev")
	r.Case = Case{CaseNumber: "2024-017", EvidenceNumber: "E-1", Examiner: "Jo Examiner",
		Description: "web-1 root volume <snapshot>", Notes: "taken under warrant 77/24 & sealed"}
	run := Run{ToolVersion: "0.1.0", Host: testHost, StartedAt: t0, FinishedAt: t0.Add(80 * time.Second),
		CommandLine: RedactArgs([]string{"ebsimager", "acquire", testSnap, "--out", "/cases/2024-017/ev",
			"--case-number", "2024-017", "--examiner", "Jo Examiner", "--passphrase", "hunter2"})}
	r.Acquisition = &Acquisition{
		Run: run,
		AWS: AWS{
			Region: "us-east-1", Endpoint: "https://ebs.us-east-1.amazonaws.com",
			CallerIdentity: &CallerIdentity{Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/examiner", UserID: "AIDAEXAMPLE000000001"},
			Snapshot: &SnapshotInfo{SnapshotID: testSnap, VolumeID: "vol-0fedcba9876543210", State: "completed", Progress: "100%",
				StartTime: time.Date(2024, 4, 30, 23, 15, 0, 0, time.UTC), OwnerID: "111122223333", VolumeSizeGiB: 1,
				Description: "nightly", Encrypted: true, KMSKeyID: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
				StorageTier: "standard", Tags: []Tag{{"Name", "web-1"}, {"case", "2024-017"}}},
			Calls: []Call{
				{API: APIGetCallerIdentity, Outcome: OutcomeOK, Attempts: 1},
				{API: APIDescribeSnapshots, Outcome: OutcomeOK, Attempts: 2},
			},
		},
		Blocks: 290, Bytes: 290 * 524288, FetchedBlocks: 190, FetchedBytes: 190 * 524288, ResumedBlocks: 100,
		Requests: Requests{ListCalls: 1, GetCalls: 193,
			RetriesByKind: map[string]int64{"throttle": 2, "server-error": 1}},
		ManifestSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
	r.Layout = sampleLayout(t)
	r.BlockMap = sampleMap(t)
	steps := []Step{
		{Kind: StepExport, Outcome: OutcomeOK, Run: Run{ToolVersion: "0.1.0", Host: testHost, StartedAt: t0.Add(time.Hour),
			FinishedAt: t0.Add(time.Hour + 9*time.Second), CommandLine: []string{"ebsimager", "export", "/cases/2024-017/ev", "--out", "/cases/2024-017/web 1.raw", "--split", "650MiB"}},
			Export: &Export{Format: "raw", Segments: []string{"/cases/2024-017/web 1.raw.001", "/cases/2024-017/web 1.raw.002"},
				Size: 1 << 30, Blocks: 290, Hashes: map[string]string{
					"md5": "cd573cfaace07e7949bc0c46028904ff", "sha1": "a0b65939670bc2c010f4d5d6a0b3e4e4590fb92b",
					"sha256": "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"},
				FileSystemCheck: "ext4 in partition 1"}},
		{Kind: StepVerify, Outcome: OutcomeOK, Run: Run{ToolVersion: "0.1.0", Host: testHost, StartedAt: t0.Add(2 * time.Hour),
			FinishedAt: t0.Add(2*time.Hour + 3*time.Second), CommandLine: []string{"ebsimager", "verify", "/cases/2024-017/ev"}},
			Verify: &Verify{Target: "/cases/2024-017/ev", OK: true, Blocks: 290, StoredChecked: 290, ContentChecked: 290,
				ManifestSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Problems: []Problem{},
				Compared: []Comparison{{Record: "report.json", Outcome: CompareMatch, Detail: "the acquisition record in report.json"},
					{Record: "journals", Outcome: CompareMatch, Detail: "290 entries in 1 leaf journal"}, {Record: "snapshot", Outcome: CompareMatch}},
				Snapshot: &SnapshotCheck{SnapshotID: testSnap, Full: true, Listed: 290, Fetched: 290,
					Missing: []int64{}, Extra: []int64{}, Differ: []int64{}, Failed: []int64{},
					Requests:         Requests{ListCalls: 1, GetCalls: 290, RetriesByKind: map[string]int64{}, ErrorsByKind: map[string]int64{}},
					EstimatedCostUSD: 0.001745}}},
		{Kind: StepVerify, Outcome: OutcomeFailed, Error: "verification FAILED: 1 problems in /cases/2024-017/ev",
			Run: Run{ToolVersion: "0.1.0", Host: testHost, StartedAt: t0.Add(3 * time.Hour), FinishedAt: t0.Add(3*time.Hour + 3*time.Second),
				CommandLine: []string{"ebsimager", "verify", "/cases/2024-017/ev"}},
			Verify: &Verify{Target: "/cases/2024-017/ev", OK: false, Blocks: 290, StoredChecked: 289, ContentChecked: 289,
				ManifestSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
				Problems:       []Problem{{Index: 1030, Name: "blocks/00/0000/0000001030_" + testSnap + "_…", Kind: "mismatch", Detail: "stored sha256 differs"}}}},
	}
	for _, s := range steps {
		if err := r.AppendStep(s); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from %s (run go test -update if the change is intended)\ngot:\n%s", name, path, got)
	}
}

func TestGolden(t *testing.T) {
	dir := t.TempDir()
	if err := fixture(t).Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{JSONName, TextName} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name, data)
	}
}

// TestGoldenDenied pins the record of an acquisition whose caller may
// call neither DescribeSnapshots nor GetCallerIdentity, with no layout.
func TestGoldenDenied(t *testing.T) {
	r := New(testSnap, 1, 524288, KindRawImage, "disk.raw")
	r.Acquisition = &Acquisition{
		Run: Run{ToolVersion: "0.1.0", Host: testHost, StartedAt: t0, FinishedAt: t0.Add(2 * time.Second),
			CommandLine: []string{"ebsimager", "acquire", testSnap, "--image", "disk.raw"}},
		AWS: AWS{Region: "eu-west-1", Endpoint: "http://127.0.0.1:4566", Calls: []Call{
			{API: APIGetCallerIdentity, Outcome: OutcomeDenied, Code: "AccessDenied",
				Error: "User: arn:aws:iam::111122223333:user/emulator is not authorized to perform: sts:GetCallerIdentity", Attempts: 1},
			{API: APIDescribeSnapshots, Outcome: OutcomeDenied, Code: "UnauthorizedOperation",
				Error: "You are not authorized to perform this operation.", Attempts: 1},
		}},
		Blocks: 3, Bytes: 3 * 524288, FetchedBlocks: 3, FetchedBytes: 3 * 524288,
		Requests:    Requests{ListCalls: 1, GetCalls: 4, RetriesByKind: map[string]int64{"throttle": 1}, ErrorsByKind: map[string]int64{}},
		ImageFiles:  []string{"disk.raw"},
		ImageHashes: map[string]string{"sha256": "3b0c1d8d6e5f0e0b0a9f4b9f4e3d2c1b0a9f8e7d6c5b4a3928172635445362718"},
	}
	r.LayoutError = "block 0 is encrypted: a key is needed to read it"
	dir := t.TempDir()
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{JSONName, TextName} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "denied-"+name, data)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	r := fixture(t)
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{JSONName, TextName, HTMLName} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want the three reports and nothing else", names)
	}
	saved, err := os.ReadFile(filepath.Join(dir, JSONName))
	if err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := back.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(saved, again) {
		t.Fatalf("Load then JSON differs from what Save wrote:\n%s", again)
	}

	// A later step appends; saving it keeps every earlier step.
	if err := back.AppendStep(Step{Kind: StepTransform, Outcome: OutcomeOK,
		Run: Run{ToolVersion: "0.1.0", Host: testHost, StartedAt: t0.Add(4 * time.Hour), CommandLine: []string{"ebsimager", "transform"}},
		Transform: &Transform{Operation: "compress", Source: "/cases/2024-017/ev", Destination: "/cases/2024-017/ev.zst",
			Codec: "zstd", Encryption: "none", Blocks: 290, Bytes: 1234}}); err != nil {
		t.Fatal(err)
	}
	if err := back.Save(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := Load(dir); len(got.Steps) != 4 || got.Steps[3].Transform.Codec != "zstd" {
		t.Fatalf("after appending: %+v", got.Steps)
	}

	// Rewriting or dropping a recorded step is refused, and nothing is
	// written.
	before, _ := os.ReadFile(filepath.Join(dir, JSONName))
	changed, _ := Load(dir)
	changed.Steps[1].Verify.OK = false
	if err := changed.Save(dir); err == nil || !strings.Contains(err.Error(), "step 2 (verify) differs") {
		t.Fatalf("saving a changed step: %v", err)
	}
	dropped, _ := Load(dir)
	dropped.Steps = dropped.Steps[:2]
	if err := dropped.Save(dir); err == nil || !strings.Contains(err.Error(), "records 4 steps, this record 2") {
		t.Fatalf("saving with steps dropped: %v", err)
	}
	other := New("snap-0aaaaaaaaaaaaaaa0", 1, 524288, KindEvidenceDirectory, "ev")
	if err := other.Save(dir); err == nil || !strings.Contains(err.Error(), "holds the record of "+testSnap+", not snap-0aaaaaaaaaaaaaaa0") {
		t.Fatalf("saving another snapshot's record: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, JSONName)); !bytes.Equal(before, after) {
		t.Fatal("a refused save changed report.json")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrNoReport) {
		t.Fatalf("Load of an empty directory: %v", err)
	}
	good, err := fixture(t).JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"format", `"format": "ebsimager-report/1"`, `"format": "ebsimager-report/2"`, `format "ebsimager-report/2"`},
		{"snapshot", `"snapshot_id": "` + testSnap + `",` + "\n    \"volume_size_gib\"", `"snapshot_id": "vol-1",` + "\n    \"volume_size_gib\"", "invalid snapshot id"},
		{"map total", `"allocated_blocks": 290`, `"allocated_blocks": 291`, "cells add up to 290 blocks, the total says 291"},
		{"map cells", `"cells": 2048`, `"cells": 1024`, "1024 cells of 1 slots, want 2048 of 1"},
		{"map count", `"allocated": "1 0 1*16`, `"allocated": "2 0 1*16`, "cell 0 counts 2 of its 1 slots"},
		{"map token", `"allocated": "1 0 1*16`, `"allocated": "1 0 1*x`, `bad repeat "1*x"`},
		{"step kind", `"kind": "export"`, `"kind": "erase"`, `step 1: unknown kind "erase"`},
		{"huge volume", `"volume_size_gib": 1,` + "\n    \"volume_size_bytes\"", `"volume_size_gib": 99999999999,` + "\n    \"volume_size_bytes\"", "EBS volumes are at most 64 TiB"},
		{"negative volume", `"volume_size_gib": 1,` + "\n    \"volume_size_bytes\"", `"volume_size_gib": -3,` + "\n    \"volume_size_bytes\"", "volume size -3 GiB"},
		{"block size", `"block_size": 524288,`, `"block_size": 0,`, "block size 0, want 524288"},
	} {
		bad := strings.Replace(string(good), tc.from, tc.to, 1)
		if bad == string(good) {
			t.Fatalf("%s: %q not found in the fixture", tc.name, tc.from)
		}
		if err := os.WriteFile(filepath.Join(dir, JSONName), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Load: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestAppendStep(t *testing.T) {
	r := New(testSnap, 1, 524288, KindEvidenceDirectory, "ev")
	run := Run{StartedAt: t0}
	for _, tc := range []struct {
		step Step
		want string
	}{
		{Step{Kind: "erase", Outcome: OutcomeOK, Run: run}, `unknown kind "erase"`},
		{Step{Kind: StepExport, Outcome: OutcomeOK, Run: run}, "a successful export step has no export payload"},
		{Step{Kind: StepExport, Outcome: OutcomeOK, Run: run, Export: &Export{}, Verify: &Verify{}}, "a export step carries a verify payload"},
		{Step{Kind: StepVerify, Outcome: "maybe", Run: run, Verify: &Verify{}}, `outcome "maybe"`},
		{Step{Kind: StepVerify, Outcome: OutcomeOK, Verify: &Verify{}}, "no start time"},
	} {
		if err := r.AppendStep(tc.step); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AppendStep(%+v): %v, want %q", tc.step, err, tc.want)
		}
	}
	if len(r.Steps) != 0 {
		t.Fatalf("refused steps were appended: %d", len(r.Steps))
	}
	// A failed step may have no payload; problems beyond MaxProblems are
	// counted, not listed.
	if err := r.AppendStep(Step{Kind: StepExport, Outcome: OutcomeFailed, Error: "disk full", Run: run}); err != nil {
		t.Fatal(err)
	}
	probs := make([]Problem, MaxProblems+5)
	if err := r.AppendStep(Step{Kind: StepVerify, Outcome: OutcomeFailed, Run: run,
		Verify: &Verify{Problems: probs, MoreProblems: 10}}); err != nil {
		t.Fatal(err)
	}
	if v := r.Steps[1].Verify; len(v.Problems) != MaxProblems || v.MoreProblems != 15 || len(probs) != MaxProblems+5 {
		t.Fatalf("kept %d problems and %d more", len(v.Problems), v.MoreProblems)
	}
}

func TestNotes(t *testing.T) {
	r := fixture(t)
	r.derive()
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "The snapshot is encrypted. Blocks it does not list are zeros") {
		t.Fatalf("encrypted snapshot notes: %q", r.Notes)
	}
	r.Acquisition.AWS.Snapshot.Encrypted = false
	r.derive()
	if len(r.Notes) != 0 {
		t.Fatalf("unencrypted snapshot notes: %q", r.Notes)
	}
	r.Acquisition.AWS.Snapshot = nil
	r.Acquisition.AWS.CallerIdentity = nil
	r.Acquisition.AWS.Calls = []Call{{API: APIDescribeSnapshots, Outcome: OutcomeDenied, Code: "UnauthorizedOperation"},
		{API: APIGetCallerIdentity, Outcome: OutcomeFailed, Error: "connection refused"}}
	r.derive()
	want := []string{"EC2 DescribeSnapshots gave no answer", "STS GetCallerIdentity gave no answer",
		"ec2:DescribeSnapshots was denied to the caller (UnauthorizedOperation)"}
	if len(r.Notes) != len(want) {
		t.Fatalf("notes %q, want %d", r.Notes, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(r.Notes[i], w) {
			t.Errorf("note %d: %q, want it to start %q", i, r.Notes[i], w)
		}
	}
	if !strings.Contains(r.Notes[0], "If the snapshot is encrypted") {
		t.Errorf("no encryption caveat when encryption is unknown: %q", r.Notes[0])
	}
}

func TestDerived(t *testing.T) {
	r := fixture(t)
	if _, err := r.JSON(); err != nil {
		t.Fatal(err)
	}
	a := r.Acquisition
	if a.Seconds != 80 || a.BytesPerSecond != 190*524288/80.0 || a.BlocksPerSecond != 190/80.0 {
		t.Fatalf("derived throughput: %v s, %v B/s, %v blocks/s", a.Seconds, a.BytesPerSecond, a.BlocksPerSecond)
	}
	if e := r.Evidence; e.VolumeSizeBytes != 1<<30 || e.BlockSlots != 2048 {
		t.Fatalf("derived evidence: %+v", e)
	}
	if got := strings.Join(a.CommandLine, " "); !strings.HasSuffix(got, "--passphrase [REDACTED]") {
		t.Fatalf("command line %q", got)
	}
	if got := CaseFromFields(map[string]string{"case_number": "1", "evidence_number": "2", "examiner": "3", "description": "4", "notes": "5"}); got != (Case{"1", "2", "3", "4", "5"}) {
		t.Fatalf("CaseFromFields: %+v", got)
	}
}

func TestCollectHost(t *testing.T) {
	h := CollectHost()
	name, _ := os.Hostname()
	if h.Hostname != name || h.UID != strings.TrimSpace(itoa(os.Getuid())) || h.OS == "" || h.Arch == "" {
		t.Fatalf("CollectHost: %+v", h)
	}
	if h.User == "" {
		t.Fatalf("CollectHost found no user: %+v", h)
	}
	r := NewRun("1.2.3", []string{"ebsimager", "--token", "abc"}, t0.In(time.FixedZone("X", 3600)))
	if r.ToolVersion != "1.2.3" || r.Host != h || r.StartedAt.Location() != time.UTC || r.CommandLine[2] != Redacted {
		t.Fatalf("NewRun: %+v", r)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// The record of an incomplete acquisition names every failed block, in
// every form of the report.
func TestIncompleteRecord(t *testing.T) {
	dir := t.TempDir()
	r := fixture(t)
	r.Acquisition.ManifestSHA256 = ""
	for i := int64(0); i < 12; i++ {
		r.Acquisition.FailedBlocks = append(r.Acquisition.FailedBlocks, FailedBlock{Index: 100 + i, Error: fmt.Sprintf("boom %d", i)})
	}
	r.Acquisition.FailedBlocksUnlisted = 3
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil || len(back.Acquisition.FailedBlocks) != 12 || back.Acquisition.FailedBlocks[11] != (FailedBlock{111, "boom 11"}) || back.Acquisition.FailedBlocksUnlisted != 3 {
		t.Fatalf("Load: %v %+v", err, back.Acquisition)
	}
	for _, name := range []string{TextName, HTMLName} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"15 blocks failed after every retry", "block 100", "block 111", "boom 11", "and 3 more"} {
			if !strings.Contains(string(data), want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
	}
}

// The record's claim about the manifest is the last step that wrote one,
// and every conversion must start from the manifest recorded before it.
func TestManifestClaim(t *testing.T) {
	r := New(testSnap, 1, 524288, KindEvidenceDirectory, "ev")
	if c, err := r.ManifestClaim(); c != nil || err != nil {
		t.Fatalf("no acquisition: %+v %v", c, err)
	}
	run := Run{StartedAt: time.Unix(1, 0)}
	r.Acquisition = &Acquisition{Run: run, Blocks: 3, Bytes: 3 * 524288, ManifestSHA256: "aa"}
	c, err := r.ManifestClaim()
	if err != nil || *c != (ManifestClaim{Source: "the acquisition record", SHA256: "aa", Blocks: 3, Bytes: 3 * 524288}) {
		t.Fatalf("acquisition: %+v %v", c, err)
	}
	steps := []Step{
		{Kind: StepVerify, Outcome: OutcomeOK, Run: run, Verify: &Verify{ManifestSHA256: "ff"}},
		{Kind: StepTransform, Outcome: OutcomeOK, Run: run, Transform: &Transform{Operation: "compress", Blocks: 3, Bytes: 3 * 524288,
			SourceManifestSHA256: "aa", ManifestSHA256: "bb"}},
		{Kind: StepTransform, Outcome: OutcomeFailed, Run: run, Transform: &Transform{Operation: "encrypt", ManifestSHA256: "ee"}},
	}
	for _, s := range steps {
		if err := r.AppendStep(s); err != nil {
			t.Fatal(err)
		}
	}
	c, err = r.ManifestClaim()
	if err != nil || *c != (ManifestClaim{Source: "conversion step 2 (compress)", SHA256: "bb", Blocks: 3, Bytes: 3 * 524288}) {
		t.Fatalf("after a conversion: %+v %v", c, err)
	}
	r.AppendStep(Step{Kind: StepTransform, Outcome: OutcomeOK, Run: run, Transform: &Transform{Operation: "encrypt", SourceManifestSHA256: "cc", ManifestSHA256: "dd"}})
	if _, err := r.ManifestClaim(); err == nil || err.Error() != "conversion step 4 (encrypt) converted manifest cc, but conversion step 2 (compress) names bb" {
		t.Fatalf("broken chain: %v", err)
	}
}

// TestGoldenImported pins the record of evidence imported from a folder
// of the original tool: no AWS context, the provenance in its own
// section and in the notes, and verify steps that say what the contents
// were compared with.
func TestGoldenImported(t *testing.T) {
	r := New(testSnap, 1, 524288, KindEvidenceDirectory, "/cases/2024-017/imported")
	r.Acquisition = &Acquisition{
		Run: Run{ToolVersion: "0.1.0", Host: testHost, StartedAt: t0, FinishedAt: t0.Add(2 * time.Second),
			CommandLine: []string{"ebsimager", "import-4n6ir", "/mnt/usb/" + testSnap, "--out", "/cases/2024-017/imported"}},
		AWS:    AWS{Region: "unknown", Endpoint: "file:///mnt/usb/" + testSnap},
		Blocks: 3, Bytes: 3 * 524288,
		Import: &Import{Provenance: "snapshot-4n6ir-folder", Source: "/mnt/usb/" + testSnap, Form: "compressed",
			HashSource: HashSourceFileNames, Blocks: 3, ImportedBlocks: 3, Ignored: []string{".DS_Store"}, IgnoredCount: 1},
		ManifestSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
	err := r.AppendStep(Step{Kind: StepVerify, Outcome: OutcomeOK, Run: Run{ToolVersion: "0.1.0", Host: testHost, StartedAt: t0.Add(time.Hour),
		FinishedAt: t0.Add(time.Hour + time.Second), CommandLine: []string{"ebsimager", "verify", "/cases/2024-017/imported"}},
		Verify: &Verify{Target: "/cases/2024-017/imported", OK: true, Blocks: 3, StoredChecked: 3, ContentChecked: 3, Problems: []Problem{}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{JSONName, TextName} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "imported-"+name, data)
	}
	var page bytes.Buffer
	if err := r.HTML(&page); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	for _, want := range []string{"imported from a folder of Snapshot 4n6ir Imager", "no AWS checksum",
		"3 contents matched the SHA-256 in the original tool&#39;s file names (no AWS checksum: imported)"} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	for _, unwanted := range []string{"AWS context calls", "AWS caller", "DescribeSnapshots", "the AWS SHA-256"} {
		if strings.Contains(html, unwanted) {
			t.Errorf("report.html of an import says %q", unwanted)
		}
	}
}

// The steps' heading says where they stand against the acquisition: a
// read-live step that began before it is not "after" it.
func TestStepsHeading(t *testing.T) {
	r := fixture(t)
	if len(r.Steps) == 0 {
		t.Fatal("the fixture has no steps")
	}
	check := func(want string) {
		t.Helper()
		if got := r.StepsHeading(); got != want {
			t.Fatalf("StepsHeading = %q, want %q", got, want)
		}
		var txt, html bytes.Buffer
		if err := r.Text(&txt); err != nil {
			t.Fatal(err)
		}
		if err := r.HTML(&html); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(txt.String(), "\n"+want+":") || !strings.Contains(html.String(), "<h2>"+want+"</h2>") {
			t.Fatalf("the text or HTML record does not head its steps %q", want)
		}
	}
	check("Steps after the acquisition")
	early := r.Steps[0]
	early.Run.StartedAt = r.Acquisition.StartedAt.Add(-time.Hour)
	r.Steps = append([]Step{early}, r.Steps...)
	check("Steps before and after the acquisition")
	r.Acquisition = nil
	if got := r.StepsHeading(); got != "Steps" {
		t.Fatalf("StepsHeading without an acquisition = %q", got)
	}
}
