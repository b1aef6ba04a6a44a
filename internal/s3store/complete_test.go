package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"testing"
)

// TestCompleteRetried: a CompleteMultipartUpload answered 412 (a retry
// of a Complete that did complete) adopts the object only when HEAD
// shows this upload's size and S3's checksum of its part checksums;
// other bytes under the key are ErrExists, and the upload is aborted.
func TestCompleteRetried(t *testing.T) {
	data := []byte("the whole object, in one part")
	part := sha256.Sum256(data)
	whole := sha256.Sum256(part[:])
	ours := base64.StdEncoding.EncodeToString(whole[:]) + "-1"
	create := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
	}
	uploadPart := func(w http.ResponseWriter) { w.Header().Set("ETag", `"e1"`) }
	head := func(checksum string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "29")
			w.Header().Set("x-amz-checksum-sha256", checksum)
			w.Header().Set("x-amz-checksum-type", "COMPOSITE")
			w.Header().Set("x-amz-version-id", "v1")
		}
	}
	for _, c := range []struct {
		name, checksum string
		adopted        bool
	}{
		{"ours", ours, true},
		{"other bytes", base64.StdEncoding.EncodeToString(part[:]) + "-1", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, n := fakeS3(t, create, uploadPart, s3Error(http.StatusPreconditionFailed, "PreconditionFailed"), head(c.checksum))
			u, err := cl.NewUpload(context.Background(), "b", "k", 0, nil, Lock{})
			if err != nil {
				t.Fatal(err)
			}
			u.Write(data)
			r, err := u.Close()
			switch {
			case c.adopted && (err != nil || r.VersionID != "v1" || r.Size != int64(len(data)) || r.SHA256 != sha256.Sum256(data)):
				t.Errorf("Close = %+v, %v; want the object adopted", r, err)
			case !c.adopted && !errors.Is(err, ErrExists):
				t.Errorf("Close = %+v, %v; want ErrExists", r, err)
			}
			want := int32(4) // create, part, complete, head
			if !c.adopted {
				want++ // and abort
			}
			if got := n.Load(); got != want {
				t.Errorf("%d requests, want %d", got, want)
			}
		})
	}
}
