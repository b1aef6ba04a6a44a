package s3store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ebsimager/ebsimager/internal/block"
	"github.com/ebsimager/ebsimager/internal/ebs"
)

// Lock is the Object Lock an object is written with: a retention mode
// ("GOVERNANCE" or "COMPLIANCE") until a date, a legal hold, or both.
// The zero Lock writes unlocked objects.
type Lock struct {
	Mode        string    `json:"mode,omitempty"`
	RetainUntil time.Time `json:"retain_until,omitzero"`
	LegalHold   bool      `json:"legal_hold,omitempty"`
}

// Lock modes.
const (
	Governance = "GOVERNANCE"
	Compliance = "COMPLIANCE"
)

// IsZero reports whether l locks nothing.
func (l Lock) IsZero() bool { return l.Mode == "" && !l.LegalHold }

// Check refuses a Lock S3 would refuse: a mode without a date in the
// future, a date without a mode, an unknown mode.
func (l Lock) Check(now time.Time) error {
	switch l.Mode {
	case "":
		if !l.RetainUntil.IsZero() {
			return errors.New("a retention date needs a lock mode (governance or compliance)")
		}
	case Governance, Compliance:
		if !l.RetainUntil.After(now) {
			return fmt.Errorf("the retention date %s is not in the future", l.RetainUntil.UTC().Format(time.RFC3339))
		}
	default:
		return fmt.Errorf("lock mode %q: want %s or %s", l.Mode, Governance, Compliance)
	}
	return nil
}

// CheckObjectLock refuses a bucket that has no Object Lock: objects
// written there with a Lock would be refused one by one, or worse, a
// bucket of another configuration would hold evidence anyone can delete.
func (c *Client) CheckObjectLock(ctx context.Context, bucket string) error {
	out, err := ebs.Wrap(c.policy, c.stats, c.api.GetObjectLockConfiguration)(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(bucket)})
	if err != nil {
		if code, _ := errorCode(err); code == "ObjectLockConfigurationNotFoundError" {
			return fmt.Errorf("bucket %s has no Object Lock: create the bucket with Object Lock enabled, or leave out --object-lock and --legal-hold: %w", bucket, ErrNoObjectLock)
		}
		return fail("GetObjectLockConfiguration", bucket, "", err)
	}
	if out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return fmt.Errorf("bucket %s has no Object Lock enabled: %w", bucket, ErrNoObjectLock)
	}
	return nil
}

// ErrNoObjectLock says that a bucket asked to lock evidence cannot.
var ErrNoObjectLock = errors.New("the bucket has no Object Lock")

// Object is what HEAD tells of an object.
type Object struct {
	Key  string
	Size int64
	// SHA256 is the SHA-256 S3 stores for the object, when it was
	// written with one in a single part; Composite holds S3's checksum
	// of the part checksums ("…-N") of a multipart upload instead.
	SHA256    block.Sum
	HasSHA256 bool
	Composite string
	// Metadata are the object's x-amz-meta-* values, by lowercase name
	// without the prefix.
	Metadata  map[string]string
	Lock      Lock
	VersionID string
	ETag      string
}

