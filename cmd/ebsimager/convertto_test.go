package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
)

const snapConv = "snap-0c0c0c0c0c0c0c0c0"

// randomDisk writes a 1 GiB sparse disk image with 48 blocks of random
// bytes (one of them short of a whole block of data, the rest zeros) and
// returns its path.
func randomDisk(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, block.Size)
	for i := range int64(48) {
		rand.Read(buf)
		n := len(buf)
		if i == 7 {
			n = 1000
		}
		if _, err := f.WriteAt(buf[:n], (i*37+3)*block.Size); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// s3Record reads the record of the evidence at u.
func s3Record(t *testing.T, c *s3store.Client, u s3store.URL) *report.Report {
	t.Helper()
	data, err := c.Get(context.Background(), u.Bucket, u.Key(report.JSONName), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	var rec report.Report
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	return &rec
}

// checkS3Blocks checks the HEAD of every block object of the evidence at
// u: the stored bytes' SHA-256 as S3's checksum, the content SHA-256 in
// the metadata, and the lock.
func checkS3Blocks(t *testing.T, c *s3store.Client, u s3store.URL, es []manifest.Entry, lock s3store.Lock) {
	t.Helper()
	for _, e := range es {
		o, err := c.Head(context.Background(), u.Bucket, u.Key(e.Name))
		if err != nil || o.SHA256.Hex() != e.StoredSHA256 || o.Metadata[store.MetaSHA256] != e.SHA256 ||
			o.Metadata[store.MetaLength] != fmt.Sprint(e.Length) || o.Lock != lock {
			t.Fatalf("block %d's object %s: %+v, %v; want checksum %s, content %s, lock %+v", e.Index, e.Name, o, err, e.StoredSHA256, e.SHA256, lock)
		}
	}
}

func verifyS3JSON(t *testing.T, c *cli, u string, args ...string) verifyOutput {
	t.Helper()
	var v verifyOutput
	if err := json.Unmarshal([]byte(c.ok(append([]string{"verify", u, "--json"}, args...)...).stdout), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func transformJSON(t *testing.T, r result) transformSummary {
	t.Helper()
	var s transformSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	return s
}

// TestConvertToS3: compress a directory into a locked bucket, then
// encrypt and decrypt S3 to S3; every result verifies and exports to the
// disk the emulator served, bit for bit; the source is never written;
// a tampered source block stops the conversion, with no manifest.
func TestConvertToS3(t *testing.T) {
	t.Parallel()
	disk := randomDisk(t)
	want := sha256File(t, disk) // the disk, hashed here, independently of the tool
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapConv, disk, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	s3c, _ := s3Env(t, c)
	ref := filepath.Join(t.TempDir(), "ref")
	c.ok("acquire", snapConv, "--out", ref, "--quiet", "--case-number", "C-15")
	before := fileHashes(t, ref)
	refManifest := sha256File(t, filepath.Join(ref, store.ManifestName))

	c.fails(exitUsage, "cannot be converted in place; give --out s3://bucket/new-prefix/", "compress", "s3://locked/any/")
	c.fails(exitUsage, "--legal-hold applies to --out s3://bucket/prefix/", "compress", ref, "--legal-hold")
	c.fails(exitUsage, "encrypts to --recipient/--recipients-file keys only", "encrypt", ref, "--out", "s3://plain/p/")

	// Compress into the locked bucket.
	z, _ := s3store.ParseURL("s3://locked/case-15/z/")
	until := time.Now().Add(72 * time.Hour).UTC().Format(time.DateOnly)
	s := transformJSON(t, c.ok("compress", ref, "--out", z.String(), "--object-lock", "governance", "--retain-until", until, "--json"))
	_, es := s3Manifest(t, s3c, z)
	if s.Blocks != 48 || len(es) != 48 || s.Decoded != 48 || s.Resumed != 0 || s.From != "none" || s.To != "zstd" ||
		s.SourceManifestSHA256 != refManifest || s.Evidence != z.String() {
		t.Fatalf("compress to S3: %+v, %d entries", s, len(es))
	}
	for _, e := range es {
		if e.Codec != "zstd" || e.Encryption != "none" || !strings.HasSuffix(e.Name, ".zst") || e.StoredSHA256 == e.SHA256 {
			t.Fatalf("entry %+v", e)
		}
	}
	checkS3Blocks(t, s3c, z, es, s3store.Lock{Mode: s3store.Governance, RetainUntil: mustDate(t, until)})
	if v := verifyS3JSON(t, c, z.String()); !v.OK || v.Blocks != 48 || v.StoredChecked != 48 || v.ContentChecked != 48 {
		t.Fatalf("verify of the compressed evidence: %+v", v)
	}
	if got := exportSHA256(t, c, z.String()); got != want {
		t.Fatalf("export of the compressed evidence: sha256 %s, the disk's %s", got, want)
	}
	// Its record is the source's acquisition, with the conversion last.
	rec := s3Record(t, s3c, z)
	abs, _ := filepath.Abs(ref)
	last := rec.Steps[len(rec.Steps)-1].Transform
	if rec.Acquisition == nil || rec.Acquisition.ManifestSHA256 != refManifest || rec.Evidence.Location != z.String() ||
		rec.Evidence.ObjectLock == nil || rec.Evidence.ObjectLock.Mode != s3store.Governance || rec.Case.CaseNumber != "C-15" ||
		last == nil || last.Operation != "compress" || last.SourceEvidence != abs || last.SourceManifestSHA256 != refManifest ||
		last.ManifestSHA256 != s.ManifestSHA256 || last.Codec != "zstd" {
		t.Fatalf("record of the compressed evidence: %+v, last step %+v", rec, last)
	}
	if claim, err := rec.ManifestClaim(); err != nil || claim.SHA256 != s.ManifestSHA256 {
		t.Fatalf("the record's manifest claim: %+v, %v", claim, err)
	}
	// A rerun reads and writes nothing.
	if s := transformJSON(t, c.ok("compress", ref, "--out", z.String(), "--object-lock", "governance", "--retain-until", until, "--json")); !s.NothingToDo || s.Resumed != 48 || s.Decoded != 0 || s.StoredBefore != 0 {
		t.Fatalf("rerun: %+v", s)
	}
	out := c.ok("compress", ref, "--out", z.String(), "--object-lock", "governance", "--retain-until", until).stdout
	for _, line := range []string{
		fmt.Sprintf("compressed %s into %s: 48 blocks, none → zstd\n", abs, z),
		"  checked    0 blocks read from the source",
		"  resumed    48 blocks already stored there (checked), not converted again\n",
		"  source     manifest sha256 " + refManifest + "\n",
	} {
		if !strings.Contains(out, line) {
			t.Fatalf("the rerun's summary lacks %q:\n%s", line, out)
		}
	}
	if after := fileHashes(t, ref); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("the source directory changed")
	}

	// Encrypt S3 to S3, then decrypt S3 to S3.
	identity, recipient := makeIdentity(t)
	e, _ := s3store.ParseURL("s3://plain/e/")
	c.fails(exitUsage, "cannot be converted in place", "encrypt", z.String(), "--recipient", recipient)
	s = transformJSON(t, c.ok("encrypt", z.String(), "--out", e.String(), "--recipient", recipient, "--json"))
	_, ees := s3Manifest(t, s3c, e)
	if s.To != "zstd+age" || len(ees) != 48 || ees[0].Encryption != "age" || !strings.HasSuffix(ees[0].Name, ".zst.age") {
		t.Fatalf("encrypt to S3: %+v, first entry %+v", s, ees[0])
	}
	checkS3Blocks(t, s3c, e, ees, s3store.Lock{})
	if v := verifyS3JSON(t, c, e.String(), "--identity", identity); !v.OK || v.ContentChecked != 48 {
		t.Fatalf("verify of the encrypted evidence: %+v", v)
	}
	d, _ := s3store.ParseURL("s3://plain/d/")
	c.fails(exitWrongKey, "", "decrypt", e.String(), "--out", d.String())
	if _, err := s3c.Head(context.Background(), d.Bucket, d.Key(store.MetaName)); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("a decrypt without a key wrote %s: %v", store.MetaName, err)
	}
	s = transformJSON(t, c.ok("decrypt", e.String(), "--out", d.String(), "--identity", identity, "--json"))
	lines, des := s3Manifest(t, s3c, d)
	zLines, _ := s3Manifest(t, s3c, z)
	if s.To != "zstd" || lines != zLines {
		t.Fatalf("decrypt to S3: %+v; its entries differ from the compressed evidence's", s)
	}
	checkS3Blocks(t, s3c, d, des, s3store.Lock{})
	c.ok("verify", d.String(), "--quiet")
	if got := exportSHA256(t, c, d.String()); got != want {
		t.Fatalf("export of the decrypted evidence: sha256 %s, the disk's %s", got, want)
	}
	if rec := s3Record(t, s3c, d); len(rec.Steps) != 3 || rec.Steps[1].Transform.SourceEvidence != z.String() || rec.Steps[2].Transform.SourceEvidence != e.String() {
		t.Fatalf("record of the decrypted evidence: steps %+v", rec.Steps)
	}

	// Down from S3 into a new directory, uncompressed.
	c.fails(exitUsage, "is the evidence converted", "compress", ref, "--out", ref+"/")
	local := filepath.Join(t.TempDir(), "local")
	s = transformJSON(t, c.ok("uncompress", d.String(), "--out", local, "--json"))
	if s.To != "none" || s.Blocks != 48 || s.Evidence != local || manifestBlocks(t, local) != manifestBlocks(t, ref) {
		t.Fatalf("uncompress to a directory: %+v; its entries differ from the acquisition's", s)
	}
	c.ok("verify", local, "--quiet")
	if got := exportSHA256(t, c, local); got != want {
		t.Fatalf("export of the local copy: sha256 %s, the disk's %s", got, want)
	}
	if rec, err := report.Load(local); err != nil || len(rec.Steps) != 6 || rec.Steps[4].Kind != report.StepVerify || rec.Evidence.Location != local || rec.Evidence.ObjectLock != nil ||
		rec.Steps[3].Transform.SourceEvidence != d.String() || rec.Steps[3].Transform.SourceManifestSHA256 != rec.Steps[2].Transform.ManifestSHA256 {
		t.Fatalf("record of the local copy (%v): %+v", err, rec)
	}
	if s := transformJSON(t, c.ok("uncompress", d.String(), "--out", local, "--json")); !s.NothingToDo || s.Resumed != 48 {
		t.Fatalf("rerun to the directory: %+v", s)
	}

	// A tampered block of the source stops the conversion: exit 4, no
	// manifest.
	bad := filepath.Join(t.TempDir(), "bad")
	if out, err := exec.Command("cp", "-a", ref, bad).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	victim := filepath.Join(bad, filepath.FromSlash(es[20].Name[:len(es[20].Name)-len(".zst")]))
	data := []byte(readFile(t, victim))
	data[100] ^= 1
	if err := os.WriteFile(victim, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := s3store.ParseURL("s3://plain/bad/")
	c.fails(exitMismatch, fmt.Sprintf("converting %s stopped: block %d (", bad, es[20].Index), "compress", bad, "--out", b.String(), "--workers", "1")
	for _, name := range []string{store.ManifestName, store.ManifestSumName, report.JSONName} {
		if _, err := s3c.Head(context.Background(), b.Bucket, b.Key(name)); !errors.Is(err, bucket.ErrNotFound) {
			t.Fatalf("a failed conversion left %s: %v", name, err)
		}
	}
	// Its record is a run object of its own, naming the block.
	runs, err := store.ListRuns(context.Background(), s3c.Bucket(b, s3store.Lock{}))
	if err != nil || len(runs) != 1 || !strings.HasSuffix(runs[0].Key, "-compress.json") {
		t.Fatalf("run objects of the failed conversion: %+v, %v", runs, err)
	}
	body, err := s3c.Get(context.Background(), b.Bucket, b.Key(runs[0].Key), store.MaxRunObject)
	var step report.Step
	if err != nil || json.Unmarshal(body, &step) != nil || step.Outcome != report.OutcomeFailed || step.Transform == nil ||
		step.Transform.SourceEvidence != bad || !strings.Contains(step.Error, fmt.Sprintf("block %d (", es[20].Index)) {
		t.Fatalf("the failed conversion's run object (%v): %s", err, body)
	}
}

// TestConvertToS3Kill9Resume: a conversion killed mid-way resumes, and
// reads and converts none of the blocks already in the bucket again.
func TestConvertToS3Kill9Resume(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, snapA+"=1GiB,0.4,1")
	c := newCLI(t, endpoint)
	s3c, _ := s3Env(t, c)
	ref := filepath.Join(t.TempDir(), "ref")
	c.ok("acquire", snapA, "--out", ref, "--quiet")
	refEntries := map[int64]manifest.Entry{}
	for _, l := range strings.Split(manifestBlocks(t, ref), "\n") {
		var e manifest.Entry
		if json.Unmarshal([]byte(l), &e) == nil && e.Type == "block" {
			refEntries[e.Index] = e
		}
	}

	u, _ := s3store.ParseURL("s3://locked/k/")
	args := []string{"compress", ref, "--out", u.String(), "--object-lock", "compliance", "--retain-days", "1", "--workers", "2"}
	killOnceStored(t, c.command(t.Context(), append(args, "--quiet")...), s3c, u, 50, "the conversion")
	before := map[int64]bool{}
	for _, i := range storedBlocks(t, s3c, u) {
		before[i] = true
	}
	if _, err := s3c.Head(context.Background(), u.Bucket, u.Key(store.ManifestName)); err == nil {
		t.Fatal("killed too late: the conversion had finished")
	}
	s := transformJSON(t, c.ok(append(args, "--json")...))
	var readAgain int64
	for i, e := range refEntries {
		if !before[i] {
			readAgain += e.Size
		}
	}
	if s.Resumed != int64(len(before)) || s.Decoded != int64(len(refEntries)-len(before)) || s.StoredBefore != readAgain {
		t.Fatalf("rerun after kill -9: %+v; %d blocks were in the bucket, %d in the source (%d bytes not converted)", s, len(before), len(refEntries), readAgain)
	}
	_, es := s3Manifest(t, s3c, u)
	if len(es) != len(refEntries) {
		t.Fatalf("the resumed conversion's manifest has %d entries, want %d", len(es), len(refEntries))
	}
	for _, e := range es {
		if r := refEntries[e.Index]; r.SHA256 != e.SHA256 || r.Length != e.Length {
			t.Fatalf("block %d: %+v, the source's %+v", e.Index, e, r)
		}
	}
	c.ok("verify", u.String(), "--quiet")
}

// TestImport4n6irToS3: the original tool's folders into S3 (plain; and
// encrypted, stored compressed and age-encrypted under a lock) verify
// and export to the vectors' image.
func TestImport4n6irToS3(t *testing.T) {
	t.Parallel()
	v := loadFernetVectors(t)
	blocks := vectorBlocks(t, v)
	plainBlocks := map[int64][]byte{}
	for _, b := range v.Blocks {
		if b.Plain {
			plainBlocks[b.Index] = blocks[b.Index]
		}
	}
	c := newCLI(t, "")
	c.env = []string{"EBSIMAGER_PASSPHRASE=" + v.Password, "EBSIMAGER_SALT=" + v.Salt}
	s3c, _ := s3Env(t, c)

	p, _ := s3store.ParseURL("s3://plain/import/plain/")
	c.ok("import-4n6ir", filepath.Join(vectorDir, v.Folders["plain"]), "--out", p.String(), "--case-number", "C-42", "--quiet")
	r := c.ok("verify", p.String())
	if !strings.Contains(r.stdout, fmt.Sprintf("%d block contents matched the SHA-256 in the original tool's file names (no AWS checksum: imported)", len(plainBlocks))) {
		t.Fatalf("verify of the plain import:\n%s", r.stdout)
	}
	if got, want := exportSHA256(t, c, p.String()), imageSHA256(v.VolumeGiB, plainBlocks); got != want {
		t.Fatalf("export of the plain import: sha256 %s, want %s", got, want)
	}
	_, es := s3Manifest(t, s3c, p)
	checkS3Blocks(t, s3c, p, es, s3store.Lock{})
	rec := s3Record(t, s3c, p)
	if im := rec.Acquisition.Import; im == nil || im.Provenance != store.ProvenanceImported || im.Form != "plain" ||
		im.HashSource != report.HashSourceFileNames || rec.Evidence.Location != p.String() || rec.Case.CaseNumber != "C-42" {
		t.Fatalf("record of the plain import: %+v", rec.Acquisition)
	}

	identity, recipient := makeIdentity(t)
	enc := filepath.Join(vectorDir, v.Folders["encrypted"])
	c.fails(exitUsage, "encrypts to --recipient/--recipients-file keys only", "import-4n6ir", enc, "--out", "s3://plain/x/", "--encrypt")
	s, _ := s3store.ParseURL("s3://locked/import/sealed/")
	c.ok("import-4n6ir", enc, "--out", s.String(), "--quiet", "--compress", "zstd", "--recipient", recipient,
		"--object-lock", "governance", "--retain-days", "2", "--legal-hold")
	_, ses := s3Manifest(t, s3c, s)
	o, err := s3c.Head(context.Background(), s.Bucket, s.Key(ses[0].Name))
	if err != nil || o.Lock.Mode != s3store.Governance || !o.Lock.LegalHold {
		t.Fatalf("the sealed import's first object: %+v, %v", o, err)
	}
	checkS3Blocks(t, s3c, s, ses, o.Lock)
	if len(ses) != len(v.Blocks) || ses[0].Codec != "zstd" || ses[0].Encryption != "age" {
		t.Fatalf("sealed import: %d entries, first %+v", len(ses), ses[0])
	}
	c.ok("verify", s.String(), "--quiet", "--identity", identity)
	if got, want := exportSHA256(t, c, s.String(), "--identity", identity), imageSHA256(v.VolumeGiB, blocks); got != want {
		t.Fatalf("export of the sealed import: sha256 %s, want %s", got, want)
	}
	if rec := s3Record(t, s3c, s); rec.Acquisition.Import == nil || rec.Acquisition.Import.Form != "encrypted" || rec.Evidence.ObjectLock == nil || !rec.Evidence.ObjectLock.LegalHold {
		t.Fatalf("record of the sealed import: %+v, %+v", rec.Acquisition, rec.Evidence)
	}
}
