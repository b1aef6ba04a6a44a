package main

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ebsimager/ebsimager/internal/emulator"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/sampledisk"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// s3Download returns the object's bytes, read with GetObject.
func s3Download(t *testing.T, api *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := api.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// exportedVersions lists every version of every object under prefix, and the
// multipart uploads still open there.
func exportedVersions(t *testing.T, api *s3.Client, bucket, prefix string) (versions []string, uploads int) {
	t.Helper()
	v, err := api.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range v.Versions {
		versions = append(versions, aws.ToString(o.Key)+"@"+aws.ToString(o.VersionId))
	}
	u, err := api.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	return versions, len(u.Uploads)
}

type exportJSON struct {
	Files    []string              `json:"files"`
	Size     int64                 `json:"size"`
	Hashes   map[string]string     `json:"hashes"`
	Uploaded int64                 `json:"uploaded_bytes"`
	Objects  []report.ExportObject `json:"objects"`
}

// TestExportToS3: raw, split and E01 images written to moto are, once
// downloaded, bit-exact (the disk the emulator served; ewfverify for the
// E01), locked as asked, with checksum files equal to the local export's;
// a second export to the same name is refused and changes nothing;
// --force is refused.
func TestExportToS3(t *testing.T) {
	t.Parallel()
	ewfverify := testenv.RequireTool(t, "ewfverify")[0]
	dir := t.TempDir()
	disk, err := sampledisk.Extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	diskData, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	diskSum, diskMD5 := sha256.Sum256(diskData), md5.Sum(diskData)
	srv, endpoint := startEmulator(t, emulator.Options{})
	if err := srv.AddRawImage(snapDisk, disk, emulator.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, endpoint)
	s3c, api := s3Env(t, c)
	ev := filepath.Join(dir, "ev")
	c.ok("acquire", snapDisk, "--out", ev, "--quiet")

	// Raw, split, locked (one raw export: moto takes over a minute per
	// GiB): the objects put together are the disk, each with its lock;
	// the checksum files are the local export's, byte for byte; the
	// record lists the objects.
	local := filepath.Join(dir, "local", "disk.raw")
	os.MkdirAll(filepath.Dir(local), 0o700)
	c.ok("export", ev, "--out", local, "--split", "300MiB", "--quiet")
	until := time.Now().Add(48 * time.Hour).UTC().Format(time.DateOnly)
	args := []string{"export", ev, "--out", "s3://locked/case/disk.raw", "--split", "300MiB", "--object-lock", "governance", "--retain-until", until, "--legal-hold"}
	var r exportJSON
	if err := json.Unmarshal([]byte(c.ok(append(args, "--json")...).stdout), &r); err != nil {
		t.Fatal(err)
	}
	segments := []string{"case/disk.raw.001", "case/disk.raw.002", "case/disk.raw.003", "case/disk.raw.004"}
	h := sha256.New()
	for _, k := range segments {
		h.Write(s3Download(t, api, "locked", k))
	}
	if got := h.Sum(nil); string(got) != string(diskSum[:]) {
		t.Fatalf("the segment objects hash to %x, the disk to %x", got, diskSum)
	}
	if r.Hashes["sha256"] != hex.EncodeToString(diskSum[:]) || r.Hashes["md5"] != hex.EncodeToString(diskMD5[:]) || r.Uploaded != int64(len(diskData)) || len(r.Files) != 4 || r.Files[0] != "s3://locked/case/disk.raw.001" {
		t.Errorf("export --json: %+v", r)
	}
	for _, alg := range []string{"md5", "sha1", "sha256"} {
		if got, want := string(s3Download(t, api, "locked", "case/disk.raw."+alg)), readFile(t, local+"."+alg); got != want {
			t.Errorf("disk.raw.%s is %q, the local export's %q", alg, got, want)
		}
	}
	if got := readFile(t, local+".sha256"); !strings.HasSuffix(got, fmt.Sprintf("\n%x  -\n", diskSum)) {
		t.Errorf("the local split export's disk.raw.sha256 is %q", got)
	}
	lock := s3store.Lock{Mode: s3store.Governance, RetainUntil: mustDate(t, until), LegalHold: true}
	keys := append(segments, "case/disk.raw.md5", "case/disk.raw.sha1", "case/disk.raw.sha256")
	if len(r.Objects) != len(keys) {
		t.Fatalf("the record lists %d objects, want %d: %+v", len(r.Objects), len(keys), r.Objects)
	}
	for i, k := range keys {
		o, err := s3c.Head(context.Background(), "locked", k)
		if err != nil || o.Lock != lock {
			t.Errorf("%s: lock %+v (%v), want %+v", k, o.Lock, err, lock)
		}
		if got := r.Objects[i]; got.Bucket != "locked" || got.Key != k || got.VersionID != o.VersionID || got.VersionID == "" || got.Size != o.Size || got.SHA256 == "" {
			t.Errorf("record of %s: %+v, HEAD %+v", k, got, o)
		}
	}
	first := sha256.Sum256(s3Download(t, api, "locked", segments[0]))
	if o := r.Objects[0]; o.SHA256 != hex.EncodeToString(first[:]) || o.Size != 300<<20 || o.Parts != 19 {
		t.Errorf("record of the first segment: %+v, want its sha256 %x, 300 MiB in 19 parts", o, first)
	}
	rec := readFile(t, filepath.Join(ev, "report.json"))
	if !strings.Contains(rec, `"key": "case/disk.raw.001"`) || !strings.Contains(rec, `"version_id": "`+r.Objects[0].VersionID+`"`) {
		t.Errorf("the evidence's record does not list the export's objects:\n%s", rec)
	}

	// Again to the same name: refused before anything is sent, and
	// nothing changes; --force is refused.
	before, _ := exportedVersions(t, api, "locked", "case/")
	c.fails(exitConflict, "s3://locked/case/disk.raw.001: an object already exists", args...)
	if after, open := exportedVersions(t, api, "locked", "case/"); strings.Join(after, " ") != strings.Join(before, " ") || open != 0 || len(after) != len(keys) {
		t.Errorf("a refused export changed the bucket: %v, then %v and %d open uploads", before, after, open)
	}
	c.fails(exitUsage, "--force does not apply to --out s3://…", "export", ev, "--out", "s3://plain/x/disk.raw", "--force")

	// E01 in several segments, from evidence in S3: ewfverify checks
	// the downloaded set, and the checksum files hold the disk's hashes;
	// the export is recorded as a run object of the evidence.
	c.ok("acquire", snapDisk, "--out", "s3://plain/ev/", "--quiet")
	out := c.ok("export", "s3://plain/ev/", "--format", "e01", "--segment-size", "1MiB", "--compression", "none", "--out", "s3://plain/e01/disk.E01").stdout
	if !strings.Contains(out, "into s3://plain/e01/disk.E01") {
		t.Errorf("export e01:\n%s", out)
	}
	runs, err := s3c.List(context.Background(), "plain", "ev/runs/", 10)
	if err != nil || len(runs) != 1 || !strings.HasSuffix(runs[0].Key, "-export.json") {
		t.Fatalf("run objects of the evidence: %v, %v", runs, err)
	}
	if step := string(s3Download(t, api, "plain", runs[0].Key)); !strings.Contains(step, `"key": "e01/disk.E01"`) || !strings.Contains(step, `"key": "e01/disk.sha256"`) {
		t.Errorf("the export's run object:\n%s", step)
	}
	keysE01, err := s3c.List(context.Background(), "plain", "e01/disk.E", 1000)
	if err != nil || len(keysE01) < 2 {
		t.Fatalf("E01 segments: %v, %v", keysE01, err)
	}
	down := filepath.Join(dir, "down")
	os.MkdirAll(down, 0o700)
	for _, k := range keysE01 {
		if err := os.WriteFile(filepath.Join(down, filepath.Base(k.Key)), s3Download(t, api, "plain", k.Key), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := exec.Command(ewfverify, "-q", filepath.Join(down, "disk.E01")).CombinedOutput(); err != nil || !strings.Contains(string(v), "SUCCESS") {
		t.Errorf("ewfverify of the downloaded E01 (%d segments): %v\n%s", len(keysE01), err, v)
	}
	if got := string(s3Download(t, api, "plain", "e01/disk.sha256")); !strings.Contains(got, fmt.Sprintf("\n%x  disk.raw\n", diskSum)) {
		t.Errorf("e01/disk.sha256:\n%s", got)
	}
	if leftover, _ := filepath.Glob(filepath.Join(os.TempDir(), "ebsimager-e01-*")); len(leftover) > 0 {
		t.Logf("scratch directories in %s (maybe other runs'): %v", os.TempDir(), leftover)
	}
}

// TestExportToS3Fails: a part S3 refuses mid-upload ends the export
// (access denied, exit 5) with every upload aborted: no object under any
// name of the image, and no upload left open.
func TestExportToS3Fails(t *testing.T) {
	t.Parallel()
	_, endpoint := startEmulator(t, emulator.Options{}, snapA+"=1GiB,0.3,1")
	c := newCLI(t, endpoint)
	_, api := s3Env(t, c)
	ev := filepath.Join(t.TempDir(), "ev")
	c.ok("acquire", snapA, "--out", ev, "--quiet")

	// In front of moto: the fifth part is refused.
	upstream, _ := url.Parse(strings.TrimPrefix(c.env[len(c.env)-1], "AWS_ENDPOINT_URL_S3="))
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	var parts atomic.Int64
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != "" && parts.Add(1) == 5 {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(fail.Close)
	failing := newCLI(t, endpoint)
	failing.env = append(failing.env, "AWS_ENDPOINT_URL_S3="+fail.URL)
	failing.fails(exitDenied, "s3:UploadPart on bucket plain, key f/disk.002 denied", "export", ev, "--out", "s3://plain/f/disk", "--split", "48MiB", "--quiet")
	if versions, open := exportedVersions(t, api, "plain", "f/"); len(versions) != 0 || open != 0 {
		t.Errorf("after the failed export: objects %v, %d uploads open", versions, open)
	}
}