// PutNew writes body under key, once: with If-None-Match: * so that an
// existing object is never overwritten (ErrExists: the caller HEADs it
// and compares checksums), and with sum, the SHA-256 of body, as
// x-amz-checksum-sha256, which S3 checks on arrival and keeps with the
// object. metadata become x-amz-meta-* (lowercase names); lock is set on
// the PUT itself, so the object is never unlocked.
func (c *Client) PutNew(ctx context.Context, bucket, key string, body []byte, sum block.Sum, metadata map[string]string, lock Lock) (string, error) {
	in := &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key),
		ContentLength:     aws.Int64(int64(len(body))),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		IfNoneMatch:       aws.String("*"),
		Metadata:          metadata,
	}
	setLock(lock, &in.ObjectLockMode, &in.ObjectLockRetainUntilDate, &in.ObjectLockLegalHoldStatus)
	var out *s3.PutObjectOutput
	err := c.policy.Do(ctx, c.stats, func(ctx context.Context) error {
		in.Body = bytes.NewReader(body) // a retry sends the bytes again, from the start
		var err error
		out, err = c.api.PutObject(ctx, in)
		return err
	})
	if err != nil {
		if preconditionFailed(err) {
			return "", fmt.Errorf("s3://%s/%s: %w", bucket, key, ErrExists)
		}
		return "", fail("PutObject", bucket, key, err)
	}
	if got := aws.ToString(out.ChecksumSHA256); got != "" && got != aws.ToString(in.ChecksumSHA256) {
		return "", fmt.Errorf("s3:PutObject on s3://%s/%s: S3 answered checksum %s for %s", bucket, key, got, aws.ToString(in.ChecksumSHA256))
	}
	return aws.ToString(out.VersionId), nil
}

func setLock(l Lock, mode *types.ObjectLockMode, until **time.Time, hold *types.ObjectLockLegalHoldStatus) {
	if l.Mode != "" {
		*mode = types.ObjectLockMode(l.Mode)
		t := l.RetainUntil.UTC()
		*until = &t
	}
	if l.LegalHold {
		*hold = types.ObjectLockLegalHoldStatusOn
	}
}

// Head returns what S3 keeps of key: its size, its stored SHA-256
// (ChecksumMode enabled), metadata and lock. A missing key is
// ErrNotFound.
func (c *Client) Head(ctx context.Context, bucket, key string) (Object, error) {
	out, err := ebs.Wrap(c.policy, c.stats, c.api.HeadObject)(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return Object{}, fail("HeadObject", bucket, key, err)
	}
	o := Object{Key: key, Size: aws.ToInt64(out.ContentLength), Metadata: out.Metadata, VersionID: aws.ToString(out.VersionId), ETag: aws.ToString(out.ETag)}
	if v := aws.ToString(out.ChecksumSHA256); v != "" {
		if err := o.setChecksum(v, out.ChecksumType == types.ChecksumTypeComposite); err != nil {
			return Object{}, fmt.Errorf("s3://%s/%s: %w", bucket, key, err)
		}
	}
	o.Lock.Mode = string(out.ObjectLockMode)
	if out.ObjectLockRetainUntilDate != nil {
		o.Lock.RetainUntil = out.ObjectLockRetainUntilDate.UTC()
	}
	o.Lock.LegalHold = out.ObjectLockLegalHoldStatus == types.ObjectLockLegalHoldStatusOn
	return o, nil
}

// setChecksum parses S3's x-amz-checksum-sha256: base64 of 32 bytes, or
// of a checksum of part checksums followed by "-N" (or said COMPOSITE).
func (o *Object) setChecksum(v string, composite bool) error {
	if i := strings.LastIndexByte(v, '-'); i > 0 || composite {
		o.Composite = v
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(raw) != len(o.SHA256) {
		return fmt.Errorf("S3's checksum %q is not a SHA-256", v)
	}
	copy(o.SHA256[:], raw)
	o.HasSHA256 = true
	return nil
}

// Get reads the whole of key, refusing an object larger than max bytes
// before reading it (hostile input: the bound comes from the caller's
// format, never from the answer).
func (c *Client) Get(ctx context.Context, bucket, key string, max int64) ([]byte, error) {
	return c.get(ctx, bucket, key, "", max)
}

// GetRange reads length bytes of key from off.
func (c *Client) GetRange(ctx context.Context, bucket, key string, off, length int64) ([]byte, error) {
	if off < 0 || length <= 0 {
		return nil, fmt.Errorf("reading s3://%s/%s: range %d+%d", bucket, key, off, length)
	}
	b, err := c.get(ctx, bucket, key, fmt.Sprintf("bytes=%d-%d", off, off+length-1), length)
	if err == nil && int64(len(b)) != length {
		return nil, fmt.Errorf("reading s3://%s/%s: %d bytes at %d, want %d: %w", bucket, key, len(b), off, length, io.ErrUnexpectedEOF)
	}
	return b, err
}

func (c *Client) get(ctx context.Context, bucket, key, rng string, max int64) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	var data []byte
	err := c.policy.Do(ctx, c.stats, func(ctx context.Context) error {
		out, err := c.api.GetObject(ctx, in)
		if err != nil {
			return err
		}
		defer out.Body.Close()
		if n := aws.ToInt64(out.ContentLength); n > max {
			return &tooLargeError{size: n, max: max}
		}
		data, err = io.ReadAll(io.LimitReader(out.Body, max+1))
		if err == nil && int64(len(data)) > max {
			return &tooLargeError{size: int64(len(data)), max: max}
		}
		return err // a body cut short is transient: read again
	})
	var big *tooLargeError
	if errors.As(err, &big) {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
	}
	if err != nil {
		return nil, fail("GetObject", bucket, key, err)
	}
	return data, nil
}

