package casework

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ebsimager/ebsimager/internal/bucket"
)

// toBucket copies every file under dir into a bucket, keyed by its path.
func toBucket(t *testing.T, dir string) *bucket.Memory {
	t.Helper()
	m := &bucket.Memory{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		return m.PutNew(context.Background(), filepath.ToSlash(rel), data, sha256.Sum256(data), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A case in a bucket summarizes as the same case in a directory does:
// the same workers, checks, problems and exit code.
func TestSummarizeBucketAsDirectory(t *testing.T) {
	dir := t.TempDir()
	fakeWorker(t, dir, 0, "snap-0a", "manifest a\n", 0)
	fakeRun(t, dir, 1, "snap-0b", "manifest b\n", 3, 0)
	fakeRun(t, dir, 1, "snap-0b", "manifest b2\n", 0, 5)
	fakeWorker(t, dir, 3, "snap-0d", "manifest d\n", 0)
	targets := []string{"snap-0a", "snap-0b", "snap-0c", "snap-0d"}
	ctx := context.Background()
	for _, tamper := range []bool{false, true} {
		if tamper {
			if err := os.WriteFile(filepath.Join(dir, "snap-0d", "manifest.jsonl"), []byte("manifest D\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		want, err := Summarize(dir, "t.txt", targets)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SummarizeBucket(ctx, toBucket(t, dir), "t.txt", targets)
		if err != nil {
			t.Fatal(err)
		}
		if got.Directory != "memory://" {
			t.Errorf("directory %q", got.Directory)
		}
		got.Directory = want.Directory
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("tampered %v: the bucket's summary\n%+v\nthe directory's\n%+v", tamper, got, want)
		}
		if code := map[bool]int{false: 3, true: 4}[tamper]; got.ExitCode != code {
			t.Fatalf("tampered %v: exit %d, want %d (%v)", tamper, got.ExitCode, code, got.Problems)
		}
	}
}

// A summary inside evidence or deeper than MaxSummaryDepth is not read;
// a manifest that is not there is missing; a summary too large is a
// problem.
func TestSummarizeBucketBounds(t *testing.T) {
	dir := t.TempDir()
	fakeWorker(t, dir, 0, "snap-0a", "manifest a\n", 0)
	m := toBucket(t, dir)
	ctx := context.Background()
	names, err := bucketSource{ctx, m}.Summaries()
	if err != nil || len(names) != 1 {
		t.Fatalf("summaries %v, %v", names, err)
	}
	m.Set("snap-0a/planted"+WorkerSuffix, []byte("{}"))
	m.Set("a/b/c/d/e/deep"+WorkerSuffix, []byte("{}"))
	m.Set("big"+WorkerSuffix, []byte(strings.Repeat(" ", MaxWorkerSummaryBytes+1)))
	m.Delete("snap-0a/manifest.jsonl")
	s, err := SummarizeBucket(ctx, m, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.ExitCode != 4 || len(s.Problems) != 2 || !strings.HasPrefix(s.Problems[0], "big"+WorkerSuffix+": ") ||
		!strings.Contains(s.Problems[1], "snap-0a says complete, but snap-0a/manifest.jsonl is not there") ||
		s.Workers[0].Evidence[0].Outcome != EvidenceMissing {
		t.Fatalf("%+v", s)
	}
}
