package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// Part sizes: S3 wants at least 5 MiB in every part but the last, and at
// most 10,000 parts.
const (
	MinPartSize     = 5 << 20
	DefaultPartSize = 16 << 20
	MaxPartSize     = 5 << 30
	maxParts        = 10000
	// MaxObjectSize is the most an S3 object holds, 5 TiB.
	MaxObjectSize = 5 << 40
)

// PartSize is the part size for an object of size bytes: DefaultPartSize,
// or for an object past 10,000 such parts the least whole MiB that fits
// it in 10,000 (about 525 MiB for 5 TiB: the upload buffers one part).
func PartSize(size int64) int {
	p := int64(DefaultPartSize)
	if need := (size + maxParts - 1) / maxParts; need > p {
		p = (need + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return int(min(p, MaxPartSize))
}

// Upload writes one large object in parts, each sent with its own
// SHA-256 (which S3 checks on arrival), while it hashes the whole object
// itself: S3's checksum of a multipart object is a checksum of the part
// checksums, not the object's SHA-256, and metadata are fixed when the
// upload starts, before the hash is known. The caller records the
// whole-object SHA-256 Close returns (the manifest, the record, a
// sidecar object). Until Close completes it, the object does not exist:
// Abort (or a crash) leaves nothing under its key.
type Upload struct {
	c           *Client
	ctx         context.Context
	bucket, key string
	id          string
	lock        Lock
	partSize    int
	buf         []byte
	parts       []types.CompletedPart
	whole       hash.Hash
	size        int64
	err         error
	flushed     bool
	result      UploadResult
}

// UploadResult is what a completed Upload holds.
type UploadResult struct {
	Size int64
	// SHA256 is the whole object's SHA-256, computed here.
	SHA256 block.Sum
	// Composite is S3's checksum of the part checksums ("…-N").
	Composite string
	VersionID string
	// Parts is how many parts the object was sent in.
	Parts int
}

// NewUpload starts a multipart upload of key with metadata and lock, in
// parts of partSize bytes (0: DefaultPartSize). The object is created,
// once (If-None-Match: *), when Close completes the upload.
func (c *Client) NewUpload(ctx context.Context, bucket, key string, partSize int, metadata map[string]string, lock Lock) (*Upload, error) {
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < MinPartSize || partSize > MaxPartSize {
		return nil, fmt.Errorf("part size %d: want %d to %d bytes", partSize, MinPartSize, MaxPartSize)
	}
	in := &s3.CreateMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Metadata: metadata,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256, ChecksumType: types.ChecksumTypeComposite,
	}
	setLock(lock, &in.ObjectLockMode, &in.ObjectLockRetainUntilDate, &in.ObjectLockLegalHoldStatus)
	out, err := ebs.Wrap(c.policy, c.stats, c.api.CreateMultipartUpload)(ctx, in)
	if err != nil {
		return nil, fail("CreateMultipartUpload", bucket, key, err)
	}
	if aws.ToString(out.UploadId) == "" {
		return nil, fmt.Errorf("s3:CreateMultipartUpload on s3://%s/%s: no upload ID", bucket, key)
	}
	return &Upload{c: c, ctx: ctx, bucket: bucket, key: key, id: *out.UploadId, lock: lock, partSize: partSize,
		buf: make([]byte, 0, partSize), whole: sha256.New()}, nil
}

// Write buffers p and sends every full part.
func (u *Upload) Write(p []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	if u.flushed {
		return 0, fmt.Errorf("writing s3://%s/%s: the upload was flushed", u.bucket, u.key)
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), u.partSize-len(u.buf))
		u.buf = append(u.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(u.buf) == u.partSize {
			if err := u.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush sends the buffered bytes as the next part.
func (u *Upload) flush() error {
	if len(u.parts) == maxParts {
		u.err = fmt.Errorf("uploading s3://%s/%s: more than %d parts of %d bytes", u.bucket, u.key, maxParts, u.partSize)
		return u.err
	}
	sum := sha256.Sum256(u.buf)
	enc := base64.StdEncoding.EncodeToString(sum[:])
	number := int32(len(u.parts) + 1)
	in := &s3.UploadPartInput{
		Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id), PartNumber: aws.Int32(number),
		ContentLength: aws.Int64(int64(len(u.buf))), ChecksumAlgorithm: types.ChecksumAlgorithmSha256, ChecksumSHA256: aws.String(enc),
	}
	var out *s3.UploadPartOutput
	err := u.c.policy.Do(u.ctx, u.c.stats, func(ctx context.Context) error {
		in.Body = bytes.NewReader(u.buf)
		var err error
		out, err = u.c.api.UploadPart(ctx, in)
		return err
	})
	if err != nil {
		u.err = fail("UploadPart", u.bucket, u.key, err)
		return u.err
	}
	u.whole.Write(u.buf)
	u.size += int64(len(u.buf))
	u.parts = append(u.parts, types.CompletedPart{PartNumber: aws.Int32(number), ETag: out.ETag, ChecksumSHA256: aws.String(enc)})
	u.buf = u.buf[:0]
	return nil
}

// Flush sends the buffered bytes as the last part and frees the
// buffer: every byte is then with S3, but the object does not exist until
// Close (or Commit) completes the upload. An export keeps the uploads of
// all its segments open this way, and completes them only when every one
// is sent, so that a failure leaves no segment under its name. Write
// fails after Flush.
func (u *Upload) Flush() error {
	if u.err == nil && !u.flushed && (len(u.buf) > 0 || len(u.parts) == 0) {
		u.flush()
	}
	u.flushed = true
	u.buf = nil
	return u.err
}

// Commit is Close for bucket.LargeObject; Result then holds what Close
// returned.
func (u *Upload) Commit() error {
	r, err := u.Close()
	u.result = r
	return err
}

// Result is what the completed upload holds (after Commit).
func (u *Upload) Result() UploadResult { return u.result }

// Close sends the last part and completes the upload: the object then
// exists under its key. A key already taken is ErrExists (the upload is
// aborted). On any failure the upload is aborted.
func (u *Upload) Close() (UploadResult, error) {
	u.Flush()
	if u.err != nil {
		u.Abort()
		return UploadResult{}, u.err
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
		IfNoneMatch:     aws.String("*"),
	}
	out, err := ebs.Wrap(u.c.policy, u.c.stats, u.c.api.CompleteMultipartUpload)(u.ctx, in, func(o *s3.Options) {
		if u.c.slow != nil {
			o.HTTPClient = u.c.slow
		}
	})
	if err != nil && (preconditionFailed(err) || Classify(err) == ebs.KindNotFound) {
		// A retry of a Complete whose first attempt did complete finds
		// the key taken, or the upload gone: the object is ours if S3's
		// checksum of its parts is the one ours give.
		if o, herr := u.c.Head(u.ctx, u.bucket, u.key); herr == nil && o.Size == u.size && u.composite(o) {
			out, err = &s3.CompleteMultipartUploadOutput{VersionId: aws.String(o.VersionID), ChecksumSHA256: aws.String(o.Composite)}, nil
		}
	}
	if err != nil {
		if preconditionFailed(err) {
			err = fmt.Errorf("s3://%s/%s: %w", u.bucket, u.key, ErrExists)
		} else {
			err = fail("CompleteMultipartUpload", u.bucket, u.key, err)
		}
		u.err = err
		u.Abort()
		return UploadResult{}, err
	}
	u.err, u.id = errors.New("upload already completed"), ""
	r := UploadResult{Size: u.size, Composite: aws.ToString(out.ChecksumSHA256), VersionID: aws.ToString(out.VersionId), Parts: len(u.parts)}
	copy(r.SHA256[:], u.whole.Sum(nil))
	if err := u.c.ensureLock(u.ctx, u.bucket, u.key, r.VersionID, u.lock); err != nil {
		return r, err
	}
	return r, nil
}

// composite reports whether o carries S3's checksum of this upload's
// part checksums: base64 of the SHA-256 of the parts' SHA-256s, then
// "-N" (moto 5 answers it without the suffix, as if it were the object's
// SHA-256).
func (u *Upload) composite(o Object) bool {
	h := sha256.New()
	for _, p := range u.parts {
		raw, err := base64.StdEncoding.DecodeString(aws.ToString(p.ChecksumSHA256))
		if err != nil {
			return false
		}
		h.Write(raw)
	}
	want := base64.StdEncoding.EncodeToString(h.Sum(nil))
	if o.HasSHA256 {
		return base64.StdEncoding.EncodeToString(o.SHA256[:]) == want
	}
	return o.Composite == want+"-"+strconv.Itoa(len(u.parts))
}

// ensureLock checks that the version of key carries lock, and sets what
// it lacks: S3 applies the lock given to CreateMultipartUpload, but a
// store that drops it (moto 5 does) would leave evidence unlocked.
func (c *Client) ensureLock(ctx context.Context, bucket, key, version string, lock Lock) error {
	if lock.IsZero() {
		return nil
	}
	o, err := c.Head(ctx, bucket, key)
	if err != nil {
		return err
	}
	if version == "" {
		version = o.VersionID
	}
	if lock.Mode != "" && (o.Lock.Mode != lock.Mode || !o.Lock.RetainUntil.Equal(lock.RetainUntil.UTC().Truncate(time.Second))) {
		until := lock.RetainUntil.UTC()
		_, err := ebs.Wrap(c.policy, c.stats, c.api.PutObjectRetention)(ctx, &s3.PutObjectRetentionInput{
			Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(version),
			Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(lock.Mode), RetainUntilDate: &until},
		})
		if err != nil {
			return fail("PutObjectRetention", bucket, key, err)
		}
	}
	if lock.LegalHold && !o.Lock.LegalHold {
		_, err := ebs.Wrap(c.policy, c.stats, c.api.PutObjectLegalHold)(ctx, &s3.PutObjectLegalHoldInput{
			Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(version),
			LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn},
		})
		if err != nil {
			return fail("PutObjectLegalHold", bucket, key, err)
		}
	}
	return nil
}

// Abort abandons the upload: S3 drops its parts, and nothing is left
// under the key.
func (u *Upload) Abort() error {
	if u.id == "" {
		return nil
	}
	_, err := ebs.Wrap(u.c.policy, u.c.stats, u.c.api.AbortMultipartUpload)(context.WithoutCancel(u.ctx),
		&s3.AbortMultipartUploadInput{Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id)})
	u.id = ""
	if u.err == nil {
		u.err = errors.New("upload aborted")
	}
	if err != nil {
		return fail("AbortMultipartUpload", u.bucket, u.key, err)
	}
	return nil
}