type tooLargeError struct{ size, max int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("the object holds more than %d bytes (%d): refused", e.max, e.size)
}

// listPage is how many keys a listing asks for per page (S3's most);
// tests make it small.
var listPage int32 = 1000

// Listed is one key of a listing.
type Listed struct {
	Key  string
	Size int64
}

// List returns every key under prefix, in S3's (lexicographic) order,
// page by page; more than max keys is an error, never a truncation.
func (c *Client) List(ctx context.Context, bucket, prefix string, max int) ([]Listed, error) {
	keys, _, err := c.list(ctx, bucket, prefix, "", max)
	return keys, err
}

// ListLevel returns one level under prefix: the keys directly under it
// and the prefixes below it ("prefix/a/"), in lexicographic order; more
// than max of them together is an error.
func (c *Client) ListLevel(ctx context.Context, bucket, prefix string, max int) ([]Listed, []string, error) {
	return c.list(ctx, bucket, prefix, "/", max)
}

func (c *Client) list(ctx context.Context, bucket, prefix, delimiter string, max int) ([]Listed, []string, error) {
	var (
		keys  []Listed
		dirs  []string
		token *string
	)
	var delim *string
	if delimiter != "" {
		delim = aws.String(delimiter)
	}
	list := ebs.Wrap(c.policy, c.stats, c.api.ListObjectsV2)
	for {
		out, err := list(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), Delimiter: delim, ContinuationToken: token, MaxKeys: aws.Int32(listPage)})
		if err != nil {
			return nil, nil, fail("ListObjectsV2", bucket, prefix, err)
		}
		page := len(out.Contents) + len(out.CommonPrefixes)
		if page > int(listPage) || len(keys)+len(dirs)+page > max {
			return nil, nil, fmt.Errorf("listing s3://%s/%s: more than %d keys", bucket, prefix, max)
		}
		for _, o := range out.Contents {
			k := aws.ToString(o.Key)
			if !strings.HasPrefix(k, prefix) {
				return nil, nil, fmt.Errorf("listing s3://%s/%s: S3 answered key %q outside the prefix", bucket, prefix, k)
			}
			keys = append(keys, Listed{Key: k, Size: aws.ToInt64(o.Size)})
		}
		for _, p := range out.CommonPrefixes {
			d := aws.ToString(p.Prefix)
			if delimiter == "" || !strings.HasPrefix(d, prefix) || len(d) == len(prefix) || !strings.HasSuffix(d, delimiter) {
				return nil, nil, fmt.Errorf("listing s3://%s/%s: S3 answered prefix %q outside the prefix", bucket, prefix, d)
			}
			dirs = append(dirs, d)
		}
		if !aws.ToBool(out.IsTruncated) {
			return keys, dirs, nil
		}
		if aws.ToString(out.NextContinuationToken) == "" || page == 0 {
			return nil, nil, fmt.Errorf("listing s3://%s/%s: a truncated page without keys or a continuation token", bucket, prefix)
		}
		token = out.NextContinuationToken
	}
}
