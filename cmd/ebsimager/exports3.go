package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebsimager/ebsimager/internal/bucket"
	"github.com/ebsimager/ebsimager/internal/ebs"
	"github.com/ebsimager/ebsimager/internal/image/ewf"
	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/manifest"
	"github.com/ebsimager/ebsimager/internal/report"
	"github.com/ebsimager/ebsimager/internal/s3store"
	"github.com/ebsimager/ebsimager/internal/sink"
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/ui"
)

// exportS3Help is export's help on --out s3://….
const exportS3Help = `

With --out s3://bucket/prefix/NAME, the image goes straight to S3: every
file above (NAME or NAME.001, …; NAME.E01, …) becomes an object sent in
parts of 16 MiB (more past 156 GiB; an object holds at most 5 TiB), each
part checked by S3 on arrival against its SHA-256. No object exists under
its name until every segment is sent: the uploads are completed together
at the end, never over an existing object (If-None-Match: *; a name
already taken is refused before anything is sent), and a failure aborts
them all. Then NAME.md5, NAME.sha1 and NAME.sha256 are put beside them,
each with its own SHA-256 checksum. S3 keeps only a checksum of the part
checksums for an object sent in parts, and an object's metadata are fixed
before its bytes are sent: the whole-image hashes are in those checksum
files and in the export's record, which also lists each object's key,
version and S3 checksum (evidence in S3 gets the record as a run object,
runs/…-export.json). An object cannot be sparse: a raw image uploads the
full volume size, holes as zeros (an E01 compresses them to almost
nothing). An E01 segment is written to a temporary file under $TMPDIR
first (at most one segment at a time), since its sections are completed
after their data. --object-lock, --retain-until, --retain-days and
--legal-hold lock every object as for acquire; --force is refused
(nothing in a bucket is replaced).`

// exportS3 is an export's output in S3.
type exportS3 struct {
	c       *s3store.Client
	b       *s3store.Bucket
	name    string
	uploads map[string]*s3store.Upload
	scratch string // an E01's segment files, before each is sent
}

// checkS3 parses --out s3://bucket/prefix/NAME and refuses what an image
// in S3 cannot do.
func (o *exportOptions) checkS3(cmd *cobra.Command) error {
	o.s3.form = "s3://bucket/prefix/NAME"
	if err := o.s3.check(cmd, o.out, time.Now()); err != nil || !o.s3.on() {
		return err
	}
	switch {
	case o.force:
		return usagef("--force does not apply to --out s3://…: nothing in a bucket is replaced or deleted; export to a new NAME")
	case o.ext4 || o.ntfs:
		return usagef("--ext4 and --ntfs check a local image: export to a file to check the file system")
	case strings.HasSuffix(o.out, "/") || o.s3.url.Prefix == "":
		return usagef("--out %s: name the image, as s3://bucket/prefix/NAME", o.out)
	}
	dir, name := path.Split(strings.TrimSuffix(o.s3.url.Prefix, "/"))
	if o.format == "e01" {
		name = e01Base(name)
	}
	if name == "" {
		return usagef("--out %s: name the image, as s3://bucket/prefix/NAME", o.out)
	}
	o.s3.url.Prefix = dir
	o.s3out = &exportS3{name: name, uploads: map[string]*s3store.Upload{}}
	return nil
}

// CreateLarge implements bucket.LargeObjects, keeping each upload for the
// record.
func (x *exportS3) CreateLarge(ctx context.Context, key string, size int64, metadata map[string]string) (bucket.LargeObject, error) {
	u, err := x.b.CreateLarge(ctx, key, size, metadata)
	if err == nil {
		x.uploads[key] = u.(*s3store.Upload)
	}
	return u, err
}

// largeObjects is x's bucket, with x's CreateLarge.
type largeObjects struct {
	*s3store.Bucket
	x *exportS3
}

func (l largeObjects) CreateLarge(ctx context.Context, key string, size int64, metadata map[string]string) (bucket.LargeObject, error) {
	return l.x.CreateLarge(ctx, key, size, metadata)
}

