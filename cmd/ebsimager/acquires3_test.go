package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// s3Env starts moto (behind the proxy that checks x-amz-checksum-sha256
// as S3 does and moto does not), creates the buckets "locked" (Object
// Lock) and "plain", and points the CLI's S3 at it.
func s3Env(t *testing.T, c *cli) (*s3store.Client, *s3.Client) {
	t.Helper()
	endpoint := testenv.S3Checksums(t, testenv.Moto(t))
	c.env = append(c.env, "AWS_ENDPOINT_URL_S3="+endpoint)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("emulator", "emulator", ""), BaseEndpoint: aws.String(endpoint)}
	api := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	for name, locked := range map[string]bool{"locked": true, "plain": false} {
		if _, err := api.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(locked)}); err != nil {
			t.Fatal(err)
		}
	}
	return s3store.New(cfg, s3store.Options{}), api
}

// s3Manifest returns the entries of the manifest under u, without its
// header, as manifestBlocks does for a directory.
func s3Manifest(t *testing.T, c *s3store.Client, u s3store.URL) (string, []manifest.Entry) {
	t.Helper()
	data, err := c.Get(context.Background(), u.Bucket, u.Key(store.ManifestName), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var es []manifest.Entry
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, `"type":"header"`) {
			continue
		}
		lines = append(lines, l)
		var e manifest.Entry
		if json.Unmarshal([]byte(l), &e) == nil && e.Type == "block" {
			es = append(es, e)
		}
	}
	return strings.Join(lines, "\n"), es
}

