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

	// Raw, split (one raw export, to a bucket without versions: moto
	// takes minutes per GiB): the objects put together are the disk; the
	// checksum files are the local export's, byte for byte; the record
	// lists the objects.
	local := filepath.Join(dir, "local", "disk.raw")
	os.MkdirAll(filepath.Dir(local), 0o700)
	c.ok("export", ev, "--out", local, "--split", "300MiB", "--quiet")
	var r exportJSON
	if err := json.Unmarshal([]byte(c.ok("export", ev, "--out", "s3://plain/case/disk.raw", "--split", "300MiB", "--json").stdout), &r); err != nil {
		t.Fatal(err)
	}
	segments := []string{"case/disk.raw.001", "case/disk.raw.002", "case/disk.raw.003", "case/disk.raw.004"}
	h := sha256.New()
	var first [32]byte
	for i, k := range segments {
		data := s3Download(t, api, "plain", k)
		if i == 0 {
			first = sha256.Sum256(data)
		}
		h.Write(data)
	}
	if got := h.Sum(nil); string(got) != string(diskSum[:]) {
		t.Fatalf("the segment objects hash to %x, the disk to %x", got, diskSum)
	}
	if r.Hashes["sha256"] != hex.EncodeToString(diskSum[:]) || r.Hashes["md5"] != hex.EncodeToString(diskMD5[:]) || r.Uploaded != int64(len(diskData)) || len(r.Files) != 4 || r.Files[0] != "s3://plain/case/disk.raw.001" {
		t.Errorf("export --json: %+v", r)
	}
	for _, alg := range []string{"md5", "sha1", "sha256"} {
		if got, want := string(s3Download(t, api, "plain", "case/disk.raw."+alg)), readFile(t, local+"."+alg); got != want {
			t.Errorf("disk.raw.%s is %q, the local export's %q", alg, got, want)
		}
	}
	if got := readFile(t, local+".sha256"); !strings.HasSuffix(got, fmt.Sprintf("\n%x  -\n", diskSum)) {
		t.Errorf("the local split export's disk.raw.sha256 is %q", got)
	}
	keys := append(segments, "case/disk.raw.md5", "case/disk.raw.sha1", "case/disk.raw.sha256")
	if len(r.Objects) != len(keys) {
		t.Fatalf("the record lists %d objects, want %d: %+v", len(r.Objects), len(keys), r.Objects)
	}
	for i, k := range keys {
		if got := r.Objects[i]; got.Bucket != "plain" || got.Key != k || got.SHA256 == "" || got.Checksum == "" {
			t.Errorf("record of %s: %+v", k, got)
		}
	}
	if o := r.Objects[0]; o.SHA256 != hex.EncodeToString(first[:]) || o.Size != 300<<20 || o.Parts != 19 {
		t.Errorf("record of the first segment: %+v, want its sha256 %x, 300 MiB in 19 parts", o, first)
	}
	rec := readFile(t, filepath.Join(ev, "report.json"))
	if !strings.Contains(rec, `"key": "case/disk.raw.001"`) || !strings.Contains(rec, `"sha256": "`+r.Objects[0].SHA256+`"`) {
		t.Errorf("the evidence's record does not list the export's objects:\n%s", rec)
	}

	// E01 in several segments, from evidence in S3, locked: ewfverify
	// checks the downloaded set, every object carries the lock, the
	// checksum files hold the disk's hashes; the export is recorded as a
	// run object of the evidence.
	c.ok("acquire", snapDisk, "--out", "s3://plain/ev/", "--quiet")
	until := time.Now().Add(48 * time.Hour).UTC().Format(time.DateOnly)
	args := []string{"export", "s3://plain/ev/", "--format", "e01", "--segment-size", "1MiB", "--compression", "none", "--out", "s3://locked/e01/disk.E01",
		"--object-lock", "governance", "--retain-until", until, "--legal-hold"}
	var e exportJSON
	if err := json.Unmarshal([]byte(c.ok(append(args, "--json")...).stdout), &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Files) < 2 || e.Files[0] != "s3://locked/e01/disk.E01" || len(e.Objects) != len(e.Files)+3 {
		t.Fatalf("export e01 --json: %+v", e)
	}
	down := filepath.Join(dir, "down")
	os.MkdirAll(down, 0o700)
	lock := s3store.Lock{Mode: s3store.Governance, RetainUntil: mustDate(t, until), LegalHold: true}
	versions := map[string]string{}
	for i, ob := range e.Objects {
		o, err := s3c.Head(context.Background(), "locked", ob.Key)
		if err != nil || o.Lock != lock || o.VersionID != ob.VersionID || ob.VersionID == "" || o.Size != ob.Size {
			t.Errorf("%s: %+v (%v); the record %+v; want lock %+v", ob.Key, o, err, ob, lock)
		}
		versions[ob.Key] = o.VersionID
		if i < len(e.Files) {
			if err := os.WriteFile(filepath.Join(down, filepath.Base(ob.Key)), s3Download(t, api, "locked", ob.Key), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v, err := exec.Command(ewfverify, "-q", filepath.Join(down, "disk.E01")).CombinedOutput(); err != nil || !strings.Contains(string(v), "SUCCESS") {
		t.Errorf("ewfverify of the downloaded E01 (%d segments): %v\n%s", len(e.Files), err, v)
	}
	if got := string(s3Download(t, api, "locked", "e01/disk.sha256")); !strings.Contains(got, fmt.Sprintf("\n%x  disk.raw\n", diskSum)) {
		t.Errorf("e01/disk.sha256:\n%s", got)
	}
	runs, err := s3c.List(context.Background(), "plain", "ev/runs/", 10)
	if err != nil || len(runs) != 1 || !strings.HasSuffix(runs[0].Key, "-export.json") {
		t.Fatalf("run objects of the evidence: %v, %v", runs, err)
	}
	if step := string(s3Download(t, api, "plain", runs[0].Key)); !strings.Contains(step, `"key": "e01/disk.E01"`) || !strings.Contains(step, `"key": "e01/disk.sha256"`) {
		t.Errorf("the export's run object:\n%s", step)
	}

	// Again to the same name: refused before anything is sent, and
	// nothing changes; --force is refused.
	c.fails(exitConflict, "s3://locked/e01/disk.E01: an object already exists", args...)
	for k, v := range versions {
		if o, err := s3c.Head(context.Background(), "locked", k); err != nil || o.VersionID != v {
			t.Errorf("after a refused export, %s is version %s (%v), was %s", k, o.VersionID, err, v)
		}
	}
	if up, err := api.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String("locked")}); err != nil || len(up.Uploads) != 0 {
		t.Errorf("uploads left open: %v (%v)", up, err)
	}
	c.fails(exitUsage, "--force does not apply to --out s3://…", "export", ev, "--out", "s3://plain/x/disk.raw", "--force")
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