// createS3 opens the image in S3 as a sink: the bucket's Object Lock
// checked first when a lock is asked for.
func (o *exportOptions) createS3(ctx context.Context, ev *store.Evidence, size, split int64, algs []string) (sink.Sink, error) {
	cfg, err := globalAWS.config(ctx)
	if err != nil {
		return nil, err
	}
	x := o.s3out
	x.c = s3store.New(cfg, s3store.Options{PathStyle: o.s3.pathStyle, Policy: ebs.Policy{MaxAttempts: 3}})
	if !o.s3.lock.IsZero() {
		if err := x.c.CheckObjectLock(ctx, o.s3.url.Bucket); err != nil {
			return nil, err
		}
	}
	x.b = x.c.Bucket(o.s3.url, o.s3.lock)
	objs := largeObjects{x.b, x}
	meta := map[string]string{
		"ebsimager-snapshot": ev.Meta.SnapshotID, "ebsimager-format": o.format,
		"ebsimager-image-size": fmt.Sprint(size),
		"ebsimager-hashes":     "in " + x.name + ".sha256 (.md5, .sha1) beside it and in the export's record",
	}
	if o.format == "raw" {
		return raw.CreateObjectSink(ctx, objs, x.name, size, raw.Options{Split: split, Hashes: algs}, meta)
	}
	opts, err := o.e01.options(e01Metadata(ev.Meta.SnapshotID, mergeCase(ev.Meta.Case, &o.caseMeta), ev.Meta.CreatedAt))
	if err != nil {
		return nil, err
	}
	if x.scratch, err = os.MkdirTemp("", "ebsimager-e01-"); err != nil {
		return nil, fmt.Errorf("making the E01's scratch directory: %w", err)
	}
	return ewf.CreateObjectSink(ctx, objs, x.scratch, x.name, size, opts, meta)
}

// close removes the scratch directory.
func (x *exportS3) close() {
	if x != nil && x.scratch != "" {
		os.RemoveAll(x.scratch)
	}
}

// record completes out and the export's record with the objects written:
// each one's version and S3 checksum as a HEAD reads them back, and the
// whole object's SHA-256.
func (x *exportS3) record(ctx context.Context, out *exportResult, exp *report.Export, files, hashFiles []string, lock s3store.Lock) error {
	u := x.b.URL()
	out.Files = nil
	for _, name := range append(append([]string(nil), files...), hashFiles...) {
		o, err := x.c.Head(ctx, u.Bucket, u.Key(name))
		if err != nil {
			return fmt.Errorf("reading back %s: %w", name, err)
		}
		obj := report.ExportObject{Bucket: u.Bucket, Key: u.Key(name), VersionID: o.VersionID, Size: o.Size, Checksum: o.Composite}
		if o.HasSHA256 {
			// One PUT: S3's checksum is the object's SHA-256. (moto 5
			// shows the checksum of an upload's part checksums this way
			// too, without its "-N".)
			obj.Checksum = base64.StdEncoding.EncodeToString(o.SHA256[:])
		}
		if up, ok := x.uploads[name]; ok {
			r := up.Result()
			obj.SHA256, obj.Parts = r.SHA256.Hex(), r.Parts
			if r.Size != o.Size {
				return fmt.Errorf("%s%s holds %d bytes, %d were sent", u, name, o.Size, r.Size)
			}
		} else if o.HasSHA256 {
			obj.SHA256 = o.SHA256.Hex()
		}
		exp.Objects = append(exp.Objects, obj)
		if _, ok := x.uploads[name]; ok {
			out.Files = append(out.Files, u.String()+name)
			out.Uploaded += o.Size
		}
	}
	exp.Segments = out.Files
	if !lock.IsZero() {
		exp.ObjectLock = &manifest.ObjectLock{Mode: lock.Mode, RetainUntil: lock.RetainUntil, LegalHold: lock.LegalHold}
	}
	return nil
}

// uploadedText says what an export to S3 sent.
func uploadedText(r exportResult) string {
	s := fmt.Sprintf("media %s, %s uploaded in %s", ui.Bytes(r.Size), ui.Bytes(r.Uploaded), ui.Plural(int64(len(r.Files)), "object"))
	if !isE01(r.Files[0]) {
		s += "; an object cannot be sparse: holes were sent as zeros"
	}
	return s
}

// recordExportS3 writes the step of an export of evidence in b as a run
// object of that evidence (runs/<time>-<tag>-export.json), as verify
// does: the evidence's own record is written once.
func recordExportS3(ctx context.Context, b bucket.Bucket, step report.Step) error {
	body, err := json.MarshalIndent(step, "", "  ")
	if err != nil {
		return err
	}
	_, err = store.PutRun(context.WithoutCancel(ctx), b, report.StepExport, step.StartedAt, append(body, '\n'))
	return err
}