func TestAcquireToS3(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	s3c, _ := s3Env(t, c)
	ref := filepath.Join(t.TempDir(), "ref")
	c.ok("acquire", snapA, "--out", ref, "--quiet")

	// A bucket without Object Lock is refused before anything is fetched.
	srv.ResetCounters()
	c.fails(exitInvalid, "bucket plain has no Object Lock", "acquire", snapA, "--out", "s3://plain/x/", "--object-lock", "governance", "--retain-days", "1", "--quiet")
	if n := srv.Counters().Total("GetSnapshotBlock"); n != 0 {
		t.Fatalf("%d blocks fetched for a refused bucket", n)
	}
	c.fails(exitUsage, "--object-lock needs exactly one of --retain-until DATE and --retain-days N", "acquire", snapA, "--out", "s3://locked/x/", "--object-lock", "compliance")
	c.fails(exitUsage, "--legal-hold applies to --out s3://bucket/prefix/", "acquire", snapA, "--out", ref, "--legal-hold")

	// Into the locked bucket: the manifest's entries are the directory's.
	u, _ := s3store.ParseURL("s3://locked/case-1/" + snapA + "/")
	until := time.Now().Add(72 * time.Hour).UTC().Format(time.DateOnly)
	s := acquireJSON(t, c.ok("acquire", snapA, "--out", u.String(), "--object-lock", "governance", "--retain-until", until, "--legal-hold", "--json"))
	lines, es := s3Manifest(t, s3c, u)
	if lines != manifestBlocks(t, ref) || s.Blocks != int64(len(es)) || s.ManifestSHA256 == "" {
		t.Fatalf("the S3 manifest's %d entries differ from the directory's (summary %+v)", len(es), s)
	}
	want := s3store.Lock{Mode: s3store.Governance, RetainUntil: mustDate(t, until), LegalHold: true}
	for _, e := range es {
		o, err := s3c.Head(context.Background(), u.Bucket, u.Key(e.Name))
		if err != nil || o.SHA256.Hex() != e.StoredSHA256 || o.Lock != want || o.Metadata[store.MetaSHA256] != e.SHA256 {
			t.Fatalf("block %d's object: %+v, %v; want checksum %s and lock %+v", e.Index, o, err, e.StoredSHA256, want)
		}
	}
	for _, name := range []string{store.MetaName, store.ManifestSumName, "report.json", "report.txt"} {
		if o, err := s3c.Head(context.Background(), u.Bucket, u.Key(name)); err != nil || o.Lock != want {
			t.Errorf("%s: %+v, %v", name, o, err)
		}
	}
	txt, err := s3c.Get(context.Background(), u.Bucket, u.Key("report.txt"), 1<<20)
	if err != nil || !strings.Contains(string(txt), "Object Lock:        governance retention until "+until+"T00:00:00Z, and a legal hold") {
		t.Errorf("report.txt does not record the lock (%v):\n%s", err, txt)
	}
	meta, err := s3c.Get(context.Background(), u.Bucket, u.Key(store.MetaName), 1<<20)
	if err != nil || !strings.Contains(string(meta), `"object_lock": {`) || !strings.Contains(string(meta), `"mode": "GOVERNANCE"`) {
		t.Errorf("evidence.json does not record the lock: %s", meta)
	}

	// verify checks every object, against S3's checksum too.
	var v verifyOutput
	if err := json.Unmarshal([]byte(c.ok("verify", u.String(), "--json").stdout), &v); err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Blocks != int64(len(es)) || v.StoredChecked != int64(len(es)) || v.ContentChecked != int64(len(es)) || v.Journals.Outcome != store.CompareMatch {
		t.Errorf("verify: %+v", v)
	}

	// export from S3 is bit-exact: the same image and hashes as from
	// the directory; inspect reads the same layout.
	dir := t.TempDir()
	c.ok("export", ref, "--out", filepath.Join(dir, "ref.raw"), "--quiet")
	c.ok("export", u.String(), "--out", filepath.Join(dir, "s3.raw"), "--quiet")
	if a, b := sha256File(t, filepath.Join(dir, "ref.raw")), sha256File(t, filepath.Join(dir, "s3.raw")); a != b || readFile(t, filepath.Join(dir, "ref.raw.sha256"))[:64] != readFile(t, filepath.Join(dir, "s3.raw.sha256"))[:64] {
		t.Errorf("export from S3: image sha256 %s, from the directory %s", b, a)
	}
	if a, b := c.ok("inspect", ref).stdout, c.ok("inspect", u.String()).stdout; strings.ReplaceAll(b, u.String(), ref) != a {
		t.Errorf("inspect from S3:\n%s\nfrom the directory:\n%s", b, a)
	}

	// A rerun fetches nothing and writes nothing.
	srv.ResetCounters()
	s = acquireJSON(t, c.ok("acquire", snapA, "--out", u.String(), "--object-lock", "governance", "--retain-until", until, "--legal-hold", "--json"))
	if !s.Complete || s.Fetched != 0 || s.Resumed != int64(len(es)) || srv.Counters().Total("GetSnapshotBlock") != 0 {
		t.Errorf("rerun: %+v", s)
	}
	c.fails(exitUsage, "resume it with the same --object-lock", "acquire", snapA, "--out", u.String(), "--quiet")

	// Compressed, to another prefix.
	z, _ := s3store.ParseURL("s3://plain/z/")
	c.ok("acquire", snapA, "--out", z.String(), "--compress", "zstd", "--quiet")
	_, zs := s3Manifest(t, s3c, z)
	c.ok("verify", z.String(), "--quiet")
	if len(zs) != len(es) || zs[0].Codec != "zstd" || zs[0].SHA256 != es[0].SHA256 || zs[0].StoredSHA256 == zs[0].SHA256 || !strings.HasSuffix(zs[0].Name, ".zst") {
		t.Errorf("compressed: %d entries, first %+v", len(zs), zs[0])
	}
}

