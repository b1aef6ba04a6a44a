package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/testenv"
)

// motoClient starts moto_server and returns a client of it, with a
// bucket created with Object Lock ("locked") and one without ("plain").
func motoClient(t *testing.T) *Client {
	t.Helper()
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(testenv.S3Checksums(t, testenv.Moto(t))),
	}
	c := New(cfg, Options{Policy: ebs.Policy{MaxAttempts: 3, Base: time.Millisecond}})
	if !c.PathStyle {
		t.Fatalf("an IP endpoint (%s) did not give path-style addressing", c.Endpoint)
	}
	ctx := context.Background()
	if _, err := c.api.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("locked"), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("creating the locked bucket: %v", err)
	}
	if _, err := c.api.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("plain")}); err != nil {
		t.Fatalf("creating the plain bucket: %v", err)
	}
	return c
}

func TestMotoObjects(t *testing.T) {
	c := motoClient(t)
	ctx := context.Background()

	t.Run("CheckObjectLock", func(t *testing.T) {
		if err := c.CheckObjectLock(ctx, "locked"); err != nil {
			t.Errorf("the locked bucket: %v", err)
		}
		err := c.CheckObjectLock(ctx, "plain")
		if !errors.Is(err, ErrNoObjectLock) || !strings.Contains(err.Error(), "bucket plain has no Object Lock") {
			t.Errorf("the plain bucket: %v, want ErrNoObjectLock naming it", err)
		}
		if err := c.CheckObjectLock(ctx, "missing-bucket"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "bucket missing-bucket") {
			t.Errorf("a missing bucket: %v", err)
		}
	})

	body := bytes.Repeat([]byte("evidence"), 64<<10) // 512 KiB
	sum := block.Sum(sha256.Sum256(body))
	until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	meta := map[string]string{"ebsimager-sha256": sum.Hex(), "ebsimager-length": "524288"}

	t.Run("PutNew and Head", func(t *testing.T) {
		v, err := c.PutNew(ctx, "locked", "case/blocks/00/0000/b1", body, sum, meta, Lock{Mode: Governance, RetainUntil: until, LegalHold: true})
		if err != nil || v == "" {
			t.Fatalf("PutNew: version %q, %v", v, err)
		}
		o, err := c.Head(ctx, "locked", "case/blocks/00/0000/b1")
		if err != nil {
			t.Fatalf("Head: %v", err)
		}
		want := Lock{Mode: Governance, RetainUntil: until, LegalHold: true}
		if o.Size != int64(len(body)) || !o.HasSHA256 || o.SHA256 != sum || o.VersionID != v || o.Lock != want ||
			o.Metadata["ebsimager-sha256"] != sum.Hex() || o.Metadata["ebsimager-length"] != "524288" {
			t.Errorf("Head = %+v; want size %d, SHA-256 %s, version %s, lock %+v, the metadata", o, len(body), sum.Hex(), v, want)
		}
	})

	t.Run("a wrong checksum is refused", func(t *testing.T) {
		wrong := sum
		wrong[0] ^= 1
		_, err := c.PutNew(ctx, "locked", "case/wrong", body, wrong, nil, Lock{})
		if err == nil {
			t.Errorf("PutNew with a wrong SHA-256 succeeded")
		} else {
			t.Logf("refused: %v", err)
		}
		if _, err := c.Head(ctx, "locked", "case/wrong"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after a refused PUT: Head = %v, want ErrNotFound", err)
		}
	})

	t.Run("If-None-Match refuses an existing key", func(t *testing.T) {
		other := []byte("other bytes")
		_, err := c.PutNew(ctx, "locked", "case/blocks/00/0000/b1", other, sha256.Sum256(other), nil, Lock{})
		if !errors.Is(err, ErrExists) {
			t.Fatalf("PutNew over an existing key: %v, want ErrExists", err)
		}
		got, err := c.Get(ctx, "locked", "case/blocks/00/0000/b1", int64(len(body)))
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("after the refused PUT the object holds %d bytes (%v), want the first %d", len(got), err, len(body))
		}
	})

	t.Run("a locked object cannot be deleted", func(t *testing.T) {
		o, err := c.Head(ctx, "locked", "case/blocks/00/0000/b1")
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("locked"), Key: aws.String(o.Key), VersionId: aws.String(o.VersionID)})
		if Classify(err) != ebs.KindAccessDenied {
			t.Errorf("DeleteObject of a version under legal hold and governance retention: %v, want AccessDenied", err)
		}
		// Compliance, without a legal hold: still refused, even with
		// the governance bypass.
		if _, err := c.PutNew(ctx, "locked", "case/compliance", body, sum, nil, Lock{Mode: Compliance, RetainUntil: until}); err != nil {
			t.Fatal(err)
		}
		o, err = c.Head(ctx, "locked", "case/compliance")
		if err != nil || o.Lock != (Lock{Mode: Compliance, RetainUntil: until}) {
			t.Fatalf("Head = %+v, %v", o.Lock, err)
		}
		_, err = c.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("locked"), Key: aws.String(o.Key), VersionId: aws.String(o.VersionID), BypassGovernanceRetention: aws.Bool(true)})
		if Classify(err) != ebs.KindAccessDenied {
			t.Errorf("DeleteObject of a version under compliance retention: %v, want AccessDenied", err)
		}
		if _, err := c.Head(ctx, "locked", o.Key); err != nil {
			t.Errorf("the locked object is gone: %v", err)
		}
	})

	t.Run("ranged and bounded GET", func(t *testing.T) {
		got, err := c.GetRange(ctx, "locked", "case/blocks/00/0000/b1", 5, 11)
		if err != nil || string(got) != "nceevidence" {
			t.Errorf("GetRange(5, 11) = %q, %v", got, err)
		}
		if _, err := c.Get(ctx, "locked", "case/blocks/00/0000/b1", int64(len(body))-1); err == nil || !strings.Contains(err.Error(), "more than 524287 bytes") {
			t.Errorf("Get beyond its bound: %v", err)
		}
		if _, err := c.Get(ctx, "locked", "case/missing", 10); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get of a missing key: %v", err)
		}
		if _, err := c.Head(ctx, "locked", "case/missing"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Head of a missing key: %v", err)
		}
	})

	t.Run("List", func(t *testing.T) {
		defer func(n int32) { listPage = n }(listPage)
		listPage = 2
		for i := range 5 {
			b := []byte(fmt.Sprint(i))
			if _, err := c.PutNew(ctx, "plain", fmt.Sprintf("list/k%d", i), b, sha256.Sum256(b), nil, Lock{}); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := c.List(ctx, "plain", "list/", 5)
		if err != nil || len(keys) != 5 {
			t.Fatalf("List = %v, %v", keys, err)
		}
		for i, k := range keys {
			if k.Key != fmt.Sprintf("list/k%d", i) || k.Size != 1 {
				t.Errorf("key %d = %+v", i, k)
			}
		}
		if _, err := c.List(ctx, "plain", "list/", 4); err == nil || !strings.Contains(err.Error(), "more than 4 keys") {
			t.Errorf("List beyond its bound: %v", err)
		}
		// One level: the keys directly under the prefix, and the
		// prefixes below it, across pages.
		for _, k := range []string{"list/d1/x", "list/d1/y", "list/d2/z/w", "list/d3/v"} {
			if _, err := c.PutNew(ctx, "plain", k, []byte(k), sha256.Sum256([]byte(k)), nil, Lock{}); err != nil {
				t.Fatal(err)
			}
		}
		keys, dirs, err := c.ListLevel(ctx, "plain", "list/", 8)
		if err != nil || len(keys) != 5 || keys[4].Key != "list/k4" || fmt.Sprint(dirs) != "[list/d1/ list/d2/ list/d3/]" {
			t.Fatalf("ListLevel = %v, %v, %v", keys, dirs, err)
		}
		if _, _, err := c.ListLevel(ctx, "plain", "list/", 7); err == nil || !strings.Contains(err.Error(), "more than 7 keys") {
			t.Errorf("ListLevel beyond its bound: %v", err)
		}
	})

	t.Run("multipart", func(t *testing.T) {
		data := make([]byte, 2*MinPartSize+12345)
		for i := range data {
			data[i] = byte(i*7 + i/4096)
		}
		u, err := c.NewUpload(ctx, "locked", "case/image.raw", MinPartSize, map[string]string{"ebsimager-note": "image"}, Lock{Mode: Governance, RetainUntil: until})
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 1 << 20 { // writes that straddle parts
			if _, err := u.Write(data[off:min(off+1<<20, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		r, err := u.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r.Size != int64(len(data)) || r.SHA256 != block.Sum(sha256.Sum256(data)) {
			t.Errorf("Close = %+v, want size %d and the data's SHA-256", r, len(data))
		}
		// S3's checksum of a multipart object is the SHA-256 of the
		// parts' SHA-256s, "-3".
		var parts []byte
		for off := 0; off < len(data); off += MinPartSize {
			s := sha256.Sum256(data[off:min(off+MinPartSize, len(data))])
			parts = append(parts, s[:]...)
		}
		whole := sha256.Sum256(parts)
		wantComposite := base64.StdEncoding.EncodeToString(whole[:]) + "-3"
		o, err := c.Head(ctx, "locked", "case/image.raw")
		if err != nil || o.Size != int64(len(data)) || o.Lock != (Lock{Mode: Governance, RetainUntil: until}) || o.Metadata["ebsimager-note"] != "image" {
			t.Errorf("Head = %+v, %v", o, err)
		}
		// moto 5 answers the checksum of the part checksums without
		// its "-3" and without x-amz-checksum-type, and not at all in
		// CompleteMultipartUpload's answer; S3 answers "…-3" in both.
		motoForm := o.Composite+"-3" == wantComposite || o.Composite == "" && o.HasSHA256 && base64.StdEncoding.EncodeToString(o.SHA256[:])+"-3" == wantComposite
		if o.Composite != wantComposite && !motoForm {
			t.Errorf("composite checksum: Head %+v; want %q", o, wantComposite)
		}
		if r.Composite != "" && r.Composite != wantComposite {
			t.Errorf("composite checksum: Complete %q; want %q", r.Composite, wantComposite)
		}
		got, err := c.Get(ctx, "locked", "case/image.raw", int64(len(data)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("the uploaded object differs (%d bytes, %v)", len(got), err)
		}
		// Completing another upload of the same key is refused.
		u, err = c.NewUpload(ctx, "locked", "case/image.raw", MinPartSize, nil, Lock{})
		if err != nil {
			t.Fatal(err)
		}
		u.Write([]byte("other"))
		if _, err := u.Close(); !errors.Is(err, ErrExists) {
			t.Errorf("completing an upload over an existing key: %v, want ErrExists", err)
		}
		uploads, err := c.api.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("locked")})
		if err != nil || len(uploads.Uploads) != 0 {
			t.Errorf("uploads left after Close and a refused Close: %d (%v)", len(uploads.Uploads), err)
		}
	})
}

// TestMotoEndpointFromEnvironment: AWS_ENDPOINT_URL_S3 reaches the
// client through the SDK's standard configuration loader.
func TestMotoEndpointFromEnvironment(t *testing.T) {
	endpoint := testenv.Moto(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := New(cfg, Options{})
	if c.Endpoint != endpoint || !c.PathStyle {
		t.Fatalf("endpoint %q, path style %v; want %q, true", c.Endpoint, c.PathStyle, endpoint)
	}
	if _, err := c.api.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("from-env")}); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckObjectLock(context.Background(), "from-env"); !errors.Is(err, ErrNoObjectLock) {
		t.Errorf("CheckObjectLock through the environment's endpoint: %v", err)
	}
	_ = types.ChecksumAlgorithmSha256
}

func b64(p []byte) string { return base64.StdEncoding.EncodeToString(p) }