// TestVerifyS3Tampered: in a bucket without Object Lock, an object
// replaced behind the evidence's back fails verify, named.
func TestVerifyS3Tampered(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, specA)
	c := newCLI(t, endpoint)
	s3c, api := s3Env(t, c)
	u, _ := s3store.ParseURL("s3://plain/t/")
	c.ok("acquire", snapA, "--out", u.String(), "--quiet")
	_, es := s3Manifest(t, s3c, u)
	e := es[len(es)/2]
	sum := tamperS3Object(t, s3c, api, u, e, 1000, 0x40)
	r := c.run("verify", u.String())
	if r.code != exitMismatch || !strings.Contains(r.stdout, e.Name) || !strings.Contains(r.stdout, "the store's checksum is "+hex.EncodeToString(sum[:])) {
		t.Errorf("verify of a tampered object: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A rerun of acquire finds it too, and stops: it can neither trust
	// nor overwrite it.
	c.fails(exitConflict, e.Name+": stored sha256 "+hex.EncodeToString(sum[:])+", its journal line says "+e.StoredSHA256, "acquire", snapA, "--out", u.String(), "--quiet")
}

// TestTriageFromS3: triage reads evidence in S3 through the Volume,
// every block it reads checked, and names each with the manifest's
// SHA-256.
func TestTriageFromS3(t *testing.T) {
	t.Parallel()
	d := buildLinuxDisk(t, 4<<20)
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapLinux, d.path, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	s3Env(t, c)
	u := "s3://locked/triage/" + snapLinux + "/"
	c.ok("acquire", snapLinux, "--out", u, "--compress", "zstd", "--quiet")
	out := filepath.Join(t.TempDir(), "triage")
	c.ok("triage", u, "--out", out)
	rec := checkTriage(t, d, out, false, false)
	if rec.Blocks.ChecksumSource != report.ChecksumManifest || rec.Source.Kind != report.KindEvidenceDirectory || rec.Source.Location != u {
		t.Fatalf("triage from S3: checksums from %q, source %+v", rec.Blocks.ChecksumSource, rec.Source)
	}
	checkBlockSums(t, d.path, rec)
}

func mustDate(t *testing.T, s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAcquireToS3Kill9Resume: killed mid-upload, the rerun fetches none
// of the blocks already in the bucket again, and never overwrites.
func TestAcquireToS3Kill9Resume(t *testing.T) {
	t.Parallel()
	srv, endpoint := startEmulator(t, emulator.Options{Latency: 20 * time.Millisecond}, snapA+"=1GiB,0.4,1")
	c := newCLI(t, endpoint)
	s3c, _ := s3Env(t, c)
	ref := filepath.Join(t.TempDir(), "ref")
	c.ok("acquire", snapA, "--out", ref, "--quiet")
	srv.ResetCounters()

	u, _ := s3store.ParseURL("s3://locked/k/")
	cmd := c.command(t.Context(), "acquire", snapA, "--out", u.String(), "--object-lock", "compliance", "--retain-days", "1", "--quiet", "--workers", "4")
	killOnceStored(t, cmd, s3c, u, 100, "the acquisition")
	before := storedBlocks(t, s3c, u)
	if _, err := s3c.Head(context.Background(), u.Bucket, u.Key(store.ManifestName)); err == nil {
		t.Fatal("killed too late: the acquisition had finished")
	}
	s := acquireJSON(t, c.ok("acquire", snapA, "--out", u.String(), "--object-lock", "compliance", "--retain-days", "1", "--json"))
	if s.Resumed < int64(len(before)) {
		t.Fatalf("resumed %d blocks, %d were in the bucket before the kill", s.Resumed, len(before))
	}
	for _, i := range before {
		if n := srv.BlockGets(snapA, i); n != 1 {
			t.Fatalf("block %d was stored before the kill but fetched %d times", i, n)
		}
	}
	if lines, _ := s3Manifest(t, s3c, u); lines != manifestBlocks(t, ref) {
		t.Fatal("the resumed acquisition's manifest entries differ from an uninterrupted one's")
	}
}

// storedBlocks returns the indexes of the block objects of the evidence
// at u, in key order.
func storedBlocks(t *testing.T, s3c *s3store.Client, u s3store.URL) []int64 {
	t.Helper()
	keys, err := s3c.List(context.Background(), u.Bucket, u.Key("blocks/"), 100000)
	if err != nil {
		t.Fatal(err)
	}
	var idx []int64
	for _, k := range keys {
		if fi, _, err := block.ParseFileName(path.Base(k.Key)); err == nil {
			idx = append(idx, fi.Index)
		}
	}
	return idx
}

// killOnceStored starts cmd (what it does, for messages) and kills it
// with SIGKILL once the evidence at u holds at least n block objects.
func killOnceStored(t *testing.T, cmd *exec.Cmd, s3c *s3store.Client, u s3store.URL, n int, what string) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(storedBlocks(t, s3c, u)) < n {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("%s stored nothing in two minutes", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

// tamperS3Object flips the bits mask of byte at of e's object in the
// evidence at u, and writes it back with its new SHA-256 as S3's checksum
// (as someone who can write to an unlocked bucket would): only the
// manifest can tell. It returns the new SHA-256.
func tamperS3Object(t *testing.T, s3c *s3store.Client, api *s3.Client, u s3store.URL, e manifest.Entry, at int, mask byte) block.Sum {
	t.Helper()
	data, err := s3c.Get(context.Background(), u.Bucket, u.Key(e.Name), e.Size)
	if err != nil {
		t.Fatal(err)
	}
	data[at] ^= mask
	sum := sha256.Sum256(data)
	if _, err := api.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(u.Bucket), Key: aws.String(u.Key(e.Name)),
		Body: bytes.NewReader(data), ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256, ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:]))}); err != nil {
		t.Fatal(err)
	}
	return sum
}
